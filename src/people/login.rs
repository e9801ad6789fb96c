//! Signing in with an emailed one-time code, in two steps: [`request_code`] (someone typed
//! an email address) and [`verify_code`] (they typed the code). No HTTP here.
//!
//! - A code is 6 decimal digits, uniformly random, valid for [`CODE_TTL`] and
//!   [`MAX_ATTEMPTS`] submissions, only in the browser that asked for it (the challenge
//!   stores the digest of its pre-login cookie). It is stored only as
//!   `HMAC(pepper, "login_code" ‖ challenge id ‖ code)` and compared in constant time.
//! - Someone who is not an enabled user of the organization gets the same answer and the
//!   same work (a challenge row with a code nobody is sent), and no mail: the page tells
//!   nobody who has an account.
//! - Asking for codes is throttled per email address and organization
//!   (`login.codes_per_email`) and per client IP (`login.codes_per_ip`, all organizations),
//!   over `login.window`, counted from the challenges themselves, so every node of a fleet
//!   sees the same counts. The new challenge is written first and counted with the others;
//!   over a limit it is deleted again and the request refused, so two concurrent requests
//!   can never both slip under it.
//! - Each submission first takes one attempt with a conditional `UPDATE` (not consumed, not
//!   expired, fewer than [`MAX_ATTEMPTS`]) and only then compares its code, so concurrent
//!   guesses get no more than [`MAX_ATTEMPTS`] comparisons between them; the right code then
//!   consumes the challenge with another conditional `UPDATE`, which one submission wins.

use std::time::Duration;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use chrono::{DateTime, Utc};
use entity::{login_challenge, organization, user};
use subtle::ConstantTimeEq;

use super::mail::CodeMail;
use super::prelogin::PreLogin;
use crate::audit::{AuditEvent, RequestMeta};
use crate::auth::throttle::ip_bucket;
use crate::ids::{is_id, new_id};
use crate::state::AppState;
use crate::storage::login_challenges::{self, Recent};
use crate::storage::{self, StorageError};

/// How long a code works.
pub const CODE_TTL: Duration = Duration::from_secs(10 * 60);
/// Codes one challenge accepts (right or wrong); the last wrong one ends it.
pub const MAX_ATTEMPTS: i32 = 5;
/// Digits in a code.
pub const CODE_DIGITS: usize = 6;

const CODE_DOMAIN: &str = "login_code";
const EMAIL_DOMAIN: &str = "login_email";

