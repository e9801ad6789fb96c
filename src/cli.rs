//! The `keygate` command line (README, "The CLI"). Every command works directly on the configured
//! database, so it works while the server is down. Listings and creations accept `--json`.
//! The exceptions are `keygate dpop`, a DPoP client for trying bound tokens by hand,
//! `keygate client-assertion`, its `private_key_jwt` counterpart, `keygate login`, the
//! device flow from a terminal, and `keygate proof verify`: they need neither configuration
//! nor a database ([`run_dpop`], [`run_client_assertion`], [`run_login`], [`run_proof`]).

mod assertion;
mod client;
mod dpop;
mod identity;
mod issuer;
mod keys;
mod login;
mod resource;

pub use assertion::{ClientAssertionArgs, run_client_assertion};
pub use client::ClientCommand;
pub use dpop::ProxyArgs;
pub use identity::{IdentityKeyCommand, ProofCommand};
pub use issuer::IssuerCommand;
pub use keys::KeyCommand;
pub use login::{LoginArgs, run_login};
pub use resource::ResourceCommand;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::admin;
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::dpop_client::{self, ClientKey, DpopAlg};
use crate::secrets::Secrets;
use crate::signing_keys;
use crate::startup::{Application, open_storage};
use crate::storage::{self, Storage};
use crate::types::{Role, Slug};

#[derive(Debug, Parser)]
#[command(
    name = "keygate",
    version,
    about = "Self-hosted token authorization server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate, bootstrap an empty database, and serve (the default).
    Serve,
    /// Apply pending database migrations.
    Migrate,
    /// Organizations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Users of an organization.
    #[command(subcommand)]
    User(UserCommand),
    /// API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Protected resources (RFC 8707): the APIs and MCP servers tokens are issued for.
    #[command(subcommand)]
    Resource(ResourceCommand),
    /// Trusted identity providers (federation, and workloads' JWT bearer grant).
    #[command(subcommand)]
    Issuer(IssuerCommand),
    /// Clients of the browser and device flows (authorization code + PKCE, device
    /// authorization).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Access token signing keys.
    #[command(subcommand, name = "signing-key")]
    SigningKey(SigningKeyCommand),
    /// An organization's Ed25519 identity keys, which sign identity proofs.
    #[command(subcommand, name = "identity-key")]
    IdentityKey(IdentityKeyCommand),
    /// Identity proofs: verify one against a running keygate (no configuration or
    /// database).
    #[command(subcommand)]
    Proof(ProofCommand),
    /// DPoP (RFC 9449) by hand: a proof key and proofs (no configuration or database).
    #[command(subcommand)]
    Dpop(DpopCommand),
    /// `private_key_jwt` (RFC 7523) by hand: a key's public JWK Set, or a client assertion
    /// (no configuration or database).
    #[command(name = "client-assertion")]
    ClientAssertion(ClientAssertionArgs),
    /// Get tokens for a person from a terminal: the device flow (RFC 8628) against a
    /// running keygate (no configuration or database).
    Login(LoginArgs),
}

#[derive(Debug, Args)]
pub struct Output {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    Create {
        slug: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        out: Output,
    },
    List {
        #[command(flatten)]
        out: Output,
    },
    /// Change an organization's DPoP policy (`inherit`: follow the server's settings), its
    /// RFC 7591 dynamic client registration, direct API-key requests or agent
    /// self-registration.
    Update {
        slug: String,
        /// Require DPoP-bound tokens: true, false or inherit.
        #[arg(long, value_parser = parse_override)]
        dpop_required: Option<Override>,
        /// Require server nonces in DPoP proofs: true, false or inherit.
        #[arg(long, value_parser = parse_override)]
        dpop_nonce: Option<Override>,
        /// Open RFC 7591 dynamic client registration at /v1/{org}/oauth/register: true or
        /// false (off unless turned on).
        #[arg(long, value_parser = parse_bool)]
        dynamic_registration: Option<bool>,
        /// Accept the organization's API keys directly on protected endpoints (X-API-Key,
        /// Api-Key, Bearer ak_…): true or false (off unless turned on).
        #[arg(long, value_parser = parse_bool)]
        direct_api_keys: Option<bool>,
        /// Open POST /v1/{org}/register to agents with no credential: true or false (off
        /// unless turned on).
        #[arg(long, value_parser = parse_bool)]
        self_registration: Option<bool>,
        /// Keep self-registered keys pending until an admin approves them: true or false.
        #[arg(long, value_parser = parse_bool)]
        registration_approval: Option<bool>,
        #[command(flatten)]
        out: Output,
    },
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("`{other}`: expected true or false")),
    }
}

/// A per-organization override: a value, or `inherit` (the server's setting).
#[derive(Clone, Copy, Debug)]
pub struct Override(Option<bool>);

