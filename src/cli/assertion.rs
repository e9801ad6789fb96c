//! `keygate client-assertion`: the client side of `private_key_jwt` by hand (README,
//! "Key-pair clients (private_key_jwt)"). Prints the public JWK Set to register for a key,
//! or a fresh client assertion for curl. Like `keygate dpop`, it needs neither
//! configuration nor a database, and the private key never leaves the machine.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::clock::{Clock, SystemClock};
use crate::dpop_client::ClientKey;
use crate::dpop_client::assertion::{AssertionRequest, MAX_LIFETIME};

#[derive(Debug, Args)]
pub struct ClientAssertionArgs {
    /// The client's EC private key (PKCS#8 or SEC1 PEM on P-256, P-384 or P-521), e.g. made
    /// with `keygate dpop keygen --out client.pem`.
    #[arg(long)]
    key: PathBuf,
    /// Print the public JWK Set to register (`keygate key create --public-jwks FILE`, or
    /// `public_jwks` in `POST /v1/{org}/api_keys`) instead of an assertion.
    #[arg(long, conflicts_with_all = ["client_id", "audience", "lifetime"])]
    jwks: bool,
    /// The key-pair client's API key id (`key_…`): the assertion's `iss` and `sub`.
    #[arg(long, required_unless_present = "jwks")]
    client_id: Option<String>,
    /// The `aud`: the issuer (`{public_url}/v1/{org}`) or the endpoint's URL.
    #[arg(long, required_unless_present = "jwks")]
    audience: Option<String>,
    /// How long the assertion is valid: at most 5m.
    #[arg(long, value_parser = humantime::parse_duration)]
    lifetime: Option<Duration>,
    /// The `kid` the key was registered with (default: its RFC 7638 thumbprint, which
    /// `--jwks` uses).
    #[arg(long)]
    kid: Option<String>,
}

/// Runs `keygate client-assertion` before (and without) loading settings or opening the
/// database. Errors go to stderr and exit with 2.
pub fn run_client_assertion(args: ClientAssertionArgs) -> ExitCode {
    match client_assertion(args, &SystemClock) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("keygate: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn load_key(path: &Path) -> anyhow::Result<ClientKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    ClientKey::from_pem(&text).with_context(|| format!("key file {}", path.display()))
}

fn client_assertion(args: ClientAssertionArgs, clock: &dyn Clock) -> anyhow::Result<()> {
    let key = load_key(&args.key)?;
    if args.jwks {
        println!("{}", key.public_jwks(args.kid.as_deref()));
        return Ok(());
    }
    let (Some(client_id), Some(audience)) = (args.client_id, args.audience) else {
        anyhow::bail!("--client-id and --audience are required");
    };
    anyhow::ensure!(
        crate::ids::is_id(&client_id, "key"),
        "--client-id must be an API key id (key_…)"
    );
    url::Url::parse(&audience).context("--audience must be an absolute URL")?;
    let lifetime = args.lifetime.unwrap_or(Duration::from_secs(60));
    anyhow::ensure!(
        !lifetime.is_zero() && lifetime <= MAX_LIFETIME,
        "--lifetime must be more than 0s and at most 5m"
    );
    let assertion = key.client_assertion(&AssertionRequest {
        client_id: &client_id,
        audience: &audience,
        lifetime,
        kid: args.kid.as_deref(),
        now: clock.now(),
    })?;
    println!("{assertion}");
    Ok(())
}
