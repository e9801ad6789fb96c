//! The device authorization grant (RFC 8628; README, "Device flow and `keygate login`"): a
//! client that cannot open a browser asks for a pair of codes
//! ([`authorize`], `POST /v1/{org}/oauth/device_authorization`), a person signed in to the
//! organization's pages enters or confirms the user code and approves or denies
//! ([`review`], [`decide`], the page `/v1/{org}/device`), and the client polls the token
//! endpoint with the device code (`grant_type=urn:ietf:params:oauth:grant-type:device_code`,
//! [`token`]) until it gets its tokens, once.
//!
//! What the person approves: the token's `sub` is the person, its client the client that
//! asked (for an API key client, a session of that key with the person as its user and no
//! actor: the person's approval is their consent, as with an authorization code). Its
//! scope is what was asked for (by default the client's), within the key's scopes and, for
//! keygate's own scopes, within what the person's role can exercise
//! ([`crate::admin::policy::grantable`]); resources follow RFC 8707 as for every
//! grant (`crate::resources`).
//!
//! No HTTP types here: the handlers pass the form in and render what comes back.

mod approval;
mod codes;
mod throttle;
mod token;

use chrono::{DateTime, Utc};
use entity::{api_key, device_code, organization};

pub use approval::{ClientView, Decision, PageError, Review, decide, review};
pub use codes::{ALPHABET, DeviceCode, USER_CODE_LEN, UserCode};
pub(super) use token::grant as token;

use super::client::{self, Identified};
use super::{ErrorCode, OAuthError, OAuthRequest, narrow_scope, record};
use crate::admin::policy;
use crate::audit::AuditEvent;
use crate::ids::new_id;
use crate::resources::{self, Target, TargetError};
use crate::state::AppState;
use crate::storage::{self, StorageError, device_codes::Status};
use crate::types::Role;

/// RFC 8628 §3.4: the `grant_type` of the device access token request.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// RFC 8628 §3.5: what `slow_down` adds to the polling interval, in seconds.
pub const SLOW_DOWN_STEP: i32 = 5;

/// How often [`authorize`] draws another user code when one collides with a stored one.
const USER_CODE_DRAWS: usize = 5;

/// RFC 8628 §3.2: the device authorization response.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DeviceAuthorization {
    /// The device verification code: the client polls the token endpoint with it.
    pub device_code: String,
    /// The end-user verification code, `XXXX-XXXX` (8 letters of `BCDFGHJKLMNPQRSTVWXZ`).
    pub user_code: String,
    /// Where the person goes to enter the code: `{issuer}/device`.
    pub verification_uri: String,
    /// `verification_uri` with the code in it, for a link or a QR code.
    pub verification_uri_complete: String,
    /// Seconds both codes stay valid.
    pub expires_in: i64,
    /// The least number of seconds between two polls.
    pub interval: i64,
}

/// The verification page of organization `org_slug`.
pub fn verification_uri(state: &AppState, org_slug: &str) -> String {
    format!("{}/device", state.issuer(org_slug))
}

/// The polling interval of new device codes, in whole seconds (at least 1).
fn interval_secs(state: &AppState) -> i32 {
    let interval = state.settings.device.interval;
    let secs = interval.as_secs() + u64::from(interval.subsec_nanos() > 0);
    i32::try_from(secs.max(1)).unwrap_or(i32::MAX)
}

/// `POST /v1/{org}/oauth/device_authorization` (RFC 8628 §3.1): identifies the client (its
/// usual client authentication, RFC 6749 §3.2.1), checks `scope` and `resource` against it,
/// and stores a new pair of codes.
pub async fn authorize(
    state: &AppState,
    req: OAuthRequest<'_>,
) -> Result<DeviceAuthorization, OAuthError> {
    let org = super::organization(state, req.org).await?;
    let mut event = AuditEvent {
        org_id: Some(org.id.clone()),
        action: "device_authorization.failed",
        target_type: Some("device_authorization"),
        meta: req.meta.clone(),
        ..AuditEvent::default()
    };
    let result = requested(state, &org, &req, &mut event).await;
    record(state, event, "device_authorization.requested", &result);
    result
}

