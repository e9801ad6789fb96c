// The MCP client side of .ci/mcp-interop, written with the official MCP TypeScript SDK only.
// First what an agent does knowing only the MCP server's URL and an API key: the SDK's
// Client over StreamableHTTPClientTransport with ClientCredentialsProvider as authProvider
// and nothing else, so the SDK itself follows the server's 401 to its RFC 9728 document and
// to keygate's RFC 8414 metadata, gets a token with `resource`, and calls `whoami`. Then
// tokens from keygate with ClientCredentialsProvider (client_secret_basic) and
// PrivateKeyJwtProvider (private_key_jwt, RFC 7523) through its fetchToken and its auth()
// orchestration, each naming the MCP server with `resource` (RFC 8707); then the SDK's
// Client over StreamableHTTPClientTransport calls the server's `whoami` tool. Also the
// refusals: no token, keygate's own token, a token for another resource, a token without
// the tool scope (all at the MCP server), and an unregistered resource (at keygate).
// Prints every step; exits non-zero at the first mismatch.
//
// usage: node client.mjs ISSUER MCP_URL OTHER_RESOURCE CLIENT_ID CLIENT_SECRET KP_CLIENT_ID KP_KEY_PEM

import { readFileSync } from "node:fs";

import { decodeJwt } from "jose";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { discoverAuthorizationServerMetadata, fetchToken } from "@modelcontextprotocol/sdk/client/auth.js";
import { ClientCredentialsProvider, PrivateKeyJwtProvider } from "@modelcontextprotocol/sdk/client/auth-extensions.js";
import { InvalidTargetError } from "@modelcontextprotocol/sdk/server/auth/errors.js";

const [issuer, mcpUrl, otherResource, clientId, clientSecret, kpClientId, kpKeyFile] = process.argv.slice(2);
const kpKey = readFileSync(kpKeyFile, "utf8");

function check(condition, message) {
  if (!condition) {
    console.log(`FAIL: ${message}`);
    process.exit(1);
  }
  console.log(`ok: ${message}`);
}

// --- keygate's RFC 8414 metadata, through the SDK's discovery and its schema ----------------
let metadata;
try {
  metadata = await discoverAuthorizationServerMetadata(issuer);
} catch (error) {
  check(false, `the SDK's discovery of keygate's metadata: ${error.name}: ${String(error.message).replace(/\s+/g, " ").slice(0, 400)}`);
}
check(metadata?.issuer === issuer, "the SDK's discovery accepts keygate's metadata (its OAuthMetadataSchema)");
check(
  metadata.authorization_endpoint === `${issuer}/oauth/authorize` && metadata.response_types_supported.includes("code") &&
    metadata.code_challenge_methods_supported?.includes("S256"),
  "metadata: the authorization endpoint, response type code, PKCE S256 (what the SDK's startAuthorization requires)",
);
check(metadata.issuer === issuer && metadata.token_endpoint === `${issuer}/oauth/token`, "metadata: issuer and token_endpoint");
check(
  metadata.token_endpoint_auth_methods_supported.includes("private_key_jwt") &&
    metadata.token_endpoint_auth_signing_alg_values_supported.includes("ES256"),
  "metadata: private_key_jwt with ES256",
);

// --- helpers -------------------------------------------------------------------------------
function describe(accessToken) {
  const claims = decodeJwt(accessToken);
  console.log(`   token: aud ${JSON.stringify(claims.aud)}, scope "${claims.scope}", client_id ${claims.client_id}, exp in ${claims.exp - Math.floor(Date.now() / 1000)} s`);
  return claims;
}

/** The SDK's Client over Streamable HTTP, with a fixed token or an auth provider; calls whoami. */
async function whoami(transportOptions, label) {
  const client = new Client({ name: "keygate-interop-client", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), transportOptions);
  await client.connect(transport);
  const { tools } = await client.listTools();
  check(tools.some((tool) => tool.name === "whoami"), `${label}: tools/list names whoami`);
  const result = await client.callTool({ name: "whoami", arguments: {} });
  await client.close();
  check(!result.isError && result.content?.[0]?.type === "text", `${label}: tools/call whoami succeeded`);
  console.log(`   whoami: ${result.content[0].text}`);
  return JSON.parse(result.content[0].text);
}

const bearer = (token) => ({ requestInit: { headers: { Authorization: `Bearer ${token}` } } });

/**
 * A fetch for the SDK that records each exchange as "METHOD URL → status" in `lines`, and
 * the details the checks need in `exchanges` (the request body as form fields, the
 * response's WWW-Authenticate).
 */
