//! The server's signing keys at run time: loads them from storage, creates the first one,
//! rotates, and keeps an in-memory [`KeySet`] that is reloaded when it is older than
//! [`MAX_AGE`], so a rotation anywhere reaches every node within a second while requests
//! (including ones with garbage `kid`s) never query the database themselves.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::keys::signing::{KeyError, KeySet, SigningAlg, SigningKeyRecord, generate};
use crate::secrets::Kek;
use crate::storage::{Storage, StorageError, signing_keys};

/// How old a node's copy of the signing keys may get: a rotation done by another node or
/// by the CLI is served and used within this time, without a query per request.
pub const MAX_AGE: Duration = Duration::from_secs(1);

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

/// Publishes and activates a new key; every older key stays published until `retire_at`
/// (the caller passes now + the longest token lifetime + leeway).
pub async fn rotate(
    storage: &Storage,
    kek: &Kek,
    alg: SigningAlg,
    now: DateTime<Utc>,
    retire_at: DateTime<Utc>,
) -> Result<SigningKeyRecord, SigningKeysError> {
    // The newest activated key signs: make sure the new one is strictly the newest, even
    // when the clock has not moved since the last rotation.
    let latest = signing_keys::all(storage)
        .await?
        .into_iter()
        .map(|r| r.activated_at)
        .max();
    let activate_at = latest.map_or(now, |t| now.max(t + chrono::Duration::milliseconds(1)));
    let mut record = generate(alg, kek, activate_at)?;
    record.created_at = now;
    signing_keys::insert(storage, &record).await?;
    signing_keys::retire_all_but(storage, &record.kid, retire_at).await?;
    Ok(record)
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

    /// The key set, reloaded first when this node's copy is older than [`MAX_AGE`] (one
    /// request reloads; the others meanwhile use the copy they have).
    pub async fn current(&self) -> Arc<KeySet> {
        let max_age = chrono::Duration::from_std(MAX_AGE).unwrap_or_default();
        let stale = self
            .last_reload
            .read()
            .map(|t| self.clock.now() >= *t + max_age)
            .unwrap_or(true);
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
