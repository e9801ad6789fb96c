//! Settings, layered (README, "Configuration"): built-in defaults ← `config/default.toml` ← the file named
//! by `KEYGATE_CONFIG` ← `KEYGATE__SECTION__KEY` environment variables. Unknown keys are an
//! error, so a typo in a file or a variable name fails at start instead of being ignored.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::SecretString;
use serde::Deserialize;

use crate::types::SigningAlg;

mod agents;
mod people;
pub use agents::{IdentityProofSettings, RegistrationSettings};
pub use people::{ClientSettings, DeviceSettings, LoginSettings, SmtpSettings};

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where the SQLite file and generated secrets live.
    pub data_dir: PathBuf,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub tokens: TokenSettings,
    pub api_keys: ApiKeySettings,
    pub dpop: DpopSettings,
    pub cross_org: CrossOrgSettings,
    pub federation: FederationSettings,
    pub clients: ClientSettings,
    pub secrets: SecretSettings,
    pub bootstrap: BootstrapSettings,
    pub log: LogSettings,
    pub metrics: MetricsSettings,
    pub docs: DocsSettings,
    pub limits: LimitSettings,
    pub audit: AuditSettings,
    pub housekeeping: HousekeepingSettings,
    pub smtp: SmtpSettings,
    pub login: LoginSettings,
    pub device: DeviceSettings,
    pub registration: RegistrationSettings,
    pub identity_proofs: IdentityProofSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            server: ServerSettings::default(),
            database: DatabaseSettings::default(),
            tokens: TokenSettings::default(),
            api_keys: ApiKeySettings::default(),
            dpop: DpopSettings::default(),
            cross_org: CrossOrgSettings::default(),
            federation: FederationSettings::default(),
            clients: ClientSettings::default(),
            secrets: SecretSettings::default(),
            bootstrap: BootstrapSettings::default(),
            log: LogSettings::default(),
            metrics: MetricsSettings::default(),
            docs: DocsSettings::default(),
            limits: LimitSettings::default(),
            audit: AuditSettings::default(),
            housekeeping: HousekeepingSettings::default(),
            smtp: SmtpSettings::default(),
            login: LoginSettings::default(),
            device: DeviceSettings::default(),
            registration: RegistrationSettings::default(),
            identity_proofs: IdentityProofSettings::default(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to listen on; port 0 picks a free port.
    pub bind: String,
    /// The URL clients use to reach keygate (scheme, host, port, no trailing slash);
    /// token issuers and DPoP `htu` checks derive from it. Default: `http://{bind}`.
    pub public_url: Option<String>,
    /// HTTP worker threads; default: one per core.
    pub workers: Option<usize>,
    /// Reverse proxies (IP addresses or CIDR ranges, e.g. `10.0.0.0/8`) whose
    /// `X-Forwarded-For` is believed: the client IP is the right-most address of that
    /// header not in this list. Empty (the default): the client IP is the peer address.
    pub trusted_proxies: Vec<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            public_url: None,
            workers: None,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://…` or `postgres://…`; default: `{data_dir}/keygate.db`.
    pub url: Option<String>,
    pub max_connections: u32,
    /// Group commit of new sessions: a batch is committed once it holds this many sessions
    /// (each with its refresh token and its key's `last_used_at`).
    pub batch_max_rows: usize,
    /// … or this long after its first row arrived, whichever comes first (`0s`: whatever
    /// is queued when the previous commit ends). Each sign-in waits for its batch's commit.
    #[serde(with = "humantime_serde")]
    pub batch_max_wait: Duration,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 16,
            batch_max_rows: 256,
            batch_max_wait: Duration::from_millis(2),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    #[serde(with = "humantime_serde")]
    pub access_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub refresh_ttl: Duration,
    /// Algorithm of newly created signing keys: `ES256` or `EdDSA`.
    pub alg: SigningAlg,
    /// The access tokens' `aud`; default: the issuer.
    pub audience: Option<String>,
    /// Clock skew tolerated when checking `exp` and `iat` of access tokens.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// How long after a Bearer refresh token was rotated presenting it again returns the
    /// same new refresh token (a client that lost the response) instead of ending the
    /// session as a reuse. `0s`: never (every reuse ends the session).
    #[serde(with = "humantime_serde")]
    pub refresh_reuse_grace: Duration,
    /// The most actors a token exchange (RFC 8693) may nest in a token's `act` chain.
    pub max_delegation_depth: usize,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 86_400),
            alg: SigningAlg::ES256,
            audience: None,
            leeway: Duration::from_secs(30),
            refresh_reuse_grace: Duration::ZERO,
            max_delegation_depth: 4,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiKeySettings {
    /// Lifetime of a key created without an explicit duration.
    #[serde(with = "humantime_serde")]
    pub default_duration: Duration,
    /// The longest lifetime a key may be given.
    #[serde(with = "humantime_serde")]
    pub max_duration: Duration,
}

