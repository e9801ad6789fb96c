// The browser side of .ci/browser-flows: a person signs in to keygate's pages with the
// emailed code (read from keygate's development log line), approves a registered public
// browser client (authorization code + PKCE S256, RFC 6749 §4.1, RFC 7636, with `state`
// and RFC 9207 `iss`; then the remembered consent, and Deny after prompt=consent), and
// approves and denies devices asked by an agent's API key and by the public client
// (RFC 8628), in headless Chromium
// driven by playwright-core. Elements are found by their labels and roles, as assistive
// technology finds them. The client's side (its redirect target, the token requests) is
// plain Node: a loopback HTTP server and fetch. Every request the pages make to another
// origin is refused and fails the run (keygate's pages must be self-contained).
// Screenshots of each page go to OUT_DIR. Prints every step; exits non-zero at the first
// mismatch.
//
// usage: KEYGATE_ADMIN_TOKEN=… KEYGATE_AGENT_KEY_ID=… KEYGATE_AGENT_KEY=… KEYGATE_AGENT_NAME=… \
//   node flows.mjs ISSUER EMAIL USER_ID KEYGATE_LOG OUT_DIR

import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";

import { chromium } from "playwright-core";

const [issuer, email, userId, keygateLog, outDir] = process.argv.slice(2);
const adminToken = process.env.KEYGATE_ADMIN_TOKEN;
const [agentKeyId, agentKey, agentName] = [process.env.KEYGATE_AGENT_KEY_ID, process.env.KEYGATE_AGENT_KEY, process.env.KEYGATE_AGENT_NAME];
const keygateOrigin = new URL(issuer).origin;
const org = new URL(issuer).pathname.split("/")[2];

class CheckFailed extends Error {}

/** Stops the run (the browser and the redirect target are closed on the way out). */
function check(condition, message) {
  if (!condition) throw new CheckFailed(message);
  console.log(`ok: ${message}`);
}

/** A form POST to keygate; the answer's status, headers and JSON body. */
async function post(path, fields, headers = {}) {
  const response = await fetch(`${issuer}${path}`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
    body: new URLSearchParams(fields),
  });
  return { status: response.status, headers: response.headers, body: await body(response) };
}

/** A response's JSON body, or `{ unparsed }` with the start of whatever else it was. */
async function body(response) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return { unparsed: text.slice(0, 300) };
  }
}

async function whoAmI(accessToken) {
  const response = await fetch(`${issuer}/user/me`, { headers: { Authorization: `Bearer ${accessToken}` } });
  return { status: response.status, body: await body(response) };
}

/** The codes keygate wrote to its log for `email` (development fallback, no SMTP). */
function loggedCodes() {
  const escaped = email.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const line = new RegExp(`login code for ${escaped} in org ${org}: (\\d{6})`, "g");
  return [...readFileSync(keygateLog, "utf8").matchAll(line)].map((match) => match[1]);
}

