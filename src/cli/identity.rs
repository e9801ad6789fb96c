//! `keygate identity-key` (an organization's Ed25519 identity keys: rotate, list) and
//! `keygate proof verify` (checks an identity proof against a running keygate's identity
//! JWKS, as any third party would). README, "Identity proofs".

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::{Output, print, rfc3339};
use crate::admin;
use crate::clock::Clock;
use crate::config::Settings;
use crate::identity;
use crate::identity::proof;
use crate::secrets::Secrets;
use crate::signing_keys;
use crate::startup::open_storage;
use crate::storage;

#[derive(Debug, Subcommand)]
pub enum IdentityKeyCommand {
    /// Publish a new identity key; it signs proofs once the JWKS cache lifetime has passed
    /// (70 s), and the old keys stay published until every proof they signed has expired.
    Rotate {
        #[arg(long)]
        org: String,
        #[command(flatten)]
        out: Output,
    },
    /// The organization's identity keys with their state.
    List {
        #[arg(long)]
        org: String,
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProofCommand {
    /// Verify an identity proof against the organization's identity JWKS (fetched over
    /// HTTP); prints its claims, exits non-zero when it does not verify.
    Verify {
        /// The organization's issuer (`https://auth.example.com/v1/acme`) or its identity
        /// JWKS URL (`…/v1/acme/.well-known/identity-jwks.json`).
        #[arg(long)]
        url: String,
        /// The `aud` the proof must carry.
        #[arg(long)]
        aud: Option<String>,
        /// The proof (a compact JWS).
        proof: String,
        #[command(flatten)]
        out: Output,
    },
}

pub async fn identity_key(
    cmd: IdentityKeyCommand,
    settings: &Settings,
    clock: &dyn Clock,
) -> anyhow::Result<()> {
    let storage = open_storage(settings).await?;
    match cmd {
        IdentityKeyCommand::Rotate { org, out } => {
            let org = admin::find_org(&storage, &org).await?;
            let secrets = Secrets::load(settings)?;
            let lifetime = settings.identity_proofs.ttl + settings.tokens.leeway;
            let rotation =
                identity::rotate(&storage, &secrets.kek, &org.id, clock.now(), lifetime).await?;
            let (key, retire_at) = (&rotation.key, rotation.previous_retire_at);
            print(
                &out,
                json!({"org": org.slug, "kid": key.kid, "alg": "EdDSA", "state": "published",
                       "activates_at": rfc3339(key.activated_at),
                       "previous_keys_retire_at": rfc3339(retire_at)}),
                || {
                    format!(
                        "new identity key {} of {} is published; it signs proofs from {}; previous keys retire at {}",
                        key.kid,
                        org.slug,
                        rfc3339(key.activated_at),
                        rfc3339(retire_at)
                    )
                },
            );
        }
        IdentityKeyCommand::List { org, out } => {
            let org = admin::find_org(&storage, &org).await?;
            let records = storage::identity_keys::all(&storage, &org.id).await?;
            let states = signing_keys::states(&records, clock.now());
            let rows: Vec<_> = records
                .iter()
                .zip(&states)
                .map(|(r, state)| {
                    json!({"kid": r.kid, "alg": "EdDSA", "state": state.as_str(),
                       "created_at": rfc3339(r.created_at),
                       "activated_at": rfc3339(r.activated_at),
                       "retire_at": r.retire_at.map(rfc3339)})
                })
                .collect();
            print(&out, json!(rows), || {
                records
                    .iter()
                    .zip(&states)
                    .map(|(r, state)| {
                        format!(
                            "{}\tEdDSA\t{}\tsigns from {}",
                            r.kid,
                            state.as_str(),
                            rfc3339(r.activated_at)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(())
}

/// The issuer and the identity JWKS URL `url` names.
fn urls(url: &str) -> (String, String) {
    const JWKS_PATH: &str = "/.well-known/identity-jwks.json";
    let url = url.trim_end_matches('/');
    match url.strip_suffix(JWKS_PATH) {
        Some(issuer) => (issuer.to_owned(), url.to_owned()),
        None => (url.to_owned(), format!("{url}{JWKS_PATH}")),
    }
}

pub async fn proof(cmd: ProofCommand, clock: &dyn Clock) -> anyhow::Result<()> {
    let ProofCommand::Verify {
        url,
        aud,
        proof: token,
        out,
    } = cmd;
    let (issuer, jwks_url) = urls(&url);
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let response = http
        .get(&jwks_url)
        .send()
        .await
        .with_context(|| format!("fetching {jwks_url}"))?;
    if !response.status().is_success() {
        anyhow::bail!("{jwks_url} answered {}", response.status());
    }
    let jwks: jsonwebtoken::jwk::JwkSet = response
        .json()
        .await
        .with_context(|| format!("{jwks_url} is not a JWK Set"))?;
    let claims = proof::verify(
        &jwks,
        token.trim(),
        &issuer,
        aud.as_deref(),
        clock.now().timestamp(),
        30,
    )?;
    print(&out, serde_json::to_value(&claims)?, || {
        format!(
            "valid identity proof: {} is {} of {} until {}{}",
            claims.sub,
            claims.role,
            claims.org,
            chrono::DateTime::from_timestamp(claims.exp, 0)
                .map(rfc3339)
                .unwrap_or_default(),
            claims
                .aud
                .as_ref()
                .map(|a| format!(" (for {a})"))
                .unwrap_or_default()
        )
    });
    Ok(())
}
