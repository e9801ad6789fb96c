//! Trusted identity providers (README, "Trusted identity providers"): a token signed by a provider an organization
//! trusts identifies the user of that organization whose `external_subject` equals the
//! token's subject claim.
//!
//! Keys come from the provider's inline JWKS or from its `jwks_uri`, fetched with a real
//! HTTP client and cached. A fetch happens when nothing is cached; a refetch when a token
//! names a `kid` the cache lacks or the cached set is older than `jwks_max_age`, at most
//! once per `jwks_cooldown` per provider whatever the traffic. A provider that is down
//! changes nothing while keys are cached; with none, requests fail with a clear reason. A
//! failed fetch is not retried, nor logged again, within the cooldown. Ages and cooldowns
//! are measured with the injected [`Clock`].
//!
//! Fetches go through [`crate::outbound`]: public addresses only (after DNS resolution; the
//! connection is made to the checked address), no redirects, no proxy, and the body is
//! read in chunks and dropped past 256 KiB.
//!
//! Checks, in order: the `alg` is one the provider was registered with, the key verifies
//! the signature, `iss`, `aud` and `exp` are present, `iss` is the registered issuer, `aud`
//! is (or contains) the registered audience, `exp`, `nbf` and `iat` hold with the
//! configured leeway, the subject claim names an active user.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use entity::{organization, trusted_issuer, user};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use moka::sync::Cache;
use serde_json::Value;

use crate::clock::Clock;
use crate::config::FederationSettings;
use crate::outbound::{self, AddressPolicy};
use crate::storage::{self, Storage, StorageError};

/// The signature algorithms a provider may be registered with.
pub const ALGORITHMS: &[&str] = &["RS256", "PS256", "ES256", "ES384", "EdDSA"];

/// The largest JWKS document keygate reads.
const MAX_JWKS_BYTES: usize = 256 * 1024;

fn algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "RS256" => Some(Algorithm::RS256),
        "PS256" => Some(Algorithm::PS256),
        "ES256" => Some(Algorithm::ES256),
        "ES384" => Some(Algorithm::ES384),
        "EdDSA" => Some(Algorithm::EdDSA),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error("the token is not a JWT")]
    Malformed,
    #[error("this organization does not trust the token's issuer")]
    UntrustedIssuer,
    #[error("the token's alg is not one accepted for its issuer")]
    Algorithm,
    #[error("the identity provider has no key for this token's kid")]
    UnknownKey,
    #[error("the identity provider's keys could not be fetched; try again later")]
    ProviderUnavailable,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token's audience is not the one this organization expects")]
    WrongAudience,
    #[error("the token has no `aud` claim")]
    NoAudience,
    #[error("the token has no `iss` claim")]
    NoIssuer,
    #[error("the token has no `exp` claim")]
    NoExpiry,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued in the future")]
    IssuedInFuture,
    #[error("the token has no usable subject claim")]
    MissingSubject,
    #[error("no active user of this organization has this external subject")]
    UnknownSubject,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The `iss` of a JWT, read without verifying anything (to pick the verifier).
pub fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// Parses a JWKS document, refusing private keys (a provider publishes public keys only).
pub fn parse_jwks(json: &str) -> Result<JwkSet, String> {
    let value: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let keys = value
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("no `keys` array")?;
    if keys.iter().any(|k| k.get("d").is_some()) {
        return Err("it holds a private key".into());
    }
    let set: JwkSet =
        serde_json::from_value(value).map_err(|e| format!("a key is not valid: {e}"))?;
    if set.keys.is_empty() {
        return Err("it has no keys".into());
    }
    Ok(set)
}

/// The key for `kid` (a token without `kid` may use the set's only key).
fn find<'a>(set: &'a JwkSet, kid: Option<&str>) -> Option<&'a Jwk> {
    match kid {
        Some(kid) => set.find(kid),
        None if set.keys.len() == 1 => set.keys.first(),
        None => None,
    }
}

/// `t + d`, saturating.
fn later(t: DateTime<Utc>, d: chrono::Duration) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

struct Fetched {
    at: DateTime<Utc>,
    set: JwkSet,
}

