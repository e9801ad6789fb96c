//! The OAuth 2 endpoints of an organization (RFC 6749): the authorization endpoint
//! (authorization code + PKCE), the token endpoint with its grants (one file each), the
//! device authorization grant (RFC 8628, [`device`]), revocation (RFC 7009), introspection
//! (RFC 7662) and server metadata (RFC 8414). No HTTP types here: handlers pass the form
//! parameters and headers in and map [`OAuthError`] to the RFC 6749 §5.2 body.

mod authorization_code;
pub mod authorize;
pub mod client;
mod client_credentials;
pub mod device;
pub mod form;
pub mod introspect;
pub mod jwt_bearer;
pub mod metadata;
pub mod pkce;
mod refresh_token;
pub mod revoke;
pub mod token_exchange;

use entity::organization;

use crate::audit::AuditEvent;
use crate::audit::RequestMeta;
use crate::auth::dpop::DpopError;
use crate::auth::session;
use crate::auth::session::SessionError;
use crate::resources::TargetError;
use crate::state::AppState;
use crate::storage::StorageError;
use crate::storage::sessions::Refusal;
use crate::types::Scopes;

/// RFC 6749 §5.2 (and RFC 9449 §5, RFC 7009 §2.2.1) error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    /// RFC 8707 §2: a `resource` that is not a registered resource of the organization.
    InvalidTarget,
    InvalidDpopProof,
    UseDpopNonce,
    /// Too many failed client authentications, or too many tokens for the key (HTTP 429
    /// with `Retry-After`).
    RateLimited,
    ServerError,
    /// RFC 8628 §3.5: the person has not decided yet; poll again after the interval.
    AuthorizationPending,
    /// RFC 8628 §3.5: polled too soon; the interval grows by 5 seconds.
    SlowDown,
    /// RFC 8628 §3.5: the person denied the request.
    AccessDenied,
    /// RFC 8628 §3.5: the device code expired.
    ExpiredToken,
    /// RFC 6749 §4.1.2.1's name for a temporary overload, used here at the token endpoint
    /// too: the DPoP replay store cannot record the proof (503, `Retry-After`).
    TemporarilyUnavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ErrorCode::UseDpopNonce => "use_dpop_nonce",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::ServerError => "server_error",
            ErrorCode::AuthorizationPending => "authorization_pending",
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::ExpiredToken => "expired_token",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

/// An OAuth error: a code, a description for developers, and whether the client
/// authenticated with HTTP Basic (then a failed authentication answers a Basic challenge).
#[derive(Debug, thiserror::Error)]
#[error("{}: {description}", code.as_str())]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: String,
    pub basic: bool,
    /// The cause of a `server_error`, for the log only.
    pub cause: Option<String>,
    /// `Retry-After` (seconds) of `rate_limited`.
    pub retry_after: Option<u64>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            basic: false,
            cause: None,
            retry_after: None,
        }
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                ErrorCode::RateLimited,
                format!(
                    "too many failed client authentications; retry after {retry_after} seconds"
                ),
            )
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    fn with_basic(mut self, basic: bool) -> Self {
        self.basic = basic;
        self
    }
}

impl From<StorageError> for OAuthError {
    fn from(err: StorageError) -> Self {
        OAuthError {
            cause: Some(err.to_string()),
            ..OAuthError::new(ErrorCode::ServerError, "an internal error occurred")
        }
    }
}

impl From<TargetError> for OAuthError {
    fn from(err: TargetError) -> Self {
        match err {
            TargetError::InvalidTarget(d) => OAuthError::new(ErrorCode::InvalidTarget, d),
            TargetError::InvalidScope(d) => OAuthError::new(ErrorCode::InvalidScope, d),
            TargetError::Storage(e) => e.into(),
        }
    }
}

impl From<SessionError> for OAuthError {
    fn from(err: SessionError) -> Self {
        match err {
            // The commit saw what a fresh read of the client's key would have.
            SessionError::Refused(Refusal::KeyRevoked | Refusal::UserGone) => OAuthError::new(
                ErrorCode::InvalidClient,
                "the client's key was revoked or its user disabled",
            ),
            SessionError::Refused(Refusal::ActingDenied) => OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "this client may not act for that user",
            ),
            SessionError::Refused(Refusal::ClientGone) => {
                OAuthError::new(ErrorCode::InvalidClient, "the client was deleted")
            }
            SessionError::RateLimited(limited) => OAuthError {
                retry_after: Some(limited.retry_after),
                ..OAuthError::new(ErrorCode::RateLimited, err.to_string())
            },
            err => OAuthError {
                cause: Some(err.to_string()),
                ..OAuthError::new(ErrorCode::ServerError, "an internal error occurred")
            },
        }
    }
}

impl From<DpopError> for OAuthError {
    fn from(err: DpopError) -> Self {
        match err {
            DpopError::UseNonce => OAuthError::new(ErrorCode::UseDpopNonce, err.to_string()),
            DpopError::ReplayStoreUnavailable => OAuthError {
                retry_after: Some(u64::from(crate::auth::dpop::REPLAY_RETRY_AFTER_SECS)),
                ..OAuthError::new(ErrorCode::TemporarilyUnavailable, err.to_string())
            },
            other => OAuthError::new(ErrorCode::InvalidDpopProof, other.to_string()),
        }
    }
}

