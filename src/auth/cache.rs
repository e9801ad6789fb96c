//! What a request reads instead of the database: the organization by slug, the user by
//! (organization, id) and the API key by its secret's digest ([`Directory`]), and the claims
//! of access tokens whose signature this node already verified ([`VerifiedTokens`]).
//!
//! The directory follows the revocation window of [`super::revocation`]: an entry is acted
//! on for at most [`STALENESS`] (its age judged by the application [`Clock`], so tests move
//! past it with a manual clock; moka's own timer frees the memory), a change made on this
//! node is seen at once (the writer calls [`Directory::users_changed`],
//! [`Directory::orgs_changed`] or [`Directory::keys_changed`] after committing), one made on
//! another node or by the CLI within [`STALENESS`]. Issuing endpoints do not rely on that
//! window: the commit of a new session checks its key and users again
//! ([`crate::storage::sessions::open_many`]). Concurrent misses of one key share one query. Absent rows are not
//! remembered (a user or organization created a moment ago is found at once).
//!
//! A local change starts a new *generation*: entries and loads of older generations are
//! never used again, so a query that started before the change cannot bring its old
//! answer back into use.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use entity::{api_key, organization, user};
use moka::Expiry;
use moka::sync::Cache;
use tokio::sync::OnceCell;

use super::revocation::STALENESS;
use crate::clock::Clock;
use crate::storage::{self, Storage, StorageError};
use crate::tokens::AccessClaims;

/// A row as loaded, and when.
#[derive(Debug)]
struct Loaded<T> {
    at: DateTime<Utc>,
    value: Arc<T>,
}

/// One key's load: the first miss initializes it, concurrent misses await the same load.
type Slot<T> = Arc<OnceCell<Loaded<T>>>;

enum LoadError {
    Missing,
    Storage(StorageError),
}

/// Organizations by slug and users by (organization id, user id), each fresh within
/// [`STALENESS`].
#[derive(Debug)]
pub struct Directory {
    clock: Arc<dyn Clock>,
    org_generation: AtomicU64,
    user_generation: AtomicU64,
    key_generation: AtomicU64,
    orgs: Cache<(u64, String), Slot<organization::Model>>,
    users: Cache<(u64, String, String), Slot<user::Model>>,
    /// By the secret's digest (the lookup of a credential; the caller compares it again).
    keys: Cache<(u64, String), Slot<api_key::Model>>,
    /// Keys whose direct use this node wrote within the last minute (`last_used_at` is
    /// sampled, as at sign-in, so a busy key costs one write a minute, not one a request).
    uses: Cache<String, ()>,
}

impl Directory {
    pub fn new(capacity: u64, clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            org_generation: AtomicU64::new(0),
            user_generation: AtomicU64::new(0),
            key_generation: AtomicU64::new(0),
            keys: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(STALENESS)
                .build(),
            orgs: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(STALENESS)
                .build(),
            users: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(STALENESS)
                .build(),
            uses: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(Duration::from_secs(60))
                .build(),
        }
    }

    /// Whether this node should write a use of `key_id` now: true for the first use in a
    /// minute, false for the rest.
    pub fn first_use_in_window(&self, key_id: &str) -> bool {
        self.uses.entry_by_ref(key_id).or_insert(()).is_fresh()
    }

    /// The organization `slug` as stored at most [`STALENESS`] ago.
    pub async fn org(
        &self,
        storage: &Storage,
        slug: &str,
    ) -> Result<Option<Arc<organization::Model>>, StorageError> {
        let key = (self.org_generation.load(Ordering::Acquire), slug.to_owned());
        cached(&self.orgs, self.clock.as_ref(), key, || {
            storage::orgs::by_slug(storage, slug)
        })
        .await
    }

    /// The user `user_id` of `org_id` as stored at most [`STALENESS`] ago (deleted and
    /// disabled users included: the caller decides).
    pub async fn user(
        &self,
        storage: &Storage,
        org_id: &str,
        user_id: &str,
    ) -> Result<Option<Arc<user::Model>>, StorageError> {
        let key = (
            self.user_generation.load(Ordering::Acquire),
            org_id.to_owned(),
            user_id.to_owned(),
        );
        cached(&self.users, self.clock.as_ref(), key, || {
            storage::users::get(storage, org_id, user_id)
        })
        .await
    }

    /// The API key whose secret has `digest`, as stored at most [`STALENESS`] ago (revoked
    /// and expired keys included: the caller decides).
    pub async fn key_by_digest(
        &self,
        storage: &Storage,
        digest: &str,
    ) -> Result<Option<Arc<api_key::Model>>, StorageError> {
        let key = (
            self.key_generation.load(Ordering::Acquire),
            digest.to_owned(),
        );
        cached(&self.keys, self.clock.as_ref(), key, || {
            storage::api_keys::by_digest(storage, digest)
        })
        .await
    }

    /// Call after changing an API key on this node (after the commit).
    pub fn keys_changed(&self) {
        self.key_generation.fetch_add(1, Ordering::AcqRel);
        self.keys.invalidate_all();
    }

    /// Call after changing a user on this node (after the commit).
    pub fn users_changed(&self) {
        self.user_generation.fetch_add(1, Ordering::AcqRel);
        self.users.invalidate_all();
    }

    /// Call after changing an organization on this node (after the commit).
    pub fn orgs_changed(&self) {
        self.org_generation.fetch_add(1, Ordering::AcqRel);
        self.orgs.invalidate_all();
    }
}

