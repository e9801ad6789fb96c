//! Sessions and the tokens issued for them: opening a session (with its first refresh
//! token) and signing access tokens for it. Nothing outlives the API key: not the session,
//! not an access token.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{api_key, organization, refresh_token, session};

use super::TokenType;
use super::dpop::{DpopError, ProofCheck};
use crate::ids::new_id;
use crate::keys::refresh_token::PlainRefreshToken;
use crate::state::AppState;
use crate::storage::{self, StorageError};
use crate::tokens::{AccessClaims, Actor, Confirmation, IssueError, issue};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Issue(#[from] IssueError),
}

/// An access token just signed.
pub struct AccessToken {
    pub token: String,
    pub token_type: TokenType,
    pub expires_at: DateTime<Utc>,
    pub expires_in: i64,
}

/// A session just opened: its first access token and refresh token (the only copy).
pub struct Opened {
    pub session: session::Model,
    pub access: AccessToken,
    pub refresh_token: PlainRefreshToken,
}

/// What a new session is for.
pub struct NewSession<'a> {
    pub org: &'a organization::Model,
    pub key: &'a api_key::Model,
    pub user_id: String,
    pub actor: Option<String>,
    pub dpop_jkt: Option<String>,
    /// Space-separated scopes, already checked against the key's.
    pub scope: String,
}

/// `api_keys.last_used_at` is written at most this often per key (sampled, not per request).
const LAST_USED_PRECISION: chrono::Duration = chrono::Duration::minutes(1);

fn add(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
}

/// When the key stops working: its expiry, or a revocation already scheduled.
pub fn key_end(key: &api_key::Model) -> DateTime<Utc> {
    key.revoked_at
        .map_or(key.expires_at, |r| r.min(key.expires_at))
}

/// Stores a new refresh token of `session` and returns its only plain copy.
pub fn new_refresh_token(
    state: &AppState,
    session: &session::Model,
    now: DateTime<Utc>,
) -> (PlainRefreshToken, refresh_token::Model) {
    let plain = PlainRefreshToken::generate();
    let row = refresh_token::Model {
        id: new_id("rtk"),
        session_id: session.id.clone(),
        digest: plain.digest(&state.pepper).0,
        created_at: now,
        expires_at: session.expires_at,
        used_at: None,
    };
    (plain, row)
}

pub async fn open(state: &AppState, new: NewSession<'_>) -> Result<Opened, SessionError> {
    let now = state.clock.now();
    let session_end = add(now, state.settings.tokens.refresh_ttl).min(key_end(new.key));
    let session = session::Model {
        id: new_id("ses"),
        org_id: new.org.id.clone(),
        user_id: new.user_id,
        api_key_id: new.key.id.clone(),
        actor_user_id: new.actor,
        dpop_jkt: new.dpop_jkt,
        scope: new.scope,
        created_at: now,
        expires_at: session_end,
        revoked_at: None,
        refreshed_at: None,
    };
    let (refresh_token, row) = new_refresh_token(state, &session, now);
    let touch_key = new
        .key
        .last_used_at
        .is_none_or(|t| now - t >= LAST_USED_PRECISION);
    storage::sessions::open(&state.storage, session.clone(), row, touch_key).await?;
    let access = access_token(state, new.org, new.key, &session, &session.scope, now).await?;
    Ok(Opened {
        session,
        access,
        refresh_token,
    })
}

/// Signs an access token of `session` with `scope` (the session's, or narrower).
pub async fn access_token(
    state: &AppState,
    org: &organization::Model,
    key: &api_key::Model,
    session: &session::Model,
    scope: &str,
    now: DateTime<Utc>,
) -> Result<AccessToken, SessionError> {
    let expires_at = add(now, state.settings.tokens.access_ttl)
        .min(key_end(key))
        .min(session.expires_at);
    let issuer = state.issuer(&org.slug);
    let claims = AccessClaims {
        aud: state.audience(&issuer),
        iss: issuer,
        sub: session.user_id.clone(),
        exp: expires_at.timestamp(),
        iat: now.timestamp(),
        jti: new_id("at"),
        client_id: key.id.clone(),
        scope: scope.to_owned(),
        sid: session.id.clone(),
        org: org.slug.clone(),
        cnf: session.dpop_jkt.clone().map(|jkt| Confirmation { jkt }),
        act: session.actor_user_id.clone().map(|sub| Actor { sub }),
    };
    let token_type = if claims.cnf.is_some() {
        TokenType::DPoP
    } else {
        TokenType::Bearer
    };
    let token = issue(&*state.signing_keys.current().await, &claims)?;
    Ok(AccessToken {
        token,
        token_type,
        expires_at,
        expires_in: (expires_at - now).num_seconds(),
    })
}

/// The DPoP check of a token-issuing endpoint (sign-in, the token endpoint): the thumbprint
/// of the request's proof, if it has one. A proof is needed when the organization requires
/// DPoP or the session is already bound (`bound`: the key it must be signed with).
pub async fn binding_proof(
    state: &AppState,
    org: &organization::Model,
    headers: &[&[u8]],
    path: &str,
    bound: Option<&str>,
) -> Result<Option<String>, DpopError> {
    let policy = state.dpop_policy(org);
    if headers.is_empty() && bound.is_none() && !policy.required {
        return Ok(None);
    }
    let proof = state
        .dpop
        .verify(&ProofCheck {
            headers,
            method: "POST",
            path,
            access_token: None,
            bound_jkt: bound,
            require_nonce: policy.nonce,
            now: state.clock.now(),
        })
        .await?;
    Ok(Some(proof.jkt))
}
