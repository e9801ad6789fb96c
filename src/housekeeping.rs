//! Housekeeping: a background task that deletes, in small batches, what no request can use
//! any more: sessions (with their refresh tokens) past their expiry plus
//! `housekeeping.session_retention`, revocations of access tokens past their `exp` plus the
//! leeway, expired `Idempotency-Key` records, browser sessions past their expiry plus
//! `housekeeping.session_retention`, login challenges (one-time codes) once they have
//! expired and left the throttle's `login.window`, authorization codes expired longer than
//! `tokens.refresh_ttl`, audit events older than `audit.retention`, device authorization
//! requests (RFC 8628) a day past their expiry, and wrong user codes older than the
//! throttle's window (`device.user_code_window`).
//! It owns no query (those are in `storage`) and decides nothing about live rows.
//!
//! Why these cutoffs (docs/architecture.md, "Housekeeping"):
//! - A session's refresh tokens expire with it, and its access tokens no later, so after
//!   `expires_at` nothing it issued can be presented successfully. A revoked session is kept
//!   until then too (its cutoff is its expiry, not its revocation), so that while its tokens
//!   could still be presented it answers as revoked and shows in `GET /sessions`. A missing
//!   session answers exactly like an ended one (401 `invalid_token`, 400 `invalid_grant`).
//!   Used refresh tokens of live sessions stay: they are what detects a reuse.
//! - A revoked access token is accepted by nobody after `exp` + `tokens.leeway`.
//! - An authorization code is kept after its expiry as long as the session its use opened
//!   may live (`tokens.refresh_ttl`), so that a late second use still revokes that session
//!   (RFC 6749 §4.1.2).
//! - A device code past its expiry gives no tokens any more; it is kept for
//!   [`DEVICE_CODE_RETENTION`] so that a device polling late hears `expired_token` (or
//!   `access_denied`) rather than `invalid_grant`. A wrong user code stops counting at the
//!   end of its window.
//!
//! In a fleet every node runs the task, but one at a time: a pass starts only when it
//! takes the housekeeping lock (a PostgreSQL advisory lock, `storage::housekeeping`), and
//! a node that finds it taken skips its turn. Each statement is an idempotent
//! `DELETE … WHERE id IN (SELECT id … LIMIT n)` besides, so even overlapping passes only
//! share the work. What a pass removed is counted in
//! `keygate_housekeeping_removed_total{table}`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;

use crate::state::AppState;
use crate::storage::{self, Result, StorageError};

/// How many rows one pass deleted, per table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub refresh_tokens: u64,
    pub sessions: u64,
    pub revoked_tokens: u64,
    pub idempotency_keys: u64,
    pub browser_sessions: u64,
    pub login_challenges: u64,
    pub authorization_codes: u64,
    pub audit_events: u64,
    pub device_codes: u64,
    pub user_code_attempts: u64,
}

/// How long a device authorization request is kept after its expiry.
pub const DEVICE_CODE_RETENTION: Duration = Duration::from_secs(86_400);