impl Default for ApiKeySettings {
    fn default() -> Self {
        Self {
            default_duration: Duration::from_secs(90 * 86_400),
            max_duration: Duration::from_secs(365 * 86_400),
        }
    }
}

/// The pinned `@scalar/api-reference` bundle `/docs` loads by default.
pub const DEFAULT_SCALAR_SCRIPT_URL: &str =
    "https://cdn.jsdelivr.net/npm/@scalar/api-reference@1.76.0/dist/browser/standalone.js";
/// The Subresource Integrity of [`DEFAULT_SCALAR_SCRIPT_URL`]: the sha384 of
/// `dist/browser/standalone.js` in the npm tarball of `@scalar/api-reference@1.76.0`,
/// which jsDelivr serves byte for byte.
pub const DEFAULT_SCALAR_SCRIPT_INTEGRITY: &str =
    "sha384-oH1C0RwqcwbVXkC+r8A+4qRoyEUQdtxAzOwumkxZtQBBcsy61FOoPt7B50OVJYYQ";

/// The API reference at `/docs` (Scalar).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DocsSettings {
    /// Where the page loads the `@scalar/api-reference` script from (a pinned version).
    pub scalar_script_url: String,
    /// The script's Subresource Integrity (`sha384-…`). Unset: the pinned default's for
    /// the default URL; none for another URL (the page then loads it without integrity).
    pub scalar_script_integrity: Option<String>,
    /// A local copy of that script (for air-gapped installs): served at
    /// `/docs/scalar.js`, which the page then loads instead of `scalar_script_url`.
    pub scalar_local_path: Option<PathBuf>,
    /// The address of a `keygate dpop proxy` (e.g. `http://127.0.0.1:8081`) that `/docs`
    /// offers as a second server, so Scalar's "Try it" can use DPoP-bound tokens. Unset:
    /// keygate alone.
    pub dpop_proxy_url: Option<String>,
}

impl DocsSettings {
    /// `dpop_proxy_url` checked: an absolute `http` or `https` URL with a host and no
    /// credentials, query or fragment, without its trailing `/`.
    pub fn dpop_proxy(&self) -> Result<Option<String>, String> {
        let Some(text) = &self.dpop_proxy_url else {
            return Ok(None);
        };
        let bad = |why: &str| format!("docs.dpop_proxy_url `{text}`: {why}");
        let url = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err(bad("an http or https URL with a host is expected"));
        }
        if !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(bad("credentials, a query or a fragment do not belong here"));
        }
        Ok(Some(url.as_str().trim_end_matches('/').to_owned()))
    }

    /// The `integrity` the page puts on the script loaded from `scalar_script_url`.
    pub fn script_integrity(&self) -> Option<&str> {
        match &self.scalar_script_integrity {
            Some(integrity) => Some(integrity.as_str()).filter(|i| !i.is_empty()),
            None if self.scalar_script_url == DEFAULT_SCALAR_SCRIPT_URL => {
                Some(DEFAULT_SCALAR_SCRIPT_INTEGRITY)
            }
            None => None,
        }
    }
}

impl Default for DocsSettings {
    fn default() -> Self {
        Self {
            scalar_script_url: DEFAULT_SCALAR_SCRIPT_URL.into(),
            scalar_script_integrity: None,
            scalar_local_path: None,
            dpop_proxy_url: None,
        }
    }
}