/// A request to one of the endpoints, as the HTTP layer received it.
pub struct OAuthRequest<'a> {
    pub org: &'a str,
    pub params: form::Params,
    /// The `Authorization` header, if any.
    pub authorization: Option<&'a str>,
    /// Every `DPoP` header value.
    pub dpop: &'a [&'a [u8]],
    pub path: &'a str,
    pub meta: RequestMeta,
}

/// A token endpoint response (RFC 6749). `nonce`: the organization wants DPoP nonces.
pub struct TokenResponse {
    pub body: TokenBody,
    pub dpop_nonce: bool,
}

/// RFC 6749 §5.1: the body of a successful token response.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TokenBody {
    pub access_token: String,
    /// `Bearer`, or `DPoP` when bound.
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
    /// A Bearer refresh token is a new one (rotation); a DPoP-bound one is the same. None
    /// for a token exchange or a JWT bearer grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub session_id: String,
    /// RFC 8693 §2.2.1: the type of the token issued by a token exchange
    /// (`urn:ietf:params:oauth:token-type:access_token`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
}

/// `POST /v1/{org}/oauth/token`.
pub async fn token(state: &AppState, req: OAuthRequest<'_>) -> Result<TokenResponse, OAuthError> {
    let org = organization(state, req.org).await?;
    match req.params.get("grant_type") {
        None => Err(OAuthError::invalid_request("grant_type is required")),
        Some("client_credentials") => client_credentials::grant(state, &org, &req).await,
        Some("refresh_token") => refresh_token::grant(state, &org, &req).await,
        Some("authorization_code") => authorization_code::grant(state, &org, &req).await,
        Some(device::GRANT_TYPE) => device::token(state, &org, &req).await,
        Some(token_exchange::GRANT_TYPE) => token_exchange::grant(state, &org, &req).await,
        Some(jwt_bearer::GRANT_TYPE) => jwt_bearer::grant(state, &org, &req).await,
        Some(_) => Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            format!(
                "grant_type must be client_credentials, refresh_token, authorization_code, {}, {} or {}",
                device::GRANT_TYPE,
                token_exchange::GRANT_TYPE,
                jwt_bearer::GRANT_TYPE,
            ),
        )),
    }
}

/// The organization `slug`, from the directory cache (auth::cache).
async fn organization(
    state: &AppState,
    slug: &str,
) -> Result<std::sync::Arc<organization::Model>, OAuthError> {
    state
        .directory
        .org(&state.storage, slug)
        .await?
        .ok_or_else(|| OAuthError::invalid_request("no such organization"))
}

/// The requested `scope`, which must be within `allowed`; none requested: all of `allowed`.
fn narrow_scope(requested: Option<&str>, allowed: &str) -> Result<String, OAuthError> {
    let allowed = Scopes::parse_list(allowed).unwrap_or_default();
    let Some(requested) = requested else {
        return Ok(allowed.to_string());
    };
    let requested =
        Scopes::parse_list(requested).map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e.0))?;
    if let Some(extra) = requested.iter().find(|s| !allowed.contains(s)) {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            format!("the scope `{extra}` is not granted to this client"),
        ));
    }
    Ok(requested.to_string())
}

/// The DPoP binding of a token request (see [`session::binding_proof`]).
async fn proof(
    state: &AppState,
    org: &organization::Model,
    req: &OAuthRequest<'_>,
    bound: Option<&str>,
) -> Result<Option<String>, OAuthError> {
    Ok(session::binding_proof(state, org, req.dpop, req.path, bound).await?)
}

/// Writes the outcome of a grant to the audit log: `event` is the failure; on success its
/// action becomes `succeeded`. A failure before any credential was verified (no key id in
/// `event`) is counted, not stored; a throttled one is neither.
fn record<T>(
    state: &AppState,
    mut event: AuditEvent,
    succeeded: &'static str,
    result: &Result<T, OAuthError>,
) {
    match result {
        Ok(_) => {
            event.action = succeeded;
            event.success = true;
            state.audit.record(event);
        }
        Err(err) if err.code == ErrorCode::RateLimited => {}
        Err(_) if event.actor_key_id.is_none() => state.audit.count_unrecorded(),
        Err(err) => {
            event.reason = Some(err.code.as_str().to_owned());
            state.audit.record_failure(event);
        }
    }
}

fn token_body(
    access: &crate::auth::session::AccessToken,
    scope: &str,
    refresh_token: &str,
    session_id: &str,
) -> TokenBody {
    TokenBody {
        access_token: access.token.clone(),
        token_type: access.token_type.as_str(),
        expires_in: access.expires_in,
        scope: scope.to_owned(),
        refresh_token: Some(refresh_token.to_owned()),
        session_id: session_id.to_owned(),
        issued_token_type: None,
    }
}

/// The body of a grant that issues an access token alone (token exchange, JWT bearer).
fn single_token_body(
    access: &crate::auth::session::AccessToken,
    session: &entity::session::Model,
    issued_token_type: Option<&'static str>,
) -> TokenBody {
    TokenBody {
        access_token: access.token.clone(),
        token_type: access.token_type.as_str(),
        expires_in: access.expires_in,
        scope: session.scope.clone(),
        refresh_token: None,
        session_id: session.id.clone(),
        issued_token_type,
    }
}
