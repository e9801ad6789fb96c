//! Direct API-key requests (README, "Coming from another agent platform"): a protected
//! endpoint of an organization that turned them on also accepts one of its API keys as the
//! credential (`X-API-Key`, `Api-Key` or `Authorization: Bearer ak_…`), identified by the
//! secret's digest alone. The caller is the key's owner with the key's own scopes.
//!
//! Checks, cheapest first: the organization (from the directory cache) turned the feature on
//! (else `invalid_token` naming the sign-in endpoint) and does not require DPoP; the
//! secret's shape and checksum (no look-up yet); the brute-force throttle of the client IP
//! (the one sign-in uses); the key by the HMAC of the secret (one HMAC and a cache hit),
//! compared in constant time, of this organization, with a secret; not revoked, not
//! expired (judged per request, so both take effect at once), not pending approval; its
//! owner active. A well-formed secret that matches nothing counts toward the throttle.
//! Must not: know about HTTP, write per request (a key's use is sampled: one write a minute
//! per key and node, off the request's path), or say which part of a bad key was wrong
//! before the secret matched.

use chrono::{DateTime, Utc};
use entity::user;

use super::TokenType;
use super::access::{AccessError, AuthMethod, Caller, TokenInfo};
use crate::audit::RequestMeta;
use crate::keys::api_key::PlainApiKey;
use crate::state::AppState;
use crate::storage;

/// Why a presented API key was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyRefusal {
    #[error("the API key is not valid")]
    Invalid,
    #[error("the API key has expired")]
    Expired,
    #[error("the API key has been revoked")]
    Revoked,
}

/// Authenticates `secret` as the caller at the organization `org_slug`.
pub async fn authenticate(
    state: &AppState,
    org_slug: &str,
    secret: &str,
    meta: RequestMeta,
) -> Result<Caller, AccessError> {
    let org = state
        .directory
        .org(&state.storage, org_slug)
        .await?
        .ok_or(AccessError::UnknownOrganization)?;
    if org.direct_api_keys != Some(true) {
        return Err(AccessError::DirectKeysOff {
            org: org.slug.clone(),
        });
    }
    let policy = state.dpop_policy(&org);
    if policy.required {
        return Err(AccessError::DpopRequired);
    }
    let secret = PlainApiKey::parse(secret).map_err(|_| KeyRefusal::Invalid)?;
    let ip = meta.ip.as_deref();
    state
        .throttle
        .check(None, ip)
        .map_err(|t| AccessError::RateLimited {
            retry_after: t.retry_after,
        })?;
    let digest = secret.digest(&state.pepper);
    let Some(key) = state
        .directory
        .key_by_digest(&state.storage, &digest.0)
        .await?
        .filter(|k| digest.matches(&k.digest) && k.org_id == org.id && k.public_jwks.is_none())
    else {
        state.throttle.fail(None, ip);
        return Err(KeyRefusal::Invalid.into());
    };
    let now = state.clock.now();
    if key.revoked_at.is_some_and(|t| t <= now) {
        return Err(KeyRefusal::Revoked.into());
    }
    if key.expires_at <= now {
        return Err(KeyRefusal::Expired.into());
    }
    if key.pending {
        return Err(AccessError::PendingApproval);
    }
    let owner = state
        .directory
        .user(&state.storage, &org.id, &key.user_id)
        .await?
        .filter(|u| !u.disabled && u.deleted_at.is_none())
        .map(|u| user::Model::clone(&u))
        .ok_or(KeyRefusal::Invalid)?;
    let role = owner.role.parse().map_err(|_| KeyRefusal::Invalid)?;
    record_use(state, &key.id, now, meta.ip.clone());
    let org = entity::organization::Model::clone(&org);
    Ok(Caller {
        token: TokenInfo {
            session_id: None,
            client_id: Some(key.id.clone()),
            scope: key.scopes.clone(),
            act: None,
            jkt: None,
        },
        home_org: org.clone(),
        org,
        user: owner,
        role,
        token_type: TokenType::Bearer,
        auth_method: AuthMethod::ApiKey,
        dpop_policy: policy,
        meta,
    })
}

/// Writes the key's `last_used_at` and `last_used_ip` off the request's path, at most once a
/// minute per key and node (README, "Stale keys"): a key used only directly must not look
/// unused to `?unused_since=`.
fn record_use(state: &AppState, key_id: &str, now: DateTime<Utc>, ip: Option<String>) {
    if !state.directory.first_use_in_window(key_id) {
        return;
    }
    let (storage, key_id) = (state.storage.clone(), key_id.to_owned());
    let older_than = now - chrono::Duration::minutes(1);
    tokio::spawn(async move {
        if let Err(err) =
            storage::api_keys::record_use(&storage, &key_id, now, ip, older_than).await
        {
            tracing::warn!(error = %err, "could not record a direct API key's use");
        }
    });
}