/// Cross-organization access (README, "Cross-organization access"): its own rate limit, per source user.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrossOrgSettings {
    /// Sustained cross-organization requests per second one user may make.
    pub rate_per_second: u32,
    /// Requests one user may make at once above the sustained rate.
    pub burst: u32,
}

impl Default for CrossOrgSettings {
    fn default() -> Self {
        Self {
            rate_per_second: 20,
            burst: 40,
        }
    }
}

/// Trusted identity providers (README, "Trusted identity providers"): fetching and caching their JWKS.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederationSettings {
    /// The least time between two fetches of one provider's JWKS (an unknown `kid`
    /// triggers at most one fetch per this period; so does a failure's log line).
    #[serde(with = "humantime_serde")]
    pub jwks_cooldown: Duration,
    /// Cached keys older than this are refetched (and kept when the provider is down).
    #[serde(with = "humantime_serde")]
    pub jwks_max_age: Duration,
    /// How long one JWKS fetch may take.
    #[serde(with = "humantime_serde")]
    pub http_timeout: Duration,
}

impl Default for FederationSettings {
    fn default() -> Self {
        Self {
            jwks_cooldown: Duration::from_secs(30),
            jwks_max_age: Duration::from_secs(3600),
            http_timeout: Duration::from_secs(5),
        }
    }
}

/// Brute-force throttles (docs/security.md): failed sign-ins and failed client
/// authentications that could have been a guess, per presented key id and per client IP.
/// And the rate limits of what succeeds (README, "Limits"): tokens issued per key,
/// requests per user at the protected endpoints. A limit of 0 is off.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Guess-like failures one key id may see per minute before it answers 429.
    pub failed_auth_per_key_per_minute: u32,
    /// Guess-like failures one client IP may make per minute before it answers 429.
    pub failed_auth_per_ip_per_minute: u32,
    /// Tokens one API key may be issued per minute (sign-in and token endpoint), unless
    /// the key has its own `limits.per_minute`.
    pub issuance_per_minute: u32,
    /// Tokens one API key may be issued per hour, unless the key has `limits.per_hour`.
    pub issuance_per_hour: u32,
    /// Requests one user may make per minute to keygate's protected endpoints.
    pub requests_per_user_per_minute: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            failed_auth_per_key_per_minute: 10,
            failed_auth_per_ip_per_minute: 30,
            issuance_per_minute: 600,
            issuance_per_hour: 20_000,
            requests_per_user_per_minute: 6_000,
        }
    }
}

/// The audit log writer.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// Events each of the two queues (security events; failed authentications) holds
    /// while the writer catches up. Past it, events of that queue are dropped and counted.
    pub queue_capacity: usize,
    /// Events older than this are deleted by housekeeping; zero keeps them forever.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            queue_capacity: 8192,
            retention: Duration::from_secs(90 * 86_400),
        }
    }
}

/// DPoP (RFC 9449) policy and proof acceptance.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DpopSettings {
    /// Refuse Bearer sign-ins and Bearer tokens: every token must be DPoP-bound.
    pub required: bool,
    /// Demand a server nonce (RFC 9449 §8) in every proof.
    pub nonce: bool,
    /// How far in the future a proof's `iat` may be (clock skew).
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// How old a proof's `iat` may be.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// How long one server nonce is issued; the previous one is accepted for as long again.
    #[serde(with = "humantime_serde")]
    pub nonce_window: Duration,
    /// Where seen proof ids are kept: `memory` (one node) or `redis` (a fleet).
    pub replay_store: ReplayStoreKind,
    /// The most proof ids the in-memory replay store holds. Size it as at least peak
    /// proofs per second × the replay window (`max_age + leeway + clock_skew + 1s`); when it
    /// is full of unexpired entries, DPoP requests are refused (503) rather than remembered
    /// for less than their window.
    pub replay_capacity: u64,
    /// How far the clocks of a fleet's nodes may lag one another: added to the time a
    /// proof's `jti` is remembered, so a proof used at one node stays a replay at all.
    #[serde(with = "humantime_serde")]
    pub clock_skew: Duration,
    /// With `replay_store = "redis"`: the Redis every node shares (`redis://host:6379/0`).
    pub redis_url: Option<String>,
    /// With `replay_store = "redis"`: the prefix of keygate's keys in that Redis.
    pub redis_prefix: String,
}

