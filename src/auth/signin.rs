//! `signin_with_api_key` (README, "Quick start"): an API key credential in, a session, a refresh
//! token and an access token out.
//!
//! Checks run cheapest first: headers present, secret well-formed (checksum: no database
//! yet), the brute-force throttle of the key id and the client IP, organization, key by
//! digest (compared in constant time) with its id and organization, revocation, expiry, the
//! owner, acting for another user, and only then the DPoP proof (so a caller without a
//! valid key cannot fill the replay store). Unknown key, wrong secret, key of another
//! organization and unknown or disabled user all answer the same `invalid_api_key`, so a
//! caller cannot tell which part was wrong.
//!
//! The audit log gets a `signin.failed` row only for a key id that exists in the
//! organization (its ids come from that record); other failures are counted, not stored.

use chrono::{DateTime, Utc};

use super::TokenType;
use super::credential::{self, CredentialError, KeyHolder};
use super::dpop::DpopError;
use super::session::{self, NewSession, SessionError};
use crate::audit::{AuditEvent, RequestMeta};
use crate::ids::is_id;
use crate::keys::api_key::PlainApiKey;
use crate::keys::refresh_token::PlainRefreshToken;
use crate::resources::{self, TargetError};
use crate::state::AppState;
use crate::storage::sessions::Refusal;
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
    /// `?resource=` values (RFC 8707): the protected resources the token is for.
    pub resources: &'a [String],
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
    #[error("the API key is pending an administrator's approval")]
    PendingApproval,
    #[error("too many failed sign-ins; retry after {retry_after} seconds")]
    RateLimited { retry_after: u64 },
    /// The key's issuance limit (README, "Limits").
    #[error("too many tokens issued for this API key; retry after {retry_after} seconds")]
    IssuanceLimited { retry_after: u64 },
    #[error(transparent)]
    Dpop(#[from] DpopError),
    /// `invalid_target` or `invalid_scope` (RFC 8707).
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Session(SessionError),
}

impl From<SessionError> for SigninError {
    fn from(err: SessionError) -> Self {
        match err {
            // The commit saw what a fresh read would have (docs/security.md, "Speed never
            // buys a weaker check").
            SessionError::Refused(Refusal::KeyRevoked) => SigninError::RevokedApiKey,
            SessionError::Refused(Refusal::UserGone) => SigninError::InvalidApiKey,
            SessionError::Refused(Refusal::ActingDenied) => SigninError::PermissionDenied,
            SessionError::RateLimited(limited) => SigninError::IssuanceLimited {
                retry_after: limited.retry_after,
            },
            err => SigninError::Session(err),
        }
    }
}

impl From<CredentialError> for SigninError {
    fn from(err: CredentialError) -> Self {
        match err {
            CredentialError::Invalid => SigninError::InvalidApiKey,
            CredentialError::Expired => SigninError::ExpiredApiKey,
            CredentialError::Revoked => SigninError::RevokedApiKey,
            CredentialError::PermissionDenied => SigninError::PermissionDenied,
            CredentialError::Pending => SigninError::PendingApproval,
            CredentialError::Storage(e) => SigninError::Storage(e),
        }
    }
}

impl SigninError {
    /// The error code (README, "Errors") (also the audit reason).
    pub fn code(&self) -> &'static str {
        match self {
            SigninError::MissingApiKey => "missing_api_key",
            SigninError::MissingUserId => "missing_user_id",
            SigninError::UnknownOrganization => "unknown_organization",
            SigninError::InvalidApiKey => "invalid_api_key",
            SigninError::ExpiredApiKey => "expired_api_key",
            SigninError::RevokedApiKey => "revoked_api_key",
            SigninError::PermissionDenied => "permission_denied",
            SigninError::PendingApproval => "pending_approval",
            SigninError::RateLimited { .. } | SigninError::IssuanceLimited { .. } => "rate_limited",
            SigninError::Dpop(DpopError::UseNonce) => "use_dpop_nonce",
            SigninError::Dpop(DpopError::ReplayStoreUnavailable) => "temporarily_unavailable",
            SigninError::Dpop(_) => "invalid_dpop_proof",
            SigninError::Target(e) => e.code(),
            SigninError::Storage(_) | SigninError::Session(_) => "internal_error",
        }
    }
}

