//! The server's signing keys at run time: loads them from storage, creates the first one,
//! rotates, and keeps an in-memory [`KeySet`] that is reloaded when it is older than
//! [`MAX_AGE`] (or when a published key's activation time has come), so a rotation
//! anywhere reaches every node within a second while requests (including ones with
//! garbage `kid`s) never query the database themselves.
//!
//! Publish before signing: [`rotate`] publishes the new key at once (every node serves it
//! in its JWKS within [`MAX_AGE`]) and lets it sign only [`ACTIVATION_DELAY`] later, once
//! every JWKS copy cached by a resource server (`Cache-Control: max-age` =
//! [`JWKS_MAX_AGE`]) has been refreshed. So no verifier meets a `kid` it cannot know of,
//! and a node verifying a token of another node always has its key already.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::keys::signing::{KeyError, KeySet, SigningKeyRecord, generate};
use crate::secrets::Kek;
use crate::storage::{Storage, StorageError, signing_keys};
use crate::types::SigningAlg;

/// How old a node's copy of the signing keys may get: a rotation done by another node or
/// by the CLI is served and used within this time, without a query per request.
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// How long resource servers may cache the JWKS (its `Cache-Control: max-age`).
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(60);

/// How long a rotated key is published before it signs: the JWKS cache lifetime, plus a
/// margin for this fleet's reload ([`MAX_AGE`]), slow JWKS fetches and clock skew.
pub const ACTIVATION_DELAY: Duration = Duration::from_secs(60 + 10);

/// Where a signing key is in its life, at a given instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// In the JWKS, not signing yet (its activation time is ahead).
    Published,
    /// In the JWKS and signing new tokens.
    Active,
    /// Replaced by a newer key: in the JWKS and verifying, no longer signing, until its
    /// retirement time.
    Retiring,
    /// Past its retirement time: neither published nor accepted.
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Published => "published",
            KeyState::Active => "active",
            KeyState::Retiring => "retiring",
            KeyState::Retired => "retired",
        }
    }
}

