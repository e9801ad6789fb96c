//! Browser sessions: the cookie a person gets once they proved who they are, and what it
//! is worth. The cookie's value is random (`bs_` + 43 base62 characters, ≈256 bits) and
//! stored only as its HMAC digest; the session's CSRF token is derived from it (an HMAC
//! under another domain), so it needs no storage and no other browser can compute it.
//! The cookie is `HttpOnly`, `SameSite=Lax`, scoped to the organization's path, and
//! `Secure` when keygate's public URL is https.

use std::time::Duration;

use actix_web::cookie::Cookie;
use chrono::{DateTime, Utc};
use entity::{browser_session, organization};
use secrecy::{ExposeSecret, SecretString};

use super::Person;
use crate::ids::{is_base62, new_id, random_base62};
use crate::state::AppState;
use crate::storage::{self, StorageError};

/// The cookie's name.
pub const COOKIE: &str = "keygate_session";
/// How long a browser session lasts.
pub const TTL: Duration = Duration::from_secs(12 * 3600);

const PREFIX: &str = "bs_";
const RANDOM_LEN: usize = 43;
const DIGEST_DOMAIN: &str = "browser_session";
const CSRF_DOMAIN: &str = "browser_session_csrf";

/// A browser session just started: its cookie (the only copy of its value) and who it is.
pub struct Started {
    pub cookie: Cookie<'static>,
    pub person: Person,
}

fn csrf_of(state: &AppState, value: &str) -> String {
    state.pepper.digest(CSRF_DOMAIN, value.as_bytes())
}

/// The cookie holding `value` for `org_slug`'s pages (an empty value with max-age 0 signs
/// out).
fn cookie(state: &AppState, org_slug: &str, value: String, max_age: Duration) -> Cookie<'static> {
    super::page_cookie(state, org_slug, COOKIE, value, max_age)
}

/// Starts a browser session for `user`, who just proved who they are.
pub async fn start(
    state: &AppState,
    org: &organization::Model,
    user: &entity::user::Model,
) -> Result<Started, StorageError> {
    let now = state.clock.now();
    let value = SecretString::from(format!("{PREFIX}{}", random_base62(RANDOM_LEN)));
    let row = browser_session::Model {
        id: new_id("bss"),
        org_id: org.id.clone(),
        user_id: user.id.clone(),
        digest: state
            .pepper
            .digest(DIGEST_DOMAIN, value.expose_secret().as_bytes()),
        created_at: now,
        expires_at: now + chrono::Duration::from_std(TTL).unwrap_or(chrono::Duration::hours(12)),
        ended_at: None,
    };
    let row = storage::browser_sessions::insert(&state.storage, row).await?;
    Ok(Started {
        person: Person {
            user_id: user.id.clone(),
            email: user.email.clone(),
            session_id: row.id,
            csrf: csrf_of(state, value.expose_secret()),
        },
        cookie: cookie(state, &org.slug, value.expose_secret().to_owned(), TTL),
    })
}

/// The person whose live browser session of `org` has cookie `value`: an enabled user.
pub async fn find(
    state: &AppState,
    org: &organization::Model,
    value: &str,
) -> Result<Option<Person>, StorageError> {
    let shaped = value
        .strip_prefix(PREFIX)
        .is_some_and(|rest| rest.len() == RANDOM_LEN && is_base62(rest));
    if !shaped {
        return Ok(None);
    }
    let now: DateTime<Utc> = state.clock.now();
    let digest = state.pepper.digest(DIGEST_DOMAIN, value.as_bytes());
    let Some(session) = storage::browser_sessions::live_by_digest(&state.storage, &digest, now)
        .await?
        .filter(|s| s.org_id == org.id)
    else {
        return Ok(None);
    };
    let user = storage::users::get(&state.storage, &org.id, &session.user_id)
        .await?
        .filter(|u| !u.disabled && u.deleted_at.is_none());
    Ok(user.map(|user| Person {
        user_id: user.id,
        email: user.email,
        session_id: session.id,
        csrf: csrf_of(state, value),
    }))
}

/// Ends `person`'s browser session and returns the cookie that clears it.
pub async fn end(
    state: &AppState,
    org: &organization::Model,
    person: &Person,
) -> Result<Cookie<'static>, StorageError> {
    storage::browser_sessions::end(&state.storage, &person.session_id, state.clock.now()).await?;
    Ok(cookie(state, &org.slug, String::new(), Duration::ZERO))
}
