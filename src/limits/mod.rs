//! Rate limits on what succeeds (README, "Limits"): tokens issued per API key (sign-in and
//! the token endpoint, `limits.issuance_per_minute` / `limits.issuance_per_hour`, or the
//! key's own `limits`) and requests per user at keygate's protected endpoints
//! (`limits.requests_per_user_per_minute`). The brute-force throttle of *failed*
//! attempts is `auth::throttle`; this module never sees a failure.
//!
//! Each policy is a GCRA cell ([`gcra`]); a subject's policies are decided together, so a
//! refusal by one (the hour) spends nothing of another (the minute). A cell is kept under
//! its quota: changing a key's limit starts a fresh count under the new one. One node keeps the
//! cells in memory; a fleet (`dpop.replay_store = "redis"`) keeps them in the same Redis
//! as the replay store, decided by one Lua script ([`redis_store`], `redis.lua`) so concurrent requests on any
//! nodes never get past the quota. Time is the node's `Clock`, passed to the script: nodes
//! of a fleet must keep their clocks in step (NTP), as they already must for token expiry.
//! No HTTP here: the outcome of the request's check is left in [`report`] for the HTTP
//! layer to turn into `RateLimit-Policy` and `RateLimit` headers.

pub mod gcra;
mod memory;
mod redis_store;
pub mod report;

use std::sync::Arc;

use entity::api_key;

use crate::clock::Clock;
use crate::config::LimitSettings;
pub use memory::MemoryLimitStore;
pub use redis_store::RedisLimitStore;
pub use report::{PolicyState, Report};

/// One quota: at most `quota` per `window_secs`, named in the `RateLimit-Policy` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub name: &'static str,
    pub quota: u32,
    pub window_secs: u64,
}

/// The largest limit a key may be given per minute, and per hour.
pub const MAX_PER_MINUTE: u32 = 1_000_000;
pub const MAX_PER_HOUR: u32 = 60_000_000;

/// A key's own issuance limits; `None`: the server's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyLimits {
    pub per_minute: Option<u32>,
    pub per_hour: Option<u32>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LimitParseError(pub String);

impl KeyLimits {
    /// The limits stored on `key` (a stored value out of range counts as the server's).
    pub fn of(key: &api_key::Model) -> Self {
        let get = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok()).filter(|v| *v > 0);
        Self {
            per_minute: get(key.limit_per_minute),
            per_hour: get(key.limit_per_hour),
        }
    }

    /// Checks a requested limit: a whole number from 1 to `max`.
    pub fn check(value: i64, field: &str, max: u32) -> Result<u32, LimitParseError> {
        u32::try_from(value)
            .ok()
            .filter(|v| (1..=max).contains(v))
            .ok_or_else(|| {
                LimitParseError(format!(
                    "`limits.{field}` must be a whole number from 1 to {max}"
                ))
            })
    }
}

/// What is limited, and who.
#[derive(Clone, Copy, Debug)]
pub enum Subject<'a> {
    /// Tokens issued for an API key.
    Issuance(&'a api_key::Model),
    /// Requests of a user at keygate's protected endpoints.
    User(&'a str),
}

impl Subject<'_> {
    /// The metric label of the limit (`keygate_rate_limited_total{limit}`).
    fn label(&self) -> &'static str {
        match self {
            Subject::Issuance(_) => "issuance",
            Subject::User(_) => "user_requests",
        }
    }
}

/// A request the limits refused: when to retry (seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: u64,
}

/// Where cells live: memory (one node) or Redis (a fleet).
#[async_trait::async_trait]
pub trait LimitStore: Send + Sync + std::fmt::Debug {
    /// Decides a request of `subject` (a storage key, e.g. `i:key_…`) at `now` (µs) under
    /// every cell at once. Returns whether it was admitted and the TAT each cell started
    /// from (see [`gcra`]).
    async fn acquire(
        &self,
        subject: &str,
        cells: &[(&'static str, gcra::Cell)],
        now: i64,
    ) -> Result<(bool, Vec<i64>), String>;
}

/// The limits of this node: the policies and where their cells live.
#[derive(Clone, Debug)]
pub struct Limits {
    settings: LimitSettings,
    store: Arc<dyn LimitStore>,
    clock: Arc<dyn Clock>,
}

impl Limits {
    pub fn new(
        settings: &LimitSettings,
        store: Arc<dyn LimitStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            settings: settings.clone(),
            store,
            clock,
        }
    }

    /// The policies that apply to `subject` (none: it is not limited).
    pub fn policies(&self, subject: Subject<'_>) -> Vec<Policy> {
        let mut out = Vec::with_capacity(2);
        let mut push = |name, quota: u32, window_secs| {
            if quota > 0 {
                out.push(Policy {
                    name,
                    quota,
                    window_secs,
                });
            }
        };
        match subject {
            Subject::Issuance(key) => {
                let own = KeyLimits::of(key);
                let s = &self.settings;
                push(
                    "issuance-per-minute",
                    own.per_minute.unwrap_or(s.issuance_per_minute),
                    60,
                );
                push(
                    "issuance-per-hour",
                    own.per_hour.unwrap_or(s.issuance_per_hour),
                    3600,
                );
            }
            Subject::User(_) => push(
                "requests-per-minute",
                self.settings.requests_per_user_per_minute,
                60,
            ),
        }
        out
    }

    /// Counts one request of `subject` against its policies. The outcome (admitted or
    /// not) is left in [`report`] for the response's headers. A store that cannot answer
    /// (Redis down) admits the request: it is logged and counted, and the other checks
    /// (credentials, DPoP and its replay store) still apply.
    pub async fn check(&self, subject: Subject<'_>) -> Result<(), Limited> {
        let policies = self.policies(subject);
        if policies.is_empty() {
            return Ok(());
        }
        let id = match subject {
            Subject::Issuance(key) => format!("i:{}", key.id),
            Subject::User(user) => format!("u:{user}"),
        };
        let cells: Vec<_> = policies
            .iter()
            .map(|p| (p.name, gcra::Cell::new(p.quota, p.window_secs)))
            .collect();
        let now = self.clock.now().timestamp_micros();
        let (admitted, tats) = match self.store.acquire(&id, &cells, now).await {
            Ok(decided) => decided,
            Err(cause) => {
                tracing::warn!(error = %cause, "the rate limit store did not answer; request admitted");
                metrics::counter!("keygate_rate_limit_store_errors_total").increment(1);
                return Ok(());
            }
        };
        let states: Vec<PolicyState> = policies
            .iter()
            .zip(&cells)
            .zip(&tats)
            .map(|((policy, (_, cell)), tat)| PolicyState {
                policy: *policy,
                level: gcra::level(*cell, *tat, now, admitted),
            })
            .collect();
        let retry_after = states
            .iter()
            .filter(|s| !s.level.admits)
            .map(|s| s.level.retry_after)
            .max();
        report::record(Report { states });
        match retry_after {
            Some(retry_after) if !admitted => {
                metrics::counter!("keygate_rate_limited_total", "limit" => subject.label())
                    .increment(1);
                Err(Limited { retry_after })
            }
            _ => Ok(()),
        }
    }
}
