//! `/v1/{org}/device`, the verification page of the device flow (RFC 8628 §3.3): the
//! person signs in (else: the sign-in page, then back here), enters the user code (or
//! arrives with `?user_code=` from `verification_uri_complete`), confirms the client and
//! what it asks for, and approves or denies. Thin: the rules are in [`crate::oauth::device`].
//! Every POST carries the session's CSRF token (a missing or wrong one: 403).

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use entity::organization;

use super::{Form, failure, org_of};
use crate::http::request_meta::request_meta;
use crate::oauth::device::{self, Decision, PageError, Review};
use crate::people::{self, Person};
use crate::state::AppState;
use crate::web::{message, notice, page};

/// The code form.
#[derive(Template)]
#[template(path = "device.html", config = "src/web/askama.toml")]
struct EnterCode<'a> {
    org: &'a str,
    csrf: &'a str,
    email: &'a str,
    /// What was typed, shown again with an error.
    typed: &'a str,
    error: Option<String>,
}

/// The confirmation: who asks for what, Approve or Deny.
#[derive(Template)]
#[template(path = "device_confirm.html", config = "src/web/askama.toml")]
struct Confirm<'a> {
    org: &'a str,
    csrf: &'a str,
    email: &'a str,
    review: &'a Review,
    minutes: i64,
}

/// The organization and the person signed in to it, or the response to give instead.
async fn who(
    state: &AppState,
    req: &HttpRequest,
    return_to: impl FnOnce(&str) -> String,
) -> Result<(organization::Model, Person), HttpResponse> {
    let org = org_of(state, req).await?;
    match people::signed_in(state, &org, req).await {
        Ok(Some(person)) => Ok((org, person)),
        Ok(None) => Err(people::login_redirect(&org.slug, &return_to(&org.slug))),
        Err(err) => Err(failure(&err)),
    }
}

fn enter_code(
    status: StatusCode,
    org: &organization::Model,
    person: &Person,
    typed: &str,
    error: Option<String>,
) -> HttpResponse {
    page(
        status,
        &EnterCode {
            org: &org.slug,
            csrf: person.csrf_token(),
            email: &person.email,
            typed,
            error,
        },
    )
}

/// The page for a failed lookup or decision.
fn failed(org: &organization::Model, person: &Person, typed: &str, err: PageError) -> HttpResponse {
    match err {
        PageError::Malformed | PageError::Unknown => enter_code(
            StatusCode::BAD_REQUEST,
            org,
            person,
            typed,
            Some(err.to_string()),
        ),
        PageError::ClientGone => message(
            StatusCode::BAD_REQUEST,
            "Request no longer valid",
            &err.to_string(),
        ),
        PageError::Throttled { retry_after } => {
            let mut res = message(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many wrong codes",
                &err.to_string(),
            );
            if let Ok(value) = header::HeaderValue::from_str(&retry_after.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, value);
            }
            res
        }
        PageError::Storage(e) => failure(&e),
    }
}

async fn confirm(
    state: &AppState,
    org: &organization::Model,
    person: &Person,
    typed: &str,
    req: &HttpRequest,
) -> HttpResponse {
    let ip = request_meta(req).ip;
    match device::review(state, org, person, typed, ip.as_deref()).await {
        Ok(review) => {
            let left = review.expires_at - state.clock.now();
            let minutes = ((left.num_seconds() + 59) / 60).max(1);
            page(
                StatusCode::OK,
                &Confirm {
                    org: &org.slug,
                    csrf: person.csrf_token(),
                    email: &person.email,
                    review: &review,
                    minutes,
                },
            )
        }
        Err(err) => failed(org, person, typed, err),
    }
}

/// `GET /v1/{org}/device[?user_code=…]`.
pub async fn show(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let return_to = |_: &str| match req.query_string() {
        "" => req.path().to_owned(),
        query => format!("{}?{query}", req.path()),
    };
    let (org, person) = match who(&state, &req, return_to).await {
        Ok(found) => found,
        Err(res) => return res,
    };
    match Form::query(&req).get("user_code") {
        Some(typed) => confirm(&state, &org, &person, typed, &req).await,
        None => enter_code(StatusCode::OK, &org, &person, "", None),
    }
}

/// `POST /v1/{org}/device`: a code entered (→ the confirmation), or a decision.
pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (org, person) = match who(&state, &req, |slug| format!("/v1/{slug}/device")).await {
        Ok(found) => found,
        Err(res) => return res,
    };
    let form = Form::parse(&body);
    if !person.csrf_matches(form.get("csrf")) {
        return notice(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "keygate only accepts this form from its own device page, in the browser that \
             opened it. Open the page again and retry.",
            &format!("/v1/{}/device", org.slug),
            "Enter a code",
        );
    }
    let typed = form.get("user_code").unwrap_or_default().to_owned();
    let decision = match form.get("action") {
        None => return confirm(&state, &org, &person, &typed, &req).await,
        Some("approve") => Decision::Approve,
        Some("deny") => Decision::Deny,
        Some(_) => {
            return message(
                StatusCode::BAD_REQUEST,
                "Unknown action",
                "Choose Approve or Deny.",
            );
        }
    };
    let meta = request_meta(&req);
    match device::decide(&state, &org, &person, &typed, decision, &meta).await {
        Ok(Decision::Approve) => message(
            StatusCode::OK,
            "Device approved",
            "You can return to your device: it receives its access in a few seconds.",
        ),
        Ok(Decision::Deny) => message(
            StatusCode::OK,
            "Denied",
            "The device was denied access. You can close this page.",
        ),
        Err(err) => failed(&org, &person, &typed, err),
    }
}
