//! `keygate key`: create, list, revoke and rotate an organization's API keys, as the
//! operator, directly on the database. `--public-jwks` creates a secretless key-pair client
//! (README, "Key-pair clients (private_key_jwt)").

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::{Output, print, rfc3339};
use crate::admin::key_scopes::{self, ScopeList};
use crate::admin::{self, CreatedKey, NewKey};
use crate::clock::Clock;
use crate::config::Settings;
use crate::keys::client_jwks::ClientJwks;
use crate::limits::{KeyLimits, MAX_PER_HOUR, MAX_PER_MINUTE};
use crate::secrets::Secrets;
use crate::startup::open_storage;
use crate::storage;
use crate::types::Environment;

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "cli")]
        name: String,
        /// Lifetime, e.g. `90d`, `12h` (default: api_keys.default_duration).
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// Create an `ak_test_` key.
        #[arg(long)]
        test: bool,
        /// Restrict the key to these scopes (repeatable): keygate's own and scopes of the
        /// organization's registered resources, e.g. `mcp:tools` (default: every scope of
        /// keygate and of the organization's resources).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// A JWK Set file (`{"keys": [...]}`) of the client's public keys: the key is then a
        /// secretless key-pair client that authenticates with `private_key_jwt` (make the
        /// file with `keygate client-assertion --key PEM --jwks`).
        #[arg(long, value_name = "FILE")]
        public_jwks: Option<PathBuf>,
        /// Tokens the key may be issued per minute (default: limits.issuance_per_minute).
        #[arg(long, value_name = "N")]
        limit_per_minute: Option<i64>,
        /// Tokens the key may be issued per hour (default: limits.issuance_per_hour).
        #[arg(long, value_name = "N")]
        limit_per_hour: Option<i64>,
        #[command(flatten)]
        out: Output,
    },
    List {
        #[arg(long)]
        org: String,
        /// Only keys not used in this long (e.g. `30d`), never-used keys included; or an
        /// RFC 3339 time.
        #[arg(long, value_name = "AGE|TIME")]
        unused_since: Option<String>,
        #[command(flatten)]
        out: Output,
    },
    Revoke {
        #[arg(long)]
        org: String,
        key_id: String,
        #[command(flatten)]
        out: Output,
    },
    Rotate {
        #[arg(long)]
        org: String,
        key_id: String,
        /// How long the old key keeps working (default 0s: it stops at once).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
        grace: Duration,
        #[command(flatten)]
        out: Output,
    },
}

fn print_created_key(out: &Output, org: &str, created: &CreatedKey) {
    let k = &created.key;
    let Some(secret) = &created.secret else {
        print(
            out,
            json!({"api_key_id": k.id, "client_auth": "private_key_jwt", "user_id": k.user_id, "org": org, "expires_at": rfc3339(k.expires_at)}),
            || {
                format!(
                    "api_key_id:  {}\nclient_auth: private_key_jwt (no secret: sign assertions with `keygate client-assertion`)\nuser_id:     {}\nexpires_at:  {}",
                    k.id,
                    k.user_id,
                    rfc3339(k.expires_at)
                )
            },
        );
        return;
    };
    print(
        out,
        json!({"api_key_id": k.id, "api_key": secret.expose(), "client_auth": "client_secret", "user_id": k.user_id, "org": org, "expires_at": rfc3339(k.expires_at)}),
        || {
            format!(
                "api_key_id: {}\napi_key:    {}\nuser_id:    {}\nexpires_at: {}\n(the api_key is shown only this once)",
                k.id,
                secret.expose(),
                k.user_id,
                rfc3339(k.expires_at)
            )
        },
    );
}