function tracing(lines, exchanges = []) {
  return async (url, init) => {
    const response = await fetch(url, init);
    const method = init?.method ?? "GET";
    lines.push(`${method} ${url} → ${response.status}`);
    exchanges.push({
      method, url: String(url), status: response.status,
      form: init?.body instanceof URLSearchParams ? init.body : new URLSearchParams(),
      challenge: response.headers.get("www-authenticate") ?? "",
    });
    return response;
  };
}

/** A raw MCP initialize request, to see the server's refusal itself (status and challenge). */
async function initialize(headers) {
  const response = await fetch(mcpUrl, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
    body: JSON.stringify({
      jsonrpc: "2.0", id: 1, method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "0" } },
    }),
  });
  await response.body?.cancel();
  return { status: response.status, challenge: response.headers.get("www-authenticate") ?? "" };
}

async function refused(headers, status, error, label) {
  const answer = await initialize(headers);
  console.log(`   ${answer.status} WWW-Authenticate: ${answer.challenge}`);
  check(
    answer.status === status && answer.challenge.startsWith("Bearer ") && answer.challenge.includes(`error="${error}"`) &&
      answer.challenge.includes('resource_metadata="'),
    `${label}: ${status} ${error} with resource_metadata`,
  );
}

// --- 1. what an MCP client does knowing only the MCP server's URL and its credentials -------
// The SDK's Client + StreamableHTTPClientTransport with ClientCredentialsProvider as its
// authProvider and nothing else: no metadata, no discovery state. The SDK must find keygate
// by itself: the MCP server's 401 challenge names its RFC 9728 document, whose
// authorization_servers names keygate's issuer, whose RFC 8414 metadata (which the SDK
// validates with its own schema) names the token endpoint; then a token with `resource`.
{
  const lines = [];
  const exchanges = [];
  const discovering = new ClientCredentialsProvider({ clientId, clientSecret, expectedIssuer: issuer });
  let result;
  try {
    result = await whoami({ authProvider: discovering, fetch: tracing(lines, exchanges) }, "SDK full discovery");
  } catch (error) {
    for (const line of lines) console.log(`   ${line}`);
    check(false, `SDK full discovery: ${error.name}: ${String(error.message).replace(/\s+/g, " ").slice(0, 400)}`);
  }
  for (const line of lines) console.log(`   ${line}`);
  const { origin, pathname } = new URL(mcpUrl);
  const prmUrl = `${origin}/.well-known/oauth-protected-resource${pathname}`;
  const asUrl = `${new URL(issuer).origin}/.well-known/oauth-authorization-server${new URL(issuer).pathname}`;
  const challenge = exchanges.find((e) => e.method === "POST" && e.url === mcpUrl && e.status === 401)?.challenge ?? "";
  console.log(`   the MCP server's challenge: ${challenge}`);
  check(
    challenge.startsWith("Bearer ") && challenge.includes(`resource_metadata="${prmUrl}"`),
    `the MCP server answered 401 with Bearer resource_metadata="${prmUrl}"`,
  );
  check(exchanges.some((e) => e.url === prmUrl && e.status === 200), "the SDK read the RFC 9728 document at the URL the challenge named");
  check(exchanges.some((e) => e.url === asUrl && e.status === 200), `the SDK read keygate's RFC 8414 metadata at ${asUrl}`);
  const tokenRequest = exchanges.find((e) => e.method === "POST" && e.url === `${issuer}/oauth/token`);
  check(
    tokenRequest?.status === 200 && tokenRequest.form.get("grant_type") === "client_credentials" &&
      tokenRequest.form.getAll("resource").join(" ") === mcpUrl,
    `the SDK got a token from keygate with client_credentials and resource=${mcpUrl}`,
  );
  const claims = describe(discovering.tokens().access_token);
  check(claims.aud === mcpUrl && claims.iss === issuer && result.client_id === clientId, "its aud is the MCP server; whoami names the API key client");
  console.log(`   tools/call whoami through full discovery: ${JSON.stringify(result)}`);
}

// --- 2. client_credentials + client_secret_basic, resource = the MCP server ----------------
const secretClient = new ClientCredentialsProvider({ clientId, clientSecret, expectedIssuer: issuer, scope: "mcp:tools" });
const secretTokens = await fetchToken(secretClient, issuer, { metadata, resource: new URL(mcpUrl) });
check(secretTokens.token_type === "Bearer", "ClientCredentialsProvider + fetchToken with resource: a Bearer token");
let claims = describe(secretTokens.access_token);
check(claims.aud === mcpUrl && claims.iss === issuer && claims.scope === "mcp:tools", "its aud is the MCP server, its scope mcp:tools");
let who = await whoami(bearer(secretTokens.access_token), "client secret");
check(who.client_id === clientId && who.aud === mcpUrl, "the MCP server verified the token and names the client");

