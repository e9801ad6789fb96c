//! `GET` and `POST /v1/{org}/oauth/authorize`: HTTP glue around
//! [`crate::oauth::authorize::respond`], which decides everything; here the request is read
//! and the outcome rendered (an error page, a redirect, the consent page).

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use futures_util::StreamExt;

use crate::http::request_meta::request_meta;
use crate::oauth::authorize::{self, AuthorizeRequest, ConsentView, Outcome, Step};
use crate::people;
use crate::state::AppState;
use crate::web as pages;

/// Largest consent form accepted.
const FORM_LIMIT: usize = 16 * 1024;

#[derive(Template)]
#[template(path = "consent.html", config = "src/web/askama.toml")]
struct ConsentPage<'a> {
    org: &'a str,
    view: &'a ConsentView,
}

/// `GET /v1/{org}/oauth/authorize`: the client's authorization request.
pub async fn show(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let params = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    respond(&state, &req, params, Step::Show).await
}

/// `POST /v1/{org}/oauth/authorize`: the consent form.
pub async fn decide(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    match read_form(&req, payload).await {
        Ok(params) => respond(&state, &req, params, Step::Decide).await,
        Err(why) => pages::message(StatusCode::BAD_REQUEST, "Invalid form", why),
    }
}

async fn respond(
    state: &AppState,
    req: &HttpRequest,
    params: Vec<(String, String)>,
    step: Step,
) -> HttpResponse {
    let org = match super::org_of(state, req).await {
        Ok(org) => org,
        Err(page) => return page,
    };
    let person = match people::signed_in(state, &org, req).await {
        Ok(person) => person,
        Err(err) => return super::failure(&err),
    };
    let outcome = authorize::respond(
        state,
        &org,
        AuthorizeRequest {
            params,
            person: person.as_ref(),
            step,
            meta: request_meta(req),
        },
    )
    .await;
    match outcome {
        Outcome::Refused { title, message } => {
            pages::message(StatusCode::BAD_REQUEST, title, &message)
        }
        Outcome::Forbidden => pages::message(
            StatusCode::FORBIDDEN,
            "This form cannot be used",
            "It has expired or did not come from this page. Go back, reload the page and try again.",
        ),
        Outcome::Failed => pages::message(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "keygate could not answer this request. Try again in a moment.",
        ),
        Outcome::SignIn { return_to } => people::login_redirect(&org.slug, &return_to),
        Outcome::Redirect(location) => super::see_other(&location).finish(),
        Outcome::Consent(view) => {
            let mut response = pages::page(
                StatusCode::OK,
                &ConsentPage {
                    org: &org.slug,
                    view: &view,
                },
            );
            // The form's answer redirects to the client: `form-action` must allow it.
            if let Some(source) = &view.redirect_source {
                pages::allow_form_action(&mut response, source);
            }
            response
        }
    }
}

/// The form's fields, decoded, in order: `application/x-www-form-urlencoded` only, at most
/// [`FORM_LIMIT`] bytes.
async fn read_form(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<Vec<(String, String)>, &'static str> {
    let urlencoded = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !urlencoded {
        return Err("The form must be sent as application/x-www-form-urlencoded.");
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| "The form could not be read.")?;
        if body.len() + chunk.len() > FORM_LIMIT {
            return Err("The form is too large.");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(url::form_urlencoded::parse(&body).into_owned().collect())
}
