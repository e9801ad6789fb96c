//! The device authorization grant (RFC 8628; README, "Device flow and `keygate login`"): a
//! client that cannot open a browser asks for a pair of codes
//! ([`authorize`], `POST /v1/{org}/oauth/device_authorization`), a person signed in to the
//! organization's pages enters or confirms the user code and approves or denies
//! ([`review`], [`decide`], the page `/v1/{org}/device`), and the client polls the token
//! endpoint with the device code (`grant_type=urn:ietf:params:oauth:grant-type:device_code`,
//! [`token`]) until it gets its tokens, once.
//!
//! Any client keygate knows may ask: an API key client with its usual client
//! authentication, a browser client (registered, a Client ID Metadata Document) as it
//! registered, and [`cli_client`], the built-in public client of `keygate login`. What the
//! person approves: the token's `sub` is the person, its client the client that asked (for
//! an API key client, a session of that key with the person as its user and no actor: the
//! person's approval is their consent, as with an authorization code); its scope is decided
//! in [`asker`].
//!
//! No HTTP types here: the handlers pass the form in and render what comes back.

mod approval;
mod asker;
pub mod cli_client;
mod codes;
mod throttle;
mod token;

use entity::{device_code, organization};

pub use approval::{ClientView, Decision, PageError, Review, decide, review};
pub use codes::{ALPHABET, DeviceCode, USER_CODE_LEN, UserCode};
pub(super) use token::grant as token;

use super::client::{self, Identified};
use super::{ErrorCode, OAuthError, OAuthRequest, narrow_scope, record};
use crate::audit::AuditEvent;
use crate::auth::throttle::ip_bucket;
use crate::clients::ClientAuth;
use crate::ids::new_id;
use crate::resources;
use crate::state::AppState;
use crate::storage::{self, StorageError, device_codes::Status};

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
    let requested_scope = req.params.get("scope");
    let requested_resources = req.params.get_all("resource");
    let (client_id, scope, resources, public) = match identified {
        Identified::Key(holder) => {
            event.actor_key_id = Some(holder.key.id.clone());
            event.actor_user_id = Some(holder.owner.id.clone());
            let target = resources::for_grant(
                state,
                org,
                &holder.key,
                requested_resources,
                requested_scope,
            )
            .await?;
            let scope = match (&target, requested_scope) {
                (_, None) => None,
                (Some(target), Some(_)) => Some(target.scope.clone()),
                (None, Some(requested)) => Some(narrow_scope(Some(requested), &holder.key.scopes)?),
            };
            (holder.key.id.clone(), scope, target, false)
        }
        Identified::Client(client) => {
            let (scope, target) = asker::check_browser_request(
                state,
                org,
                &client,
                requested_scope,
                requested_resources,
            )
            .await?;
            let public = client.auth == ClientAuth::None;
            (client.client_id, scope, target, public)
        }
    };
    // A public client proves nothing about itself: where it asks from is what limits it.
    let requested_ip = public
        .then(|| req.meta.ip.as_deref().map(ip_bucket))
        .flatten();

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
        resources: resources.map(|t| t.stored()),
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
        requested_ip,
    };
    let user_code = insert_with_fresh_user_code(state, &mut row).await?;
    event.target_id = Some(row.id.clone());
    within_pending_limit(state, org, &row).await?;
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

/// A public client's request just stored: refused (and forgotten) when its client IP now
/// holds more than `device.pending_per_ip` pending requests. Counted after the insert, so
/// concurrent requests cannot all slip under the limit.
async fn within_pending_limit(
    state: &AppState,
    org: &organization::Model,
    row: &device_code::Model,
) -> Result<(), OAuthError> {
    let Some(ip) = row.requested_ip.as_deref() else {
        return Ok(());
    };
    let now = state.clock.now();
    let (pending, first_expiry) =
        storage::device_codes::pending_from_ip(&state.storage, &org.id, ip, now).await?;
    if pending <= u64::from(state.settings.device.pending_per_ip) {
        return Ok(());
    }
    storage::device_codes::delete(&state.storage, &row.id).await?;
    let retry_after = first_expiry
        .map(|t| (t - now).num_seconds().max(1))
        .and_then(|s| u64::try_from(s).ok())
        .unwrap_or(1);
    Err(OAuthError {
        retry_after: Some(retry_after),
        ..OAuthError::new(
            ErrorCode::RateLimited,
            format!(
                "too many pending device authorization requests from this address; finish \
                 one or retry after {retry_after} seconds"
            ),
        )
    })
}
