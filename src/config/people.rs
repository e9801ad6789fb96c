//! The settings of the flows in which people approve agents: the clients of the browser and
//! device flows, the mail that carries sign-in codes, the sign-in throttles and the device
//! flow (README, "People sign in to keygate's pages", "Device flow and `keygate login`",
//! "Browser clients").

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

/// Clients of the browser and device flows (README, "Browser clients: registered, metadata
/// documents, dynamic registration"): fetching Client ID Metadata Documents and throttling
/// RFC 7591 dynamic registration.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientSettings {
    /// The longest a fetched metadata document is used before it is fetched again (a
    /// shorter `Cache-Control: max-age` wins).
    #[serde(with = "humantime_serde")]
    pub metadata_cache_ttl: Duration,
    /// The least time between two fetches of one metadata document URL: a failed fetch is
    /// not retried, and a document is kept at least this long whatever its headers say.
    #[serde(with = "humantime_serde")]
    pub metadata_min_ttl: Duration,
    /// The largest metadata document read (the draft recommends 5 KB).
    pub metadata_max_bytes: usize,
    /// How long one metadata document fetch may take.
    #[serde(with = "humantime_serde")]
    pub metadata_timeout: Duration,
    /// Dynamic registrations one client IP may make per hour (RFC 7591 §5).
    pub registrations_per_ip_per_hour: u32,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            metadata_cache_ttl: Duration::from_secs(300),
            metadata_min_ttl: Duration::from_secs(10),
            metadata_max_bytes: 5 * 1024,
            metadata_timeout: Duration::from_secs(5),
            registrations_per_ip_per_hour: 10,
        }
    }
}

/// The mail server that sends people their sign-in codes (README, "People sign in to
/// keygate's pages").
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpSettings {
    /// `smtps://user:password@host[:465]` (TLS from the first byte) or
    /// `smtp://user:password@host[:587]` (STARTTLS, required: no mail goes out in clear);
    /// `?tls=none` sends in clear (a relay on this machine). Unset: no mail; then the code
    /// goes to the log when keygate's public URL is on loopback, and email sign-in is off
    /// otherwise.
    pub url: Option<SecretString>,
    /// The sender (`keygate <keygate@example.com>`); required with `url`.
    pub from: Option<String>,
    /// How long one delivery (connect, TLS, the whole SMTP dialogue) may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            url: None,
            from: None,
            timeout: Duration::from_secs(15),
        }
    }
}

/// People signing in with an emailed code: how many codes may be asked for.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginSettings {
    /// Codes one email address may be sent per `window` in one organization.
    pub codes_per_email: u32,
    /// Codes one client IP (IPv6: its /64) may ask for per `window`, all organizations
    /// together.
    pub codes_per_ip: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Default for LoginSettings {
    fn default() -> Self {
        Self {
            codes_per_email: 5,
            codes_per_ip: 30,
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// The device authorization grant (RFC 8628; README, "Device flow and `keygate login`").
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceSettings {
    /// How long a `device_code` and its `user_code` stay valid (`expires_in`).
    #[serde(with = "humantime_serde")]
    pub code_ttl: Duration,
    /// The least time between two polls of the token endpoint (`interval`, whole seconds,
    /// at least 1 s).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Wrong user codes one browser session (and one person) may type within
    /// `user_code_window` before the verification page answers 429.
    pub user_code_failures: u32,
    /// Wrong user codes one client IP may type within `user_code_window`.
    pub user_code_failures_per_ip: u32,
    /// The window the wrong user codes are counted in.
    #[serde(with = "humantime_serde")]
    pub user_code_window: Duration,
    /// Pending device authorization requests of public clients (no client authentication,
    /// e.g. `keygate-cli`) one client IP may hold at once.
    pub pending_per_ip: u32,
}

impl Default for DeviceSettings {
    fn default() -> Self {
        Self {
            code_ttl: Duration::from_secs(600),
            interval: Duration::from_secs(5),
            user_code_failures: 10,
            user_code_failures_per_ip: 30,
            user_code_window: Duration::from_secs(15 * 60),
            pending_per_ip: 10,
        }
    }
}
