//! `keygate issuer create|list|delete` (README, "Trusted identity providers" and
//! "Delegation"): the operator decides which identity providers an organization trusts, and
//! whether their tokens may be a JWT bearer grant's assertion (`--allow-jwt-bearer`).

use clap::Subcommand;
use serde_json::{Value, json};

use super::{Output, print, rfc3339};
use crate::admin::{self, issuers::NewIssuer};
use crate::clock::Clock;
use crate::config::Settings;
use crate::outbound::AddressPolicy;
use crate::startup::open_storage;
use crate::storage;

#[derive(Debug, Subcommand)]
pub enum IssuerCommand {
    /// Trust an identity provider: its tokens identify the users whose `external_subject`
    /// equals their subject claim.
    Create {
        #[arg(long)]
        org: String,
        /// The `iss` its tokens carry.
        #[arg(long)]
        issuer: String,
        /// Where its JWKS is fetched (`https`; `http` only to loopback on a loopback server).
        #[arg(long, conflicts_with = "jwks", required_unless_present = "jwks")]
        jwks_uri: Option<String>,
        /// A file holding its JWKS, for installs that cannot reach it.
        #[arg(long)]
        jwks: Option<std::path::PathBuf>,
        /// The `aud` its tokens must carry (for the JWT bearer grant: keygate's issuer).
        #[arg(long)]
        audience: String,
        /// The claim naming the user (default `sub`).
        #[arg(long, default_value = "sub")]
        subject_claim: String,
        /// An accepted `alg` (repeatable): RS256, PS256, ES256, ES384, EdDSA.
        #[arg(long = "alg", required = true)]
        algorithms: Vec<String>,
        /// Accept its tokens as the `assertion` of the JWT bearer grant (RFC 7523 §2.1).
        #[arg(long)]
        allow_jwt_bearer: bool,
        #[command(flatten)]
        out: Output,
    },
    /// The organization's trusted providers.
    List {
        #[arg(long)]
        org: String,
        #[command(flatten)]
        out: Output,
    },
    /// Stop trusting a provider (the sessions its workload tokens opened end with it).
    Delete {
        #[arg(long)]
        org: String,
        issuer_id: String,
        #[command(flatten)]
        out: Output,
    },
}

fn issuer_json(i: &entity::trusted_issuer::Model, org: &str) -> Value {
    json!({
        "id": i.id, "org": org, "issuer": i.issuer, "jwks_uri": i.jwks_uri,
        "audience": i.audience, "subject_claim": i.subject_claim,
        "algorithms": i.algorithms.split_ascii_whitespace().collect::<Vec<_>>(),
        "allow_jwt_bearer": i.allow_jwt_bearer, "created_at": rfc3339(i.created_at),
    })
}

pub async fn run(cmd: IssuerCommand, settings: &Settings, clock: &dyn Clock) -> anyhow::Result<()> {
    let storage = open_storage(settings).await?;
    let storage = &storage;
    match cmd {
        IssuerCommand::Create {
            org,
            issuer,
            jwks_uri,
            jwks,
            audience,
            subject_claim,
            algorithms,
            allow_jwt_bearer,
            out,
        } => {
            let org = admin::find_org(storage, &org).await?;
            let jwks = match jwks {
                Some(path) => Some(std::fs::read_to_string(&path).map_err(|e| {
                    anyhow::anyhow!("cannot read the JWKS file {}: {e}", path.display())
                })?),
                None => None,
            };
            let new = NewIssuer {
                issuer,
                jwks_uri,
                jwks,
                audience,
                subject_claim,
                algorithms,
                allow_jwt_bearer,
            };
            let policy = AddressPolicy::for_bind(&settings.server.bind);
            let i = admin::issuers::register(storage, clock, &org, policy, new).await?;
            print(&out, issuer_json(&i, &org.slug), || {
                format!(
                    "id:               {}\nissuer:           {}\naudience:         {}\nallow_jwt_bearer: {}",
                    i.id, i.issuer, i.audience, i.allow_jwt_bearer
                )
            });
        }
        IssuerCommand::List { org, out } => {
            let org = admin::find_org(storage, &org).await?;
            let all = storage::trusted_issuers::list(storage, &org.id).await?;
            let rows: Vec<Value> = all.iter().map(|i| issuer_json(i, &org.slug)).collect();
            print(&out, json!(rows), || {
                all.iter()
                    .map(|i| {
                        let jwt_bearer = if i.allow_jwt_bearer {
                            "jwt-bearer"
                        } else {
                            "-"
                        };
                        format!("{}\t{}\t{}\t{jwt_bearer}", i.id, i.issuer, i.audience)
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        IssuerCommand::Delete {
            org,
            issuer_id,
            out,
        } => {
            let org = admin::find_org(storage, &org).await?;
            if !storage::trusted_issuers::delete(storage, &org.id, &issuer_id).await? {
                anyhow::bail!("no trusted issuer {issuer_id} in {}", org.slug);
            }
            storage::sessions::revoke_for_key(storage, &org.id, &issuer_id, clock.now()).await?;
            print(&out, json!({"id": issuer_id, "deleted": true}), || {
                format!("deleted {issuer_id}")
            });
        }
    }
    Ok(())
}