pub(super) async fn key(
    cmd: KeyCommand,
    settings: &Settings,
    clock: &dyn Clock,
) -> anyhow::Result<()> {
    let storage = open_storage(settings).await?;
    let storage = &storage;
    match cmd {
        KeyCommand::Create {
            org,
            user,
            name,
            duration,
            test,
            scopes,
            public_jwks,
            limit_per_minute,
            limit_per_hour,
            out,
        } => {
            let per_minute = limit_per_minute
                .map(|n| KeyLimits::check(n, "per_minute", MAX_PER_MINUTE))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--limit-per-minute: {e}"))?;
            let per_hour = limit_per_hour
                .map(|n| KeyLimits::check(n, "per_hour", MAX_PER_HOUR))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--limit-per-hour: {e}"))?;
            let public_jwks = public_jwks.as_deref().map(read_jwks).transpose()?;
            let secrets = Secrets::load(settings)?;
            let org = admin::find_org(storage, &org).await?;
            // Listed resource scopes are checked against the organization's resources.
            let (scopes, resource_scopes) = if scopes.is_empty() {
                (None, None)
            } else {
                let list = ScopeList::parse(scopes.iter().map(String::as_str))
                    .map_err(|e| anyhow::anyhow!("--scope: {e}"))?;
                (Some(list.own), Some(list.resources))
            };
            let new = NewKey {
                user_id: user,
                name,
                duration,
                environment: if test {
                    Environment::Test
                } else {
                    Environment::Live
                },
                scopes,
                resource_scopes,
                public_jwks,
            };
            let created = admin::create_key(
                storage,
                &secrets.pepper,
                clock,
                &settings.api_keys,
                &org,
                new,
            )
            .await?;
            let mut created = created;
            if per_minute.is_some() || per_hour.is_some() {
                created.key = storage::api_keys::set_limits(
                    storage,
                    &org.id,
                    &created.key.id,
                    Some(per_minute),
                    Some(per_hour),
                )
                .await?;
            }
            print_created_key(&out, &org.slug, &created);
        }
        KeyCommand::List {
            org,
            unused_since,
            out,
        } => {
            let org = admin::find_org(storage, &org).await?;
            let now = clock.now();
            let since = unused_since
                .as_deref()
                .map(|text| unused_cutoff(text, now))
                .transpose()?;
            let mut keys = storage::api_keys::list(storage, &org.id).await?;
            if let Some(since) = since {
                keys.retain(|k| k.last_used_at.is_none_or(|t| t < since));
            }
            let status = |k: &entity::api_key::Model| {
                if k.revoked_at.is_some_and(|t| t <= now) {
                    "revoked"
                } else if k.expires_at <= now {
                    "expired"
                } else {
                    "active"
                }
            };
            let rows: Vec<_> = keys
                .iter()
                .map(|k| json!({
                    "api_key_id": k.id, "user_id": k.user_id, "name": k.name, "environment": k.environment,
                    "scopes": key_scopes::shown(k).join(" "), "all_resource_scopes": k.resource_scopes.is_none(),
                    "status": status(k), "created_at": rfc3339(k.created_at),
                    "expires_at": rfc3339(k.expires_at), "revoked_at": k.revoked_at.map(rfc3339),
                    "last_used_at": k.last_used_at.map(rfc3339), "last_used_ip": k.last_used_ip,
                    "limits": {"per_minute": k.limit_per_minute, "per_hour": k.limit_per_hour},
                    "client_auth": if k.public_jwks.is_some() { "private_key_jwt" } else { "client_secret" },
                }))
                .collect();
            print(&out, json!(rows), || {
                keys.iter()
                    .map(|k| {
                        format!(
                            "{}\t{}\t{}\t{}\texpires {}\tlast used {}",
                            k.id,
                            k.user_id,
                            k.name,
                            status(k),
                            rfc3339(k.expires_at),
                            k.last_used_at.map_or_else(|| "never".to_owned(), rfc3339)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        KeyCommand::Revoke { org, key_id, out } => {
            let org = admin::find_org(storage, &org).await?;
            let key = admin::revoke_key(storage, clock, &org, &key_id).await?;
            print(
                &out,
                json!({"api_key_id": key.id, "revoked_at": key.revoked_at.map(rfc3339)}),
                || format!("revoked {}", key.id),
            );
        }
        KeyCommand::Rotate {
            org,
            key_id,
            grace,
            out,
        } => {
            let secrets = Secrets::load(settings)?;
            let org = admin::find_org(storage, &org).await?;
            let created = admin::rotate_key(
                storage,
                &secrets.pepper,
                clock,
                &settings.api_keys,
                &org,
                &key_id,
                grace,
            )
            .await?;
            print_created_key(&out, &org.slug, &created);
        }
    }
    Ok(())
}

/// `--unused-since`: an age back from `now` (`30d`) or an RFC 3339 time.
fn unused_cutoff(
    text: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&chrono::Utc));
    }
    let age = humantime::parse_duration(text)
        .ok()
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .and_then(|d| now.checked_sub_signed(d))
        .with_context(|| {
            format!("--unused-since: `{text}` is neither an age like 30d nor an RFC 3339 time")
        })?;
    Ok(age)
}

/// Reads and checks a `--public-jwks` file (at most 64 KiB).
fn read_jwks(path: &Path) -> anyhow::Result<ClientJwks> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    anyhow::ensure!(
        text.len() <= 64 * 1024,
        "{} is larger than 64 KiB",
        path.display()
    );
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    ClientJwks::parse(&value).with_context(|| format!("{}", path.display()))
}
