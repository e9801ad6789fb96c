//! Cross-organization access (README, "Cross-organization access"): whether a user of one organization may work in
//! another, and as what. The answer is the target organization's live grant for that user
//! (one naming the user wins over one for the whole source organization), cached for
//! [`STALENESS`] so a revoked grant stops working on every node within 5 seconds. Cross-
//! organization traffic has a rate limit of its own, per source user, measured on the
//! application's [`Clock`] (so tests drive it like every other window).

use std::num::NonZeroU32;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::{organization, user};
use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use moka::sync::Cache;

use super::revocation::STALENESS;
use crate::clock::Clock;
use crate::config::CrossOrgSettings;
use crate::storage::{self, Storage, StorageError};
use crate::types::Role;

/// Past this many tracked users, the rate limiter forgets those who are back to a full
/// allowance.
const LIMITER_TRACKED: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum CrossOrgError {
    #[error("this organization has not granted your user or organization access")]
    NoGrant,
    #[error("too many cross-organization requests; slow down")]
    RateLimited,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The application's clock as governor's time source: nanoseconds since the Unix epoch
/// (a clock set before 1970 reads as 0; governor saturates when time goes backwards).
#[derive(Clone, Debug)]
pub(crate) struct AppClock(pub(crate) Arc<dyn Clock>);

impl GovernorClock for AppClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        let nanos = self.0.now().timestamp_nanos_opt().unwrap_or(0);
        Nanos::from(u64::try_from(nanos).unwrap_or(0))
    }
}

type Limiter = RateLimiter<String, DefaultKeyedStateStore<String>, AppClock, NoOpMiddleware<Nanos>>;

pub struct CrossOrg {
    /// (target org id, source org id, user id) → the granted role, if any.
    grants: Cache<(String, String, String), Option<Role>>,
    limiter: Limiter,
}

impl std::fmt::Debug for CrossOrg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrossOrg").finish_non_exhaustive()
    }
}

impl CrossOrg {
    pub fn new(settings: &CrossOrgSettings, clock: Arc<dyn Clock>) -> Arc<Self> {
        let rate = NonZeroU32::new(settings.rate_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(settings.burst).unwrap_or(rate);
        Arc::new(Self {
            grants: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(STALENESS)
                .build(),
            limiter: RateLimiter::new(
                Quota::per_second(rate).allow_burst(burst),
                DefaultKeyedStateStore::default(),
                AppClock(clock),
            ),
        })
    }

    /// The role `user` (of `home`) holds in `target`: rate limit first, then the grant.
    pub async fn admit(
        &self,
        storage: &Storage,
        now: DateTime<Utc>,
        target: &organization::Model,
        home: &organization::Model,
        user: &user::Model,
    ) -> Result<Role, CrossOrgError> {
        if self.limiter.len() > LIMITER_TRACKED {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&user.id)
            .map_err(|_| CrossOrgError::RateLimited)?;
        let key = (target.id.clone(), home.id.clone(), user.id.clone());
        if let Some(role) = self.grants.get(&key) {
            return role.ok_or(CrossOrgError::NoGrant);
        }
        let role =
            storage::cross_org_grants::find_live(storage, &target.id, &home.id, &user.id, now)
                .await?
                .and_then(|g| g.role.parse().ok());
        self.grants.insert(key, role);
        role.ok_or(CrossOrgError::NoGrant)
    }

    /// Call after ending a grant on this node.
    pub fn forget_grants(&self) {
        self.grants.invalidate_all();
    }
}
