//! Organizations' identity keys (README, "Identity proofs"): one Ed25519 key set per
//! organization, generated on first use, sealed under the KEK like the token signing keys,
//! rotated with [`rotate`], and published at `/v1/{org}/.well-known/identity-jwks.json`.
//! These keys sign identity proofs ([`proof`]) and nothing else: they are never in the
//! access-token JWKS and never verify an access token, so a proof cannot pass for one.
//!
//! Each node keeps an organization's parsed key set for at most
//! [`crate::signing_keys::MAX_AGE`] (by the application clock), or until a published
//! key's activation time comes; a rotation on this node is seen at once ([`IdentityKeys::changed`]).
//! Must not: import actix-web, or query the database per request beyond that reload.

pub mod proof;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use moka::sync::Cache;

use crate::clock::Clock;
use crate::keys::signing::{KeyError, KeySet, SigningKeyRecord, generate};
use crate::secrets::Kek;
use crate::signing_keys::{ACTIVATION_DELAY, MAX_AGE};
use crate::storage::{Storage, StorageError, identity_keys};
use crate::types::SigningAlg;

#[derive(Debug, thiserror::Error)]
pub enum IdentityKeyError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// An organization's key set as this node last built it.
struct Loaded {
    at: DateTime<Utc>,
    set: Arc<KeySet>,
}

/// Every organization's identity keys, as this node sees them.
pub struct IdentityKeys {
    storage: Storage,
    kek: Arc<Kek>,
    clock: Arc<dyn Clock>,
    sets: Cache<String, Arc<Loaded>>,
    /// One first-key generation at a time on this node.
    creating: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for IdentityKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityKeys").finish_non_exhaustive()
    }
}

impl IdentityKeys {
    pub fn new(storage: Storage, kek: Arc<Kek>, clock: Arc<dyn Clock>) -> Self {
        Self {
            storage,
            kek,
            clock,
            sets: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            creating: tokio::sync::Mutex::new(()),
        }
    }

    /// The key set of `org_id`: the published keys and the one that signs. The first call
    /// for an organization without a usable key creates one.
    pub async fn current(&self, org_id: &str) -> Result<Arc<KeySet>, IdentityKeyError> {
        let now = self.clock.now();
        let max_age = chrono::Duration::from_std(MAX_AGE).unwrap_or_default();
        if let Some(loaded) = self.sets.get(org_id)
            && now < loaded.at + max_age
            && loaded.set.next_activation().is_none_or(|t| now < t)
            && loaded.set.active().is_some()
        {
            return Ok(Arc::clone(&loaded.set));
        }
        let mut records = identity_keys::all(&self.storage, org_id).await?;
        if !usable(&records, now) {
            let _one = self.creating.lock().await;
            records = identity_keys::all(&self.storage, org_id).await?;
            if !usable(&records, now) {
                let record = generate(SigningAlg::EdDSA, &self.kek, now)?;
                identity_keys::insert(&self.storage, org_id, &record).await?;
                tracing::info!(kid = %record.kid, "created an organization's first identity key");
                records = identity_keys::all(&self.storage, org_id).await?;
            }
        }
        let set = Arc::new(KeySet::build(&records, &self.kek, now)?);
        self.sets.insert(
            org_id.to_owned(),
            Arc::new(Loaded {
                at: now,
                set: Arc::clone(&set),
            }),
        );
        Ok(set)
    }

    /// Call after rotating an organization's identity key on this node.
    pub fn changed(&self, org_id: &str) {
        self.sets.invalidate(org_id);
    }
}

fn usable(records: &[SigningKeyRecord], now: DateTime<Utc>) -> bool {
    records
        .iter()
        .any(|r| r.activated_at <= now && r.retire_at.is_none_or(|t| t > now))
}

/// What [`rotate`] did.
#[derive(Clone, Debug)]
pub struct Rotation {
    /// The new key: published now, signing from its `activated_at`.
    pub key: SigningKeyRecord,
    /// When the keys it replaces leave the identity JWKS.
    pub previous_retire_at: DateTime<Utc>,
}

/// Publishes a new identity key of `org_id` that signs from `now` + the JWKS cache lifetime
/// and a margin (as token signing keys do: verifiers that cached the JWKS have the key
/// before the first proof it signs). Older keys keep signing until then and stay published
/// until every proof they signed has expired (`proof_lifetime`: the proof TTL plus leeway,
/// counted from the new key's activation).
pub async fn rotate(
    storage: &Storage,
    kek: &Kek,
    org_id: &str,
    now: DateTime<Utc>,
    proof_lifetime: Duration,
) -> Result<Rotation, IdentityKeyError> {
    let later = |t: DateTime<Utc>, d: Duration| {
        chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| t.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    };
    let existing = identity_keys::all(storage, org_id).await?;
    // With no key yet there is nothing a verifier could have cached: sign at once.
    let earliest = if existing.is_empty() {
        now
    } else {
        later(now, ACTIVATION_DELAY)
    };
    let activate_at = existing
        .iter()
        .map(|r| r.activated_at)
        .max()
        .map_or(earliest, |t| {
            earliest.max(t + chrono::Duration::milliseconds(1))
        });
    let previous_retire_at = later(activate_at, proof_lifetime);
    let mut record = generate(SigningAlg::EdDSA, kek, activate_at)?;
    record.created_at = now;
    identity_keys::insert(storage, org_id, &record).await?;
    identity_keys::retire_all_but(storage, org_id, &record.kid, previous_retire_at).await?;
    Ok(Rotation {
        key: record,
        previous_retire_at,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum IssueProofError {
    #[error(transparent)]
    Proof(#[from] proof::ProofError),
    #[error(transparent)]
    Keys(#[from] IdentityKeyError),
}

/// A signed identity proof and when it expires.
pub struct IssuedProof {
    pub proof: String,
    pub expires_at: DateTime<Utc>,
}

/// An identity proof for `caller` at its organization, for `aud` when given: `sub`, `org`,
/// `role` as this request authenticated them, `cnf.jkt` when its token is DPoP-bound, valid
/// `identity_proofs.ttl`.
pub async fn proof_for(
    state: &crate::state::AppState,
    caller: &crate::auth::access::Caller,
    aud: Option<&str>,
) -> Result<IssuedProof, IssueProofError> {
    let aud = aud.map(proof::parse_audience).transpose()?;
    let keys = state.identity_keys.current(&caller.org.id).await?;
    let now = state.clock.now();
    let ttl = chrono::Duration::from_std(state.settings.identity_proofs.ttl)
        .unwrap_or(chrono::Duration::hours(1));
    let expires_at = now + ttl;
    let claims = proof::ProofClaims {
        iss: state.issuer(&caller.org.slug),
        sub: caller.user.id.clone(),
        org: caller.org.slug.clone(),
        role: caller.role.as_str().to_owned(),
        iat: now.timestamp(),
        exp: expires_at.timestamp(),
        jti: crate::ids::new_id("idp"),
        aud,
        cnf: caller
            .token
            .jkt
            .clone()
            .map(|jkt| crate::tokens::Confirmation { jkt }),
    };
    Ok(IssuedProof {
        proof: proof::sign(&keys, &claims)?,
        expires_at: chrono::DateTime::from_timestamp(claims.exp, 0).unwrap_or(expires_at),
    })
}
