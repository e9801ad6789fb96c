//! `POST /v1/{org}/oauth/introspect` (RFC 7662). Any authenticated client of the
//! organization may introspect its tokens. An inactive token (expired, revoked, of another
//! organization, malformed) answers `{"active": false}` and nothing else (§2.2).

use serde_json::{Value, json};

use super::{OAuthError, OAuthRequest, client, organization};
use crate::auth::access::verify_issued_for_org;
use crate::keys::refresh_token::PlainRefreshToken;
use crate::resources;
use crate::state::AppState;
use crate::storage;

pub async fn introspect(state: &AppState, req: OAuthRequest<'_>) -> Result<Value, OAuthError> {
    let org = organization(state, req.org).await?;
    client::require(
        state,
        &org,
        req.authorization,
        &req.params,
        req.meta.ip.as_deref(),
    )
    .await?;
    let token = req
        .params
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let inactive = json!({ "active": false });
    let now = state.clock.now();

    if let Some(plain) = PlainRefreshToken::parse(token) {
        let digest = plain.digest(&state.pepper);
        let Some(stored) = storage::refresh_tokens::by_digest(&state.storage, &digest.0).await?
        else {
            return Ok(inactive);
        };
        let Some(session) =
            storage::sessions::get(&state.storage, &org.id, &stored.session_id).await?
        else {
            return Ok(inactive);
        };
        let live = session.revoked_at.is_none_or(|t| t > now)
            && session.expires_at > now
            && (session.dpop_jkt.is_some() || stored.used_at.is_none());
        if !live {
            return Ok(inactive);
        }
        // Active exactly when the refresh grant would take it: the same re-checks of the
        // key, its owner, the subject and the actor's right to act.
        match super::refresh_token::still_allowed(state, &org, &session, now).await {
            Ok(_) => {}
            Err(err) if err.code == super::ErrorCode::InvalidGrant => return Ok(inactive),
            Err(err) => return Err(err),
        }
        let mut body = json!({
            "active": true,
            "token_type": "refresh_token",
            "scope": session.scope,
            "client_id": session.api_key_id,
            "sub": session.user_id,
            "exp": session.expires_at.timestamp(),
            "iat": stored.created_at.timestamp(),
            "iss": state.issuer(&org.slug),
            "sid": session.id,
            "org": org.slug,
        });
        if let (Some(jkt), Some(map)) = (&session.dpop_jkt, body.as_object_mut()) {
            map.insert("cnf".into(), json!({ "jkt": jkt }));
        }
        if let (Some(actor), Some(map)) = (&session.actor_user_id, body.as_object_mut()) {
            map.insert("act".into(), json!({ "sub": actor }));
        }
        return Ok(body);
    }

    let Ok(claims) = verify_issued_for_org(state, &org.slug, token).await else {
        return Ok(inactive);
    };
    if claims.org != org.slug
        || !resources::audience_issued(state, &org, &claims.aud).await?
        || storage::revoked_tokens::is_revoked(&state.storage, &claims.jti).await?
    {
        return Ok(inactive);
    }
    // The token's session and every session up its delegation chain (RFC 8693).
    let session_live = state
        .revocations
        .chain_live(&state.storage, &org.id, &claims.sid, now, false)
        .await?;
    let user_enabled = storage::users::get(&state.storage, &org.id, &claims.sub)
        .await?
        .is_some_and(|u| !u.disabled);
    if !session_live || !user_enabled {
        return Ok(inactive);
    }
    let mut body = json!({
        "active": true,
        "token_type": if claims.cnf.is_some() { "DPoP" } else { "Bearer" },
        "scope": claims.scope,
        "client_id": claims.client_id,
        "sub": claims.sub,
        "exp": claims.exp,
        "iat": claims.iat,
        "iss": claims.iss,
        "aud": claims.aud,
        "jti": claims.jti,
        "sid": claims.sid,
        "org": claims.org,
    });
    if let Some(map) = body.as_object_mut() {
        if let Some(cnf) = &claims.cnf {
            map.insert("cnf".into(), json!({ "jkt": cnf.jkt }));
        }
        // RFC 8693 §4.1: the whole chain, nested.
        if let Some(act) = &claims.act {
            map.insert("act".into(), json!(act));
        }
        if let Some(may_act) = &claims.may_act {
            map.insert("may_act".into(), json!(may_act));
        }
    }
    Ok(body)
}
