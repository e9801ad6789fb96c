//! Request handlers: extract, call the domain, map. No logic of their own.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::error::ApiError;
use super::extract::Authenticated;
use super::request_id;
use super::request_meta::{header_value, request_meta};
use super::schema::{Act, ErrorBody, Me, OrgPath, SigninResponse, Status, rfc3339};
use super::{WantsDpopNonce, current_nonce};
use crate::auth::dpop::DpopError;
use crate::auth::signin::{SigninError, SigninRequest, signin};
use crate::state::AppState;
use crate::storage;
use actix_web::HttpMessage;

/// Sign in with an API key (README, "Quick start").
#[utoipa::path(
    post, path = "/v1/{org}/user/signin_with_api_key", tag = "Sign-in",
    summary = "Exchange an API key for an access token",
    description = "No body. With a `DPoP` proof header the token is DPoP-bound (`token_type: DPoP`).",
    params(
        OrgPath,
        ("x-api-key" = String, Header, description = "The API key secret (`ak_live_…` or `ak_test_…`)"),
        ("x-api-key-id" = String, Header, description = "The API key id (`key_…`)"),
        ("x-user-id" = String, Header, description = "The user to sign in as: the key's owner, or a user an owner or admin acts for"),
        ("x-mongo-cluster-name" = Option<String>, Header, description = "Accepted for client compatibility; ignored"),
        ("DPoP" = Option<String>, Header, description = "An RFC 9449 proof for this request (`keygate dpop proof`), to bind the token"),
        ("resource" = Option<Vec<String>>, Query, explode = true, description = "RFC 8707: a registered protected resource of the organization the token is for (repeatable); its URI becomes the token's `aud`, its scopes the token's"),
    ),
    security(("api_key" = [], "api_key_id" = [])),
    responses(
        (status = 200, description = "Signed in", body = SigninResponse),
        (status = 400, description = "`missing_api_key`, `missing_user_id`, `invalid_dpop_proof`, `use_dpop_nonce`, `invalid_target` (a `resource` that is not a registered resource of the organization) or `invalid_scope`", body = ErrorBody),
        (status = 401, description = "`invalid_api_key`, `expired_api_key` or `revoked_api_key`", body = ErrorBody),
        (status = 403, description = "`permission_denied`: the key's owner may not act for that user", body = ErrorBody),
        (status = 404, description = "`unknown_organization`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many failed sign-ins for this key id or from this client IP (`Retry-After`)", body = ErrorBody),
        (status = 503, description = "`temporarily_unavailable`, with `Retry-After`: the DPoP replay cache cannot record the proof", body = ErrorBody),
    )
)]
pub async fn signin_with_api_key(
    state: web::Data<AppState>,
    org: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let headers = req.headers();
    let proofs: Vec<&[u8]> = headers.get_all("dpop").map(|v| v.as_bytes()).collect();
    let resources: Vec<String> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .filter(|(name, value)| name == "resource" && !value.is_empty())
        .map(|(_, value)| value.into_owned())
        .collect();
    let result = signin(
        &state,
        SigninRequest {
            org: &org,
            api_key: header_value(headers, "x-api-key"),
            api_key_id: header_value(headers, "x-api-key-id"),
            user_id: header_value(headers, "x-user-id"),
            dpop: &proofs,
            path: req.path(),
            resources: &resources,
            meta: request_meta(&req),
        },
    )
    .await;
    crate::metrics::signin(
        result
            .as_ref()
            .map_or_else(SigninError::code, |_| "success"),
    );
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
        .json(SigninResponse {
            id_token: grant.access_token,
            expires_at: rfc3339(grant.expires_at),
            token_type: grant.token_type.as_str().to_owned(),
            expires_in: grant.expires_in,
            refresh_token: grant.refresh_token.expose().to_owned(),
            session_id: grant.session_id,
            scope: grant.scope,
        }))
}

/// Protected endpoints and cross-organization access: who the caller is, where, and how it authenticated.
#[utoipa::path(
    get, path = "/v1/{org}/user/me", tag = "Sign-in", summary = "Who the caller is",
    params(OrgPath, ("X-ORG-ID" = Option<String>, Header, description = "With a Bearer token of another organization: that organization's slug (cross-organization access)")),
    security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "`invalid_token`, `expired_token`, `invalid_dpop_proof` or `use_dpop_nonce`, with `WWW-Authenticate`", body = ErrorBody),
        (status = 403, description = "`permission_denied`: no cross-organization grant", body = ErrorBody),
        (status = 404, description = "`unknown_organization`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (cross-organization requests)", body = ErrorBody),
        (status = 503, description = "`temporarily_unavailable`, with `Retry-After`: the DPoP replay cache cannot record the proof", body = ErrorBody),
    )
)]
pub async fn me(Authenticated(caller): Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(Me {
        user_id: caller.user.id,
        org: caller.org.slug,
        home_org: caller.home_org.slug,
        email: caller.user.email,
        role: caller.role.as_str().to_owned(),
        session_id: caller.token.session_id,
        token_type: caller.token_type.as_str().to_owned(),
        auth_method: caller.auth_method.as_str().to_owned(),
        scope: caller.token.scope,
        act: caller.token.act.as_ref().map(Act::from),
    })
}

async fn jwks_response(state: &AppState) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            format!(
                "public, max-age={}",
                crate::signing_keys::JWKS_MAX_AGE.as_secs()
            ),
        ))
        .content_type("application/jwk-set+json")
        .json(state.signing_keys.current().await.jwks())
}

/// `GET /.well-known/jwks.json`: every published signing key.
#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "Discovery", summary = "The token signing keys (JWKS)",
    responses((status = 200, description = "RFC 7517 JWK Set", content_type = "application/jwk-set+json", body = Object))
)]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    jwks_response(&state).await
}

/// `GET /v1/{org}/.well-known/jwks.json`: the same keys, under an organization's issuer.
#[utoipa::path(
    get, path = "/v1/{org}/.well-known/jwks.json", tag = "Discovery", summary = "The token signing keys, under an organization's issuer",
    params(OrgPath),
    responses(
        (status = 200, description = "RFC 7517 JWK Set", content_type = "application/jwk-set+json", body = Object),
        (status = 404, description = "`unknown_organization`", body = ErrorBody),
    )
)]
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

#[utoipa::path(
    get, path = "/healthz", tag = "Operations", summary = "Liveness",
    responses((status = 200, description = "The process is alive", body = Status))
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Status {
        status: "ok".into(),
    })
}

#[utoipa::path(
    get, path = "/readyz", tag = "Operations", summary = "Readiness (the database answers)",
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "The database is not reachable", body = Object),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.storage.ping().await {
        Ok(()) => HttpResponse::Ok().json(Status {
            status: "ready".into(),
        }),
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
