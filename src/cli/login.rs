//! `keygate login`: the device authorization grant (RFC 8628) from a terminal (README,
//! "Device flow and `keygate login`"). It reads the organization's metadata (RFC 8414),
//! asks the device authorization endpoint for codes, tells the person where to approve
//! (stderr), polls the token endpoint as RFC 8628 §3.5 says (never sooner than `interval`;
//! 5 s more after each `slow_down`; twice as long after a network error), and prints the
//! token response. It stores nothing. With `--dpop-key` every poll carries a fresh DPoP
//! proof of that key (created when the file is missing), so the tokens are DPoP-bound.
//! Like `keygate dpop`, it needs neither configuration nor a database.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Args;
use serde_json::Value;

use crate::clock::{Clock, SystemClock};
use crate::dpop_client::ClientKey;

/// The client `keygate login` is when no `--client-id` is given.
pub const DEFAULT_CLIENT_ID: &str = "keygate-cli";
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// RFC 8628 §3.2: the interval when the server names none; §3.5: what `slow_down` adds.
const DEFAULT_INTERVAL: u64 = 5;
const SLOW_DOWN_STEP: u64 = 5;
/// The longest wait between two polls after network errors.
const MAX_INTERVAL: u64 = 300;

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// keygate's public URL, e.g. `https://auth.example.com`.
    #[arg(long)]
    url: String,
    /// The organization's slug.
    #[arg(long)]
    org: String,
    /// The client: an API key id (`key_…`, with `--client-secret`), or a registered
    /// client's id. Default: `keygate-cli`, the public client every organization knows.
    #[arg(long, default_value = DEFAULT_CLIENT_ID)]
    client_id: String,
    /// The client's secret (an API key client's `ak_…`), sent with HTTP Basic.
    #[arg(long, env = "KEYGATE_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// The scopes to ask for (space-separated); default: none (the token only says who you are).
    #[arg(long)]
    scope: Option<String>,
    /// A registered protected resource the token is for (RFC 8707; repeatable).
    #[arg(long)]
    resource: Vec<String>,
    /// Bind the tokens to this DPoP key (PKCS#8 or SEC1 PEM; an ES256 key is generated
    /// there when the file is missing).
    #[arg(long)]
    dpop_key: Option<PathBuf>,
    /// Print the token response as received (JSON) instead of a summary and the token.
    #[arg(long)]
    json: bool,
}

