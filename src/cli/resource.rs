//! `keygate resource create|list|delete` (README, "Protected resources"): the operator
//! registers the APIs and MCP servers an organization issues tokens for (RFC 8707).

use std::time::Duration;

use clap::Subcommand;
use serde_json::{Value, json};

use super::{Output, print, rfc3339};
use crate::admin::{self, resources::NewResource};
use crate::clock::Clock;
use crate::config::Settings;
use crate::startup::open_storage;
use crate::storage;

#[derive(Debug, Subcommand)]
pub enum ResourceCommand {
    /// Register a protected resource: tokens requested with `resource=<uri>` carry it as `aud`.
    Create {
        #[arg(long)]
        org: String,
        /// The resource's URI, e.g. https://mcp.example.com/mcp (`http` only on loopback).
        #[arg(long)]
        uri: String,
        #[arg(long)]
        name: String,
        /// A scope the resource defines (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Caps the lifetime of its access tokens, e.g. `5m`.
        #[arg(long, value_parser = humantime::parse_duration)]
        access_ttl: Option<Duration>,
        #[command(flatten)]
        out: Output,
    },
    /// The organization's resources.
    List {
        #[arg(long)]
        org: String,
        #[command(flatten)]
        out: Output,
    },
    /// Remove a resource: no token is issued for it any more.
    Delete {
        #[arg(long)]
        org: String,
        resource_id: String,
        #[command(flatten)]
        out: Output,
    },
}

fn resource_json(r: &entity::resource::Model, org: &str) -> Value {
    let ttl = r
        .access_ttl_secs
        .and_then(|s| u64::try_from(s).ok())
        .map(|s| humantime::format_duration(Duration::from_secs(s)).to_string());
    json!({
        "id": r.id, "org": org, "uri": r.uri, "name": r.name,
        "scopes": r.scopes.split_ascii_whitespace().collect::<Vec<_>>(),
        "access_ttl": ttl, "created_at": rfc3339(r.created_at),
    })
}

/// The `aud` of keygate's own tokens of `slug`, as far as the configuration tells.
fn own_audiences(settings: &Settings, slug: &str) -> Vec<String> {
    let issuer = settings
        .server
        .public_url
        .as_deref()
        .map(|url| format!("{}/v1/{slug}", url.trim_end_matches('/')));
    issuer
        .into_iter()
        .chain(settings.tokens.audience.clone())
        .collect()
}

pub async fn run(
    cmd: ResourceCommand,
    settings: &Settings,
    clock: &dyn Clock,
) -> anyhow::Result<()> {
    let storage = open_storage(settings).await?;
    let storage = &storage;
    match cmd {
        ResourceCommand::Create {
            org,
            uri,
            name,
            scopes,
            access_ttl,
            out,
        } => {
            let org = admin::find_org(storage, &org).await?;
            let new = NewResource {
                uri,
                name,
                scopes,
                access_ttl,
            };
            let own = own_audiences(settings, &org.slug);
            let r = admin::resources::register(storage, clock, &org, &own, new).await?;
            print(&out, resource_json(&r, &org.slug), || {
                format!(
                    "id:     {}\nuri:    {}\nscopes: {}\n(tokens requested with resource={} carry it as aud)",
                    r.id, r.uri, r.scopes, r.uri
                )
            });
        }
        ResourceCommand::List { org, out } => {
            let org = admin::find_org(storage, &org).await?;
            let all = storage::resources::list(storage, &org.id).await?;
            let rows: Vec<Value> = all.iter().map(|r| resource_json(r, &org.slug)).collect();
            print(&out, json!(rows), || {
                all.iter()
                    .map(|r| format!("{}\t{}\t{}\t{}", r.id, r.uri, r.name, r.scopes))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        ResourceCommand::Delete {
            org,
            resource_id,
            out,
        } => {
            let org = admin::find_org(storage, &org).await?;
            admin::resources::remove(storage, &org, &resource_id).await?;
            print(&out, json!({"id": resource_id, "deleted": true}), || {
                format!("deleted {resource_id}")
            });
        }
    }
    Ok(())
}