impl Default for DpopSettings {
    fn default() -> Self {
        Self {
            required: false,
            nonce: false,
            leeway: Duration::from_secs(60),
            max_age: Duration::from_secs(300),
            nonce_window: Duration::from_secs(300),
            replay_store: ReplayStoreKind::Memory,
            replay_capacity: 1_000_000,
            clock_skew: Duration::from_secs(30),
            redis_url: None,
            redis_prefix: "keygate:dpop:".into(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReplayStoreKind {
    #[default]
    Memory,
    Redis,
}

/// 32-byte secrets, as base64 (standard or URL-safe) or hex. When absent they are generated
/// into `{data_dir}/secrets/` on first start.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretSettings {
    /// HMAC key for API key and refresh token digests. Changing it invalidates every key.
    pub pepper: Option<SecretString>,
    /// Key-encryption key for signing keys (AES-256-GCM).
    pub kek: Option<SecretString>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BootstrapSettings {
    /// Create an organization, an owner and an API key when the database is empty.
    pub enabled: bool,
    pub org: String,
    pub email: String,
    #[serde(with = "humantime_serde")]
    pub key_duration: Duration,
}

impl Default for BootstrapSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            org: "default".into(),
            email: "owner@keygate.local".into(),
            key_duration: Duration::from_secs(90 * 86_400),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// A tracing filter: `info`, `debug`, `keygate=debug,sqlx=warn`, …
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}
/// Prometheus metrics (`GET /metrics`; README, "Running in production").
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Record metrics and serve `/metrics`; `false`: neither (nothing is recorded).
    pub enabled: bool,
    /// A listener of its own for `/metrics` (e.g. `0.0.0.0:9464`), open to whoever reaches
    /// it; unset: `/metrics` is on the main listener.
    pub bind: Option<String>,
    /// On the main listener, serve `/metrics` to every peer, not only loopback ones.
    pub public: bool,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: None,
            public: false,
        }
    }
}

/// The background task that deletes what no request can use any more (`src/housekeeping.rs`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HousekeepingSettings {
    /// Time between two passes; `0s` turns the task off.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// The most rows one delete statement removes.
    pub batch_size: u64,
    /// The pause between two full batches (so a large purge does not hog the database).
    #[serde(with = "humantime_serde")]
    pub batch_pause: Duration,
    /// How long a session (and its refresh tokens) is kept after its expiry; a revoked
    /// session is kept at least until it would have expired.
    #[serde(with = "humantime_serde")]
    pub session_retention: Duration,
}

impl Default for HousekeepingSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10 * 60),
            batch_size: 500,
            batch_pause: Duration::from_millis(100),
            session_retention: Duration::from_secs(7 * 86_400),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("KEYGATE_CONFIG names {0}, which does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
}

impl Settings {
    /// Loads the layers from the process: `config/default.toml` (relative to the working
    /// directory, if present), `$KEYGATE_CONFIG`, then `KEYGATE__…` variables.
    pub fn load() -> Result<Self, ConfigError> {
        let file = std::env::var_os("KEYGATE_CONFIG").map(PathBuf::from);
        Self::figment(Path::new("config/default.toml"), file.as_deref())?
            .merge(Env::prefixed("KEYGATE__").split("__"))
            .extract()
            .map_err(|e| ConfigError::Invalid(Box::new(e)))
    }

    fn figment(default_file: &Path, file: Option<&Path>) -> Result<Figment, ConfigError> {
        let mut figment = Figment::new().merge(Toml::file(default_file));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::MissingFile(file.to_path_buf()));
            }
            figment = figment.merge(Toml::file(file));
        }
        Ok(figment)
    }

    /// The database URL: the configured one or the SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("keygate.db").display()
            ),
        }
    }

    pub fn is_embedded_database(&self) -> bool {
        self.database_url().starts_with("sqlite:")
    }
}

#[cfg(test)]
mod tests;
