//! People signing in to keygate's own pages (`/v1/{org}/login`) with an emailed one-time
//! code, and the browser session that follows: what the consent and device pages ask
//! before a person approves an agent.
//!
//! Public entry points: [`signed_in`] (who is signed in to this organization in this
//! browser), [`login_redirect`] (send the browser to sign in, then back),
//! [`login::request_code`] and [`login::verify_code`] (the two steps of signing in with an
//! emailed code) and [`session::start`] (a person just proved who they are). How it works,
//! and its limits: README, "People sign in to keygate's pages".

pub mod login;
pub mod mail;
pub mod prelogin;
pub mod return_to;
pub mod session;

use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite};

use actix_web::HttpRequest;
use actix_web::HttpResponse;
use actix_web::http::header;
use entity::organization;
use subtle::ConstantTimeEq;

use crate::audit::{AuditEvent, RequestMeta};
use crate::state::AppState;
use crate::storage::StorageError;

/// A person signed in to an organization's pages in this browser.
#[derive(Clone, Debug)]
pub struct Person {
    pub user_id: String,
    pub email: String,
    /// The browser session (`bss_…`).
    pub session_id: String,
    /// The CSRF token of this browser session: every form carries it.
    csrf: String,
}

impl Person {
    /// The token to put in a form's hidden `csrf` field.
    pub fn csrf_token(&self) -> &str {
        &self.csrf
    }

    /// Whether a submitted form's `csrf` field is this session's token (constant time).
    pub fn csrf_matches(&self, submitted: Option<&str>) -> bool {
        submitted.is_some_and(|s| bool::from(s.as_bytes().ct_eq(self.csrf.as_bytes())))
    }
}

/// The person signed in to `org` in the browser that sent `req`, if any (an enabled user
/// of `org` whose browser session is live).
pub async fn signed_in(
    state: &AppState,
    org: &organization::Model,
    req: &HttpRequest,
) -> Result<Option<Person>, StorageError> {
    let Some(cookie) = req.cookie(session::COOKIE) else {
        return Ok(None);
    };
    session::find(state, org, cookie.value()).await
}

/// Sends the browser to `org_slug`'s sign-in page, which comes back to `return_to` (a path
/// of that organization, with its query) once the person is signed in.
pub fn login_redirect(org_slug: &str, return_to: &str) -> HttpResponse {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", return_to)
        .finish();
    crate::web::with_page_headers(HttpResponse::SeeOther())
        .insert_header((header::LOCATION, format!("/v1/{org_slug}/login?{query}")))
        .finish()
}

/// Signs `person` out of `org`'s pages (ends the browser session, audited): returns the
/// cookie that clears it.
pub async fn sign_out(
    state: &AppState,
    org: &organization::Model,
    person: &Person,
    meta: &RequestMeta,
) -> Result<Cookie<'static>, StorageError> {
    let cookie = session::end(state, org, person).await?;
    state.audit.record(AuditEvent {
        org_id: Some(org.id.clone()),
        action: "logout",
        success: true,
        actor_user_id: Some(person.user_id.clone()),
        target_type: Some("browser_session"),
        target_id: Some(person.session_id.clone()),
        meta: meta.clone(),
        ..AuditEvent::default()
    });
    Ok(cookie)
}

/// A cookie of `org_slug`'s pages: `HttpOnly`, `SameSite=Lax`, path `/v1/{org_slug}` (so it
/// never reaches another organization's pages, nor the JSON API at other paths), `Secure`
/// when keygate's public URL is https (RFC 6265 §4.1.2). An empty value with max-age 0
/// deletes it.
pub(crate) fn page_cookie(
    state: &AppState,
    org_slug: &str,
    name: &'static str,
    value: String,
    max_age: Duration,
) -> Cookie<'static> {
    let mut cookie = Cookie::build(name, value)
        .path(format!("/v1/{org_slug}"))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.public_url.starts_with("https://"))
        .finish();
    cookie.set_max_age(actix_web::cookie::time::Duration::seconds(
        i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
    ));
    cookie
}
