//! `grant_type=refresh_token` (RFC 6749 §6). Bearer refresh tokens rotate: each is used
//! once, and presenting a used one again ends the whole session (reuse detection, RFC 6819
//! §5.2.2.3). DPoP-bound refresh tokens need a proof by the bound key and do not rotate
//! (RFC 9449 §5): the same value is returned.

use entity::organization;

use super::{
    OAuthError, OAuthRequest, TokenResponse, client, narrow_scope, proof, record, token_body,
};
use crate::audit::AuditEvent;
use crate::auth::session;
use crate::keys::refresh_token::PlainRefreshToken;
use crate::state::AppState;
use crate::storage;

pub(super) async fn grant(
    state: &AppState,
    org: &organization::Model,
    req: &OAuthRequest<'_>,
) -> Result<TokenResponse, OAuthError> {
    let mut event = AuditEvent {
        org_id: Some(org.id.clone()),
        action: "token.refresh.failed",
        target_type: Some("session"),
        meta: req.meta.clone(),
        ..AuditEvent::default()
    };
    let result = run(state, org, req, &mut event).await;
    record(state, event, "token.refresh.succeeded", &result);
    result
}

async fn run(
    state: &AppState,
    org: &organization::Model,
    req: &OAuthRequest<'_>,
    event: &mut AuditEvent,
) -> Result<TokenResponse, OAuthError> {
    let text = req
        .params
        .get("refresh_token")
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    // The refresh token is the credential; a client that authenticates anyway must be the
    // session's own.
    let client = match client::presented(req.authorization, &req.params)? {
        Some(presented) => {
            Some(client::authenticate(state, org, &presented, req.meta.ip.as_deref()).await?)
        }
        None => None,
    };
    let unknown = || OAuthError::invalid_grant("the refresh token is invalid, expired or revoked");
    let plain = PlainRefreshToken::parse(text).ok_or_else(unknown)?;
    let digest = plain.digest(&state.pepper);
    let stored = storage::refresh_tokens::by_digest(&state.storage, &digest.0)
        .await?
        .filter(|t| digest.matches(&t.digest))
        .ok_or_else(unknown)?;
    let now = state.clock.now();
    let session = storage::sessions::get(&state.storage, &org.id, &stored.session_id)
        .await?
        .ok_or_else(unknown)?;
    event.target_id = Some(session.id.clone());
    event.actor_key_id = Some(session.api_key_id.clone());
    if session.revoked_at.is_some_and(|t| t <= now)
        || session.expires_at <= now
        || stored.expires_at <= now
    {
        return Err(unknown());
    }
    if client
        .as_ref()
        .is_some_and(|c| c.key.id != session.api_key_id)
    {
        return Err(OAuthError::invalid_grant(
            "the refresh token was issued to another client",
        ));
    }
    let key = storage::api_keys::get(&state.storage, &org.id, &session.api_key_id)
        .await?
        .filter(|k| k.revoked_at.is_none_or(|t| t > now) && k.expires_at > now)
        .ok_or_else(|| {
            OAuthError::invalid_grant("the API key of this session is no longer valid")
        })?;
    storage::users::get(&state.storage, &org.id, &session.user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| OAuthError::invalid_grant("the user of this session is disabled"))?;
    let scope = narrow_scope(req.params.get("scope"), &session.scope)?;

    let refresh_token = match &session.dpop_jkt {
        Some(jkt) => {
            proof(state, org, req, Some(jkt)).await?;
            storage::sessions::refreshed(&state.storage, &session.id, None, now).await?;
            plain.expose().to_owned()
        }
        None => {
            // Reuse detection: a used token (or losing a race for an unused one) ends the
            // session, since a thief and the client now both hold a token of it.
            let first_use = stored.used_at.is_none()
                && storage::refresh_tokens::consume(&state.storage, &stored.id, now).await?;
            if !first_use {
                storage::sessions::revoke(&state.storage, &org.id, &session.id, now).await?;
                state.revocations.forget_session(&session.id);
                tracing::warn!(session_id = %session.id, "refresh token reused; session revoked");
                return Err(OAuthError::invalid_grant(
                    "the refresh token was already used; the session has been revoked",
                ));
            }
            let (next, row) = session::new_refresh_token(state, &session, now);
            storage::sessions::refreshed(&state.storage, &session.id, Some(row), now).await?;
            next.expose().to_owned()
        }
    };

    let access = session::access_token(state, org, &key, &session, &scope, now).await?;
    Ok(TokenResponse {
        body: token_body(&access, &scope, &refresh_token, &session.id),
        dpop_nonce: state.dpop_policy(org).nonce,
    })
}