fn present(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// What a sign-in established before it ended, for the audit log and the throttle.
#[derive(Default)]
struct Trail {
    org_id: Option<String>,
    /// The key (id and owner), once its secret matched.
    key: Option<(String, String)>,
    /// The user signed in as, once checked.
    subject: Option<String>,
    /// A presented key id to look up for the failure's record: the secret matched a
    /// revoked or expired key, or (`guessed`) it matched nothing.
    named: Option<String>,
    /// A well-formed secret that matched nothing: a possible guess.
    guessed: bool,
}

/// Signs in; counts a failure that could be a guess; writes the outcome to the audit log.
pub async fn signin(state: &AppState, req: SigninRequest<'_>) -> Result<SigninGrant, SigninError> {
    let mut trail = Trail::default();
    let result = run(state, &req, &mut trail).await;
    let ip = req.meta.ip.as_deref();
    if trail.guessed {
        state.throttle.fail(trail.named.as_deref(), ip);
    }
    let mut event = AuditEvent {
        org_id: trail.org_id.clone(),
        action: "signin.failed",
        target_type: Some("user"),
        target_id: trail.subject.clone(),
        meta: req.meta.clone(),
        ..AuditEvent::default()
    };
    match &result {
        Ok(_) => {
            event.action = "signin.succeeded";
            event.success = true;
            (event.actor_key_id, event.actor_user_id) = trail.key.clone().unzip();
            state.audit.record(event);
        }
        // Counted in metrics, not written one by one.
        Err(SigninError::RateLimited { .. } | SigninError::IssuanceLimited { .. }) => {}
        Err(err) => {
            event.reason = Some(err.code().to_owned());
            let key = match (&trail.key, &trail.named, &trail.org_id) {
                (Some(key), _, _) => Some(key.clone()),
                // A key id that exists here (a wrong secret, or a revoked or expired key):
                // that key is the record.
                (None, Some(key_id), Some(org_id)) => {
                    storage::api_keys::get(&state.storage, org_id, key_id)
                        .await
                        .ok()
                        .flatten()
                        .map(|k| (k.id, k.user_id))
                }
                _ => None,
            };
            match key {
                Some((key_id, owner)) => {
                    event.actor_key_id = Some(key_id);
                    event.actor_user_id = Some(owner);
                    state.audit.record_failure(event);
                }
                None => state.audit.count_unrecorded(),
            }
        }
    }
    result
}

async fn run(
    state: &AppState,
    req: &SigninRequest<'_>,
    trail: &mut Trail,
) -> Result<SigninGrant, SigninError> {
    let (Some(secret), Some(key_id)) = (present(req.api_key), present(req.api_key_id)) else {
        return Err(SigninError::MissingApiKey);
    };
    let user_id = present(req.user_id).ok_or(SigninError::MissingUserId)?;
    let slug = Slug::parse(req.org).map_err(|_| SigninError::UnknownOrganization)?;
    // Malformed secrets and ids fail here, before any query.
    let secret = PlainApiKey::parse(secret).map_err(|_| SigninError::InvalidApiKey)?;
    if !is_id(key_id, "key") {
        return Err(SigninError::InvalidApiKey);
    }
    state
        .throttle
        .check(Some(key_id), req.meta.ip.as_deref())
        .map_err(|t| SigninError::RateLimited {
            retry_after: t.retry_after,
        })?;

    let org = state
        .directory
        .org(&state.storage, slug.as_str())
        .await?
        .ok_or(SigninError::UnknownOrganization)?;
    trail.org_id = Some(org.id.clone());
    let policy = state.dpop_policy(&org);

    let holder: KeyHolder = match credential::check_key(state, &org, key_id, &secret).await {
        Ok(holder) => holder,
        Err(CredentialError::Invalid) => {
            trail.named = Some(key_id.to_owned());
            trail.guessed = true;
            return Err(SigninError::InvalidApiKey);
        }
        Err(
            err @ (CredentialError::Revoked | CredentialError::Expired | CredentialError::Pending),
        ) => {
            trail.named = Some(key_id.to_owned());
            return Err(err.into());
        }
        Err(err) => return Err(err.into()),
    };
    trail.key = Some((holder.key.id.clone(), holder.owner.id.clone()));
    let (subject, actor) =
        credential::subject(state, &org, &holder, Some(user_id), &req.meta).await?;
    trail.subject = Some(subject.id.clone());
    // RFC 8707: checked only once the credential was, so a caller without a valid key
    // learns nothing about the organization's resources.
    let target = resources::for_grant(state, &org, &holder.key, req.resources, None).await?;
    // The proof is checked (and its `jti` remembered) only for a valid credential.
    let dpop_jkt = session::binding_proof(state, &org, req.dpop, req.path, None).await?;

    let opened = session::open(
        state,
        NewSession {
            org: &org,
            client: session::SessionClient::Key(&holder.key),
            user_id: subject.id,
            actor,
            dpop_jkt,
            scope: target
                .as_ref()
                .map_or_else(|| holder.key.scopes.clone(), |t| t.scope.clone()),
            target,
            ip: req.meta.ip.clone(),
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