async function newLoggedCode(before) {
  for (let i = 0; i < 100; i++) {
    const codes = loggedCodes();
    if (codes.length > before) return codes.at(-1);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  check(false, `keygate logged a sign-in code for ${email} within 10 s`);
}

async function shot(page, name) {
  const path = join(outDir, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`   screenshot ${path}`);
}

let browser;
let redirectServer;
let page;
try {
  // --- the client's redirect target: a loopback HTTP server ------------------------------------
  const callbacks = [];
  redirectServer = createServer((req, res) => {
    callbacks.push(new URL(req.url, "http://127.0.0.1"));
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end("<!doctype html><title>client</title><p>The client received the authorization response.</p>");
  });
  await new Promise((resolve) => redirectServer.listen(0, "127.0.0.1", resolve));
  const redirectUri = `http://127.0.0.1:${redirectServer.address().port}/callback`;

  // --- a registered public browser client ------------------------------------------------------
  const registration = await fetch(`${issuer}/clients`, {
    method: "POST",
    headers: { Authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({
      client_name: "Browser flows test client",
      redirect_uris: [redirectUri],
      token_endpoint_auth_method: "none",
    }),
  });
  const client = await body(registration);
  check(
    registration.status === 201 && client.client_id?.startsWith("cli_") && client.client_secret === undefined,
    `POST /v1/${org}/clients: public client ${client.client_id} (no secret), redirect URI ${redirectUri}` +
      (registration.status === 201 ? "" : ` (got ${registration.status} ${JSON.stringify(client)})`),
  );
  const clientId = client.client_id;

  // --- the browser -----------------------------------------------------------------------------
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
  const refused = [];
  const context = await browser.newContext({ viewport: { width: 1024, height: 768 } });
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.origin === keygateOrigin || url.origin === new URL(redirectUri).origin) return route.continue();
    refused.push(url.href);
    return route.abort();
  });
  page = await context.newPage();
  const pageErrors = [];
  page.on("pageerror", (error) => pageErrors.push(String(error)));

  const consoleErrors = [];
  page.on("console", (message) => {
    if (message.type() === "error") consoleErrors.push(message.text());
  });

  /** On the sign-in page: the email, the code keygate logs, Sign in. `shots` names screenshots. */
  async function signIn(shots = {}) {
    if (shots.signin) await shot(page, shots.signin);
    const codesBefore = loggedCodes().length;
    await page.getByLabel("Email address").fill(email);
    await page.getByRole("button", { name: "Email me a code" }).click();
    await page.getByLabel("6-digit code").waitFor();
    check(await page.getByText(email).count() > 0, "the code page names the email address");
    if (shots.code) await shot(page, shots.code);
    const code = await newLoggedCode(codesBefore);
    console.log(`   keygate logged a 6-digit code for ${email}`);
    await page.getByLabel("6-digit code").fill(code);
    await page.getByRole("button", { name: "Sign in" }).click();
  }

  /** Waits until the browser is at the client's redirect URI; a failure names where it is instead. */
  async function atRedirectUri(label) {
    const errorsBefore = consoleErrors.length;
    try {
      await page.waitForURL((url) => url.href.startsWith(redirectUri), { timeout: 15_000 });
    } catch {
      const errors = consoleErrors.slice(errorsBefore);
      check(false, `${label}: the browser did not reach ${redirectUri}; it is at ${page.url()}` +
        (errors.length ? `; browser console errors: ${errors.join(" | ")}` : ""));
    }
    return new URL(page.url());
  }

  // --- authorization code + PKCE ------------------------------------------------------------
  /** An authorization request with a fresh PKCE verifier (S256) and state. */
  function authorizationRequest(extra = {}) {
    const verifier = randomBytes(32).toString("base64url");
    const state = randomBytes(16).toString("base64url");
    const url = new URL(`${issuer}/oauth/authorize`);
    for (const [name, value] of Object.entries({
      response_type: "code", client_id: clientId, redirect_uri: redirectUri, scope: "keys:read", state,
      code_challenge: createHash("sha256").update(verifier).digest("base64url"), code_challenge_method: "S256", ...extra,
    })) url.searchParams.set(name, value);
    return { url, verifier, state };
  }

  const { url: authorize, verifier, state } = authorizationRequest();

  await page.goto(authorize.href);
  check(new URL(page.url()).pathname === `/v1/${org}/login`, `not signed in: the authorize URL sends the browser to /v1/${org}/login (at ${page.url()})`);
  await signIn({ signin: "signin", code: "code" });

  await page.getByRole("button", { name: "Approve" }).waitFor();
  check(new URL(page.url()).pathname === `/v1/${org}/oauth/authorize`, `signed in: back at the authorize URL, which shows the consent page (at ${page.url()})`);
  check(await page.getByText("Browser flows test client").count() > 0, "the consent page names the client");
  check(await page.getByText(email).count() > 0, "the consent page names the person signed in");
  check(await page.getByText("keys:read").count() > 0, "the consent page lists the scope asked for, keys:read");
  check(await page.getByRole("button", { name: "Deny" }).count() === 1, "the consent page has a Deny button");
  const session = (await context.cookies(`${issuer}/`)).find((cookie) => cookie.name === "keygate_session");
  check(
    session?.httpOnly === true && session.sameSite === "Lax",
    `the browser session cookie is HttpOnly and SameSite=Lax (path ${session?.path}, httpOnly ${session?.httpOnly}, sameSite ${session?.sameSite})`,
  );
  await shot(page, "consent");
  await page.getByRole("button", { name: "Approve" }).click();
  const callback = await atRedirectUri("Approve");
  console.log(`   redirected to ${callback.origin}${callback.pathname} with ${[...callback.searchParams.keys()].join(", ")}`);
  check(callbacks.length === 1, "the client's redirect target received one authorization response");
  check(callback.searchParams.get("state") === state, "state came back unchanged");
  check(callback.searchParams.get("iss") === issuer, `iss is keygate's issuer (RFC 9207): ${callback.searchParams.get("iss")}`);
  check(!callback.searchParams.has("error") && callback.searchParams.getAll("code").length === 1, "one code, no error");
  const authorizationCode = callback.searchParams.get("code");

  const exchange = {
    grant_type: "authorization_code", code: authorizationCode, redirect_uri: redirectUri,
    client_id: clientId, code_verifier: verifier,
  };
  const tokens = await post("/oauth/token", exchange);
  check(
    tokens.status === 200 && tokens.body.token_type === "Bearer" && typeof tokens.body.access_token === "string" &&
      tokens.body.scope === "keys:read" && tokens.headers.get("cache-control")?.includes("no-store"),
    `the code and the PKCE verifier at the token endpoint: a Bearer token with scope keys:read, no-store` +
      (tokens.status === 200 ? ` (scope "${tokens.body.scope}")` : ` (got ${tokens.status} ${JSON.stringify(tokens.body)})`),
  );
  const me = await whoAmI(tokens.body.access_token);
  check(me.status === 200 && me.body.user_id === userId && me.body.email === email, `/user/me with it: ${me.body.email} (${me.body.user_id})`);
  const replay = await post("/oauth/token", exchange);
  check(replay.status === 400 && replay.body.error === "invalid_grant", "the same code again: invalid_grant (single use)");

  // Consent is remembered: the same request again goes straight back to the client with a code.
  const again = authorizationRequest();
  await page.goto(again.url.href);
  const remembered = await atRedirectUri("the same request again");
  check(
    remembered.searchParams.get("state") === again.state && remembered.searchParams.has("code"),
    "the same client and scope again: no consent page, a code at once (consent remembered)",
  );
  // Signed out, the same request leads through the sign-in pages; with the consent remembered,
  // the code form's answer redirects to the authorize URL and on to the client at once (a
  // chain of redirects from a form post that the pages' CSP form-action must allow).
  await page.goto(`${issuer}/login`);
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("Email address").waitFor();
  const afterSignOut = (await context.cookies(`${issuer}/`)).some((cookie) => cookie.name === "keygate_session");
  check(!afterSignOut && new URL(page.url()).pathname === `/v1/${org}/login`, "Sign out: the session cookie is gone, back at the sign-in page");
  const resumed = authorizationRequest();
  await page.goto(resumed.url.href);
  check(new URL(page.url()).pathname === `/v1/${org}/login`, `signed out: the authorize URL sends the browser to sign in (at ${page.url()})`);
  await signIn();
  const resumedAnswer = await atRedirectUri("signed in again, consent remembered");
  check(
    resumedAnswer.searchParams.get("state") === resumed.state && resumedAnswer.searchParams.has("code") &&
      resumedAnswer.searchParams.get("iss") === issuer,
    "signed in again: straight from the code form to the client with a code (consent remembered)",
  );
  const resumedTokens = await post("/oauth/token", {
    grant_type: "authorization_code", code: resumedAnswer.searchParams.get("code"), redirect_uri: redirectUri,
    client_id: clientId, code_verifier: resumed.verifier,
  });
  check(resumedTokens.status === 200 && resumedTokens.body.scope === "keys:read", "that code gets a token too");

  // prompt=consent asks again; Deny sends the person back with access_denied (RFC 6749 §4.1.2.1).
  const denied = authorizationRequest({ prompt: "consent" });
  await page.goto(denied.url.href);
  await page.getByRole("button", { name: "Deny" }).click();
  const refusal = (await atRedirectUri("Deny")).searchParams;
  check(
    refusal.get("error") === "access_denied" && refusal.get("state") === denied.state && refusal.get("iss") === issuer &&
      !refusal.has("code"),
    "prompt=consent shows the page again; Deny: access_denied with state and iss, no code",
  );

  // --- device authorization grant (RFC 8628) ------------------------------------------------
  // Two kinds of client ask: an agent's API key (client_secret_basic) and the public browser
  // client (client_id only).
  const agent = {
    label: "the agent's API key", name: agentName, fields: {},
    headers: { Authorization: `Basic ${Buffer.from(`${agentKeyId}:${agentKey}`).toString("base64")}` },
  };
  const publicClient = { label: "the public browser client", name: "Browser flows test client", fields: { client_id: clientId }, headers: {} };

  /** Polls the token endpoint as RFC 8628 §3.4–§3.5 asks: every `interval` s, +5 s on slow_down. */
  async function poll(client, deviceCode, interval) {
    for (const deadline = Date.now() + 120_000; Date.now() < deadline;) {
      await new Promise((resolve) => setTimeout(resolve, interval * 1000));
      const answer = await devicePoll(client, deviceCode);
      console.log(`   poll: ${answer.status} ${answer.body.error ?? answer.body.token_type}`);
      if (answer.body.error === "authorization_pending") continue;
      if (answer.body.error === "slow_down") {
        interval += 5;
        continue;
      }
      return answer;
    }
    check(false, "the device flow finished within 2 minutes");
  }

  function devicePoll(client, deviceCode) {
    const grant = { grant_type: "urn:ietf:params:oauth:grant-type:device_code", device_code: deviceCode, ...client.fields };
    return post("/oauth/token", grant, client.headers);
  }

  /**
   * One device authorization by `client`, which the person approves or denies in the browser;
   * `shots` names the screenshots of the confirmation page and of the page after the decision.
   */
  async function deviceFlow(client, decision, shots = {}) {
    const { status, body: grant } = await post("/oauth/device_authorization", client.fields, client.headers);
    check(
      status === 200 && typeof grant.device_code === "string" && /^[A-Z]{4}-[A-Z]{4}$/.test(grant.user_code) &&
        grant.verification_uri === `${issuer}/device` && grant.verification_uri_complete?.startsWith(`${issuer}/device?`) &&
        grant.expires_in > 0 && grant.interval > 0,
      `${client.label}: POST /v1/${org}/oauth/device_authorization: user code ${grant.user_code}, ` +
        `${grant.verification_uri_complete}, interval ${grant.interval} s` +
        (status === 200 ? "" : ` (got ${status} ${JSON.stringify(grant)})`),
    );
    const pending = await devicePoll(client, grant.device_code);
    check(pending.status === 400 && pending.body.error === "authorization_pending", "polled before the person decides: authorization_pending");

    await page.goto(grant.verification_uri_complete);
    await page.getByRole("button", { name: decision }).waitFor();
    check(new URL(page.url()).pathname === `/v1/${org}/device`, `signed in already: the device page asks to confirm (at ${page.url()})`);
    check(await page.getByText(client.name).count() > 0, `the device page names the client, ${client.name}`);
    check(await page.getByText(grant.user_code).count() > 0, `the device page shows the user code ${grant.user_code} to compare`);
    if (shots.confirm) await shot(page, shots.confirm);
    await page.getByRole("button", { name: decision }).click();
    const outcome = decision === "Approve" ? "Device approved" : "Denied";
    await page.getByRole("heading", { name: outcome }).waitFor();
    console.log(`   the page after ${decision}: "${outcome}"`);
    if (shots.after) await shot(page, shots.after);

    const answer = await poll(client, grant.device_code, grant.interval);
    if (decision === "Deny") {
      check(answer.status === 400 && answer.body.error === "access_denied", `${client.label}: after Deny the poll gets access_denied`);
      return;
    }
    check(
      answer.status === 200 && typeof answer.body.access_token === "string",
      `${client.label}: after Approve the poll gets a token` + (answer.status === 200 ? "" : ` (got ${answer.status} ${JSON.stringify(answer.body)})`),
    );
    const me = await whoAmI(answer.body.access_token);
    check(me.status === 200 && me.body.user_id === userId, `/user/me with the device's token: ${me.body.email}, the person who approved`);
    const again = await devicePoll(client, grant.device_code);
    check(again.status === 400 && again.body.error === "invalid_grant", `${client.label}: the device code again: invalid_grant (tokens are issued once)`);
  }

  await deviceFlow(agent, "Approve", { confirm: "device", after: "device-approved" });
  await deviceFlow(publicClient, "Approve");
  await deviceFlow(agent, "Deny", { after: "device-denied" });

  check(refused.length === 0, `the pages requested nothing from another origin${refused.length ? `: ${refused.join(", ")}` : ""}`);
  check(pageErrors.length === 0, `no script error in the pages${pageErrors.length ? `: ${pageErrors.join(" | ")}` : ""}`);
  check(consoleErrors.length === 0, `no error in the browser console (CSP violations show there)${consoleErrors.length ? `: ${consoleErrors.join(" | ")}` : ""}`);
  console.log("browser-flows: all checks passed");
} catch (error) {
  console.log(error instanceof CheckFailed ? `FAIL: ${error.message}` : `FAIL: ${error.name}: ${error.message}`);
  if (page) await shot(page, "failure").catch(() => {});
  process.exitCode = 1;
} finally {
  await browser?.close();
  redirectServer?.close();
}
