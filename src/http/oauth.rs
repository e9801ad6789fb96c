//! Handlers of the OAuth endpoints: read the form, call `oauth`, answer in RFC 6749 §5.2
//! form (`{"error", "error_description"}`), never the keygate error body (README, "Errors").

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use futures_util::StreamExt;

use super::request_meta::request_meta;
use super::schema::{ErrorBody, OAuthErrorBody, OrgPath};
use super::{WantsDpopNonce, current_nonce, request_id};
use crate::metrics;
use crate::oauth::TokenBody;
use crate::oauth::device::DeviceAuthorization;
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
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
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
        if let Some(seconds) = self.error.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        response.json(OAuthErrorBody {
            error: self.error.code.as_str().to_owned(),
            error_description: self.error.description.clone(),
            request_id: request_id::current().unwrap_or_default(),
        })
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
#[utoipa::path(
    post, path = "/v1/{org}/oauth/token", tag = "OAuth", summary = "Token endpoint (RFC 6749)",
    description = "`grant_type=client_credentials` (client authentication: `client_id` = api_key_id and `client_secret` = api_key, by HTTP Basic or in the form; or, for a key-pair client, `client_assertion_type` + `client_assertion`, a JWT signed by one of its registered keys; optional `scope`, `user_id`), `grant_type=refresh_token` (`refresh_token`; a DPoP proof from the bound key when the token is bound; a browser client's refresh token needs its `client_id`, and its authentication when confidential) or `grant_type=authorization_code` (`code` from the authorization endpoint, the same `redirect_uri`, `code_verifier` (PKCE, RFC 7636); the client that asked for the code: a public client sends its `client_id`, a confidential one authenticates; a DPoP proof by the `dpop_jkt` key when the authorization request sent one). `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693, client-authenticated: `subject_token` + `subject_token_type` = `urn:ietf:params:oauth:token-type:access_token`, a keygate access token of this organization; optional `actor_token` + `actor_token_type`, `resource`/`audience` among the subject token's, `scope` within it, `requested_token_type`, `may_act`; the answer has `issued_token_type`, a nested `act`, no refresh token) or `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523 §2.1: `assertion`, a token of a trusted identity provider registered with `allow_jwt_bearer`; client authentication optional; no refresh token). A `DPoP` header binds the tokens. `resource` (RFC 8707, repeatable) asks for a token for registered protected resources (`invalid_target` otherwise).",
    params(OrgPath, ("DPoP" = Option<String>, Header, description = "An RFC 9449 proof for this request")),
    request_body(content = inline(TokenForm), content_type = "application/x-www-form-urlencoded"),
    security(("client_basic" = []), ()),
    responses(
        (status = 200, description = "Tokens", body = TokenBody),
        (status = 400, description = "RFC 6749 §5.2 error", body = OAuthErrorBody),
        (status = 401, description = "`invalid_client` (the `error_description` names the failed check)", body = OAuthErrorBody),
        (status = 429, description = "`rate_limited`: too many failed client authentications (`Retry-After`)", body = OAuthErrorBody),
        (status = 503, description = "`temporarily_unavailable`, with `Retry-After`: the replay cache cannot record the DPoP proof or the client assertion", body = OAuthErrorBody),
    )
)]
pub async fn token(
    state: web::Data<AppState>,
    org: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthResponse> {
    let dpop = dpop_headers(&req);
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().get(..6))
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"basic "));
    let request = match oauth_request(&req, &org, payload, &dpop).await {
        Ok(request) => request,
        Err(e) => {
            let auth = metrics::client_auth_label(basic, false, false);
            metrics::token_request("unknown", auth, e.code.as_str());
            return Err(fail(&state, e));
        }
    };
    let grant_type = metrics::grant_type_label(request.params.get("grant_type"));
    let client_auth = metrics::client_auth_label(
        basic,
        request.params.get("client_assertion").is_some(),
        request.params.get("client_secret").is_some(),
    );
    let result = oauth::token(&state, request).await;
    let outcome = result
        .as_ref()
        .map_or_else(|e| e.code.as_str(), |_| "success");
    metrics::token_request(grant_type, client_auth, outcome);
    let response = result.map_err(|e| fail(&state, e))?;
    if response.dpop_nonce {
        req.extensions_mut().insert(WantsDpopNonce);
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(response.body))
}