/// Provider id → the instant until which something may not happen again.
#[derive(Default)]
struct Cooldowns(Mutex<HashMap<String, DateTime<Utc>>>);

impl Cooldowns {
    /// How many providers are remembered before expired entries are swept.
    const SWEEP_AT: usize = 10_000;

    fn active(&self, id: &str, now: DateTime<Utc>) -> bool {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id).is_some_and(|until| *until > now)
    }

    fn start(&self, id: &str, until: DateTime<Utc>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(id.to_owned(), until);
    }

    /// Starts a cooldown unless one is running: true for exactly one caller per cooldown,
    /// however many arrive at once.
    fn claim(&self, id: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(id).is_some_and(|t| *t > now) {
            return false;
        }
        if map.len() >= Self::SWEEP_AT {
            map.retain(|_, t| *t > now);
        }
        map.insert(id.to_owned(), until);
        true
    }
}

pub struct Federation {
    http: reqwest::Client,
    /// Where `jwks_uri` fetches may go.
    policy: AddressPolicy,
    clock: Arc<dyn Clock>,
    /// Provider id → its fetched keys.
    keys: Cache<String, Arc<Fetched>>,
    /// Provider id → no refetch of cached keys until then.
    refetched: Cooldowns,
    /// Provider id → no fetch after a failed one until then.
    failed: Cooldowns,
    cooldown: chrono::Duration,
    max_age: chrono::Duration,
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Federation").finish_non_exhaustive()
    }
}