/// `now - by`, or the earliest instant when that underflows.
fn before(now: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(by)
        .ok()
        .and_then(|by| now.checked_sub_signed(by))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Runs `purge` (one batch of at most `limit` rows) until a batch comes back short,
/// pausing between full batches.
async fn drain<F, Fut>(limit: u64, pause: Duration, mut purge: F) -> Result<u64>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<u64>>,
{
    let mut total = 0;
    loop {
        let deleted = purge(limit).await?;
        total += deleted;
        if deleted < limit {
            return Ok(total);
        }
        tokio::time::sleep(pause).await;
    }
}

/// One pass over every table, judged at `now`.
pub async fn run_once(state: &AppState, now: DateTime<Utc>) -> Result<Purged, StorageError> {
    let settings = &state.settings;
    let limit = settings.housekeeping.batch_size.max(1);
    let pause = settings.housekeeping.batch_pause;
    let db = &state.storage;
    let sessions_cutoff = before(now, settings.housekeeping.session_retention);
    let revoked_cutoff = before(now, settings.tokens.leeway);
    let audit_cutoff = before(now, settings.audit.retention);
    // A challenge still counts towards the sign-in throttle for `login.window` after it
    // was made (it expires sooner), so it is kept that long after its expiry.
    let challenges_cutoff = before(now, settings.login.window);
    let codes_cutoff = before(now, settings.tokens.refresh_ttl);
    let device_cutoff = before(now, DEVICE_CODE_RETENTION);
    let attempts_cutoff = before(now, settings.device.user_code_window);
    Ok(Purged {
        refresh_tokens: drain(limit, pause, |n| {
            storage::refresh_tokens::purge_expired(db, sessions_cutoff, n)
        })
        .await?,
        sessions: drain(limit, pause, |n| {
            storage::sessions::purge_expired(db, sessions_cutoff, n)
        })
        .await?,
        revoked_tokens: drain(limit, pause, |n| {
            storage::revoked_tokens::purge_expired(db, revoked_cutoff, n)
        })
        .await?,
        idempotency_keys: drain(limit, pause, |n| {
            storage::idempotency::purge_expired(db, now, n)
        })
        .await?,
        browser_sessions: drain(limit, pause, |n| {
            storage::browser_sessions::purge_expired(db, sessions_cutoff, n)
        })
        .await?,
        login_challenges: drain(limit, pause, |n| {
            storage::login_challenges::purge_expired(db, challenges_cutoff, n)
        })
        .await?,
        authorization_codes: drain(limit, pause, |n| {
            storage::authorization_codes::purge_expired(db, codes_cutoff, n)
        })
        .await?,
        // `audit.retention = "0s"` keeps the audit log forever, never "delete everything".
        audit_events: if settings.audit.retention.is_zero() {
            0
        } else {
            drain(limit, pause, |n| {
                storage::audit::purge_before(db, audit_cutoff, n)
            })
            .await?
        },
        device_codes: drain(limit, pause, |n| {
            storage::device_codes::purge_expired(db, device_cutoff, n)
        })
        .await?,
        user_code_attempts: drain(limit, pause, |n| {
            storage::device_codes::purge_attempts(db, attempts_cutoff, n)
        })
        .await?,
    })
}

impl Purged {
    /// Rows removed, by table name (the metric's `table` label).
    pub fn by_table(&self) -> [(&'static str, u64); 10] {
        [
            ("refresh_tokens", self.refresh_tokens),
            ("sessions", self.sessions),
            ("revoked_tokens", self.revoked_tokens),
            ("idempotency_keys", self.idempotency_keys),
            ("browser_sessions", self.browser_sessions),
            ("login_challenges", self.login_challenges),
            ("authorization_codes", self.authorization_codes),
            ("audit_events", self.audit_events),
            ("device_codes", self.device_codes),
            ("user_code_attempts", self.user_code_attempts),
        ]
    }
}

/// One pass, if this node takes the housekeeping lock (`None`: another node holds it and
/// is purging now). Counts what it removed in `keygate_housekeeping_removed_total`.
pub async fn run_exclusive(state: &AppState, now: DateTime<Utc>) -> Result<Option<Purged>> {
    let Some(lock) = storage::housekeeping::try_lock(&state.storage).await? else {
        return Ok(None);
    };
    let purged = run_once(state, now).await;
    lock.release().await?;
    let purged = purged?;
    for (table, removed) in purged.by_table() {
        metrics::counter!("keygate_housekeeping_removed_total", "table" => table)
            .increment(removed);
    }
    Ok(Some(purged))
}

/// Starts the periodic task (none when `housekeeping.interval` is zero). A failed pass is
/// logged and tried again at the next interval.
pub fn spawn(state: AppState) -> Option<JoinHandle<()>> {
    let interval = state.settings.housekeeping.interval;
    if interval.is_zero() {
        return None;
    }
    Some(tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            match run_exclusive(&state, state.clock.now()).await {
                Ok(Some(purged)) => tracing::debug!(?purged, "housekeeping pass done"),
                Ok(None) => tracing::debug!("another node is running housekeeping"),
                Err(err) => tracing::warn!(error = %err, "housekeeping pass failed"),
            }
        }
    }))
}
