//! `grant_type=urn:ietf:params:oauth:grant-type:device_code` (RFC 8628 §3.4, §3.5): the
//! client that asked polls with its `device_code`, authenticated as at the device
//! authorization endpoint, and gets, in this order of checks: `invalid_grant` (unknown
//! code, another client's, or redeemed already), `access_denied`, `expired_token`,
//! `slow_down` (polled sooner than the interval after the previous poll: the interval grows
//! by 5 s) or `authorization_pending`, and once approved its tokens, exactly once (a
//! conditional update redeems the approval; a concurrent poll gets `invalid_grant`).
//! A DPoP proof binds the tokens as at every grant. Polls that are told to wait are not
//! written to the audit log (a device polls every few seconds); every other outcome is.

use entity::{device_code, organization};

use super::SLOW_DOWN_STEP;
use super::asker::{Asker, grantable};
use super::codes::DeviceCode;
use crate::audit::AuditEvent;
use crate::auth::session::{self, NewSession, SessionError};
use crate::oauth::client::{self, Identified};
use crate::oauth::{ErrorCode, OAuthError, OAuthRequest, TokenResponse, proof, record, token_body};
use crate::state::AppState;
use crate::storage::sessions::Refusal;
use crate::storage::{self, device_codes::Status};
use crate::types::Role;

pub async fn grant(
    state: &AppState,
    org: &organization::Model,
    req: &OAuthRequest<'_>,
) -> Result<TokenResponse, OAuthError> {
    let mut event = AuditEvent {
        org_id: Some(org.id.clone()),
        action: "token.device_code.failed",
        target_type: Some("user"),
        meta: req.meta.clone(),
        ..AuditEvent::default()
    };
    let result = run(state, org, req, &mut event).await;
    let waiting = matches!(
        &result,
        Err(e) if matches!(e.code, ErrorCode::AuthorizationPending | ErrorCode::SlowDown)
    );
    if !waiting {
        record(state, event, "token.device_code.succeeded", &result);
    }
    result
}

fn unknown() -> OAuthError {
    OAuthError::invalid_grant("the device code is invalid, or its tokens were issued already")
}

async fn run(
    state: &AppState,
    org: &organization::Model,
    req: &OAuthRequest<'_>,
    event: &mut AuditEvent,
) -> Result<TokenResponse, OAuthError> {
    let ip = req.meta.ip.as_deref();
    let identified = client::identify(state, org, req.authorization, &req.params, ip).await?;
    let asker = match identified {
        Identified::Key(holder) => {
            event.actor_key_id = Some(holder.key.id.clone());
            event.actor_user_id = Some(holder.owner.id.clone());
            Asker::Key(Box::new(holder.key))
        }
        Identified::Client(client) => Asker::Browser(client),
    };
    let text = req
        .params
        .get("device_code")
        .ok_or_else(|| OAuthError::invalid_request("device_code is required"))?;
    let code = DeviceCode::parse(text).ok_or_else(unknown)?;
    let digest = code.digest(&state.pepper);
    let row = storage::device_codes::by_device_code(&state.storage, &org.id, &digest.0)
        .await?
        .filter(|r| digest.matches(&r.device_code_digest))
        .ok_or_else(unknown)?;
    if row.client_id != asker.id() {
        return Err(OAuthError::invalid_grant(
            "the device code was issued to another client",
        ));
    }
    let now = state.clock.now();
    match Status::of(&row.status) {
        Status::Issued => Err(unknown()),
        Status::Denied => Err(OAuthError::new(
            ErrorCode::AccessDenied,
            "the person denied this device authorization request",
        )),
        _ if row.expires_at <= now => Err(OAuthError::new(
            ErrorCode::ExpiredToken,
            "the device code has expired; start a new device authorization request",
        )),
        Status::Pending => Err(poll(state, &row, now).await?),
        Status::Approved => issue(state, org, req, &row, &asker, event).await,
    }
}

/// A poll of a pending request: `slow_down` when it came sooner than the interval after
/// the previous one (the interval then grows, RFC 8628 §3.5) or raced another poll, else
/// `authorization_pending`. Either way, the poll is recorded.
async fn poll(
    state: &AppState,
    row: &device_code::Model,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<OAuthError, OAuthError> {
    let interval = chrono::Duration::seconds(i64::from(row.interval_secs));
    let too_fast = row.last_polled_at.is_some_and(|t| now < t + interval);
    let recorded = storage::device_codes::record_poll(
        &state.storage,
        &row.id,
        row.polls,
        too_fast.then_some(SLOW_DOWN_STEP),
        now,
    )
    .await?;
    Ok(if too_fast || !recorded {
        let next = row.interval_secs + if too_fast { SLOW_DOWN_STEP } else { 0 };
        OAuthError::new(
            ErrorCode::SlowDown,
            format!("polling too often: wait at least {next} seconds between two polls"),
        )
    } else {
        OAuthError::new(
            ErrorCode::AuthorizationPending,
            "the person has not approved or denied this request yet",
        )
    })
}

/// Issues the tokens of an approved request to its client: a session whose user is the
/// person who approved (no actor), with the scope the person approved as it stands now
/// (the client's limits and the person's role, both as they are at this moment).
async fn issue(
    state: &AppState,
    org: &organization::Model,
    req: &OAuthRequest<'_>,
    row: &device_code::Model,
    asker: &Asker,
    event: &mut AuditEvent,
) -> Result<TokenResponse, OAuthError> {
    let gone =
        || OAuthError::invalid_grant("the person who approved this request is no longer active");
    let person_id = row.user_id.as_deref().ok_or_else(unknown)?;
    let person = storage::users::get(&state.storage, &org.id, person_id)
        .await?
        .filter(|u| !u.disabled && u.deleted_at.is_none())
        .ok_or_else(gone)?;
    let role: Role = person.role.parse().map_err(|_| gone())?;
    event.target_id = Some(person.id.clone());
    let (scope, target) = grantable(
        state,
        org,
        asker,
        row.granted_scope.as_deref(),
        row.resources.as_deref(),
        role,
    )
    .await?;
    // The proof is checked before the approval is redeemed: a bad proof can be retried.
    let dpop_jkt = proof(state, org, req, None).await?;
    // The key's issuance limit, before the code is spent: a refused poll can be retried.
    session::admit(state, asker.session_client()).await?;
    if !storage::device_codes::redeem(&state.storage, &row.id, state.clock.now()).await? {
        return Err(unknown());
    }
    let opened = session::open_admitted(
        state,
        crate::ids::new_id("ses"),
        NewSession {
            org,
            client: asker.session_client(),
            user_id: person.id,
            actor: None,
            dpop_jkt,
            scope,
            target,
            ip: req.meta.ip.clone(),
        },
    )
    .await
    .map_err(|e| match e {
        SessionError::Refused(Refusal::UserGone) => gone(),
        other => other.into(),
    })?;
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
