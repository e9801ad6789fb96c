// An MCP server built with the official MCP TypeScript SDK (Streamable HTTP, stateless) that
// is a resource server for keygate: it serves the RFC 9728 document keygate produced for it,
// and accepts only keygate access tokens issued for it, verified offline against keygate's
// JWKS with jose (README, "Verifying keygate's tokens at a resource server"):
// signature, typ at+jwt, iss = keygate's issuer, aud = this server's URI, exp, and the scope
// `mcp:tools`. Everything else gets 401 (403 for a missing scope) with a WWW-Authenticate
// challenge naming the metadata (RFC 6750 §3, RFC 9728 §5.1). One tool, `whoami`, answers
// with what the verified token says.
//
// usage: node server.mjs ISSUER PROTECTED_RESOURCE_METADATA_FILE
// Listens on the host and port of the metadata's `resource`; prints "listening <url>".

import { readFileSync } from "node:fs";

import { createRemoteJWKSet, jwtVerify } from "jose";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { createMcpExpressApp } from "@modelcontextprotocol/sdk/server/express.js";
import { requireBearerAuth } from "@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js";
import { metadataHandler } from "@modelcontextprotocol/sdk/server/auth/handlers/metadata.js";
import { getOAuthProtectedResourceMetadataUrl } from "@modelcontextprotocol/sdk/server/auth/router.js";
import { InvalidTokenError } from "@modelcontextprotocol/sdk/server/auth/errors.js";

const [issuer, metadataFile] = process.argv.slice(2);
const metadata = JSON.parse(readFileSync(metadataFile, "utf8"));
const RESOURCE = metadata.resource; // this server's URI, exactly as registered at keygate
const REQUIRED_SCOPE = "mcp:tools";
if (!metadata.authorization_servers?.includes(issuer)) {
  throw new Error(`the metadata does not name ${issuer} as authorization server`);
}
if (!metadata.scopes_supported?.includes(REQUIRED_SCOPE)) {
  throw new Error(`the resource does not define ${REQUIRED_SCOPE}`);
}
const url = new URL(RESOURCE);
const metadataUrl = getOAuthProtectedResourceMetadataUrl(url);
const JWKS = createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`));

const log = (line) => console.log(`[mcp server] ${line}`);

/** The SDK's OAuthTokenVerifier: keygate's access token → the SDK's AuthInfo. */
const verifier = {
  async verifyAccessToken(token) {
    let payload;
    try {
      ({ payload } = await jwtVerify(token, JWKS, {
        issuer,
        audience: RESOURCE,
        typ: "at+jwt",
        algorithms: ["ES256", "EdDSA"],
        requiredClaims: ["exp"],
      }));
    } catch (error) {
      log(`refused a token: ${error.code ?? "error"}: ${error.message}`);
      throw new InvalidTokenError(error.message);
    }
    if (payload.cnf !== undefined) {
      // requireBearerAuth accepts only "Bearer": a DPoP-bound token needs its proof (RFC 9449 §7.1).
      log("refused a DPoP-bound token presented as Bearer");
      throw new InvalidTokenError("a DPoP-bound token needs a DPoP proof");
    }
    const scopes = String(payload.scope ?? "").split(" ").filter(Boolean);
    log(`accepted a token: sub ${payload.sub}, client_id ${payload.client_id}, scope "${scopes.join(" ")}"`);
    return {
      token,
      clientId: String(payload.client_id ?? payload.sub),
      scopes,
      expiresAt: payload.exp,
      resource: new URL(RESOURCE),
      extra: { sub: payload.sub, aud: payload.aud, iss: payload.iss },
    };
  },
};

const app = createMcpExpressApp({ host: url.hostname });
app.use(new URL(metadataUrl).pathname, metadataHandler(metadata));
const bearer = requireBearerAuth({
  verifier,
  requiredScopes: [REQUIRED_SCOPE],
  resourceMetadataUrl: metadataUrl,
  expectedResource: url,
});

app.post(url.pathname, bearer, async (req, res) => {
  // Stateless: a server and a transport per request (the SDK's stateless pattern).
  const server = new McpServer({ name: "keygate-interop", version: "1.0.0" });
  server.registerTool(
    "whoami",
    { description: "Who the verified access token says the caller is" },
    async (extra) => {
      const auth = extra.authInfo;
      const who = { client_id: auth.clientId, scopes: auth.scopes, ...auth.extra };
      log(`tools/call whoami for ${auth.clientId}`);
      return { content: [{ type: "text", text: JSON.stringify(who) }] };
    },
  );
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  res.on("close", () => {
    transport.close();
    server.close();
  });
  await server.connect(transport);
  await transport.handleRequest(req, res, req.body);
});
// Stateless: no SSE stream to resume and no session to end.
for (const method of ["get", "delete"]) {
  app[method](url.pathname, (_req, res) => res.status(405).set("Allow", "POST").end());
}

const listener = app.listen(Number(url.port), url.hostname, () => {
  console.log(`listening ${RESOURCE} (metadata at ${metadataUrl})`);
});
listener.on("error", (error) => {
  console.error(`cannot listen on ${url.host}: ${error.message}`);
  process.exit(1);
});