/// A code was asked for (whether or not it went anywhere).
#[derive(Clone, Debug)]
pub struct CodeRequested {
    /// The challenge the code answers (`lgc_…`), carried by the code form.
    pub challenge_id: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Too many codes for this email address or from this IP; try again in `retry_after`
    /// seconds.
    #[error("too many sign-in codes asked for")]
    Throttled { retry_after: u64 },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why a code did not sign anyone in.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    /// Not six digits: not counted as an attempt.
    #[error("the code is not {CODE_DIGITS} digits")]
    Malformed,
    #[error("wrong code")]
    Wrong { attempts_left: i32 },
    /// The last allowed attempt was wrong (now or before): the challenge is over.
    #[error("too many wrong codes")]
    TooManyAttempts,
    #[error("the code has expired")]
    Expired,
    #[error("the code was used already")]
    Used,
    /// No such challenge in this organization, or another browser's.
    #[error("no such sign-in")]
    Unknown,
    /// The code was right, but its user has since been disabled or deleted.
    #[error("the user may no longer sign in")]
    UserUnavailable,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A code: six digits, uniformly random (rejection sampling of 32-bit values).
struct Code(String);

impl Code {
    fn random() -> Self {
        // The largest multiple of 10^6 that fits in u32: values below it map uniformly.
        const BOUND: u32 = 4_294_000_000;
        let rng = SystemRandom::new();
        loop {
            let mut buf = [0u8; 4];
            if rng.fill(&mut buf).is_err() {
                // Only when the operating system has no entropy source at all.
                std::process::abort();
            }
            let n = u32::from_le_bytes(buf);
            if n < BOUND {
                return Self(format!("{:06}", n % 1_000_000));
            }
        }
    }
}

/// The digest a challenge stores for `code`.
fn code_digest(state: &AppState, challenge_id: &str, code: &str) -> String {
    let mut input = Vec::with_capacity(challenge_id.len() + 1 + code.len());
    input.extend_from_slice(challenge_id.as_bytes());
    input.push(0);
    input.extend_from_slice(code.as_bytes());
    state.pepper.digest(CODE_DOMAIN, &input)
}

fn email_digest(state: &AppState, org: &organization::Model, email: &str) -> String {
    let input = format!("{}\0{email}", org.id);
    state.pepper.digest(EMAIL_DOMAIN, input.as_bytes())
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Seconds until `recent` drops below its limit (its oldest challenge leaves the window).
fn retry_after(recent: Recent, window: Duration, now: DateTime<Utc>) -> u64 {
    let until = recent
        .oldest
        .map_or(now, |oldest| oldest + chrono_duration(window));
    let millis = (until - now).num_milliseconds().max(0);
    u64::try_from((millis + 999) / 1000).unwrap_or(0).max(1)
}

/// Someone asked for a code for `email` (already normalized: lower case, trimmed) at `org`
/// from the browser with `browser`. Sends the code when `email` is an enabled user's.
pub async fn request_code(
    state: &AppState,
    org: &organization::Model,
    email: &str,
    browser: &PreLogin,
    meta: &RequestMeta,
) -> Result<CodeRequested, RequestError> {
    let now = state.clock.now();
    let settings = &state.settings.login;
    let user = storage::users::by_email(&state.storage, &org.id, email)
        .await?
        .filter(|u| !u.disabled && u.deleted_at.is_none());
    let id = new_id("lgc");
    let code = Code::random();
    let email_digest = email_digest(state, org, email);
    let ip = meta.ip.as_deref().map(ip_bucket);
    let challenge = login_challenges::insert(
        &state.storage,
        login_challenge::Model {
            code_digest: code_digest(state, &id, &code.0),
            id: id.clone(),
            org_id: org.id.clone(),
            user_id: user.as_ref().map(|u| u.id.clone()),
            email_digest: email_digest.clone(),
            browser_digest: browser.digest(state),
            ip: ip.clone(),
            attempts: 0,
            created_at: now,
            expires_at: now + chrono_duration(CODE_TTL),
            consumed_at: None,
        },
    )
    .await?;

    let since = now - chrono_duration(settings.window);
    let by_email =
        login_challenges::recent_for_email(&state.storage, &org.id, &email_digest, since).await?;
    let by_ip = match &ip {
        Some(ip) => Some(login_challenges::recent_from_ip(&state.storage, ip, since).await?),
        None => None,
    };
    let over_email = by_email.count > u64::from(settings.codes_per_email);
    let over_ip = by_ip.is_some_and(|r| r.count > u64::from(settings.codes_per_ip));
    if over_email || over_ip {
        login_challenges::delete(&state.storage, &challenge.id).await?;
        let wait = [(over_email, Some(by_email)), (over_ip, by_ip)]
            .into_iter()
            .filter_map(|(over, recent)| recent.filter(|_| over))
            .map(|recent| retry_after(recent, settings.window, now))
            .max()
            .unwrap_or(1);
        return Err(RequestError::Throttled { retry_after: wait });
    }

    if let Some(user) = &user {
        state.mailer.send_code(&CodeMail {
            to: &user.email,
            org_slug: &org.slug,
            org_name: &org.name,
            code: &code.0,
            expires_at: challenge.expires_at,
            valid_for: CODE_TTL,
        });
        state.audit.record(AuditEvent {
            org_id: Some(org.id.clone()),
            action: "login.code_sent",
            success: true,
            target_type: Some("user"),
            target_id: Some(user.id.clone()),
            meta: meta.clone(),
            ..AuditEvent::default()
        });
    }
    Ok(CodeRequested {
        challenge_id: challenge.id,
        expires_at: challenge.expires_at,
    })
}

/// `code` (as typed: spaces and dashes are ignored) answers challenge `challenge_id` of
/// `org`, asked for by this `browser`: the challenge is consumed and its user returned,
/// ready for [`super::session::start`].
pub async fn verify_code(
    state: &AppState,
    org: &organization::Model,
    challenge_id: &str,
    code: &str,
    browser: &PreLogin,
    meta: &RequestMeta,
) -> Result<user::Model, CodeError> {
    if !is_id(challenge_id, "lgc") {
        return Err(CodeError::Unknown);
    }
    let challenge = login_challenges::get(&state.storage, &org.id, challenge_id)
        .await?
        .filter(|c| {
            bool::from(
                c.browser_digest
                    .as_bytes()
                    .ct_eq(browser.digest(state).as_bytes()),
            )
        })
        .ok_or(CodeError::Unknown)?;
    let now = state.clock.now();
    // The state as read, for a clear answer; the conditional updates below decide.
    ended(&challenge, now)?;
    let code: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if code.len() != CODE_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CodeError::Malformed);
    }