/// `POST /v1/{org}/oauth/device_authorization` (RFC 8628 §3.1).
#[utoipa::path(
    post, path = "/v1/{org}/oauth/device_authorization", tag = "OAuth", summary = "Device authorization (RFC 8628)",
    description = "Starts the device flow: the client authenticates as at the token endpoint (an API key client: `client_id` + `client_secret` by HTTP Basic or in the form, or a `client_assertion`; a browser client as it registered, a public one with `client_id` alone; `keygate-cli`, the built-in public client of `keygate login`) and gets a `device_code` and a `user_code`. A person signed in to the organization's pages enters the code at `verification_uri` (or opens `verification_uri_complete`) and approves; meanwhile the client polls the token endpoint with `grant_type=urn:ietf:params:oauth:grant-type:device_code` and the `device_code`, no more often than every `interval` seconds. `scope` and `resource` (RFC 8707, repeatable) are checked here as at the token endpoint.",
    params(OrgPath),
    request_body(content = inline(DeviceAuthorizationForm), content_type = "application/x-www-form-urlencoded"),
    security(("client_basic" = []), ()),
    responses(
        (status = 200, description = "The codes (RFC 8628 §3.2)", body = DeviceAuthorization),
        (status = 400, description = "RFC 6749 §5.2 error (`invalid_request`, `invalid_scope`, `invalid_target`, `unauthorized_client`)", body = OAuthErrorBody),
        (status = 401, description = "`invalid_client` (the `error_description` names the failed check)", body = OAuthErrorBody),
        (status = 429, description = "`rate_limited` (`Retry-After`): too many failed client authentications, or too many pending requests of public clients from this IP", body = OAuthErrorBody),
        (status = 503, description = "`temporarily_unavailable`, with `Retry-After`: the replay cache cannot record the client assertion", body = OAuthErrorBody),
    )
)]
pub async fn device_authorization(
    state: web::Data<AppState>,
    org: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthResponse> {
    let request = oauth_request(&req, &org, payload, &[])
        .await
        .map_err(|e| fail(&state, e))?;
    let body = oauth::device::authorize(&state, request)
        .await
        .map_err(|e| fail(&state, e))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body))
}