fn parse_override(text: &str) -> Result<Override, String> {
    match text {
        "true" => Ok(Override(Some(true))),
        "false" => Ok(Override(Some(false))),
        "inherit" => Ok(Override(None)),
        other => Err(format!("`{other}`: expected true, false or inherit")),
    }
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "member")]
        role: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        out: Output,
    },
    List {
        #[arg(long)]
        org: String,
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum SigningKeyCommand {
    /// Publish a new key; it signs once the JWKS cache lifetime has passed (70 s).
    Rotate {
        #[command(flatten)]
        out: Output,
    },
    /// Every key with its state: published, active, retiring or retired.
    List {
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum DpopCommand {
    /// Write a new EC private key as a PKCS#8 PEM file (mode 0600).
    Keygen {
        /// ES256 (P-256), ES384 (P-384) or ES512 (P-521).
        #[arg(long, value_parser = parse_alg, default_value = "ES256")]
        alg: DpopAlg,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Print a fresh DPoP proof JWT for one request (creating the key file if it is missing).
    Proof {
        /// The private key (PKCS#8 or SEC1 PEM); generated with `--alg` if it does not exist.
        #[arg(long)]
        key: PathBuf,
        /// The request's HTTP method (`htm`).
        #[arg(long)]
        method: String,
        /// The request's URL (`htu`: query and fragment are dropped).
        #[arg(long)]
        url: String,
        /// The access token sent with the request (adds `ath`).
        #[arg(long)]
        access_token: Option<String>,
        /// The server's `DPoP-Nonce`.
        #[arg(long)]
        nonce: Option<String>,
        /// ES256, ES384 or ES512: a new key's alg (default ES256); an existing key's must match.
        #[arg(long, value_parser = parse_alg)]
        alg: Option<DpopAlg>,
        /// Print curl `-H` options (DPoP, and Authorization with --access-token), one a line.
        #[arg(long)]
        curl: bool,
    },
    /// A local forward proxy to keygate that signs a fresh proof for every request, binds
    /// tokens at sign-in and the token endpoint, and sends bound tokens as `DPoP` with
    /// `ath` (for Postman, Scalar and curl).
    Proxy(ProxyArgs),
}

fn parse_alg(text: &str) -> Result<DpopAlg, String> {
    text.parse()
        .map_err(|e: dpop_client::DpopClientError| e.to_string())
}

fn print(out: &Output, json: serde_json::Value, text: impl FnOnce() -> String) {
    if out.json {
        println!("{json}");
    } else {
        println!("{}", text());
    }
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Runs `command` with `settings`.
pub async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match command {
        Command::Serve => serve(settings, clock).await,
        Command::Migrate => {
            open_storage(&settings).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Org(cmd) => org(cmd, &open_storage(&settings).await?, clock.as_ref()).await,
        Command::User(cmd) => user(cmd, &open_storage(&settings).await?, clock.as_ref()).await,
        Command::Key(cmd) => keys::key(cmd, &settings, clock.as_ref()).await,
        Command::Resource(cmd) => resource::run(cmd, &settings, clock.as_ref()).await,
        Command::Client(cmd) => client::run(cmd, &settings, clock.as_ref()).await,
        Command::Issuer(cmd) => issuer::run(cmd, &settings, clock.as_ref()).await,
        Command::SigningKey(cmd) => signing_key(cmd, &settings, clock.as_ref()).await,
        Command::Dpop(cmd) => dpop(cmd, clock.as_ref()).await,
        Command::IdentityKey(cmd) => identity::identity_key(cmd, &settings, clock.as_ref()).await,
        Command::Proof(cmd) => identity::proof(cmd, clock.as_ref()).await,
        Command::ClientAssertion(args) => {
            if run_client_assertion(args) == ExitCode::SUCCESS {
                Ok(())
            } else {
                anyhow::bail!("client-assertion failed")
            }
        }
        Command::Login(args) => {
            if run_login(args).await == ExitCode::SUCCESS {
                Ok(())
            } else {
                anyhow::bail!("login failed")
            }
        }
    }
}

/// Runs `keygate proof verify` without settings, logging or a database: it talks to a
/// running keygate. A proof that does not verify exits with 1.
pub async fn run_proof(cmd: ProofCommand) -> ExitCode {
    match identity::proof(cmd, &SystemClock).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("keygate: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a `keygate dpop` command before (and without) loading settings, starting logging or
/// opening the database. Errors go to stderr and exit with 2.
pub async fn run_dpop(cmd: DpopCommand) -> ExitCode {
    match dpop(cmd, &SystemClock).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("keygate: {err:#}");
            ExitCode::from(2)
        }
    }
}

async fn dpop(cmd: DpopCommand, clock: &dyn Clock) -> anyhow::Result<()> {
    match cmd {
        DpopCommand::Proxy(args) => dpop::proxy(args).await?,
        DpopCommand::Keygen { alg, out, force } => {
            let key = ClientKey::generate(alg);
            write_key(&out, &key, force)?;
            println!(
                "wrote a new {alg} key to {} (JWK thumbprint {})",
                out.display(),
                key.thumbprint()
            );
        }
        DpopCommand::Proof {
            key,
            method,
            url,
            access_token,
            nonce,
            alg,
            curl,
        } => {
            // Check the request first, so a typo never leaves a new key file behind.
            dpop_client::htm(&method)?;
            dpop_client::htu(&url)?;
            let key = load_or_create_key(&key, alg)?;
            let proof = key.proof(
                &method,
                &url,
                access_token.as_deref(),
                nonce.as_deref(),
                clock.now(),
            )?;
            if curl {
                println!("-H {}", shell_quote(&format!("DPoP: {proof}")));
                if let Some(token) = access_token {
                    println!(
                        "-H {}",
                        shell_quote(&format!("Authorization: DPoP {token}"))
                    );
                }
            } else {
                println!("{proof}");
            }
        }
    }
    Ok(())
}

/// The key at `path`, checked against `alg`; or, when there is no file, a new key (`alg`,
/// default ES256) written there.
fn load_or_create_key(path: &Path, alg: Option<DpopAlg>) -> anyhow::Result<ClientKey> {
    match std::fs::read_to_string(path) {
        Ok(text) => ClientKey::from_pem_with_alg(&text, alg)
            .with_context(|| format!("key file {}", path.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let key = ClientKey::generate(alg.unwrap_or(DpopAlg::ES256));
            write_key(path, &key, false)?;
            eprintln!(
                "keygate: no key at {}: generated a new {} key there (JWK thumbprint {})",
                path.display(),
                key.alg(),
                key.thumbprint()
            );
            Ok(key)
        }
        Err(err) => Err(err).with_context(|| format!("cannot read key file {}", path.display())),
    }
}

/// Writes `key` as PKCS#8 PEM to a new file that only its owner can read (0600 on Unix);
/// an existing file is an error unless `force`, which replaces it with a new file.
fn write_key(path: &Path, key: &ClientKey, force: bool) -> anyhow::Result<()> {
    let pem = key.to_pem()?;
    if force {
        // Removed rather than truncated: a new file gets mode 0600 whatever the old one had.
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(err).with_context(|| format!("cannot replace {}", path.display()));
            }
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|err| {
        if err.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!(
                "{} already exists (pass --force to replace it)",
                path.display()
            )
        } else {
            anyhow::Error::new(err).context(format!("cannot create {}", path.display()))
        }
    })?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// `text` as one single-quoted POSIX shell word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

async fn serve(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    let mut app = Application::build(settings, clock).await?;
    if let Some(credentials) = app.take_bootstrap_credentials() {
        println!("{}", credentials.banner(&app.state().public_url));
    }
    app.run_until_stopped().await?;
    Ok(())
}

fn org_json(o: &entity::organization::Model) -> serde_json::Value {
    json!({
        "org_id": o.id, "slug": o.slug, "name": o.name, "created_at": rfc3339(o.created_at),
        "dpop_required": o.dpop_required, "dpop_nonce": o.dpop_nonce,
        "dynamic_registration": o.dynamic_registration == Some(true),
        "direct_api_keys": o.direct_api_keys == Some(true),
        "self_registration": o.self_registration == Some(true),
        "registration_approval": o.registration_approval == Some(true),
    })
}

fn show_override(value: Option<bool>) -> String {
    value.map_or("inherit".to_owned(), |v| v.to_string())
}

async fn org(cmd: OrgCommand, storage: &Storage, clock: &dyn Clock) -> anyhow::Result<()> {
    match cmd {
        OrgCommand::Create { slug, name, out } => {
            let slug = Slug::parse(&slug).map_err(|e| anyhow::anyhow!(e.0))?;
            let org = admin::create_org(storage, clock, &slug, name).await?;
            print(
                &out,
                json!({"org_id": org.id, "slug": org.slug, "name": org.name}),
                || format!("created organization {} ({})", org.slug, org.id),
            );
        }
        OrgCommand::Update {
            slug,
            dpop_required,
            dpop_nonce,
            dynamic_registration,
            direct_api_keys,
            self_registration,
            registration_approval,
            out,
        } => {
            let mut org = admin::find_org(storage, &slug).await?;
            if dpop_required.is_some() || dpop_nonce.is_some() {
                let required = dpop_required.map_or(org.dpop_required, |o| o.0);
                let nonce = dpop_nonce.map_or(org.dpop_nonce, |o| o.0);
                org = admin::set_dpop_policy(storage, &slug, required, nonce).await?;
            }
            if let Some(on) = dynamic_registration {
                org = admin::clients::set_dynamic_registration(storage, &slug, on).await?;
            }
            let switches = storage::agents::AgentSwitches {
                direct_api_keys,
                self_registration,
                registration_approval,
            };
            if direct_api_keys.is_some()
                || self_registration.is_some()
                || registration_approval.is_some()
            {
                org = admin::agents::set_switches(storage, &slug, switches).await?;
            }
            print(&out, org_json(&org), || {
                format!(
                    "{}: dpop_required={} dpop_nonce={} dynamic_registration={} direct_api_keys={} self_registration={} registration_approval={}",
                    org.slug,
                    show_override(org.dpop_required),
                    show_override(org.dpop_nonce),
                    org.dynamic_registration == Some(true),
                    org.direct_api_keys == Some(true),
                    org.self_registration == Some(true),
                    org.registration_approval == Some(true)
                )
            });
        }
        OrgCommand::List { out } => {
            let orgs = storage::orgs::list(storage).await?;
            let rows: Vec<_> = orgs.iter().map(org_json).collect();
            print(&out, json!(rows), || {
                orgs.iter()
                    .map(|o| format!("{}\t{}\t{}", o.slug, o.id, o.name))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(())
}

async fn user(cmd: UserCommand, storage: &Storage, clock: &dyn Clock) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Create {
            org,
            email,
            role,
            name,
            out,
        } => {
            let role: Role = role
                .parse()
                .map_err(|e: crate::types::ParseError| anyhow::anyhow!(e.0))?;
            let org = admin::find_org(storage, &org).await?;
            let user = admin::create_user(storage, clock, &org, &email, name, role).await?;
            print(
                &out,
                json!({"user_id": user.id, "org": org.slug, "email": user.email, "role": user.role}),
                || format!("created user {} ({}, {})", user.id, user.email, user.role),
            );
        }
        UserCommand::List { org, out } => {
            let org = admin::find_org(storage, &org).await?;
            let users = storage::users::list(storage, &org.id).await?;
            let rows: Vec<_> = users
                .iter()
                .map(|u| json!({"user_id": u.id, "org": org.slug, "email": u.email, "role": u.role, "disabled": u.disabled}))
                .collect();
            print(&out, json!(rows), || {
                users
                    .iter()
                    .map(|u| {
                        format!(
                            "{}\t{}\t{}{}",
                            u.id,
                            u.email,
                            u.role,
                            if u.disabled { "\tdisabled" } else { "" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(())
}

async fn signing_key(
    cmd: SigningKeyCommand,
    settings: &Settings,
    clock: &dyn Clock,
) -> anyhow::Result<()> {
    let storage = open_storage(settings).await?;
    match cmd {
        SigningKeyCommand::Rotate { out } => {
            let secrets = Secrets::load(settings)?;
            // Older keys stay published until every token they may sign has expired.
            let lifetime = settings.tokens.access_ttl + settings.tokens.leeway;
            let rotation = signing_keys::rotate(
                &storage,
                &secrets.kek,
                settings.tokens.alg,
                clock.now(),
                lifetime,
            )
            .await?;
            let (key, retire_at) = (&rotation.key, rotation.previous_retire_at);
            print(
                &out,
                json!({"kid": key.kid, "alg": key.alg, "state": "published",
                       "activates_at": rfc3339(key.activated_at),
                       "previous_keys_retire_at": rfc3339(retire_at)}),
                || {
                    format!(
                        "new signing key {} ({}) is published; it signs from {}; previous keys retire at {}",
                        key.kid,
                        key.alg,
                        rfc3339(key.activated_at),
                        rfc3339(retire_at)
                    )
                },
            );
        }
        SigningKeyCommand::List { out } => {
            let records = storage::signing_keys::all(&storage).await?;
            let states = signing_keys::states(&records, clock.now());
            let rows: Vec<_> = records
                .iter()
                .zip(&states)
                .map(|(r, state)| json!({
                    "kid": r.kid, "alg": r.alg, "state": state.as_str(),
                    "created_at": rfc3339(r.created_at),
                    "activated_at": rfc3339(r.activated_at), "retire_at": r.retire_at.map(rfc3339),
                    "published": *state != signing_keys::KeyState::Retired,
                }))
                .collect();
            print(&out, json!(rows), || {
                records
                    .iter()
                    .zip(&states)
                    .map(|(r, state)| {
                        format!(
                            "{}\t{}\t{}\tsigns from {}\t{}",
                            r.kid,
                            r.alg,
                            state.as_str(),
                            rfc3339(r.activated_at),
                            r.retire_at
                                .map_or("no retirement set".to_owned(), |t| format!(
                                    "retires {}",
                                    rfc3339(t)
                                ))
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(())
}
