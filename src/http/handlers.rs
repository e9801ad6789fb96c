//! Request handlers: extract, call the domain, map. No logic of their own.

use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::error::ApiError;
use super::extract::Authenticated;
use super::request_id;
use super::{WantsDpopNonce, current_nonce};
use crate::audit::RequestMeta;
use crate::auth::dpop::DpopError;
use crate::auth::signin::{SigninError, SigninRequest, signin};
use crate::state::AppState;
use crate::storage;
use actix_web::HttpMessage;

/// A header's value as received; a value that is not visible ASCII is passed on as
/// something no check accepts, rather than as absent.
fn header_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"))
}

pub fn request_meta(req: &HttpRequest) -> RequestMeta {
    RequestMeta {
        ip: req.peer_addr().map(|a| a.ip().to_string()),
        user_agent: header_value(req.headers(), "user-agent")
            .map(|ua| ua.chars().take(256).collect()),
        request_id: request_id::current(),
    }
}

/// DESIGN §5.1.
pub async fn signin_with_api_key(
    state: web::Data<AppState>,
    org: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let headers = req.headers();
    let proofs: Vec<&[u8]> = headers.get_all("dpop").map(|v| v.as_bytes()).collect();
    let result = signin(
        &state,
        SigninRequest {
            org: &org,
            api_key: header_value(headers, "x-api-key"),
            api_key_id: header_value(headers, "x-api-key-id"),
            user_id: header_value(headers, "x-user-id"),
            dpop: &proofs,
            path: req.path(),
            meta: request_meta(&req),
        },
    )
    .await;
    let grant = match result {
        Ok(grant) => grant,
        Err(err @ SigninError::Dpop(DpopError::UseNonce)) => {
            return Err(ApiError::from(err).with_nonce(current_nonce(&state)));
        }
        Err(err) => return Err(err.into()),
    };
    if grant.dpop_nonce {
        req.extensions_mut().insert(WantsDpopNonce);
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(json!({
            "id_token": grant.access_token,
            "expires_at": grant.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "token_type": grant.token_type.as_str(),
            "expires_in": grant.expires_in,
            "refresh_token": grant.refresh_token.expose(),
            "session_id": grant.session_id,
            "scope": grant.scope,
        })))
}

/// DESIGN §5.3 and §5.5: who the caller is, where, and how it authenticated.
pub async fn me(Authenticated(caller): Authenticated) -> HttpResponse {
    let mut body = json!({
        "user_id": caller.user.id,
        "org": caller.org.slug,
        "home_org": caller.home_org.slug,
        "email": caller.user.email,
        "role": caller.role,
        "session_id": caller.token.session_id,
        "token_type": caller.token_type.as_str(),
        "auth_method": caller.auth_method.as_str(),
        "scope": caller.token.scope,
    });
    if let (Some(act), Some(map)) = (&caller.token.act, body.as_object_mut()) {
        map.insert("act".into(), json!({ "sub": act }));
    }
    HttpResponse::Ok().json(body)
}

async fn jwks_response(state: &AppState) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .content_type("application/jwk-set+json")
        .json(state.signing_keys.current().await.jwks())
}

/// `GET /.well-known/jwks.json`: every published signing key.
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    jwks_response(&state).await
}

/// `GET /v1/{org}/.well-known/jwks.json`: the same keys, under an organization's issuer.
pub async fn org_jwks(
    state: web::Data<AppState>,
    org: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    storage::orgs::by_slug(&state.storage, &org)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                actix_web::http::StatusCode::NOT_FOUND,
                "unknown_organization",
                "no such organization",
            )
        })?;
    Ok(jwks_response(&state).await)
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.storage.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready"})),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            HttpResponse::ServiceUnavailable().json(json!({
                "status": "unavailable",
                "error": {"code": "database_unavailable", "message": "the database is not reachable", "request_id": request_id::current()}
            }))
        }
    }
}

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("no such endpoint"))
}

pub async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method",
    ))
}