    if !login_challenges::take_attempt(&state.storage, &challenge.id, MAX_ATTEMPTS, now).await? {
        return Err(current_end(state, org, &challenge.id, now).await);
    }
    let presented = code_digest(state, &challenge.id, &code);
    let right = bool::from(presented.as_bytes().ct_eq(challenge.code_digest.as_bytes()));
    // A challenge of nobody's email has no right code.
    let user_id = match (&challenge.user_id, right) {
        (Some(user_id), true) => user_id,
        _ => {
            let error = match login_challenges::get(&state.storage, &org.id, &challenge.id).await? {
                Some(c) if c.attempts < MAX_ATTEMPTS => CodeError::Wrong {
                    attempts_left: MAX_ATTEMPTS - c.attempts,
                },
                _ => CodeError::TooManyAttempts,
            };
            failed(state, org, &challenge, &error, meta);
            return Err(error);
        }
    };
    if !login_challenges::consume(&state.storage, &challenge.id, now).await? {
        return Err(current_end(state, org, &challenge.id, now).await);
    }
    let user = storage::users::get(&state.storage, &org.id, user_id)
        .await?
        .filter(|u| !u.disabled && u.deleted_at.is_none());
    let Some(user) = user else {
        failed(state, org, &challenge, &CodeError::UserUnavailable, meta);
        return Err(CodeError::UserUnavailable);
    };
    state.audit.record(AuditEvent {
        org_id: Some(org.id.clone()),
        action: "login.succeeded",
        success: true,
        actor_user_id: Some(user.id.clone()),
        target_type: Some("user"),
        target_id: Some(user.id.clone()),
        meta: meta.clone(),
        ..AuditEvent::default()
    });
    Ok(user)
}

/// Why `challenge` can no longer be answered at `now`, if it cannot.
fn ended(challenge: &login_challenge::Model, now: DateTime<Utc>) -> Result<(), CodeError> {
    if challenge.consumed_at.is_some() {
        Err(CodeError::Used)
    } else if challenge.expires_at <= now {
        Err(CodeError::Expired)
    } else if challenge.attempts >= MAX_ATTEMPTS {
        Err(CodeError::TooManyAttempts)
    } else {
        Ok(())
    }
}

/// Why challenge `id` refused a conditional update just now.
async fn current_end(
    state: &AppState,
    org: &organization::Model,
    id: &str,
    now: DateTime<Utc>,
) -> CodeError {
    match login_challenges::get(&state.storage, &org.id, id).await {
        Ok(Some(challenge)) => ended(&challenge, now).err().unwrap_or(CodeError::Used),
        Ok(None) => CodeError::Unknown,
        Err(err) => CodeError::Storage(err),
    }
}

/// Audits a wrong code: in the organization's log when the challenge is a user's (a
/// verified record), else only counted.
fn failed(
    state: &AppState,
    org: &organization::Model,
    challenge: &login_challenge::Model,
    error: &CodeError,
    meta: &RequestMeta,
) {
    let Some(user_id) = &challenge.user_id else {
        state.audit.count_unrecorded();
        return;
    };
    let reason = match error {
        CodeError::TooManyAttempts => "too_many_attempts",
        CodeError::UserUnavailable => "user_unavailable",
        _ => "wrong_code",
    };
    state.audit.record_failure(AuditEvent {
        org_id: Some(org.id.clone()),
        action: "login.failed",
        success: false,
        reason: Some(reason.to_owned()),
        target_type: Some("user"),
        target_id: Some(user_id.clone()),
        meta: meta.clone(),
        ..AuditEvent::default()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_use_every_digit_in_every_place() {
        let mut seen = [[false; 10]; CODE_DIGITS];
        for _ in 0..2000 {
            let code = Code::random().0;
            assert_eq!(code.len(), CODE_DIGITS);
            for (place, digit) in code.bytes().enumerate() {
                assert!(digit.is_ascii_digit());
                seen[place][usize::from(digit - b'0')] = true;
            }
        }
        assert!(seen.iter().all(|place| place.iter().all(|d| *d)));
    }

    #[test]
    fn retry_after_is_when_the_oldest_leaves_the_window() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let window = Duration::from_secs(900);
        let recent = |secs_ago: i64| Recent {
            count: 5,
            oldest: Some(now - chrono::Duration::seconds(secs_ago)),
        };
        assert_eq!(retry_after(recent(0), window, now), 900);
        assert_eq!(retry_after(recent(600), window, now), 300);
        assert_eq!(retry_after(recent(900), window, now), 1);
        let none = Recent {
            count: 0,
            oldest: None,
        };
        assert_eq!(retry_after(none, window, now), 1);
    }
}