/// The value under `key` if loaded less than [`STALENESS`] ago by `clock`, else loaded
/// now (once for all concurrent callers).
async fn cached<K, T, F, Fut>(
    cache: &Cache<K, Slot<T>>,
    clock: &dyn Clock,
    key: K,
    load: F,
) -> Result<Option<Arc<T>>, StorageError>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    T: Send + Sync + 'static,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Option<T>, StorageError>>,
{
    let window = chrono::Duration::from_std(STALENESS).unwrap_or_default();
    let mut slot = cache.get_with(key.clone(), || Arc::new(OnceCell::new()));
    if let Some(loaded) = slot.get() {
        if clock.now() - loaded.at < window {
            return Ok(Some(Arc::clone(&loaded.value)));
        }
        // Stale by the application clock: start a new load (unless another caller did).
        cache.invalidate(&key);
        slot = cache.get_with(key.clone(), || Arc::new(OnceCell::new()));
        if let Some(loaded) = slot.get()
            && clock.now() - loaded.at < window
        {
            return Ok(Some(Arc::clone(&loaded.value)));
        }
    }
    let result = slot
        .get_or_try_init(|| async {
            let at = clock.now();
            match load().await {
                Ok(Some(value)) => Ok(Loaded {
                    at,
                    value: Arc::new(value),
                }),
                Ok(None) => Err(LoadError::Missing),
                Err(e) => Err(LoadError::Storage(e)),
            }
        })
        .await;
    match result {
        Ok(loaded) => Ok(Some(Arc::clone(&loaded.value))),
        Err(e) => {
            cache.invalidate(&key);
            match e {
                LoadError::Missing => Ok(None),
                LoadError::Storage(e) => Err(e),
            }
        }
    }
}

/// The claims of a token this node verified, and the key that signed it.
#[derive(Debug)]
pub struct Verified {
    pub kid: String,
    pub claims: AccessClaims,
}

/// Access tokens whose signature and claims this node verified, by the SHA-256 of the
/// token, each until its `exp` (never longer). A hit skips only the signature and the
/// parsing: expiry, the signing key still being known, revocation, session, user and the
/// DPoP proof are checked on every request.
#[derive(Debug)]
pub struct VerifiedTokens {
    clock: Arc<dyn Clock>,
    cache: Cache<[u8; 32], Arc<Verified>>,
}

/// Evicts an entry at its token's `exp` (by the application clock at insertion).
struct UntilExp(Arc<dyn Clock>);

impl Expiry<[u8; 32], Arc<Verified>> for UntilExp {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Arc<Verified>,
        _created_at: Instant,
    ) -> Option<Duration> {
        let left = value.claims.exp.saturating_sub(self.0.now().timestamp());
        Some(Duration::from_secs(u64::try_from(left).unwrap_or(0)))
    }
}

impl VerifiedTokens {
    pub fn new(capacity: u64, clock: Arc<dyn Clock>) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilExp(clock.clone()))
                .build(),
            clock,
        }
    }

    pub fn digest(token: &str) -> [u8; 32] {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        key
    }

    /// The verified claims of the token with this digest, if still before its `exp`.
    pub fn get(&self, digest: &[u8; 32]) -> Option<Arc<Verified>> {
        let hit = self.cache.get(digest)?;
        if hit.claims.exp <= self.clock.now().timestamp() {
            self.cache.invalidate(digest);
            return None;
        }
        Some(hit)
    }

    /// Remembers a token that verified completely (signature, issuer, audience, times).
    pub fn insert(&self, digest: [u8; 32], verified: Verified) {
        if verified.claims.exp > self.clock.now().timestamp() {
            self.cache.insert(digest, Arc::new(verified));
        }
    }
}
