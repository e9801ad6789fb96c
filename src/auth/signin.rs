//! `signin_with_api_key` (DESIGN §5.1): an API key credential in, a session, a refresh
//! token and an access token out.
//!
//! Checks run cheapest first: headers present, secret well-formed (checksum: no database
//! yet), organization, key by digest (compared in constant time) with its id and
//! organization, revocation, expiry, the owner, then acting for another user. Unknown key,
//! wrong secret, key of another organization and unknown or disabled user all answer the
//! same `invalid_api_key`, so a caller cannot tell which part was wrong.

use chrono::{DateTime, Utc};

use super::TokenType;
use super::credential::{self, CredentialError};
use super::dpop::DpopError;
use super::session::{self, NewSession, SessionError};
use crate::audit::{AuditEvent, RequestMeta};
use crate::ids::is_id;
use crate::keys::api_key::PlainApiKey;
use crate::keys::refresh_token::PlainRefreshToken;
use crate::state::AppState;
use crate::storage::{self, StorageError};
use crate::types::Slug;

/// What the client presented. Header values are passed as received.
pub struct SigninRequest<'a> {
    pub org: &'a str,
    pub api_key: Option<&'a str>,
    pub api_key_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    /// Every `DPoP` header value (a valid proof binds the session and the token).
    pub dpop: &'a [&'a [u8]],
    /// The request path, for the proof's `htu`.
    pub path: &'a str,
    pub meta: RequestMeta,
}

/// A successful sign-in. `refresh_token` is the only copy of that secret.
pub struct SigninGrant {
    pub access_token: String,
    pub token_type: TokenType,
    pub expires_at: DateTime<Utc>,
    pub expires_in: i64,
    pub refresh_token: PlainRefreshToken,
    pub session_id: String,
    pub scope: String,
    /// Whether the organization demands server nonces (the response carries one).
    pub dpop_nonce: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SigninError {
    #[error("the x-api-key and x-api-key-id headers are required")]
    MissingApiKey,
    #[error("the x-user-id header is required")]
    MissingUserId,
    #[error("no such organization")]
    UnknownOrganization,
    #[error("the API key credential is invalid")]
    InvalidApiKey,
    #[error("the API key has expired")]
    ExpiredApiKey,
    #[error("the API key has been revoked")]
    RevokedApiKey,
    #[error("the API key's owner may not act for this user")]
    PermissionDenied,
    #[error(transparent)]
    Dpop(#[from] DpopError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Session(#[from] SessionError),
}

impl From<CredentialError> for SigninError {
    fn from(err: CredentialError) -> Self {
        match err {
            CredentialError::Invalid => SigninError::InvalidApiKey,
            CredentialError::Expired => SigninError::ExpiredApiKey,
            CredentialError::Revoked => SigninError::RevokedApiKey,
            CredentialError::PermissionDenied => SigninError::PermissionDenied,
            CredentialError::Storage(e) => SigninError::Storage(e),
        }
    }
}

impl SigninError {
    /// The DESIGN §6 error code (also the audit reason).
    pub fn code(&self) -> &'static str {
        match self {
            SigninError::MissingApiKey => "missing_api_key",
            SigninError::MissingUserId => "missing_user_id",
            SigninError::UnknownOrganization => "unknown_organization",
            SigninError::InvalidApiKey => "invalid_api_key",
            SigninError::ExpiredApiKey => "expired_api_key",
            SigninError::RevokedApiKey => "revoked_api_key",
            SigninError::PermissionDenied => "permission_denied",
            SigninError::Dpop(DpopError::UseNonce) => "use_dpop_nonce",
            SigninError::Dpop(DpopError::ReplayStoreUnavailable) => "internal_error",
            SigninError::Dpop(_) => "invalid_dpop_proof",
            SigninError::Storage(_) | SigninError::Session(_) => "internal_error",
        }
    }
}

fn present(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// Signs in and writes the outcome to the audit log.
pub async fn signin(state: &AppState, req: SigninRequest<'_>) -> Result<SigninGrant, SigninError> {
    let mut event = AuditEvent {
        org_slug: Some(req.org.to_owned()),
        action: "signin.failed",
        target_type: Some("user"),
        meta: req.meta.clone(),
        ..AuditEvent::default()
    };
    let result = run(state, &req, &mut event).await;
    match &result {
        Ok(grant) => {
            event.action = "signin.succeeded";
            event.success = true;
            event.target_id = event.target_id.take().or(Some(grant.session_id.clone()));
        }
        Err(err) => event.reason = Some(err.code().to_owned()),
    }
    state.audit.record(event);
    result
}

async fn run(
    state: &AppState,
    req: &SigninRequest<'_>,
    event: &mut AuditEvent,
) -> Result<SigninGrant, SigninError> {
    let (Some(secret), Some(key_id)) = (present(req.api_key), present(req.api_key_id)) else {
        return Err(SigninError::MissingApiKey);
    };
    let user_id = present(req.user_id).ok_or(SigninError::MissingUserId)?;
    if is_id(key_id, "key") {
        event.actor_key_id = Some(key_id.to_owned());
    }
    if is_id(user_id, "usr") {
        event.target_id = Some(user_id.to_owned());
    }
    let slug = Slug::parse(req.org).map_err(|_| SigninError::UnknownOrganization)?;
    // Malformed secrets and ids fail here, before any query.
    let secret = PlainApiKey::parse(secret).map_err(|_| SigninError::InvalidApiKey)?;
    if !is_id(key_id, "key") {
        return Err(SigninError::InvalidApiKey);
    }

    let org = storage::orgs::by_slug(&state.storage, slug.as_str())
        .await?
        .ok_or(SigninError::UnknownOrganization)?;
    event.org_id = Some(org.id.clone());
    let policy = state.dpop_policy(&org);
    let dpop_jkt = session::binding_proof(state, &org, req.dpop, req.path, None).await?;

    let holder = credential::check_key(state, &org, key_id, &secret).await?;
    event.actor_user_id = Some(holder.owner.id.clone());
    let (subject, actor) =
        credential::subject(state, &org, &holder, Some(user_id), &req.meta).await?;

    let opened = session::open(
        state,
        NewSession {
            org: &org,
            key: &holder.key,
            user_id: subject.id,
            actor,
            dpop_jkt,
            scope: holder.key.scopes.clone(),
        },
    )
    .await?;
    Ok(SigninGrant {
        access_token: opened.access.token,
        token_type: opened.access.token_type,
        expires_at: opened.access.expires_at,
        expires_in: opened.access.expires_in,
        refresh_token: opened.refresh_token,
        session_id: opened.session.id,
        scope: opened.session.scope,
        dpop_nonce: policy.nonce,
    })
}
