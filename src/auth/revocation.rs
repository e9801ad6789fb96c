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
//!
//! Forgetting sessions starts a new *generation*: a session row read before the forget (a
//! query still in flight while this node revoked the session) is stored with the old
//! generation and never used, so a revocation made here is seen at once, whatever the
//! interleaving.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::session;
use moka::sync::Cache;

use crate::clock::Clock;
use crate::storage::{self, Storage, StorageError};

/// The longest a node may act on a stale answer.
pub const STALENESS: Duration = Duration::from_secs(4);

/// The most sessions one token's chain may visit (its own, the sessions its subject and
/// actor tokens were exchanged from, and theirs): beyond it, the token is not live. The
/// delegation depth is capped far lower (`tokens.max_delegation_depth`).
pub const MAX_CHAIN: usize = 64;

/// Whether a session is live at `now`: not revoked by then, not expired.
pub fn live(session: &session::Model, now: DateTime<Utc>) -> bool {
    session.revoked_at.is_none_or(|t| t > now) && session.expires_at > now
}

/// A lookup and when it was made.
#[derive(Clone, Debug)]
struct Fetched<T> {
    at: DateTime<Utc>,
    /// The session generation when the lookup started (revoked `jti`s: always 0).
    generation: u64,
    value: T,
}

#[derive(Debug)]
pub struct Revocations {
    clock: Arc<dyn Clock>,
    /// Bumped by every forget: session lookups of an older generation are not used.
    generation: AtomicU64,
    sessions: Cache<String, Fetched<Option<Arc<session::Model>>>>,
    revoked_jtis: Cache<String, Fetched<bool>>,
}

impl Revocations {
    pub fn new(capacity: u64, clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            generation: AtomicU64::new(0),
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
        if let Some(cached) = self.cached_session(session_id) {
            return Ok(cached.filter(|s| s.org_id == org_id));
        }
        let generation = self.generation.load(Ordering::Acquire);
        let at = self.clock.now();
        let found = storage::sessions::get(storage, org_id, session_id)
            .await?
            .map(Arc::new);
        self.remember_session(session_id, at, generation, found.clone());
        Ok(found)
    }

    /// Whether the session `session_id` of `org_id` is live at `now`, and so is every session
    /// up its delegation chain (RFC 8693): the subject token's session it was exchanged from
    /// and the actor token's, and theirs in turn. The revocation of any link (a session
    /// ended, a key revoked, a user offboarded) ends the tokens exchanged from it.
    /// `cached`: through this cache (protected requests), else read now (introspection).
    pub async fn chain_live(
        &self,
        storage: &Storage,
        org_id: &str,
        session_id: &str,
        now: DateTime<Utc>,
        cached: bool,
    ) -> Result<bool, StorageError> {
        let mut pending = vec![session_id.to_owned()];
        let mut visited = 0;
        while let Some(id) = pending.pop() {
            visited += 1;
            if visited > MAX_CHAIN {
                return Ok(false);
            }
            let found = if cached {
                self.session(storage, org_id, &id).await?
            } else {
                storage::sessions::get(storage, org_id, &id)
                    .await?
                    .map(Arc::new)
            };
            let Some(session) = found.filter(|s| live(s, now)) else {
                return Ok(false);
            };
            pending.extend(session.parent_session_id.clone());
            pending.extend(session.actor_session_id.clone());
        }
        Ok(true)
    }

    /// A cached lookup that is fresh and of the current generation.
    fn cached_session(&self, session_id: &str) -> Option<Option<Arc<session::Model>>> {
        let cached = self.sessions.get(session_id)?;
        (self.fresh(cached.at) && cached.generation == self.generation.load(Ordering::Acquire))
            .then_some(cached.value)
    }

    fn remember_session(
        &self,
        session_id: &str,
        at: DateTime<Utc>,
        generation: u64,
        value: Option<Arc<session::Model>>,
    ) {
        self.sessions.insert(
            session_id.to_owned(),
            Fetched {
                at,
                generation,
                value,
            },
        );
    }

    pub async fn is_revoked(&self, storage: &Storage, jti: &str) -> Result<bool, StorageError> {
        if let Some(cached) = self.revoked_jtis.get(jti)
            && (cached.value || self.fresh(cached.at))
        {
            return Ok(cached.value);
        }
        let at = self.clock.now();
        let revoked = storage::revoked_tokens::is_revoked(storage, jti).await?;
        self.revoked_jtis.insert(
            jti.to_owned(),
            Fetched {
                at,
                generation: 0,
                value: revoked,
            },
        );
        Ok(revoked)
    }

    /// Call after changing a session on this node.
    pub fn forget_session(&self, session_id: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.sessions.invalidate(session_id);
    }

    /// Call after ending sessions by key or by user on this node (which sessions is not
    /// known here; forgetting all costs one query per live session on its next request).
    pub fn forget_sessions(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.sessions.invalidate_all();
    }

    /// Call after revoking an access token on this node.
    pub fn revoked(&self, jti: &str) {
        self.revoked_jtis.insert(
            jti.to_owned(),
            Fetched {
                at: self.clock.now(),
                generation: 0,
                value: true,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    /// A lookup that was in flight when this node forgot its sessions (it read the row
    /// before the revocation committed and stores it after the forget) is never used.
    #[test]
    fn a_lookup_from_before_a_forget_is_never_used() {
        let revocations = Revocations::new(16, Arc::new(ManualClock::starting_now()));
        let live = Arc::new(session::Model {
            id: "ses_a".into(),
            org_id: "org_a".into(),
            user_id: "usr_a".into(),
            api_key_id: "key_a".into(),
            actor_user_id: None,
            dpop_jkt: None,
            scope: String::new(),
            created_at: revocations.clock.now(),
            expires_at: revocations.clock.now(),
            revoked_at: None,
            refreshed_at: None,
            resources: None,
            parent_session_id: None,
            actor_session_id: None,
        });
        for forget in [
            Revocations::forget_sessions as fn(&Revocations),
            |r: &Revocations| r.forget_session("ses_a"),
        ] {
            let started = revocations.generation.load(Ordering::Acquire);
            let at = revocations.clock.now();
            forget(&revocations);
            revocations.remember_session("ses_a", at, started, Some(live.clone()));
            assert!(revocations.cached_session("ses_a").is_none());
            // A lookup started after the forget is used.
            let now = revocations.generation.load(Ordering::Acquire);
            revocations.remember_session("ses_a", at, now, Some(live.clone()));
            assert!(revocations.cached_session("ses_a").is_some());
        }
    }
}