/// Runs `keygate login` before (and without) loading settings or opening a database.
/// Errors go to stderr and exit with 1.
pub async fn run_login(args: LoginArgs) -> ExitCode {
    match login(args, &SystemClock).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("keygate: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `application/x-www-form-urlencoded` of one value (RFC 6749 §2.3.1: Basic's parts are
/// form-encoded before the base64).
fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

struct Client {
    http: reqwest::Client,
    id: String,
    secret: Option<String>,
    dpop: Option<ClientKey>,
}

impl Client {
    /// A POST of `form` to `endpoint`, authenticated as the client (Basic with a secret,
    /// else `client_id` in the form: a public client), with a proof when `nonce` or a DPoP
    /// key is given.
    async fn post(
        &self,
        endpoint: &str,
        mut form: Vec<(&str, String)>,
        dpop_nonce: Option<&str>,
        clock: &dyn Clock,
    ) -> reqwest::Result<reqwest::Response> {
        let mut request = self.http.post(endpoint);
        match &self.secret {
            Some(secret) => {
                let pair = format!("{}:{}", form_encode(&self.id), form_encode(secret));
                request = request.header(
                    reqwest::header::AUTHORIZATION,
                    format!("Basic {}", STANDARD.encode(pair)),
                );
            }
            None => form.push(("client_id", self.id.clone())),
        }
        if let Some(key) = &self.dpop
            && let Ok(proof) = key.proof("POST", endpoint, None, dpop_nonce, clock.now())
        {
            request = request.header("DPoP", proof);
        }
        request.form(&form).send().await
    }
}

/// A response's JSON body and the raw text (printed as received with `--json`).
async fn body(response: reqwest::Response) -> anyhow::Result<(reqwest::StatusCode, Value, String)> {
    let status = response.status();
    let text = response.text().await.context("reading the response")?;
    let json = serde_json::from_str(&text)
        .with_context(|| format!("the server answered {status} with a body that is not JSON"))?;
    Ok((status, json, text))
}

fn oauth_error(body: &Value) -> anyhow::Error {
    let code = body["error"].as_str().unwrap_or("unknown_error");
    match body["error_description"].as_str() {
        Some(description) => anyhow!("{code}: {description}"),
        None => anyhow!("{code}"),
    }
}

fn endpoint(metadata: &Value, name: &str) -> anyhow::Result<String> {
    metadata[name]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the server's metadata has no {name}"))
}

async fn login(args: LoginArgs, clock: &dyn Clock) -> anyhow::Result<()> {
    let dpop = match &args.dpop_key {
        Some(path) => Some(super::load_or_create_key(path, None)?),
        None => None,
    };
    let client = Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?,
        id: args.client_id.clone(),
        secret: args.client_secret.clone().filter(|s| !s.is_empty()),
        dpop,
    };
    let base = args.url.trim_end_matches('/');
    let metadata_url = format!(
        "{base}/v1/{}/.well-known/oauth-authorization-server",
        args.org
    );
    let response = client
        .http
        .get(&metadata_url)
        .send()
        .await
        .with_context(|| format!("cannot reach {metadata_url}"))?;
    let (status, metadata, _) = body(response).await?;
    if !status.is_success() {
        bail!(
            "{metadata_url} answered {status}: is `{}` an organization?",
            args.org
        );
    }
    let device_endpoint = endpoint(&metadata, "device_authorization_endpoint")?;
    let token_endpoint = endpoint(&metadata, "token_endpoint")?;

    let mut form: Vec<(&str, String)> = Vec::new();
    if let Some(scope) = &args.scope {
        form.push(("scope", scope.clone()));
    }
    form.extend(args.resource.iter().map(|r| ("resource", r.clone())));
    let response = client
        .post(&device_endpoint, form, None, clock)
        .await
        .with_context(|| format!("cannot reach {device_endpoint}"))?;
    let (status, codes, _) = body(response).await?;
    if !status.is_success() {
        return Err(oauth_error(&codes).context("the device authorization request was refused"));
    }
    let field = |name: &str| {
        codes[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("the device authorization response has no {name}"))
    };
    let device_code = field("device_code")?;
    let user_code = field("user_code")?;
    let verification_uri = field("verification_uri")?;
    let expires_in = codes["expires_in"].as_u64().unwrap_or(600);
    let mut interval = codes["interval"]
        .as_u64()
        .unwrap_or(DEFAULT_INTERVAL)
        .max(1);
    eprintln!("To sign in, open {verification_uri} and enter the code {user_code}");
    if let Some(complete) = codes["verification_uri_complete"].as_str() {
        eprintln!("(or open {complete})");
    }
    eprintln!(
        "Waiting for approval (the code expires in {} minutes)…",
        expires_in.div_ceil(60)
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(expires_in);
    let mut nonce: Option<String> = None;
    let mut at_once = false;
    loop {
        if !std::mem::take(&mut at_once) {
            tokio::time::sleep(Duration::from_secs(interval)).await;
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("the code expired before it was approved; run keygate login again");
        }
        let form = vec![
            ("grant_type", GRANT_TYPE.to_owned()),
            ("device_code", device_code.clone()),
        ];
        let response = match client
            .post(&token_endpoint, form, nonce.as_deref(), clock)
            .await
        {
            Ok(response) => response,
            // RFC 8628 §3.5: on a connection problem, poll less often.
            Err(err) => {
                interval = (interval * 2).min(MAX_INTERVAL);
                eprintln!("keygate: {err}; polling again in {interval} seconds");
                continue;
            }
        };
        let new_nonce = response
            .headers()
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (status, answer, text) = body(response).await?;
        if status.is_success() {
            return print_tokens(&answer, &text, args.json);
        }
        match answer["error"].as_str() {
            Some("authorization_pending") => {}
            Some("slow_down") => interval += SLOW_DOWN_STEP,
            // RFC 9449 §8: the server wants its nonce in the proof; try again at once.
            Some("use_dpop_nonce") if new_nonce.is_some() && nonce != new_nonce => {
                nonce = new_nonce;
                at_once = true;
            }
            Some("access_denied") => bail!("the request was denied"),
            Some("expired_token") => {
                bail!("the code expired before it was approved; run keygate login again")
            }
            _ => return Err(oauth_error(&answer).context("the token request was refused")),
        }
    }
}

fn print_tokens(answer: &Value, text: &str, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{text}");
        return Ok(());
    }
    let token = answer["access_token"]
        .as_str()
        .ok_or_else(|| anyhow!("the token response has no access_token"))?;
    eprintln!(
        "Signed in: a {} token, valid for {} seconds, with scope `{}`{}.",
        answer["token_type"].as_str().unwrap_or("Bearer"),
        answer["expires_in"].as_i64().unwrap_or_default(),
        answer["scope"].as_str().unwrap_or_default(),
        if answer["refresh_token"].is_string() {
            " (and a refresh token: use --json to see it)"
        } else {
            ""
        },
    );
    println!("{token}");
    Ok(())
}