async fn requested(
    state: &AppState,
    org: &organization::Model,
    req: &OAuthRequest<'_>,
    event: &mut AuditEvent,
) -> Result<DeviceAuthorization, OAuthError> {
    let ip = req.meta.ip.as_deref();
    let identified = client::identify(state, org, req.authorization, &req.params, ip).await?;
    let (client_id, scope, resources) = match identified {
        Identified::Key(holder) => {
            event.actor_key_id = Some(holder.key.id.clone());
            event.actor_user_id = Some(holder.owner.id.clone());
            let requested_scope = req.params.get("scope");
            let target = resources::for_grant(
                state,
                org,
                &holder.key,
                req.params.get_all("resource"),
                requested_scope,
            )
            .await?;
            let scope = match (&target, requested_scope) {
                (_, None) => None,
                (Some(target), Some(_)) => Some(target.scope.clone()),
                (None, Some(requested)) => Some(narrow_scope(Some(requested), &holder.key.scopes)?),
            };
            (holder.key.id.clone(), scope, target.map(|t| t.stored()))
        }
        Identified::Client(client) => {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                format!(
                    "the client `{}` may not use the device authorization grant",
                    client.client_id
                ),
            ));
        }
    };

    let now = state.clock.now();
    let ttl = chrono::Duration::from_std(state.settings.device.code_ttl)
        .unwrap_or(chrono::Duration::minutes(10));
    let device_code = DeviceCode::generate();
    let mut row = device_code::Model {
        id: new_id("dvc"),
        org_id: org.id.clone(),
        client_id,
        device_code_digest: device_code.digest(&state.pepper).0,
        user_code_digest: String::new(),
        scope,
        resources,
        status: Status::Pending.as_str().to_owned(),
        user_id: None,
        granted_scope: None,
        interval_secs: interval_secs(state),
        polls: 0,
        last_polled_at: None,
        created_at: now,
        expires_at: now + ttl,
        decided_at: None,
        issued_at: None,
    };
    let user_code = insert_with_fresh_user_code(state, &mut row).await?;
    event.target_id = Some(row.id.clone());
    let verification_uri = verification_uri(state, &org.slug);
    let shown = user_code.display();
    Ok(DeviceAuthorization {
        device_code: device_code.expose().to_owned(),
        verification_uri_complete: format!("{verification_uri}?user_code={shown}"),
        user_code: shown,
        verification_uri,
        expires_in: ttl.num_seconds(),
        interval: i64::from(row.interval_secs),
    })
}

/// Stores `row` with a user code no stored request has (the unique index decides).
async fn insert_with_fresh_user_code(
    state: &AppState,
    row: &mut device_code::Model,
) -> Result<UserCode, OAuthError> {
    for _ in 0..USER_CODE_DRAWS {
        let user_code = UserCode::generate();
        row.user_code_digest = user_code.digest(&state.pepper).0;
        match storage::device_codes::insert(&state.storage, row.clone()).await {
            Ok(_) => return Ok(user_code),
            Err(StorageError::Conflict(_)) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(StorageError::Conflict("no free user code after several draws".into()).into())
}

/// The API key client of a device code: the key as stored now, if it still works.
async fn key_client(
    state: &AppState,
    org: &organization::Model,
    row: &device_code::Model,
    now: DateTime<Utc>,
) -> Result<Option<api_key::Model>, StorageError> {
    Ok(
        storage::api_keys::get(&state.storage, &org.id, &row.client_id)
            .await?
            .filter(|k| k.revoked_at.is_none_or(|t| t > now) && k.expires_at > now),
    )
}

/// What a person with `role` grants `key`'s client: the `requested` scope (none: the key's
/// scopes), for keygate itself within the key's scopes and the role's, or for `resources`
/// (stored URIs) by the RFC 8707 rules.
async fn grantable(
    state: &AppState,
    org: &organization::Model,
    key: &api_key::Model,
    requested: Option<&str>,
    resources: Option<&str>,
    role: Role,
) -> Result<(String, Option<Target>), TargetError> {
    if let Some(uris) = resources {
        let uris: Vec<String> = uris.split_ascii_whitespace().map(str::to_owned).collect();
        let target = resources::for_grant(state, org, key, &uris, requested)
            .await?
            .ok_or_else(|| TargetError::InvalidTarget("no resource".into()))?;
        return Ok((target.scope.clone(), Some(target)));
    }
    let key_scopes: Vec<&str> = key.scopes.split_ascii_whitespace().collect();
    let mut granted: Vec<&str> = requested
        .unwrap_or(&key.scopes)
        .split_ascii_whitespace()
        .filter(|s| key_scopes.contains(s) && policy::grantable(role, s))
        .collect();
    granted.sort_unstable();
    granted.dedup();
    Ok((granted.join(" "), None))
}