/// The state of each record at `now` (the rule [`KeySet::build`] signs by: the newest
/// published key whose activation time has passed is the active one).
pub fn states(records: &[SigningKeyRecord], now: DateTime<Utc>) -> Vec<KeyState> {
    let published = |r: &SigningKeyRecord| r.retire_at.is_none_or(|t| t > now);
    let active = records
        .iter()
        .filter(|r| published(r) && r.activated_at <= now)
        .max_by_key(|r| r.activated_at)
        .map(|r| r.kid.as_str());
    records
        .iter()
        .map(|r| {
            if !published(r) {
                KeyState::Retired
            } else if Some(r.kid.as_str()) == active {
                KeyState::Active
            } else if r.activated_at > now {
                KeyState::Published
            } else {
                KeyState::Retiring
            }
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum SigningKeysError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub struct SigningKeys {
    storage: Storage,
    kek: Arc<Kek>,
    clock: Arc<dyn Clock>,
    current: RwLock<Arc<KeySet>>,
    /// When this node last read the keys (by the injected clock).
    last_reload: RwLock<DateTime<Utc>>,
    reloading: AtomicBool,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys").finish_non_exhaustive()
    }
}

/// Creates the first key when no key is usable for signing.
pub async fn ensure_active(
    storage: &Storage,
    kek: &Kek,
    alg: SigningAlg,
    now: DateTime<Utc>,
) -> Result<Vec<SigningKeyRecord>, SigningKeysError> {
    let records = signing_keys::all(storage).await?;
    let usable = records
        .iter()
        .any(|r| r.activated_at <= now && r.retire_at.is_none_or(|t| t > now));
    if usable {
        return Ok(records);
    }
    let record = generate(alg, kek, now)?;
    signing_keys::insert(storage, &record).await?;
    tracing::info!(kid = %record.kid, alg = %alg, "created the first token signing key");
    Ok(signing_keys::all(storage).await?)
}

/// What [`rotate`] did.
#[derive(Clone, Debug)]
pub struct Rotation {
    /// The new key: published now, signing from its `activated_at`.
    pub key: SigningKeyRecord,
    /// When the keys it replaces leave the JWKS (set on those without a date yet).
    pub previous_retire_at: DateTime<Utc>,
}

/// Publishes a new key that signs from `now` + [`ACTIVATION_DELAY`]; every older key keeps
/// signing until then and stays published until every token it may sign has expired
/// (`token_lifetime`: the longest access token lifetime plus leeway, counted from the new
/// key's activation).
pub async fn rotate(
    storage: &Storage,
    kek: &Kek,
    alg: SigningAlg,
    now: DateTime<Utc>,
    token_lifetime: Duration,
) -> Result<Rotation, SigningKeysError> {
    let later = |t: DateTime<Utc>, d: Duration| {
        chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| t.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    };
    // The newest activated key signs: make sure the new one is strictly the newest, even
    // when the clock has not moved since the last rotation.
    let latest = signing_keys::all(storage)
        .await?
        .into_iter()
        .map(|r| r.activated_at)
        .max();
    let earliest = later(now, ACTIVATION_DELAY);
    let activate_at = latest.map_or(earliest, |t| {
        earliest.max(t + chrono::Duration::milliseconds(1))
    });
    let previous_retire_at = later(activate_at, token_lifetime);
    let mut record = generate(alg, kek, activate_at)?;
    record.created_at = now;
    signing_keys::insert(storage, &record).await?;
    signing_keys::retire_all_but(storage, &record.kid, previous_retire_at).await?;
    Ok(Rotation {
        key: record,
        previous_retire_at,
    })
}

impl SigningKeys {
    pub async fn load(
        storage: Storage,
        kek: Arc<Kek>,
        clock: Arc<dyn Clock>,
        alg: SigningAlg,
    ) -> Result<Self, SigningKeysError> {
        let records = ensure_active(&storage, &kek, alg, clock.now()).await?;
        let now = clock.now();
        let set = KeySet::build(&records, &kek, now)?;
        Ok(Self {
            storage,
            kek,
            clock,
            current: RwLock::new(Arc::new(set)),
            last_reload: RwLock::new(now),
            reloading: AtomicBool::new(false),
        })
    }

    /// The key set, reloaded first when this node's copy is older than [`MAX_AGE`] or a
    /// published key's activation time has passed (one request reloads; the others
    /// meanwhile use the copy they have). A token with a `kid` this node does not know
    /// therefore causes at most one reload per [`MAX_AGE`], never a query per request.
    pub async fn current(&self) -> Arc<KeySet> {
        let max_age = chrono::Duration::from_std(MAX_AGE).unwrap_or_default();
        let now = self.clock.now();
        let stale = self
            .last_reload
            .read()
            .map(|t| now >= *t + max_age)
            .unwrap_or(true)
            || self.snapshot().next_activation().is_some_and(|t| now >= t);
        if stale && !self.reloading.swap(true, Ordering::AcqRel) {
            let _reset = ResetOnDrop(&self.reloading);
            if let Err(err) = self.reload().await {
                tracing::error!(error = %err, "reloading signing keys failed");
            }
        }
        self.snapshot()
    }

    fn snapshot(&self) -> Arc<KeySet> {
        self.current
            .read()
            .map(|s| Arc::clone(&s))
            .unwrap_or_else(|e| Arc::clone(&e.into_inner()))
    }

    /// Reloads from storage now.
    pub async fn reload(&self) -> Result<Arc<KeySet>, SigningKeysError> {
        let records = signing_keys::all(&self.storage).await?;
        let now = self.clock.now();
        let set = Arc::new(KeySet::build(&records, &self.kek, now)?);
        if let Ok(mut current) = self.current.write() {
            *current = Arc::clone(&set);
        }
        if let Ok(mut last) = self.last_reload.write() {
            *last = now;
        }
        Ok(set)
    }
}

/// Clears the reloading flag even when the reloading request is dropped mid-way.
struct ResetOnDrop<'a>(&'a AtomicBool);

impl Drop for ResetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
