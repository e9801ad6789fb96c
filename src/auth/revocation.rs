//! What protected requests check on every call without a query each time: whether the
//! token's session is still live and whether its `jti` was revoked. Lookups are cached for
//! [`STALENESS`]; a revocation made on this node is seen at once, one made on another node
//! within that time (DESIGN §4: within 5 seconds).

use std::sync::Arc;
use std::time::Duration;

use entity::session;
use moka::sync::Cache;

use crate::storage::{self, Storage, StorageError};

/// The longest a node may act on a stale answer.
pub const STALENESS: Duration = Duration::from_secs(4);

#[derive(Debug)]
pub struct Revocations {
    sessions: Cache<String, Option<Arc<session::Model>>>,
    revoked_jtis: Cache<String, bool>,
}

impl Revocations {
    pub fn new(capacity: u64) -> Self {
        Self {
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

    /// The session as stored at most [`STALENESS`] ago (`None`: no such session in `org_id`).
    pub async fn session(
        &self,
        storage: &Storage,
        org_id: &str,
        session_id: &str,
    ) -> Result<Option<Arc<session::Model>>, StorageError> {
        if let Some(cached) = self.sessions.get(session_id) {
            return Ok(cached.filter(|s| s.org_id == org_id));
        }
        let found = storage::sessions::get(storage, org_id, session_id)
            .await?
            .map(Arc::new);
        self.sessions.insert(session_id.to_owned(), found.clone());
        Ok(found)
    }

    pub async fn is_revoked(&self, storage: &Storage, jti: &str) -> Result<bool, StorageError> {
        if let Some(revoked) = self.revoked_jtis.get(jti) {
            return Ok(revoked);
        }
        let revoked = storage::revoked_tokens::is_revoked(storage, jti).await?;
        self.revoked_jtis.insert(jti.to_owned(), revoked);
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
        self.revoked_jtis.insert(jti.to_owned(), true);
    }
}