impl Federation {
    pub fn new(
        settings: &FederationSettings,
        policy: AddressPolicy,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, reqwest::Error> {
        let duration = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        Ok(Arc::new(Self {
            http: outbound::client(policy, settings.http_timeout)?,
            policy,
            clock,
            keys: Cache::builder().max_capacity(10_000).build(),
            refetched: Cooldowns::default(),
            failed: Cooldowns::default(),
            cooldown: duration(settings.jwks_cooldown),
            max_age: duration(settings.jwks_max_age),
        }))
    }

    /// Where `jwks_uri` fetches may go (registration checks URLs against it too).
    pub fn policy(&self) -> AddressPolicy {
        self.policy
    }

    /// Verifies `token` as one of `issuer`'s and returns the user it identifies in `org`.
    pub async fn verify(
        &self,
        storage: &Storage,
        org: &organization::Model,
        issuer: &trusted_issuer::Model,
        token: &str,
        now: DateTime<Utc>,
        leeway: Duration,
    ) -> Result<user::Model, FederationError> {
        self.verify_claims(storage, org, issuer, token, now, leeway)
            .await
            .map(|(user, _)| user)
    }

    /// [`Federation::verify`], also returning the token's verified claims (the JWT bearer
    /// grant reads its `exp` and `jti`).
    pub async fn verify_claims(
        &self,
        storage: &Storage,
        org: &organization::Model,
        issuer: &trusted_issuer::Model,
        token: &str,
        now: DateTime<Utc>,
        leeway: Duration,
    ) -> Result<(user::Model, Value), FederationError> {
        let header = decode_header(token).map_err(|_| FederationError::Malformed)?;
        let accepted = issuer
            .algorithms
            .split_ascii_whitespace()
            .filter_map(algorithm)
            .any(|a| a == header.alg);
        if !accepted {
            return Err(FederationError::Algorithm);
        }
        let jwk = self.key(issuer, header.kid.as_deref()).await?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| FederationError::UnknownKey)?;

        let mut validation = Validation::new(header.alg);
        // Times are checked below against keygate's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_required_spec_claims(&["iss", "aud", "exp"]);
        validation.set_issuer(&[&issuer.issuer]);
        validation.set_audience(&[&issuer.audience]);
        let claims: Value = decode(token, &key, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
                    "aud" => FederationError::NoAudience,
                    "iss" => FederationError::NoIssuer,
                    _ => FederationError::NoExpiry,
                },
                ErrorKind::InvalidAudience => FederationError::WrongAudience,
                ErrorKind::InvalidIssuer => FederationError::UntrustedIssuer,
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidKeyFormat => FederationError::BadSignature,
                _ => FederationError::Malformed,
            })?
            .claims;

        let now = now.timestamp();
        let leeway = i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX);
        let time = |name: &str| claims.get(name).and_then(Value::as_i64);
        let exp = time("exp").ok_or(FederationError::NoExpiry)?;
        if exp.saturating_add(leeway) <= now {
            return Err(FederationError::Expired);
        }
        if time("nbf").is_some_and(|nbf| nbf.saturating_sub(leeway) > now) {
            return Err(FederationError::NotYetValid);
        }
        if time("iat").is_some_and(|iat| iat.saturating_sub(leeway) > now) {
            return Err(FederationError::IssuedInFuture);
        }

        let subject = claims
            .get(&issuer.subject_claim)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(FederationError::MissingSubject)?;
        let user = storage::users::by_external_subject(storage, &org.id, subject)
            .await?
            .filter(|u| !u.disabled && u.deleted_at.is_none())
            .ok_or(FederationError::UnknownSubject)?;
        Ok((user, claims))
    }

    /// The provider's key for `kid`, fetching its JWKS when needed and allowed.
    async fn key(
        &self,
        issuer: &trusted_issuer::Model,
        kid: Option<&str>,
    ) -> Result<Jwk, FederationError> {
        if let Some(inline) = &issuer.jwks {
            let set = parse_jwks(inline).map_err(|_| FederationError::UnknownKey)?;
            return find(&set, kid).cloned().ok_or(FederationError::UnknownKey);
        }
        let Some(uri) = &issuer.jwks_uri else {
            return Err(FederationError::ProviderUnavailable);
        };
        let now = self.clock.now();
        let cached = self.keys.get(&issuer.id);
        if let Some(fetched) = &cached
            && let Some(jwk) = find(&fetched.set, kid)
            && now < later(fetched.at, self.max_age)
        {
            return Ok(jwk.clone());
        }
        let fallback = || match &cached {
            Some(fetched) => find(&fetched.set, kid)
                .cloned()
                .ok_or(FederationError::UnknownKey),
            None => Err(FederationError::ProviderUnavailable),
        };
        // After a failure, the provider is not asked again within the cooldown. With keys
        // cached, an unknown `kid` or old keys cause one refetch per cooldown, however many
        // requests arrive at once (`claim` lets exactly one caller in).
        if self.failed.active(&issuer.id, now) {
            return fallback();
        }
        let until = later(now, self.cooldown);
        if cached.is_some() && !self.refetched.claim(&issuer.id, now, until) {
            return fallback();
        }
        match self.fetch(uri).await {
            Ok(set) => {
                let fetched = Arc::new(Fetched { at: now, set });
                self.keys.insert(issuer.id.clone(), fetched.clone());
                find(&fetched.set, kid)
                    .cloned()
                    .ok_or(FederationError::UnknownKey)
            }
            Err(reason) => {
                // Logged once per cooldown: `failed` stops further attempts until then.
                self.failed.start(&issuer.id, until);
                tracing::warn!(
                    issuer = %issuer.issuer,
                    jwks_uri = %uri,
                    %reason,
                    "fetching an identity provider's keys failed; cached keys stay in use"
                );
                fallback()
            }
        }
    }

    async fn fetch(&self, uri: &str) -> Result<JwkSet, String> {
        let body = outbound::get_capped(
            &self.http,
            self.policy,
            uri,
            "application/json",
            MAX_JWKS_BYTES,
        )
        .await?;
        parse_jwks(&String::from_utf8_lossy(&body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_documents_are_checked() {
        let ec = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"a","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
        assert_eq!(parse_jwks(ec).unwrap().keys.len(), 1);
        for bad in [
            "",
            "[]",
            r#"{"keys": []}"#,
            r#"{"nokeys": 1}"#,
            r#"{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}]}"#,
        ] {
            assert!(parse_jwks(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_issuer_is_read_without_verifying() {
        let payload = URL_SAFE_NO_PAD.encode(r#"{"iss":"https://idp.example","sub":"x"}"#);
        assert_eq!(
            unverified_issuer(&format!("e30.{payload}.sig")).as_deref(),
            Some("https://idp.example")
        );
        assert_eq!(unverified_issuer("not-a-jwt"), None);
        assert_eq!(unverified_issuer("a.!!!.c"), None);
    }
}
