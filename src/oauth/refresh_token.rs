//! `grant_type=refresh_token` (RFC 6749 §6). Bearer refresh tokens rotate: each is used
//! once, and presenting a used one again ends the whole session (reuse detection, RFC 6819
//! §5.2.2.3), except within `tokens.refresh_reuse_grace` of its rotation, where a client
//! that lost the response gets the same new refresh token again. DPoP-bound refresh tokens
//! need a proof by the bound key and do not rotate (RFC 9449 §5): the same value is
//! returned. Every refresh re-checks, as stored now, the key, its owner, the subject and,
//! for an acting session, the actor's right to act.
//!
//! A session of a browser client (authorization code, device flow) is refreshed by that
//! client only (RFC 6749 §6): a confidential client authenticates as it registered, a
//! public one sends its `client_id`. The refresh re-checks that the client is still known
//! and that the session's user is enabled and not deleted.

use chrono::{DateTime, Utc};
use entity::{api_key, organization, refresh_token, session as session_entity};

use super::client::Identified;
use super::{
    ErrorCode, OAuthError, OAuthRequest, TokenResponse, client, narrow_scope, proof, record,
    token_body,
};
use crate::audit::AuditEvent;
use crate::auth::credential::KeyHolder;
use crate::auth::session::{self, SessionClient};
use crate::clients::{Client, ClientError};
use crate::keys::refresh_token::PlainRefreshToken;
use crate::resources;
use crate::state::AppState;
use crate::storage;
use crate::types::Role;

/// The client a request presented: an API key client, or a browser client.
enum Presenter {
    Key(Box<KeyHolder>),
    Browser(Client),
}

/// What a refresh re-checked its session's client to be, as stored now.
pub(super) enum Holder {
    Key(Box<api_key::Model>),
    Browser(Client),
}

impl Holder {
    fn session_client(&self) -> SessionClient<'_> {
        match self {
            Holder::Key(key) => SessionClient::Key(key),
            Holder::Browser(client) => SessionClient::Browser(&client.client_id),
        }
    }

    fn key(&self) -> Option<&api_key::Model> {
        match self {
            Holder::Key(key) => Some(key),
            Holder::Browser(_) => None,
        }
    }
}

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
    // session's own. A browser client always names itself (see the module's doc).
    let client = presenter(state, org, req).await?;
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
    let other_client =
        || OAuthError::invalid_grant("the refresh token was issued to another client");
    match (&client, session::is_key_client(&session)) {
        (Some(Presenter::Key(holder)), true) if holder.key.id != session.api_key_id => {
            return Err(other_client());
        }
        (Some(Presenter::Key(_)) | None, true) => {}
        (Some(Presenter::Browser(c)), false) if c.client_id == session.api_key_id => {}
        (None, false) => {
            return Err(OAuthError::new(
                ErrorCode::InvalidClient,
                "this refresh token's client must identify itself (client_id, and its authentication when confidential)",
            )
            .with_basic(true));
        }
        _ => return Err(other_client()),
    }
    let holder = still_allowed(state, org, &session, now).await?;
    // RFC 8707 §2.2: `resource` may name a subset of the session's resources, never more;
    // checked before the refresh token is rotated, so a refused request does not use it.
    let requested_scope = req.params.get("scope");
    let target = resources::for_refresh(
        state,
        org,
        holder.key(),
        &session,
        req.params.get_all("resource"),
        requested_scope,
    )
    .await?;
    let scope = match &target {
        Some(target) => target.scope.clone(),
        None => narrow_scope(requested_scope, &session.scope)?,
    };

    // The key's issuance limit, before the refresh token is rotated: a refused refresh
    // leaves the token usable once `Retry-After` has passed.
    session::admit(state, holder.session_client()).await?;
    let refresh_token = match &session.dpop_jkt {
        Some(jkt) => {
            proof(state, org, req, Some(jkt)).await?;
            storage::sessions::refreshed(&state.storage, &session.id, now).await?;
            plain.expose().to_owned()
        }
        None => rotate(state, org, &session, &stored, &plain, now).await?,
    };

    let access = session::access_token(
        state,
        org,
        holder.session_client(),
        &session,
        &scope,
        target.as_ref(),
        now,
    )
    .await?;
    Ok(TokenResponse {
        body: token_body(&access, &scope, &refresh_token, &session.id),
        dpop_nonce: state.dpop_policy(org).nonce,
    })
}

/// The client the request presented, if any: a browser client (its `client_id` is not an
/// API key id) is identified by [`client::identify`]; other credentials authenticate an API
/// key client, as before browser clients existed.
async fn presenter(
    state: &AppState,
    org: &organization::Model,
    req: &OAuthRequest<'_>,
) -> Result<Option<Presenter>, OAuthError> {
    let ip = req.meta.ip.as_deref();
    if client::names_browser_client(req.authorization, &req.params)? {
        return Ok(Some(
            match client::identify(state, org, req.authorization, &req.params, ip).await? {
                Identified::Client(c) => Presenter::Browser(c),
                Identified::Key(holder) => Presenter::Key(holder),
            },
        ));
    }
    match client::presented(req.authorization, &req.params)? {
        Some(presented) => Ok(Some(Presenter::Key(Box::new(
            client::authenticate(state, org, &presented, ip).await?,
        )))),
        None => Ok(None),
    }
}

