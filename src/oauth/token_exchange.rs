//! `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693; README,
//! "Delegation"): an authenticated API key client presents a keygate access token of this
//! organization (`subject_token`) and gets a token for the same subject that is never wider:
//! its scope within the subject token's, its audience among the subject token's, its `exp`
//! no later, its `act` the current actor with the subject token's chain nested inside
//! (§4.1). No refresh token. The new token's session references the subject token's (and
//! the actor token's), so the end of any link ends it (`auth::revocation::chain_live`).
//!
//! Checks, in order: client authentication; the parameters (§2.1: `subject_token` and its
//! type, `actor_token` with its type, `requested_token_type`); the subject token (and the
//! actor token) verify for this organization, are not revoked, their session chains and
//! users are live (`invalid_grant`); the subject token's `may_act` names the current actor
//! (§4.4); the chain stays within `tokens.max_delegation_depth`; the resources and scope
//! narrow (`invalid_target`, `invalid_scope`); a DPoP-bound subject (or actor) token needs a
//! proof of its key, and the new token is bound to it.

use chrono::{DateTime, Utc};
use entity::organization;
use serde_json::json;

use super::{
    OAuthError, OAuthRequest, TokenResponse, client, narrow_scope, proof, record, single_token_body,
};
use crate::audit::AuditEvent;
use crate::auth::access::verify_issued_for_org;
use crate::auth::session::{self, Issued, NewSession};
use crate::resources;
use crate::state::AppState;
use crate::storage;
use crate::tokens::{AccessClaims, Actor, Audience};

/// RFC 8693 §2.1.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// RFC 8693 §3: the only token type keygate takes and issues.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The longest user id `may_act` may name.
const MAX_MAY_ACT: usize = 128;

pub(super) async fn grant(
    state: &AppState,
    org: &organization::Model,
    req: &OAuthRequest<'_>,
) -> Result<TokenResponse, OAuthError> {
    let mut event = AuditEvent {
        org_id: Some(org.id.clone()),
        action: "token.exchange.failed",
        target_type: Some("user"),
        meta: req.meta.clone(),
        ..AuditEvent::default()
    };
    let result = run(state, org, req, &mut event).await;
    record(state, event, "token.exchange.succeeded", &result);
    result
}

