//! What protected requests check on every call without a query each time: whether the
//! token's session is still live and whether its `jti` was revoked. Lookups are cached for
//! [`STALENESS`]; a revocation made on this node is seen at once, one made on another node
//! within that time (the revocation window: at most 5 seconds). The cached fact is the
//! session row itself, so whatever ended the session (its subject's or its actor's
//! offboarding, its key's revocation, a reused refresh token) reaches every node the same
//! way.
//!
//! An entry's age is judged by the application [`Clock`] (and by moka's own timer, which
//! also frees the memory), so tests move past the window with a manual clock.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::session;
use moka::sync::Cache;

use crate::clock::Clock;
use crate::storage::{self, Storage, StorageError};

/// The longest a node may act on a stale answer.
pub const STALENESS: Duration = Duration::from_secs(4);

/// A lookup and when it was made.
#[derive(Clone, Debug)]
struct Fetched<T> {
    at: DateTime<Utc>,
    value: T,
}

#[derive(Debug)]
pub struct Revocations {
    clock: Arc<dyn Clock>,
    sessions: Cache<String, Fetched<Option<Arc<session::Model>>>>,
    revoked_jtis: Cache<String, Fetched<bool>>,
}

impl Revocations {
    pub fn new(capacity: u64, clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            sessions: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(STALENESS)
                .build(),
            revoked_jtis: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(STALENESS)
                .build(),
        }
    }

    /// Whether a lookup made at `at` may still be acted on.
    fn fresh(&self, at: DateTime<Utc>) -> bool {
        let age = self.clock.now() - at;
        age < chrono::Duration::from_std(STALENESS).unwrap_or(chrono::Duration::zero())
    }

    /// The session as stored at most [`STALENESS`] ago (`None`: no such session in `org_id`).
    pub async fn session(
        &self,
        storage: &Storage,
        org_id: &str,
        session_id: &str,
    ) -> Result<Option<Arc<session::Model>>, StorageError> {
        if let Some(cached) = self.sessions.get(session_id)
            && self.fresh(cached.at)
        {
            return Ok(cached.value.filter(|s| s.org_id == org_id));
        }
        let at = self.clock.now();
        let found = storage::sessions::get(storage, org_id, session_id)
            .await?
            .map(Arc::new);
        self.sessions.insert(
            session_id.to_owned(),
            Fetched {
                at,
                value: found.clone(),
            },
        );
        Ok(found)
    }

    pub async fn is_revoked(&self, storage: &Storage, jti: &str) -> Result<bool, StorageError> {
        if let Some(cached) = self.revoked_jtis.get(jti)
            && (cached.value || self.fresh(cached.at))
        {
            return Ok(cached.value);
        }
        let at = self.clock.now();
        let revoked = storage::revoked_tokens::is_revoked(storage, jti).await?;
        self.revoked_jtis
            .insert(jti.to_owned(), Fetched { at, value: revoked });
        Ok(revoked)
    }

    /// Call after changing a session on this node.
    pub fn forget_session(&self, session_id: &str) {
        self.sessions.invalidate(session_id);
    }

    /// Call after ending sessions by key or by user on this node (which sessions is not
    /// known here; forgetting all costs one query per live session on its next request).
    pub fn forget_sessions(&self) {
        self.sessions.invalidate_all();
    }

    /// Call after revoking an access token on this node.
    pub fn revoked(&self, jti: &str) {
        self.revoked_jtis.insert(
            jti.to_owned(),
            Fetched {
                at: self.clock.now(),
                value: true,
            },
        );
    }
}
