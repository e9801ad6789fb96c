//! The brute-force throttle of the verification page (RFC 8628 §5.1: a user code has only
//! ≈34.6 bits, so guessing must be rate-limited). Every lookup of a well-formed user code,
//! whichever step asks (the code form, the confirmation link, Approve, Deny), is an
//! attempt; a wrong one counts for its browser session, its person and its client IP (an
//! IPv6 address as its /64) for `device.user_code_window`. Past `device.user_code_failures`
//! (per session, per person) or `device.user_code_failures_per_ip`, lookups are refused
//! (429) until enough of the counted failures are older than the window.
//!
//! The count lives in the database, so a fleet's nodes share it, and it cannot be raced: an
//! attempt is written first and counted with every other attempt, its own included, so of
//! any number of concurrent attempts at most the limit's worth go ahead. A right code, and
//! an attempt refused without a lookup, are removed again: only failures stay counted.

use chrono::{DateTime, Utc};
use entity::{organization, user_code_attempt};

use crate::auth::throttle::ip_bucket;
use crate::ids::new_id;
use crate::people::Person;
use crate::state::AppState;
use crate::storage::device_codes::{self, Bucket};
use crate::storage::{self, StorageError};

/// An attempt under way (its row counts until [`succeeded`] removes it).
#[derive(Debug)]
pub struct Attempt(String);

/// Lookups are refused for `retry_after` more seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: u64,
}

/// Records an attempt of `person` from `ip` and decides whether it may look a code up.
pub async fn attempt(
    state: &AppState,
    org: &organization::Model,
    person: &Person,
    ip: Option<&str>,
) -> Result<Result<Attempt, Throttled>, StorageError> {
    let settings = &state.settings.device;
    let now = state.clock.now();
    let window = chrono::Duration::from_std(settings.user_code_window)
        .unwrap_or(chrono::Duration::minutes(15));
    let since = now - window;
    let ip = ip.map(ip_bucket);
    let row = user_code_attempt::Model {
        id: new_id("uca"),
        org_id: org.id.clone(),
        browser_session_id: person.session_id.clone(),
        user_id: person.user_id.clone(),
        ip: ip.clone(),
        at: now,
    };
    let attempt = Attempt(row.id.clone());
    device_codes::add_attempt(&state.storage, row).await?;

    let mut buckets = vec![
        (
            Bucket::BrowserSession(&person.session_id),
            settings.user_code_failures,
        ),
        (Bucket::User(&person.user_id), settings.user_code_failures),
    ];
    if let Some(ip) = ip.as_deref() {
        buckets.push((Bucket::Ip(ip), settings.user_code_failures_per_ip));
    }
    let mut retry_at: Option<DateTime<Utc>> = None;
    for (bucket, limit) in buckets {
        let count = device_codes::count_attempts(&state.storage, &org.id, bucket, since).await?;
        let limit = u64::from(limit);
        if count <= limit {
            continue;
        }
        // The next attempt may go once `count - limit` of these are out of the window.
        let oldest =
            device_codes::nth_attempt_at(&state.storage, &org.id, bucket, since, count - limit)
                .await?
                .unwrap_or(now);
        let free_at = oldest + window;
        retry_at = Some(retry_at.map_or(free_at, |t| t.max(free_at)));
    }
    match retry_at {
        None => Ok(Ok(attempt)),
        Some(at) => {
            device_codes::remove_attempt(&state.storage, &attempt.0).await?;
            let seconds = ((at - now).num_milliseconds().max(0) + 999) / 1000;
            Ok(Err(Throttled {
                retry_after: u64::try_from(seconds).unwrap_or(1).max(1),
            }))
        }
    }
}

/// The attempt found its code: it does not count.
pub async fn succeeded(state: &AppState, attempt: Attempt) -> Result<(), StorageError> {
    storage::device_codes::remove_attempt(&state.storage, &attempt.0).await
}
