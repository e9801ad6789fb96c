//! `signin_with_api_key` (DESIGN §5.1): an API key credential in, a session, a refresh
//! token and an access token out.
//!
//! Checks run cheapest first: headers present, secret well-formed (checksum: no database
//! yet), organization, key by digest (compared in constant time) with its id and
//! organization, revocation, expiry, the owner, then acting for another user. Unknown key,
//! wrong secret, key of another organization and unknown or disabled user all answer the
//! same `invalid_api_key`, so a caller cannot tell which part was wrong.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{api_key, organization, refresh_token, session, user};

use super::TokenType;
use super::dpop::{DpopError, ProofCheck};
use crate::audit::{AuditEvent, RequestMeta};
use crate::ids::{is_id, new_id};
use crate::keys::api_key::PlainApiKey;
use crate::keys::refresh_token::PlainRefreshToken;
use crate::state::{AppState, DpopPolicy};
use crate::storage::{self, StorageError};
use crate::tokens::{AccessClaims, Actor, Confirmation, IssueError, issue};
use crate::types::{Role, Slug};

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
    Issue(#[from] IssueError),
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
            SigninError::Storage(_) | SigninError::Issue(_) => "internal_error",
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
    let dpop_jkt = proof_key(state, req, policy).await?;

    let digest = secret.digest(&state.pepper);
    let key = storage::api_keys::by_digest(&state.storage, &digest.0)
        .await?
        .filter(|k| digest.matches(&k.digest) && k.id == key_id && k.org_id == org.id)
        .ok_or(SigninError::InvalidApiKey)?;

    let now = state.clock.now();
    if key.revoked_at.is_some_and(|t| t <= now) {
        return Err(SigninError::RevokedApiKey);
    }
    if key.expires_at <= now {
        return Err(SigninError::ExpiredApiKey);
    }

    let owner = active_user(state, &org, &key.user_id).await?;
    event.actor_user_id = Some(owner.id.clone());
    let (subject, actor) = if user_id == owner.id {
        (owner, None)
    } else {
        let owner_role: Role = owner
            .role
            .parse()
            .map_err(|_| SigninError::PermissionDenied)?;
        if !owner_role.is_admin() {
            return Err(SigninError::PermissionDenied);
        }
        let target = active_user(state, &org, user_id).await?;
        // An admin may act for admins, members and service accounts, never for an owner.
        if owner_role == Role::Admin && target.role == Role::Owner.as_str() {
            return Err(SigninError::PermissionDenied);
        }
        (target, Some(owner.id))
    };

    let mut grant = open_session(state, &org, &key, subject, actor, dpop_jkt, now).await?;
    grant.dpop_nonce = policy.nonce;
    Ok(grant)
}

/// The thumbprint of the request's DPoP proof, if it has one; when DPoP is required, a
/// request without one fails.
async fn proof_key(
    state: &AppState,
    req: &SigninRequest<'_>,
    policy: DpopPolicy,
) -> Result<Option<String>, SigninError> {
    if req.dpop.is_empty() && !policy.required {
        return Ok(None);
    }
    let proof = state
        .dpop
        .verify(&ProofCheck {
            headers: req.dpop,
            method: "POST",
            path: req.path,
            access_token: None,
            bound_jkt: None,
            require_nonce: policy.nonce,
            now: state.clock.now(),
        })
        .await?;
    Ok(Some(proof.jkt))
}

async fn active_user(
    state: &AppState,
    org: &organization::Model,
    user_id: &str,
) -> Result<user::Model, SigninError> {
    storage::users::get(&state.storage, &org.id, user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or(SigninError::InvalidApiKey)
}

fn add(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
}

async fn open_session(
    state: &AppState,
    org: &organization::Model,
    key: &api_key::Model,
    subject: user::Model,
    actor: Option<String>,
    dpop_jkt: Option<String>,
    now: DateTime<Utc>,
) -> Result<SigninGrant, SigninError> {
    let tokens = &state.settings.tokens;
    // Nothing outlives the key: not the session, not the access token.
    let key_end = key
        .revoked_at
        .map_or(key.expires_at, |r| r.min(key.expires_at));
    let session_end = add(now, tokens.refresh_ttl).min(key_end);
    let access_end = add(now, tokens.access_ttl).min(key_end);

    let session_id = new_id("ses");
    let refresh = PlainRefreshToken::generate();
    let session = session::Model {
        id: session_id.clone(),
        org_id: org.id.clone(),
        user_id: subject.id.clone(),
        api_key_id: key.id.clone(),
        actor_user_id: actor.clone(),
        dpop_jkt: dpop_jkt.clone(),
        scope: key.scopes.clone(),
        created_at: now,
        expires_at: session_end,
        revoked_at: None,
    };
    let refresh_row = refresh_token::Model {
        id: new_id("rtk"),
        session_id: session_id.clone(),
        digest: refresh.digest(&state.pepper).0,
        created_at: now,
        expires_at: session_end,
        used_at: None,
    };
    storage::sessions::open(&state.storage, session, refresh_row).await?;

    let issuer = state.issuer(&org.slug);
    let claims = AccessClaims {
        aud: state.audience(&issuer),
        iss: issuer,
        sub: subject.id,
        exp: access_end.timestamp(),
        iat: now.timestamp(),
        jti: new_id("at"),
        client_id: key.id.clone(),
        scope: key.scopes.clone(),
        sid: session_id.clone(),
        org: org.slug.clone(),
        cnf: dpop_jkt.map(|jkt| Confirmation { jkt }),
        act: actor.map(|sub| Actor { sub }),
    };
    let token_type = if claims.cnf.is_some() {
        TokenType::DPoP
    } else {
        TokenType::Bearer
    };
    let access_token = issue(&*state.signing_keys.current().await, &claims)?;
    Ok(SigninGrant {
        access_token,
        token_type,
        expires_at: access_end,
        expires_in: (access_end - now).num_seconds(),
        refresh_token: refresh,
        session_id,
        scope: key.scopes.clone(),
        dpop_nonce: false,
    })
}
