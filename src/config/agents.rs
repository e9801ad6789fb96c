//! The settings of what other agent platforms offer (README, "Coming from another agent
//! platform"): self-registration of agents and identity proofs. Whether an organization
//! turns either direct API-key requests or self-registration on is its own setting
//! (`PATCH /v1/{org}/settings`), not the server's.

use std::time::Duration;

use serde::Deserialize;

/// `POST /v1/{org}/register` (when an organization turns it on).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationSettings {
    /// The scopes a self-registered key gets: keygate's own scopes or scopes of the
    /// organization's protected resources. Default: none.
    pub default_scopes: Vec<String>,
    /// How long a self-registered key lives.
    #[serde(with = "humantime_serde")]
    pub key_duration: Duration,
    /// Registrations one client IP may make per hour (across organizations).
    pub per_ip_per_hour: u32,
    /// Registrations one organization accepts per hour (from every IP together).
    pub per_org_per_hour: u32,
}

impl Default for RegistrationSettings {
    fn default() -> Self {
        Self {
            default_scopes: Vec::new(),
            key_duration: Duration::from_secs(30 * 86_400),
            per_ip_per_hour: 5,
            per_org_per_hour: 100,
        }
    }
}

/// `GET /v1/{org}/user/me/proof`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityProofSettings {
    /// How long a proof is valid (its `exp` − `iat`).
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
}

impl Default for IdentityProofSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(3_600),
        }
    }
}
