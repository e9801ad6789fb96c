//! `grant_type=client_credentials` (RFC 6749 §4.4): an API key authenticates as the client;
//! `user_id` acts for another user (as at sign-in); `resource` (RFC 8707) names the
//! protected resources the token is for; `scope` narrows; a DPoP proof binds.

use entity::organization;

use super::{
    ErrorCode, OAuthError, OAuthRequest, TokenResponse, client, narrow_scope, proof, record,
    token_body,
};
use crate::audit::AuditEvent;
use crate::auth::credential::{self, CredentialError};
use crate::auth::session::{self, NewSession};
use crate::resources;
use crate::state::AppState;

pub(super) async fn grant(
    state: &AppState,
    org: &organization::Model,
    req: &OAuthRequest<'_>,
) -> Result<TokenResponse, OAuthError> {
    let mut event = AuditEvent {
        org_id: Some(org.id.clone()),
        action: "token.client_credentials.failed",
        target_type: Some("user"),
        meta: req.meta.clone(),
        ..AuditEvent::default()
    };
    let result = run(state, org, req, &mut event).await;
    record(state, event, "token.client_credentials.succeeded", &result);
    result
}

async fn run(
    state: &AppState,
    org: &organization::Model,
    req: &OAuthRequest<'_>,
    event: &mut AuditEvent,
) -> Result<TokenResponse, OAuthError> {
    let holder = client::require(
        state,
        org,
        req.authorization,
        &req.params,
        req.meta.ip.as_deref(),
    )
    .await?;
    event.actor_key_id = Some(holder.key.id.clone());
    event.actor_user_id = Some(holder.owner.id.clone());
    let user_id = req.params.get("user_id");
    let (subject, actor) = credential::subject(state, org, &holder, user_id, &req.meta)
        .await
        .map_err(|e| match e {
            CredentialError::Storage(e) => e.into(),
            CredentialError::PermissionDenied => OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "this client may not act for that user",
            ),
            _ => OAuthError::invalid_request("user_id names no active user of this organization"),
        })?;
    event.target_id = Some(subject.id.clone());
    // RFC 8707: with `resource`, the token is for those resources and their scopes.
    let requested_scope = req.params.get("scope");
    let target = resources::for_grant(
        state,
        org,
        &holder.key,
        req.params.get_all("resource"),
        requested_scope,
    )
    .await?;
    let scope = match &target {
        Some(target) => target.scope.clone(),
        None => narrow_scope(requested_scope, &holder.key.scopes)?,
    };
    let dpop_jkt = proof(state, org, req, None).await?;

    let opened = session::open(
        state,
        NewSession {
            org,
            client: session::SessionClient::Key(&holder.key),
            user_id: subject.id,
            actor,
            dpop_jkt,
            scope,
            target,
            ip: req.meta.ip.clone(),
        },
    )
    .await?;
    Ok(TokenResponse {
        body: token_body(
            &opened.access,
            &opened.session.scope,
            opened.refresh_token.expose(),
            &opened.session.id,
        ),
        dpop_nonce: state.dpop_policy(org).nonce,
    })
}
