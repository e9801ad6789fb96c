//! `keygate client create|list|delete` (README, "Browser clients: registered, metadata
//! documents, dynamic registration"): the operator registers the clients of an
//! organization's browser and device flows.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use serde_json::{Value, json};

use super::{Output, print, rfc3339};
use crate::admin::{self, clients::NewClient};
use crate::clock::Clock;
use crate::config::Settings;
use crate::secrets::Secrets;
use crate::startup::open_storage;
use crate::storage::{self, page::PageRequest};

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client of the browser and device flows (a secret is printed once for
    /// client_secret_basic).
    Create {
        #[arg(long)]
        org: String,
        /// Shown to people on the consent page.
        #[arg(long)]
        name: String,
        /// An exact redirect URI (repeatable): https, http to a loopback host, or a
        /// private-use scheme such as com.example.app:/cb.
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// none, client_secret_basic (default) or private_key_jwt (with --jwks).
        #[arg(long, default_value = "client_secret_basic")]
        auth: String,
        /// A file holding the public JWK Set of a private_key_jwt client.
        #[arg(long)]
        jwks: Option<PathBuf>,
        /// The most the client may ask for (space-separated scopes).
        #[arg(long)]
        scope: Option<String>,
        #[command(flatten)]
        out: Output,
    },
    /// The organization's registered and dynamically registered clients.
    List {
        #[arg(long)]
        org: String,
        #[command(flatten)]
        out: Output,
    },
    /// Delete a client and end every session it holds.
    Delete {
        #[arg(long)]
        org: String,
        client_id: String,
        #[command(flatten)]
        out: Output,
    },
}

fn client_json(c: &entity::client::Model, org: &str) -> Value {
    json!({
        "client_id": c.id, "org": org, "client_name": c.name,
        "redirect_uris": serde_json::from_str::<Value>(&c.redirect_uris).unwrap_or(Value::Null),
        "token_endpoint_auth_method": c.auth_method, "scope": c.scope, "source": c.source,
        "created_at": rfc3339(c.created_at),
    })
}

pub async fn run(cmd: ClientCommand, settings: &Settings, clock: &dyn Clock) -> anyhow::Result<()> {
    let storage = open_storage(settings).await?;
    let storage = &storage;
    match cmd {
        ClientCommand::Create {
            org,
            name,
            redirect_uris,
            auth,
            jwks,
            scope,
            out,
        } => {
            let jwks = jwks
                .map(|path| -> anyhow::Result<Value> {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    serde_json::from_str(&text)
                        .with_context(|| format!("{} is not JSON", path.display()))
                })
                .transpose()?;
            let org = admin::find_org(storage, &org).await?;
            let secrets = Secrets::load(settings)?;
            let new = NewClient {
                name,
                redirect_uris,
                auth,
                jwks,
                scope,
            };
            let created =
                admin::clients::register(storage, &secrets.pepper, clock, &org, new).await?;
            let c = &created.client;
            let mut body = client_json(c, &org.slug);
            if let Some(secret) = &created.secret {
                body["client_secret"] = json!(secret.expose());
            }
            print(&out, body, || {
                let mut text = format!(
                    "client_id:     {}\nauth method:   {}\nredirect URIs: {}",
                    c.id,
                    c.auth_method,
                    serde_json::from_str::<Vec<String>>(&c.redirect_uris)
                        .unwrap_or_default()
                        .join(" ")
                );
                if let Some(secret) = &created.secret {
                    text.push_str(&format!(
                        "\nclient_secret: {}\n(shown once: keygate keeps only its digest)",
                        secret.expose()
                    ));
                }
                text
            });
        }
        ClientCommand::List { org, out } => {
            let org = admin::find_org(storage, &org).await?;
            let mut all = Vec::new();
            let mut page = PageRequest::default();
            loop {
                let got = storage::clients::page(storage, &org.id, &page).await?;
                all.extend(got.items);
                match got.next {
                    Some(next) => page.after = Some(next),
                    None => break,
                }
            }
            let rows: Vec<Value> = all.iter().map(|c| client_json(c, &org.slug)).collect();
            print(&out, json!(rows), || {
                all.iter()
                    .map(|c| format!("{}\t{}\t{}\t{}", c.id, c.auth_method, c.source, c.name))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        ClientCommand::Delete {
            org,
            client_id,
            out,
        } => {
            let org = admin::find_org(storage, &org).await?;
            let ended = admin::clients::remove(storage, clock, &org, &client_id).await?;
            print(
                &out,
                json!({"client_id": client_id, "deleted": true, "sessions_ended": ended}),
                || format!("deleted {client_id} ({ended} sessions ended)"),
            );
        }
    }
    Ok(())
}
