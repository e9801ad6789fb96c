//! The server's signing keys at run time: loads them from storage, creates the first one,
//! rotates, and keeps an in-memory [`KeySet`] that is reloaded periodically and when a
//! token names a key this node has not seen yet (with a cooldown, so garbage `kid`s cannot
//! make every request hit the database).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::keys::signing::{KeyError, KeySet, SigningAlg, SigningKeyRecord, generate};
use crate::secrets::Kek;
use crate::storage::{Storage, StorageError, signing_keys};

const RELOAD_COOLDOWN: Duration = Duration::from_secs(5);

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
    last_reload: RwLock<Instant>,
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
    let record = generate(alg, kek, now)?;
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
        let set = KeySet::build(&records, &kek, clock.now())?;
        Ok(Self {
            storage,
            kek,
            clock,
            current: RwLock::new(Arc::new(set)),
            last_reload: RwLock::new(Instant::now()),
        })
    }

    /// The key set as this node last loaded it.
    pub fn current(&self) -> Arc<KeySet> {
        self.current
            .read()
            .map(|s| Arc::clone(&s))
            .unwrap_or_else(|e| Arc::clone(&e.into_inner()))
    }

    /// Reloads from storage now.
    pub async fn reload(&self) -> Result<Arc<KeySet>, SigningKeysError> {
        let records = signing_keys::all(&self.storage).await?;
        let set = Arc::new(KeySet::build(&records, &self.kek, self.clock.now())?);
        if let Ok(mut current) = self.current.write() {
            *current = Arc::clone(&set);
        }
        if let Ok(mut last) = self.last_reload.write() {
            *last = Instant::now();
        }
        Ok(set)
    }

    /// Reloads unless a reload happened within the cooldown; `None` when it did not reload.
    pub async fn reload_for_unknown_kid(&self) -> Option<Arc<KeySet>> {
        let recent = self
            .last_reload
            .read()
            .map(|t| t.elapsed() < RELOAD_COOLDOWN)
            .unwrap_or(true);
        if recent {
            return None;
        }
        match self.reload().await {
            Ok(set) => Some(set),
            Err(err) => {
                tracing::error!(error = %err, "reloading signing keys failed");
                None
            }
        }
    }
}
