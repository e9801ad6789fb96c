//! The one application state, built once by `startup` and shared by every worker.

use std::sync::Arc;

use crate::audit::AuditLog;
use crate::auth::cache::{Directory, VerifiedTokens};
use crate::auth::cross_org::CrossOrg;
use crate::auth::dpop::Dpop;
use crate::auth::federation::Federation;
use crate::auth::revocation::Revocations;
use crate::auth::throttle::Throttle;
use crate::clock::Clock;
use crate::config::Settings;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::people::mail::Mailer;
use crate::secrets::{Kek, Pepper};
use crate::signing_keys::SigningKeys;
use crate::storage::Storage;
use crate::storage::writer::SessionWriter;

/// Whether an organization demands DPoP-bound tokens and server nonces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DpopPolicy {
    pub required: bool,
    pub nonce: bool,
}

#[derive(Clone, Debug)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub storage: Storage,
    /// Group commit of new sessions (`database.batch_max_rows`, `database.batch_max_wait`).
    pub sessions: SessionWriter,
    /// Every expiry and window reads this clock (tests substitute a manual one).
    pub clock: Arc<dyn Clock>,
    /// HMAC key for API key and refresh token digests.
    pub pepper: Arc<Pepper>,
    /// Key-encryption key for signing keys.
    pub kek: Arc<Kek>,
    pub signing_keys: Arc<SigningKeys>,
    pub audit: AuditLog,
    /// DPoP proof verification, with its replay store and nonces.
    pub dpop: Dpop,
    /// Cached session and revoked-token lookups of protected requests.
    pub revocations: Arc<Revocations>,
    /// Cached organizations and users of protected requests (`auth::cache`).
    pub directory: Arc<Directory>,
    /// Claims of access tokens this node verified, until their `exp` (`auth::cache`).
    pub verified_tokens: Arc<VerifiedTokens>,
    /// Cross-organization grants (cached) and their rate limit.
    pub cross_org: Arc<CrossOrg>,
    /// Trusted identity providers' keys, fetched and cached.
    pub federation: Arc<Federation>,
    /// Clients of the browser and device flows: fetched metadata documents and the dynamic
    /// registration allowance per client IP.
    pub clients: Arc<crate::clients::Clients>,
    /// The brute-force throttle of failed authentications, and the client-IP rule.
    pub throttle: Arc<Throttle>,
    /// Rate limits of what succeeds: tokens per key, requests per user (`limits`).
    pub limits: Limits,
    /// `server.public_url`, or `http://{bound address}`; no trailing slash.
    pub public_url: String,
    /// Sends people their sign-in codes (`smtp.*`; `people::mail`).
    pub mailer: Mailer,
    /// The Prometheus recorder (`metrics.enabled`), rendered by `GET /metrics`.
    pub metrics: Option<Metrics>,
    /// Organizations' identity keys, which sign identity proofs (`identity`).
    pub identity_keys: Arc<crate::identity::IdentityKeys>,
    /// Agent self-registration: its allowances and the scopes it gives (`registration`).
    pub registrations: Arc<crate::registration::Registrations>,
}

impl AppState {
    /// The issuer of an organization's tokens (RFC 8414 §2: `{public_url}/v1/{org}`).
    pub fn issuer(&self, org_slug: &str) -> String {
        format!("{}/v1/{org_slug}", self.public_url)
    }

    /// The DPoP policy at `org`: its overrides, else the server's settings.
    pub fn dpop_policy(&self, org: &entity::organization::Model) -> DpopPolicy {
        DpopPolicy {
            required: org.dpop_required.unwrap_or(self.settings.dpop.required),
            nonce: org.dpop_nonce.unwrap_or(self.settings.dpop.nonce),
        }
    }

    /// The `aud` of an organization's tokens: configured, or the issuer.
    pub fn audience(&self, issuer: &str) -> String {
        self.settings
            .tokens
            .audience
            .clone()
            .unwrap_or_else(|| issuer.to_owned())
    }
}
