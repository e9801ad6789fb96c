//! keygate's HTML pages for people (sign-in; consent and device approval build on it).
//! Handlers here are thin like the JSON ones: read the form, call `people` (or the flow's
//! module), pick a page from `web`. Every answer is a page or a redirect with the
//! protective headers of [`crate::web::page`], never the JSON error body: a person reads
//! these. What a form may carry is read leniently (a missing field is empty) and judged by
//! the domain.

pub mod authorize;
pub mod device;
pub mod login;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use entity::organization;

use crate::state::AppState;
use crate::storage::StorageError;
use crate::types::Slug;
use crate::web;

/// A `application/x-www-form-urlencoded` body or query string, by field name (the first
/// value of a repeated field counts).
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(bytes: &[u8]) -> Self {
        Self(url::form_urlencoded::parse(bytes).into_owned().collect())
    }

    pub fn query(req: &HttpRequest) -> Self {
        Self::parse(req.query_string().as_bytes())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The organization of the path (`/v1/{org}/…`), or the page that says there is none.
pub async fn org_of(
    state: &AppState,
    req: &HttpRequest,
) -> Result<organization::Model, HttpResponse> {
    let slug = req.match_info().get("org").unwrap_or_default();
    if Slug::parse(slug).is_err() {
        return Err(unknown_organization());
    }
    match state.directory.org(&state.storage, slug).await {
        Ok(Some(org)) => Ok((*org).clone()),
        Ok(None) => Err(unknown_organization()),
        Err(err) => Err(failure(&err)),
    }
}

fn unknown_organization() -> HttpResponse {
    web::message(
        StatusCode::NOT_FOUND,
        "Unknown organization",
        "There is no such organization on this keygate server. Check the address you were given.",
    )
}

/// An internal failure: logged in full, shown as an opaque page.
pub fn failure(err: &StorageError) -> HttpResponse {
    tracing::error!(error = %err, "a page failed");
    web::message(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "keygate could not finish this. Try again in a moment.",
    )
}

/// 303 See Other to `location` (a path of keygate), with the pages' headers.
pub fn see_other(location: &str) -> actix_web::HttpResponseBuilder {
    let mut builder = web::with_page_headers(HttpResponse::SeeOther());
    builder.insert_header((header::LOCATION, location.to_owned()));
    builder
}

/// Adds `cookies` to `response` (a page already rendered).
pub fn with_cookies(
    mut response: HttpResponse,
    cookies: &[actix_web::cookie::Cookie<'_>],
) -> HttpResponse {
    for cookie in cookies {
        if let Err(err) = response.add_cookie(cookie) {
            tracing::error!(error = %err, "a cookie could not be set");
            return web::message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "keygate could not finish this. Try again in a moment.",
            );
        }
    }
    response
}