/// A user that may still hold a session: enabled and not deleted, with its stored role.
async fn active_role(
    state: &AppState,
    org: &organization::Model,
    user_id: &str,
) -> Result<Option<Role>, OAuthError> {
    Ok(storage::users::get(&state.storage, &org.id, user_id)
        .await?
        .filter(|u| !u.disabled && u.deleted_at.is_none())
        .and_then(|u| u.role.parse().ok()))
}

/// What a refresh re-checks as stored now (a change that bypassed session revocation is
/// still seen): the key is neither revoked nor expired, its owner and the session's subject
/// are enabled and not deleted, and an actor is the key's owner and may still act for the
/// subject (an owner or admin not outranked by the subject). For a browser client's
/// session: the client is still known and the subject enabled and not deleted.
pub(super) async fn still_allowed(
    state: &AppState,
    org: &organization::Model,
    session: &session_entity::Model,
    now: DateTime<Utc>,
) -> Result<Holder, OAuthError> {
    if !session::is_key_client(session) {
        return browser_still_allowed(state, org, session).await;
    }
    let key = storage::api_keys::get(&state.storage, &org.id, &session.api_key_id)
        .await?
        .filter(|k| k.revoked_at.is_none_or(|t| t > now) && k.expires_at > now)
        .ok_or_else(|| {
            OAuthError::invalid_grant("the API key of this session is no longer valid")
        })?;
    let owner = active_role(state, org, &key.user_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_grant("the owner of this session's key is disabled"))?;
    let subject = if session.user_id == key.user_id {
        owner
    } else {
        active_role(state, org, &session.user_id)
            .await?
            .ok_or_else(|| OAuthError::invalid_grant("the user of this session is disabled"))?
    };
    if let Some(actor) = &session.actor_user_id
        && (*actor != key.user_id || !owner.may_act_for(subject))
    {
        return Err(OAuthError::invalid_grant(
            "the actor of this session may no longer act for its user",
        ));
    }
    Ok(Holder::Key(Box::new(key)))
}

async fn browser_still_allowed(
    state: &AppState,
    org: &organization::Model,
    session: &session_entity::Model,
) -> Result<Holder, OAuthError> {
    let client = crate::clients::resolve(state, org, &session.api_key_id)
        .await
        .map_err(|e| match e {
            ClientError::Storage(e) => e.into(),
            _ => OAuthError::invalid_grant("the client of this session is no longer known"),
        })?;
    // Nobody acts for anyone in these sessions: the person approved for themselves.
    if session.actor_user_id.is_some() {
        return Err(OAuthError::invalid_grant(
            "this session cannot be refreshed",
        ));
    }
    active_role(state, org, &session.user_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_grant("the user of this session is disabled"))?;
    Ok(Holder::Browser(client))
}

/// Rotates a Bearer refresh token and returns its successor, or handles a reuse: within
/// the grace period after the rotation (and while the successor is unused) the successor
/// again, else the end of the session.
async fn rotate(
    state: &AppState,
    org: &organization::Model,
    session: &session_entity::Model,
    stored: &refresh_token::Model,
    plain: &PlainRefreshToken,
    now: DateTime<Utc>,
) -> Result<String, OAuthError> {
    let next = session::successor(&state.pepper, plain).ok_or_else(|| OAuthError {
        cause: Some("cannot derive the successor refresh token".into()),
        ..OAuthError::new(ErrorCode::ServerError, "an internal error occurred")
    })?;
    if stored.used_at.is_none() {
        let row = session::refresh_token_row(state, session, &next, now);
        if storage::sessions::rotate(&state.storage, &stored.id, row, now).await? {
            return Ok(next.expose().to_owned());
        }
    }
    // Used before, or just now by a concurrent request: when exactly?
    let used_at = match stored.used_at {
        Some(t) => Some(t),
        None => storage::refresh_tokens::get(&state.storage, &stored.id)
            .await?
            .and_then(|t| t.used_at),
    };
    if let Some(used_at) = used_at
        && within_grace(state, used_at, now)
        && successor_unused(state, session, &next).await?
    {
        tracing::info!(session_id = %session.id, "refresh token presented again within the reuse grace");
        return Ok(next.expose().to_owned());
    }
    // Reuse detection: a thief and the client now both hold a token of this session.
    storage::sessions::revoke(&state.storage, &org.id, &session.id, now).await?;
    state.revocations.forget_session(&session.id);
    tracing::warn!(session_id = %session.id, "refresh token reused; session revoked");
    crate::metrics::refresh_reuse_detected();
    Err(OAuthError::invalid_grant(
        "the refresh token was already used; the session has been revoked",
    ))
}

fn within_grace(state: &AppState, used_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    let grace = state.settings.tokens.refresh_reuse_grace;
    !grace.is_zero() && chrono::Duration::from_std(grace).is_ok_and(|grace| now - used_at <= grace)
}

/// Whether `next` is a stored, still unused refresh token of `session`.
async fn successor_unused(
    state: &AppState,
    session: &session_entity::Model,
    next: &PlainRefreshToken,
) -> Result<bool, OAuthError> {
    let digest = next.digest(&state.pepper);
    Ok(
        storage::refresh_tokens::by_digest(&state.storage, &digest.0)
            .await?
            .is_some_and(|t| {
                digest.matches(&t.digest) && t.session_id == session.id && t.used_at.is_none()
            }),
    )
}
