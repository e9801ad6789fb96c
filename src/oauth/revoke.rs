//! `POST /v1/{org}/oauth/revoke` (RFC 7009). A refresh token ends its session; an access
//! token is revoked by `jti` until its expiry. Only tokens of the client's own key may be
//! revoked (§2.1); an unknown or already invalid token answers 200 all the same (§2.2).
//! A browser client revokes its own tokens too: a public one names itself with `client_id`
//! (RFC 7009 §2.1), a confidential one authenticates.

use super::client::Identified;
use super::{ErrorCode, OAuthError, OAuthRequest, client, organization};
use crate::audit::AuditEvent;
use crate::auth::access::verify_issued_for_org;
use crate::keys::refresh_token::PlainRefreshToken;
use crate::resources;
use crate::state::AppState;
use crate::storage;

pub async fn revoke(state: &AppState, req: OAuthRequest<'_>) -> Result<(), OAuthError> {
    let org = organization(state, req.org).await?;
    let ip = req.meta.ip.as_deref();
    let (client_id, owner) = if client::names_browser_client(req.authorization, &req.params)? {
        match client::identify(state, &org, req.authorization, &req.params, ip).await? {
            Identified::Client(c) => (c.client_id, None),
            Identified::Key(holder) => (holder.key.id, Some(holder.owner.id)),
        }
    } else {
        let holder = client::require(state, &org, req.authorization, &req.params, ip).await?;
        (holder.key.id, Some(holder.owner.id))
    };
    let token = req
        .params
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let now = state.clock.now();
    let not_yours = || {
        OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "the token was not issued to this client",
        )
    };
    let mut event = AuditEvent {
        org_id: Some(org.id.clone()),
        action: "token.revoked",
        success: true,
        actor_user_id: owner,
        actor_key_id: Some(client_id.clone()),
        meta: req.meta.clone(),
        ..AuditEvent::default()
    };

    if let Some(plain) = PlainRefreshToken::parse(token) {
        let digest = plain.digest(&state.pepper);
        let Some(stored) = storage::refresh_tokens::by_digest(&state.storage, &digest.0).await?
        else {
            return Ok(());
        };
        let Some(session) =
            storage::sessions::get(&state.storage, &org.id, &stored.session_id).await?
        else {
            return Ok(());
        };
        if session.api_key_id != client_id {
            return Err(not_yours());
        }
        storage::sessions::revoke(&state.storage, &org.id, &session.id, now).await?;
        state.revocations.forget_session(&session.id);
        event.target_type = Some("session");
        event.target_id = Some(session.id);
        state.audit.record(event);
        return Ok(());
    }

    let Ok(claims) = verify_issued_for_org(state, &org.slug, token).await else {
        return Ok(());
    };
    if !resources::audience_issued(state, &org, &claims.aud).await? {
        return Ok(());
    }
    if claims.client_id != client_id {
        return Err(not_yours());
    }
    storage::revoked_tokens::insert(
        &state.storage,
        entity::revoked_token::Model {
            jti: claims.jti.clone(),
            org_id: org.id.clone(),
            expires_at: chrono::DateTime::from_timestamp(claims.exp, 0).unwrap_or(now),
            revoked_at: now,
        },
    )
    .await?;
    state.revocations.revoked(&claims.jti);
    event.target_type = Some("access_token");
    event.target_id = Some(claims.jti);
    state.audit.record(event);
    Ok(())
}