/// A required token and its type, which must be an access token's (RFC 8693 §2.1).
fn token_param<'a>(
    req: &'a OAuthRequest<'_>,
    name: &str,
    required: bool,
) -> Result<Option<&'a str>, OAuthError> {
    let type_name = format!("{name}_type");
    match (req.params.get(name), req.params.get(&type_name)) {
        (None, None) if !required => Ok(None),
        (None, _) => Err(OAuthError::invalid_request(format!("{name} is required"))),
        (Some(_), None) => Err(OAuthError::invalid_request(format!(
            "{type_name} is required with {name}"
        ))),
        (Some(_), Some(t)) if t != ACCESS_TOKEN_TYPE => Err(OAuthError::invalid_request(format!(
            "{type_name} must be {ACCESS_TOKEN_TYPE}: keygate exchanges its own access tokens"
        ))),
        (Some(token), Some(_)) => Ok(Some(token)),
    }
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

    let subject_token = token_param(req, "subject_token", true)?.unwrap_or_default();
    let actor_token = token_param(req, "actor_token", false)?;
    if let Some(requested) = req.params.get("requested_token_type")
        && requested != ACCESS_TOKEN_TYPE
    {
        return Err(OAuthError::invalid_request(format!(
            "requested_token_type must be {ACCESS_TOKEN_TYPE}"
        )));
    }
    let may_act = req.params.get("may_act");
    if may_act.is_some_and(|m| m.len() > MAX_MAY_ACT || m.chars().any(char::is_control)) {
        return Err(OAuthError::invalid_request("may_act must be a user id"));
    }

    let subject = live_token(state, org, subject_token, "subject_token").await?;
    event.target_id = Some(subject.sub.clone());
    let actor_claims = match actor_token {
        Some(token) => Some(live_token(state, org, token, "actor_token").await?),
        None => None,
    };
    // RFC 8693 §4.1: the current actor is the actor token's subject, else the client.
    let actor = actor_claims
        .as_ref()
        .map_or(holder.owner.id.as_str(), |a| a.sub.as_str());
    if let Some(allowed) = &subject.may_act
        && allowed.sub != actor
    {
        return Err(OAuthError::invalid_grant(
            "the subject token's may_act does not name this actor",
        ));
    }
    // A subject narrowing its own token adds no actor (it is not delegation).
    let act = if actor == subject.sub && subject.act.is_none() {
        None
    } else {
        Some(Actor {
            sub: actor.to_owned(),
            act: subject.act.clone().map(Box::new),
        })
    };
    let max = state.settings.tokens.max_delegation_depth;
    if act.as_ref().is_some_and(|a| a.depth() > max) {
        return Err(OAuthError::invalid_grant(format!(
            "the delegation chain would exceed {max} actors (tokens.max_delegation_depth)"
        )));
    }
    event.act = act.as_ref().map(|a| json!(a).to_string());

    let target = target(state, org, &subject, req).await?;
    let scope = match &target {
        Some(target) => target.scope.clone(),
        None => narrow_scope(req.params.get("scope"), &subject.scope)?,
    };

    // An exchange never turns a bound token into a bearer one: a proof of the bound key.
    let subject_jkt = subject.cnf.as_ref().map(|c| c.jkt.as_str());
    let actor_jkt = actor_claims
        .as_ref()
        .and_then(|a| a.cnf.as_ref())
        .map(|c| c.jkt.as_str());
    let bound = match (subject_jkt, actor_jkt) {
        (Some(s), Some(a)) if s != a => {
            return Err(OAuthError::invalid_request(
                "the subject and actor tokens are bound to different DPoP keys",
            ));
        }
        (s, a) => s.or(a),
    };
    let dpop_jkt = proof(state, org, req, bound).await?;

    let not_after = [Some(subject.exp), actor_claims.as_ref().map(|a| a.exp)]
        .into_iter()
        .flatten()
        .min()
        .and_then(|exp| DateTime::<Utc>::from_timestamp(exp, 0))
        .unwrap_or_else(|| state.clock.now());
    let (opened, access) = session::open_single(
        state,
        NewSession {
            org,
            client: session::SessionClient::Key(&holder.key),
            user_id: subject.sub.clone(),
            actor: act.as_ref().map(|a| a.sub.clone()),
            dpop_jkt,
            scope,
            target,
            ip: req.meta.ip.clone(),
        },
        Issued {
            parent_session_id: Some(subject.sid.clone()),
            actor_session_id: actor_claims.map(|a| a.sid),
            act,
            may_act: may_act.map(str::to_owned),
            not_after,
        },
    )
    .await?;
    Ok(TokenResponse {
        body: single_token_body(&access, &opened, Some(ACCESS_TOKEN_TYPE)),
        dpop_nonce: state.dpop_policy(org).nonce,
    })
}

/// The claims of `token` when it is a live access token of `org`: it verifies (whatever its
/// audience, when that is one keygate issues for), is not revoked, its session chain is
/// live (read now, not from a cache) and its subject is an active user. Else `invalid_grant`.
async fn live_token(
    state: &AppState,
    org: &organization::Model,
    token: &str,
    name: &str,
) -> Result<AccessClaims, OAuthError> {
    let invalid =
        || OAuthError::invalid_grant(format!("the {name} is invalid, expired or revoked"));
    let claims = verify_issued_for_org(state, &org.slug, token)
        .await
        .map_err(|_| invalid())?;
    let now = state.clock.now();
    if claims.org != org.slug
        || !resources::audience_issued(state, org, &claims.aud).await?
        || storage::revoked_tokens::is_revoked(&state.storage, &claims.jti).await?
        || !state
            .revocations
            .chain_live(&state.storage, &org.id, &claims.sid, now, false)
            .await?
    {
        return Err(invalid());
    }
    let active = storage::users::get(&state.storage, &org.id, &claims.sub)
        .await?
        .is_some_and(|u| !u.disabled && u.deleted_at.is_none());
    if !active {
        return Err(invalid());
    }
    Ok(claims)
}

/// The new token's resources: the subject token's, or a subset of them named by `resource`
/// and `audience` (RFC 8693 §2.1, both as RFC 8707 resource URIs).
async fn target(
    state: &AppState,
    org: &organization::Model,
    subject: &AccessClaims,
    req: &OAuthRequest<'_>,
) -> Result<Option<resources::Target>, OAuthError> {
    let issuer = state.issuer(&org.slug);
    let own = state.audience(&issuer);
    let granted = match &subject.aud {
        Audience::One(one) if *one == own => None,
        Audience::One(one) => Some(one.clone()),
        Audience::Many(many) => Some(many.join(" ")),
    };
    let requested: Vec<String> = req
        .params
        .get_all("resource")
        .iter()
        .chain(req.params.get_all("audience"))
        .cloned()
        .collect();
    Ok(resources::for_exchange(
        state,
        org,
        granted.as_deref(),
        &subject.scope,
        &requested,
        req.params.get("scope"),
    )
    .await?)
}
