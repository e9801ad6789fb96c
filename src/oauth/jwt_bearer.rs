//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523 §2.1; README,
//! "Delegation"): a workload presents a token its platform signed (a Kubernetes
//! service-account token, a CI OIDC token, a SPIFFE JWT-SVID) as `assertion` and gets a
//! keygate access token for the user whose `external_subject` the token names, with no
//! stored secret. Only issuers the organization trusts with `allow_jwt_bearer` qualify.
//!
//! Checks, in order: client authentication when presented (optional, RFC 7523 §3.1; a
//! client that authenticates must be the mapped user's key); `assertion` present; its
//! issuer is trusted with `allow_jwt_bearer`; every check of a trusted issuer's token
//! (`auth::federation`: alg allow-list, signature, `iss`, `aud` = the registered audience,
//! `exp`, `nbf`, `iat`, the subject maps to an active user); a `jti`, when present, used
//! once (the replay store, failing closed). The token gets no refresh token and ends no
//! later than the assertion.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::organization;
use serde_json::Value;

use super::{
    ErrorCode, OAuthError, OAuthRequest, TokenResponse, client, narrow_scope, proof, record,
    single_token_body,
};
use crate::admin::policy::grantable;
use crate::audit::AuditEvent;
use crate::auth::credential::KeyHolder;
use crate::auth::dpop::replay_key;
use crate::auth::federation::{self, FederationError};
use crate::auth::session::{self, Issued, NewSession, SessionClient};
use crate::resources;
use crate::state::AppState;
use crate::storage;
use crate::types::{KNOWN_SCOPES, Role};

/// RFC 7523 §2.1.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The longest `jti` remembered.
const MAX_JTI: usize = 256;

pub(super) async fn grant(
    state: &AppState,
    org: &organization::Model,
    req: &OAuthRequest<'_>,
) -> Result<TokenResponse, OAuthError> {
    let mut event = AuditEvent {
        org_id: Some(org.id.clone()),
        action: "token.jwt_bearer.failed",
        target_type: Some("user"),
        meta: req.meta.clone(),
        ..AuditEvent::default()
    };
    let result = run(state, org, req, &mut event).await;
    record(state, event, "token.jwt_bearer.succeeded", &result);
    result
}

fn federation_error(err: FederationError) -> OAuthError {
    match err {
        FederationError::Storage(e) => e.into(),
        other => OAuthError::invalid_grant(format!("the assertion is refused: {other}")),
    }
}

