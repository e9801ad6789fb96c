//! The pre-login cookie: what ties the sign-in forms, and the code a person asked for, to
//! one browser before any session exists. Its value is random (`lb_` + 43 base62
//! characters, ≈256 bits); the forms carry a CSRF token derived from it with the pepper
//! (a double-submit cookie bound by an HMAC: a page of another site can neither read the
//! cookie nor compute the token), and a login challenge stores the value's digest, so only
//! the browser that asked for a code can answer it. `HttpOnly`, `SameSite=Lax` (a
//! cross-site POST does not even carry it), path `/v1/{org}`, `Secure` on https.

use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::cookie::Cookie;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::ids::{is_base62, random_base62};
use crate::state::AppState;

/// The cookie's name.
pub const COOKIE: &str = "keygate_login";
/// How long a sign-in may take, from opening the page to entering the code.
pub const TTL: Duration = Duration::from_secs(3600);

const PREFIX: &str = "lb_";
const RANDOM_LEN: usize = 43;
const CSRF_DOMAIN: &str = "login_csrf";
const BROWSER_DOMAIN: &str = "login_browser";

/// This browser's pre-login value.
pub struct PreLogin(SecretString);

impl std::fmt::Debug for PreLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PreLogin(…)")
    }
}

impl PreLogin {
    /// The well-formed pre-login cookie `req` carries, if any.
    pub fn of(req: &HttpRequest) -> Option<Self> {
        let cookie = req.cookie(COOKIE)?;
        let value = cookie.value();
        let shaped = value
            .strip_prefix(PREFIX)
            .is_some_and(|rest| rest.len() == RANDOM_LEN && is_base62(rest));
        shaped.then(|| Self(SecretString::from(value.to_owned())))
    }

    /// `req`'s pre-login cookie, or a fresh one.
    pub fn of_or_new(req: &HttpRequest) -> Self {
        Self::of(req).unwrap_or_else(Self::fresh)
    }

    /// A new random value (a browser without one).
    pub fn fresh() -> Self {
        Self(SecretString::from(format!(
            "{PREFIX}{}",
            random_base62(RANDOM_LEN)
        )))
    }

    /// The cookie that (re)sets this value for another [`TTL`].
    pub fn cookie(&self, state: &AppState, org_slug: &str) -> Cookie<'static> {
        super::page_cookie(
            state,
            org_slug,
            COOKIE,
            self.0.expose_secret().to_owned(),
            TTL,
        )
    }

    /// The cookie that deletes it (once the person is signed in).
    pub fn clear(state: &AppState, org_slug: &str) -> Cookie<'static> {
        super::page_cookie(state, org_slug, COOKIE, String::new(), Duration::ZERO)
    }

    /// The token the sign-in forms carry in their hidden `csrf` field.
    pub fn csrf_token(&self, state: &AppState) -> String {
        state
            .pepper
            .digest(CSRF_DOMAIN, self.0.expose_secret().as_bytes())
    }

    /// Whether a submitted `csrf` field is this browser's token (constant time).
    pub fn csrf_matches(&self, state: &AppState, submitted: Option<&str>) -> bool {
        let expected = self.csrf_token(state);
        submitted.is_some_and(|s| bool::from(s.as_bytes().ct_eq(expected.as_bytes())))
    }

    /// What a login challenge stores to know this browser again.
    pub fn digest(&self, state: &AppState) -> String {
        state
            .pepper
            .digest(BROWSER_DOMAIN, self.0.expose_secret().as_bytes())
    }
}