/// `POST /v1/{org}/oauth/revoke`.
#[utoipa::path(
    post, path = "/v1/{org}/oauth/revoke", tag = "OAuth", summary = "Revocation (RFC 7009)",
    params(OrgPath),
    request_body(content = inline(TokenParam), content_type = "application/x-www-form-urlencoded"),
    security(("client_basic" = []), ()),
    responses(
        (status = 200, description = "Revoked (or unknown: RFC 7009 §2.2)"),
        (status = 400, description = "RFC 6749 §5.2 error", body = OAuthErrorBody),
        (status = 401, description = "`invalid_client` (the `error_description` names the failed check)", body = OAuthErrorBody),
        (status = 429, description = "`rate_limited`: too many failed client authentications (`Retry-After`)", body = OAuthErrorBody),
        (status = 503, description = "`temporarily_unavailable`, with `Retry-After`: the replay cache cannot record the client assertion", body = OAuthErrorBody),
    )
)]
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
#[utoipa::path(
    post, path = "/v1/{org}/oauth/introspect", tag = "OAuth", summary = "Introspection (RFC 7662)",
    params(OrgPath),
    request_body(content = inline(TokenParam), content_type = "application/x-www-form-urlencoded"),
    security(("client_basic" = []), ()),
    responses(
        (status = 200, description = "`{\"active\": false}` or the token's claims", body = Object),
        (status = 400, description = "RFC 6749 §5.2 error", body = OAuthErrorBody),
        (status = 401, description = "`invalid_client` (the `error_description` names the failed check)", body = OAuthErrorBody),
        (status = 429, description = "`rate_limited`: too many failed client authentications (`Retry-After`)", body = OAuthErrorBody),
        (status = 503, description = "`temporarily_unavailable`, with `Retry-After`: the replay cache cannot record the client assertion", body = OAuthErrorBody),
    )
)]
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
#[utoipa::path(
    get, path = "/v1/{org}/.well-known/oauth-authorization-server", tag = "Discovery", summary = "Authorization server metadata (RFC 8414)",
    params(OrgPath),
    responses(
        (status = 200, description = "RFC 8414 metadata", body = Object),
        (status = 404, description = "`unknown_organization`", body = ErrorBody),
    )
)]
pub async fn metadata(
    state: web::Data<AppState>,
    org: web::Path<String>,
) -> Result<HttpResponse, super::ApiError> {
    let org = crate::storage::orgs::by_slug(&state.storage, &org)
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

/// The form of the token endpoint (documentation only: the handler reads the raw form).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct TokenForm {
    /// `client_credentials`, `refresh_token`, `authorization_code`,
    /// `urn:ietf:params:oauth:grant-type:device_code`,
    /// `urn:ietf:params:oauth:grant-type:token-exchange` or
    /// `urn:ietf:params:oauth:grant-type:jwt-bearer`.
    grant_type: String,
    /// Token exchange (RFC 8693 §2.1): a keygate access token of this organization, whose
    /// subject the new token keeps.
    subject_token: Option<String>,
    /// Token exchange: `urn:ietf:params:oauth:token-type:access_token`.
    subject_token_type: Option<String>,
    /// Token exchange: a keygate access token of the party acting now (default: the
    /// authenticated client's user).
    actor_token: Option<String>,
    /// Token exchange, with `actor_token`: `urn:ietf:params:oauth:token-type:access_token`.
    actor_token_type: Option<String>,
    /// Token exchange: `urn:ietf:params:oauth:token-type:access_token` (the only type).
    requested_token_type: Option<String>,
    /// Token exchange (repeatable): a resource URI among the subject token's audiences, as
    /// `resource`.
    audience: Option<Vec<String>>,
    /// Token exchange: the user id that alone may exchange the new token further (its
    /// `may_act`, RFC 8693 §4.4).
    may_act: Option<String>,
    /// JWT bearer grant (RFC 7523 §2.1): a token of a trusted identity provider registered
    /// with `allow_jwt_bearer`.
    assertion: Option<String>,
    /// With `refresh_token`.
    refresh_token: Option<String>,
    /// With `authorization_code`: the code the authorization endpoint returned (single-use,
    /// 60 seconds).
    code: Option<String>,
    /// With `authorization_code`: exactly the authorization request's `redirect_uri`.
    redirect_uri: Option<String>,
    /// With `authorization_code`: the PKCE verifier (RFC 7636 §4.1: 43 to 128 characters of
    /// `A-Z a-z 0-9 - . _ ~`) whose S256 challenge the authorization request sent.
    code_verifier: Option<String>,
    /// With the device code grant (RFC 8628 §3.4): the `device_code` of the device
    /// authorization response. Until the person decides: `authorization_pending`, or
    /// `slow_down` when polled sooner than the interval (which then grows by 5 s); then the
    /// tokens (once), `access_denied`, or `expired_token`.
    device_code: Option<String>,
    /// Narrows the scopes (space-separated).
    scope: Option<String>,
    /// With `client_credentials`: the user to act for.
    user_id: Option<String>,
    /// RFC 8707: a registered protected resource the token is for (repeatable). Its URI
    /// becomes `aud` (a list when several), its scopes the token's. At a refresh: a subset
    /// of the session's resources.
    resource: Option<Vec<String>>,
    /// The API key id, when not sent with HTTP Basic (optional with `client_assertion`:
    /// then it must equal the assertion's `sub`); a browser client's id (`cli_…` or its
    /// metadata document URL), alone for a public client.
    client_id: Option<String>,
    /// The API key secret, when not sent with HTTP Basic.
    client_secret: Option<String>,
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`, with `client_assertion`.
    client_assertion_type: Option<String>,
    /// A key-pair client's signed JWT (`private_key_jwt`, RFC 7523 §2.2): `iss` = `sub` =
    /// the API key id, `aud` = the issuer, `exp` at most 5 minutes ahead, a single-use
    /// `jti`. Instead of `client_secret` and Basic, never with them.
    client_assertion: Option<String>,
}

/// The form of the device authorization endpoint (documentation only).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct DeviceAuthorizationForm {
    /// The scopes asked for (space-separated); default: the client's (an API key's scopes,
    /// a browser client's registered scope, every scope for `keygate-cli`).
    scope: Option<String>,
    /// RFC 8707: a registered protected resource the token is for (repeatable).
    resource: Option<Vec<String>>,
    /// The client, when not sent with HTTP Basic: an API key id, a browser client's id, or
    /// `keygate-cli`.
    client_id: Option<String>,
    /// The API key's (or a confidential browser client's) secret, when not sent with HTTP
    /// Basic.
    client_secret: Option<String>,
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`, with `client_assertion`.
    client_assertion_type: Option<String>,
    /// A key-pair client's signed JWT (`private_key_jwt`), as at the token endpoint.
    client_assertion: Option<String>,
}

/// The form of revocation and introspection (documentation only).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct TokenParam {
    /// The token.
    token: String,
    /// `access_token` or `refresh_token`.
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`, with `client_assertion`.
    client_assertion_type: Option<String>,
    /// A key-pair client's signed JWT (`private_key_jwt`), as at the token endpoint.
    client_assertion: Option<String>,
}
