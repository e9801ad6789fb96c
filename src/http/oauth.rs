//! Handlers of the OAuth endpoints: read the form, call `oauth`, answer in RFC 6749 §5.2
//! form (`{"error", "error_description"}`), never the DESIGN §6 body.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use futures_util::StreamExt;
use serde_json::json;

use super::handlers::request_meta;
use super::{WantsDpopNonce, current_nonce, request_id};
use crate::oauth::form::Params;
use crate::oauth::{self, ErrorCode, OAuthError, OAuthRequest};
use crate::state::AppState;

/// Largest form body accepted.
const FORM_LIMIT: usize = 16 * 1024;

/// An [`OAuthError`] as a response.
#[derive(Debug)]
pub struct OAuthResponse {
    error: OAuthError,
    nonce: Option<HeaderValue>,
}

impl std::fmt::Display for OAuthResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl ResponseError for OAuthResponse {
    fn status_code(&self) -> StatusCode {
        match self.error.code {
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(cause) = &self.error.cause {
            tracing::error!(error = %cause, "internal error at an OAuth endpoint");
        }
        let mut response = HttpResponse::build(self.status_code());
        response
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"));
        if self.error.code == ErrorCode::InvalidClient && self.error.basic {
            response.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"keygate\""));
        }
        if let Some(nonce) = &self.nonce {
            response.insert_header((super::DPOP_NONCE, nonce.clone()));
        }
        response.json(json!({
            "error": self.error.code.as_str(),
            "error_description": self.error.description,
            "request_id": request_id::current(),
        }))
    }
}

/// Reads a form body: `application/x-www-form-urlencoded` only, at most [`FORM_LIMIT`].
async fn read_form(req: &HttpRequest, mut payload: web::Payload) -> Result<Params, OAuthError> {
    let form_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| OAuthError::invalid_request("the body could not be read"))?;
        if body.len() + chunk.len() > FORM_LIMIT {
            return Err(OAuthError::invalid_request("the body is too large"));
        }
        body.extend_from_slice(&chunk);
    }
    Params::parse(&body)
}

fn fail(state: &AppState, error: OAuthError) -> OAuthResponse {
    let nonce = (error.code == ErrorCode::UseDpopNonce)
        .then(|| current_nonce(state))
        .flatten();
    OAuthResponse { error, nonce }
}

async fn oauth_request<'a>(
    req: &'a HttpRequest,
    org: &'a str,
    payload: web::Payload,
    dpop: &'a [&'a [u8]],
) -> Result<OAuthRequest<'a>, OAuthError> {
    Ok(OAuthRequest {
        org,
        params: read_form(req, payload).await?,
        authorization: req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
        dpop,
        path: req.path(),
        meta: request_meta(req),
    })
}

fn dpop_headers(req: &HttpRequest) -> Vec<&[u8]> {
    req.headers()
        .get_all("dpop")
        .map(|v| v.as_bytes())
        .collect()
}

/// `POST /v1/{org}/oauth/token`.
pub async fn token(
    state: web::Data<AppState>,
    org: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthResponse> {
    let dpop = dpop_headers(&req);
    let request = oauth_request(&req, &org, payload, &dpop)
        .await
        .map_err(|e| fail(&state, e))?;
    let response = oauth::token(&state, request)
        .await
        .map_err(|e| fail(&state, e))?;
    if response.dpop_nonce {
        req.extensions_mut().insert(WantsDpopNonce);
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(response.body))
}

/// `POST /v1/{org}/oauth/revoke`.
pub async fn revoke(
    state: web::Data<AppState>,
    org: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthResponse> {
    let dpop = dpop_headers(&req);
    let request = oauth_request(&req, &org, payload, &dpop)
        .await
        .map_err(|e| fail(&state, e))?;
    oauth::revoke::revoke(&state, request)
        .await
        .map_err(|e| fail(&state, e))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// `POST /v1/{org}/oauth/introspect`.
pub async fn introspect(
    state: web::Data<AppState>,
    org: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthResponse> {
    let dpop = dpop_headers(&req);
    let request = oauth_request(&req, &org, payload, &dpop)
        .await
        .map_err(|e| fail(&state, e))?;
    let body = oauth::introspect::introspect(&state, request)
        .await
        .map_err(|e| fail(&state, e))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body))
}

/// RFC 8414 metadata, at `/.well-known/oauth-authorization-server/v1/{org}` and
/// `/v1/{org}/.well-known/oauth-authorization-server`.
pub async fn metadata(
    state: web::Data<AppState>,
    org: web::Path<String>,
) -> Result<HttpResponse, super::ApiError> {
    crate::storage::orgs::by_slug(&state.storage, &org)
        .await?
        .ok_or_else(|| {
            super::ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_organization",
                "no such organization",
            )
        })?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(oauth::metadata::document(&state, &org)))
}