async fn run(
    state: &AppState,
    org: &organization::Model,
    req: &OAuthRequest<'_>,
    event: &mut AuditEvent,
) -> Result<TokenResponse, OAuthError> {
    // RFC 7523 §3.1: client authentication is optional; when presented it must succeed.
    let holder: Option<KeyHolder> = match client::presented(req.authorization, &req.params)? {
        Some(presented) => {
            Some(client::authenticate(state, org, &presented, req.meta.ip.as_deref()).await?)
        }
        None => None,
    };
    if let Some(holder) = &holder {
        event.actor_key_id = Some(holder.key.id.clone());
        event.actor_user_id = Some(holder.owner.id.clone());
    }
    let assertion = req
        .params
        .get("assertion")
        .ok_or_else(|| OAuthError::invalid_request("assertion is required"))?;
    let iss = federation::unverified_issuer(assertion)
        .ok_or_else(|| OAuthError::invalid_grant("the assertion is not a JWT with an `iss`"))?;
    let issuer = storage::trusted_issuers::by_issuer(&state.storage, &org.id, &iss)
        .await?
        .filter(|i| i.allow_jwt_bearer)
        .ok_or_else(|| {
            OAuthError::invalid_grant(
                "this organization accepts no JWT bearer assertions from the assertion's issuer",
            )
        })?;
    let now = state.clock.now();
    let leeway = state.settings.tokens.leeway;
    let (user, claims) = state
        .federation
        .verify_claims(&state.storage, org, &issuer, assertion, now, leeway)
        .await
        .map_err(federation_error)?;
    if let Some(holder) = &holder
        && holder.owner.id != user.id
    {
        return Err(OAuthError::invalid_grant(
            "the assertion's subject is not the authenticated client's user",
        ));
    }
    // From here the subject is verified: its id may be written to the organization's log.
    event.actor_user_id = Some(user.id.clone());
    event.target_id = Some(user.id.clone());
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    single_use(state, &issuer.id, &claims, exp, now).await?;

    let requested_scope = req.params.get("scope");
    let requested = req.params.get_all("resource");
    let role: Role = user
        .role
        .parse()
        .map_err(|_| OAuthError::invalid_grant("the assertion's user has no usable role"))?;
    let (target, scope) = match &holder {
        Some(holder) => {
            let target =
                resources::for_grant(state, org, &holder.key, requested, requested_scope).await?;
            let scope = match &target {
                Some(t) => t.scope.clone(),
                None => narrow_scope(requested_scope, &holder.key.scopes)?,
            };
            (target, scope)
        }
        None => {
            // No key bounds the scopes: the user's role does, as for a person's approval.
            let target =
                resources::for_approval(state, org, requested, requested_scope, |_| true).await?;
            let scope = match &target {
                Some(t) => t.scope.clone(),
                None => {
                    let usable: Vec<&str> = KNOWN_SCOPES
                        .iter()
                        .copied()
                        .filter(|s| grantable(role, s))
                        .collect();
                    narrow_scope(requested_scope, &usable.join(" "))?
                }
            };
            (target, scope)
        }
    };
    let dpop_jkt = proof(state, org, req, None).await?;
    let not_after = DateTime::<Utc>::from_timestamp(exp, 0).unwrap_or(now);
    let client = match &holder {
        Some(holder) => SessionClient::Key(&holder.key),
        None => SessionClient::Workload(&issuer.id),
    };
    let (opened, access) = session::open_single(
        state,
        NewSession {
            org,
            client,
            user_id: user.id.clone(),
            actor: None,
            dpop_jkt,
            scope,
            target,
            ip: req.meta.ip.clone(),
        },
        Issued {
            parent_session_id: None,
            actor_session_id: None,
            act: None,
            may_act: None,
            not_after,
        },
    )
    .await?;
    Ok(TokenResponse {
        body: single_token_body(&access, &opened, None),
        dpop_nonce: state.dpop_policy(org).nonce,
    })
}

/// RFC 7523 §3 item 7: an assertion with a `jti` is accepted once, remembered in the replay
/// store while its `exp` (with the leeway) still admits it; a store that cannot remember
/// refuses (fail closed).
async fn single_use(
    state: &AppState,
    issuer_id: &str,
    claims: &Value,
    exp: i64,
    now: DateTime<Utc>,
) -> Result<(), OAuthError> {
    let Some(jti) = claims.get("jti") else {
        return Ok(());
    };
    let jti = jti
        .as_str()
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI)
        .ok_or_else(|| OAuthError::invalid_grant("the assertion's jti is not a usable string"))?;
    let leeway = i64::try_from(state.settings.tokens.leeway.as_secs()).unwrap_or(i64::MAX);
    let left =
        u64::try_from(exp.saturating_add(leeway).saturating_sub(now.timestamp())).unwrap_or(0);
    let ttl = Duration::from_secs(left)
        .saturating_add(state.settings.dpop.clock_skew)
        .saturating_add(Duration::from_secs(1));
    let key = replay_key(&format!("jwt-bearer:{issuer_id}"), jti);
    let fresh = state.dpop.remember(key, ttl).await.map_err(|err| {
        tracing::warn!(error = %err, "JWT bearer assertion refused: the replay store cannot record it");
        OAuthError {
            retry_after: Some(u64::from(crate::auth::dpop::REPLAY_RETRY_AFTER_SECS)),
            ..OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "the replay store cannot record this assertion now; retry later",
            )
        }
    })?;
    if !fresh {
        return Err(OAuthError::invalid_grant(
            "the assertion has been used before (its jti)",
        ));
    }
    Ok(())
}
