//! `keygate dpop proxy`: a local forward proxy that signs a fresh DPoP proof (RFC 9449) for
//! every request it forwards to one upstream keygate, so Postman, Scalar and curl use
//! DPoP-bound tokens unchanged (README, "Postman and Scalar"). It owns the listener, the
//! upstream client and the last server nonce; how one request is rewritten lives in
//! [`forward`]. It must not verify anything the server verifies, nor forward anywhere but
//! the upstream, and the private key never leaves this process.

mod forward;

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use anyhow::Context;
use url::Url;

use super::ClientKey;
use crate::clock::Clock;

/// The default `--listen`: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8081";

/// The largest request body the proxy forwards (keygate's own limits are far smaller).
const MAX_BODY: usize = 1 << 20;

/// What the proxy needs to run.
pub struct ProxyConfig {
    /// The proof key.
    pub key: ClientKey,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where requests go: keygate's URL as this machine reaches it.
    pub upstream: Url,
    /// keygate's configured public URL, from which `htu` is built; `None`: the upstream's.
    pub public_url: Option<Url>,
}

/// An upstream or public URL as the proxy uses it: absolute `http`/`https` with a host, no
/// credentials, query or fragment; a trailing `/` is dropped.
pub fn parse_base_url(text: &str) -> anyhow::Result<Url> {
    let url = Url::parse(text).with_context(|| format!("bad URL `{text}`"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        anyhow::bail!("bad URL `{text}`: an http or https URL with a host is expected");
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        anyhow::bail!("bad URL `{text}`: credentials, a query or a fragment do not belong here");
    }
    Url::parse(url.as_str().trim_end_matches('/')).with_context(|| format!("bad URL `{text}`"))
}

/// What every request handler shares.
pub(crate) struct Shared {
    key: ClientKey,
    thumbprint: String,
    upstream: Url,
    public_url: Url,
    /// The origins whose browser pages may use the proxy (keygate's own, where `/docs`
    /// lives): `Origin` headers of any other page are refused, so a web site the user
    /// visits cannot have requests signed with the user's key.
    allowed_origins: Vec<String>,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    /// The last `DPoP-Nonce` the upstream sent (RFC 9449 §8: a client uses the newest).
    nonce: Mutex<Option<String>>,
    /// Where the one line per request goes.
    log: Box<dyn Fn(&str) + Send + Sync>,
}

/// A bound, not yet running proxy.
pub struct Proxy {
    server: actix_web::dev::Server,
    local_addr: SocketAddr,
    thumbprint: String,
}

impl Proxy {
    /// Binds `config.listen` and builds the proxy; `log` receives one line per request.
    pub fn bind(
        config: ProxyConfig,
        clock: Arc<dyn Clock>,
        log: impl Fn(&str) + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen)
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let local_addr = listener.local_addr()?;
        let public_url = config.public_url.unwrap_or_else(|| config.upstream.clone());
        let mut allowed_origins = vec![public_url.origin().ascii_serialization()];
        let upstream_origin = config.upstream.origin().ascii_serialization();
        if !allowed_origins.contains(&upstream_origin) {
            allowed_origins.push(upstream_origin);
        }
        let client = reqwest::Client::builder()
            // Redirects (the pages' flows) go back to the client unchanged.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .context("building the upstream HTTP client")?;
        let thumbprint = config.key.thumbprint();
        let shared = web::Data::new(Shared {
            thumbprint: thumbprint.clone(),
            key: config.key,
            upstream: config.upstream,
            public_url,
            allowed_origins,
            client,
            clock,
            nonce: Mutex::new(None),
            log: Box::new(log),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .default_service(web::to(forward::handle))
        })
        .listen(listener)?
        .workers(2)
        .shutdown_timeout(1)
        .run();
        Ok(Self {
            server,
            local_addr,
            thumbprint,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The RFC 7638 thumbprint of the proof key: the `cnf.jkt` of the tokens it binds.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// Serves until the server is stopped.
    pub async fn run(self) -> std::io::Result<()> {
        self.server.await
    }
}
