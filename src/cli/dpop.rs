//! `keygate dpop proxy`: its arguments and the start-up (key, addresses, the banner with
//! the key's thumbprint). The proxy itself is `crate::dpop_client::proxy`; this module must
//! not forward anything.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::clock::SystemClock;
use crate::dpop_client::proxy::{self, Proxy, ProxyConfig};

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The private key (PKCS#8 or SEC1 PEM); generated (ES256) if it does not exist.
    #[arg(long)]
    pub key: PathBuf,
    /// Where to listen: `host:port`, or a port alone for 127.0.0.1 (loopback unless an
    /// address says otherwise; port 0 picks a free one).
    #[arg(long, value_parser = parse_listen, default_value = proxy::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// keygate's URL, as this machine reaches it (e.g. `http://127.0.0.1:8080`).
    #[arg(long)]
    pub upstream: String,
    /// keygate's `server.public_url`, when it differs from `--upstream` (proofs' `htu` is
    /// built from it).
    #[arg(long)]
    pub public_url: Option<String>,
}

/// `--listen`: a socket address, or a bare port on 127.0.0.1.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    text.parse().map_err(|_| {
        format!("`{text}` is not an address: use host:port (e.g. 127.0.0.1:8081) or a port")
    })
}

/// Runs the proxy until Ctrl-C.
pub async fn proxy(args: ProxyArgs) -> anyhow::Result<()> {
    let upstream = proxy::parse_base_url(&args.upstream).context("--upstream")?;
    let public_url = args
        .public_url
        .as_deref()
        .map(proxy::parse_base_url)
        .transpose()
        .context("--public-url")?;
    let key = super::load_or_create_key(&args.key, None)?;
    let alg = key.alg();
    let htu_base = public_url.clone().unwrap_or_else(|| upstream.clone());
    let proxy = Proxy::bind(
        ProxyConfig {
            key,
            listen: args.listen,
            upstream: upstream.clone(),
            public_url,
        },
        Arc::new(SystemClock),
        |line| println!("{line}"),
    )?;
    let address = proxy.local_addr();
    if !address.ip().is_loopback() {
        eprintln!(
            "keygate: warning: {address} is not a loopback address: anyone who can reach it can have requests signed with this key"
        );
    }
    println!(
        "keygate dpop proxy: listening on http://{address}, forwarding to {}, signing with {alg} key {} (JWK thumbprint {})",
        upstream.as_str().trim_end_matches('/'),
        args.key.display(),
        proxy.thumbprint(),
    );
    println!(
        "htu is built from {}; point baseUrl (Postman) or the server (Scalar) at http://{address}",
        htu_base.as_str().trim_end_matches('/')
    );
    proxy.run().await.context("the proxy stopped")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_defaults_to_loopback() {
        assert_eq!(parse_listen("8081"), Ok("127.0.0.1:8081".parse().unwrap()));
        assert_eq!(parse_listen("0.0.0.0:9"), Ok("0.0.0.0:9".parse().unwrap()));
        assert_eq!(parse_listen("[::1]:9"), Ok("[::1]:9".parse().unwrap()));
        assert!(parse_listen("localhost").is_err());
        assert!(
            parse_listen(proxy::DEFAULT_LISTEN)
                .unwrap()
                .ip()
                .is_loopback()
        );
    }
}