// --- 3. private_key_jwt, no scope requested: every scope of the resource ---------------------
const keyPairClient = new PrivateKeyJwtProvider({ clientId: kpClientId, privateKey: kpKey, algorithm: "ES256", expectedIssuer: issuer });
const kpTokens = await fetchToken(keyPairClient, issuer, { metadata, resource: new URL(mcpUrl) });
claims = describe(kpTokens.access_token);
check(claims.aud === mcpUrl && claims.client_id === kpClientId, "PrivateKeyJwtProvider + fetchToken with resource: aud is the MCP server");
check(claims.scope.split(" ").sort().join(" ") === "files:read mcp:tools", "no scope asked: every scope the resource defines");
who = await whoami(bearer(kpTokens.access_token), "private_key_jwt");
check(who.client_id === kpClientId, "the MCP server names the key-pair client");

// --- 4. the SDK's own orchestration: 401 → RFC 9728 metadata → token with resource → retry ---
const orchestrated = new PrivateKeyJwtProvider({
  clientId: kpClientId, privateKey: kpKey, algorithm: "ES256", expectedIssuer: issuer, scope: "mcp:tools",
});
const trace = [];
who = await whoami({ authProvider: orchestrated, fetch: tracing(trace) }, "SDK auth() flow");
for (const line of trace) console.log(`   ${line}`);
check(
  trace.some((line) => line.startsWith(`POST ${mcpUrl} → 401`)) &&
    trace.some((line) => line.includes("/.well-known/oauth-protected-resource")) &&
    trace.some((line) => line.includes("/.well-known/oauth-authorization-server/")) &&
    trace.some((line) => line.startsWith(`POST ${issuer}/oauth/token → 200`)),
  "the transport met a 401, read the server's RFC 9728 document and keygate's metadata, got a token from keygate",
);
claims = describe(orchestrated.tokens().access_token);
check(claims.aud === mcpUrl && who.client_id === kpClientId, "the token auth() obtained is for the MCP server");

// --- 5. refusals at the MCP server ---------------------------------------------------------
await refused({}, 401, "invalid_token", "no token");
const own = await fetchToken(new ClientCredentialsProvider({ clientId, clientSecret, expectedIssuer: issuer }), issuer, { metadata });
check(decodeJwt(own.access_token).aud === issuer, "without resource keygate issues a token for itself (aud = issuer)");
await refused({ Authorization: `Bearer ${own.access_token}` }, 401, "invalid_token", "keygate's own token");
const other = await fetchToken(secretClient, issuer, { metadata, resource: new URL(otherResource) });
check(decodeJwt(other.access_token).aud === otherResource, `a token for ${otherResource}`);
await refused({ Authorization: `Bearer ${other.access_token}` }, 401, "invalid_token", "a token for another resource");
const narrow = await fetchToken(
  new ClientCredentialsProvider({ clientId, clientSecret, expectedIssuer: issuer, scope: "files:read" }),
  issuer, { metadata, resource: new URL(mcpUrl) },
);
check(decodeJwt(narrow.access_token).scope === "files:read", "a token for the MCP server with scope files:read only");
await refused({ Authorization: `Bearer ${narrow.access_token}` }, 403, "insufficient_scope", "a token without mcp:tools");
const [header, , signature] = secretTokens.access_token.split(".");
const forged = Buffer.from(JSON.stringify({ ...decodeJwt(own.access_token), aud: mcpUrl, scope: "mcp:tools" })).toString("base64url");
await refused({ Authorization: `Bearer ${header}.${forged}.${signature}` }, 401, "invalid_token", "a token whose claims were changed");

// --- 6. an unregistered resource at keygate ------------------------------------------------
const unregistered = new URL("/unregistered", mcpUrl);
try {
  await fetchToken(secretClient, issuer, { metadata, resource: unregistered });
  check(false, `a token for the unregistered ${unregistered}`);
} catch (error) {
  console.log(`   ${error.name}: ${error.message}`);
  check(error instanceof InvalidTargetError, `${unregistered} (not registered): invalid_target from keygate`);
}
console.log("mcp-interop: all checks passed");
