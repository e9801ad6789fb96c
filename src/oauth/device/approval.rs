//! The person's side of the device flow (RFC 8628 §3.3): a person signed in to the
//! organization's pages enters the user code (or follows `verification_uri_complete`),
//! sees which client asks for what, and approves or denies. Every lookup of a code goes
//! through the throttle ([`super::throttle`]); the decision is one conditional update, so
//! a request is decided once (a second Approve, or an Approve racing a Deny, finds it
//! decided). RFC 8628 §5.4 (remote phishing): the confirmation always names the client
//! and shows the code, also when the code came in the link.

use chrono::{DateTime, Utc};
use entity::{device_code, organization};

use super::asker::{Asker, grantable};
use super::codes::UserCode;
use super::throttle;
use crate::audit::{AuditEvent, RequestMeta};
use crate::clients::ClientSource;
use crate::people::Person;
use crate::resources::TargetError;
use crate::state::AppState;
use crate::storage::{self, StorageError, device_codes};
use crate::types::Role;

/// Who asks, as the confirmation page names it.
#[derive(Clone, Debug)]
pub struct ClientView {
    /// An API key id, a registered client's id, a metadata document's URL, `keygate-cli`.
    pub client_id: String,
    /// As the client calls itself (an API key's name, a browser client's `client_name`).
    pub name: String,
    /// For an API key client: the email of the key's owner.
    pub owner: Option<String>,
    /// What kind of client it is, in words.
    pub kind: &'static str,
}

/// A pending request, as the person is asked to confirm it.
#[derive(Clone, Debug)]
pub struct Review {
    /// `XXXX-XXXX`, to compare with the device's screen.
    pub user_code: String,
    pub client: ClientView,
    /// The scopes the token would carry (sorted), each with what it lets the token do when
    /// it is one of keygate's own.
    pub scopes: Vec<(String, Option<&'static str>)>,
    /// The protected resources (RFC 8707) it would be for; empty: keygate itself.
    pub resources: Vec<String>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny,
}

/// Why a code cannot be reviewed or decided; each message is for the person.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Not the shape of a user code (not counted by the throttle: it cannot be a guess).
    #[error(
        "A code has 8 letters, like BCDF-GHJK. Check the code on your device and type it again."
    )]
    Malformed,
    /// No pending request has this code: mistyped, expired, or decided already.
    #[error("This code is not valid. It may be mistyped, expired, or used already.")]
    Unknown,
    /// The request's client can no longer get tokens (its key revoked or expired, a resource
    /// it asked for removed).
    #[error(
        "This request can no longer be approved: its client's credential or the resources it asked for are no longer valid."
    )]
    ClientGone,
    #[error("Too many wrong codes. Try again in {} minutes.", retry_after.div_ceil(60))]
    Throttled { retry_after: u64 },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The pending request `typed` names, for the confirmation page.
pub async fn review(
    state: &AppState,
    org: &organization::Model,
    person: &Person,
    typed: &str,
    ip: Option<&str>,
) -> Result<Review, PageError> {
    let (row, code) = find(state, org, person, typed, ip).await?;
    let (client, scope, resources) = describe(state, org, person, &row).await?;
    Ok(Review {
        user_code: code.display(),
        client,
        scopes: scope
            .split_ascii_whitespace()
            .map(|s| (s.to_owned(), crate::types::scope_description(s)))
            .collect(),
        resources,
        expires_at: row.expires_at,
    })
}

/// Records `person`'s decision on the pending request `typed` names. An approval stores the
/// scope the confirmation page showed.
pub async fn decide(
    state: &AppState,
    org: &organization::Model,
    person: &Person,
    typed: &str,
    decision: Decision,
    meta: &RequestMeta,
) -> Result<Decision, PageError> {
    let (row, _) = find(state, org, person, typed, meta.ip.as_deref()).await?;
    let granted = match decision {
        Decision::Approve => Some(describe(state, org, person, &row).await?.1),
        Decision::Deny => None,
    };
    let decided = device_codes::decide(
        &state.storage,
        &row.id,
        device_codes::Decision {
            approved: decision == Decision::Approve,
            user_id: &person.user_id,
            granted_scope: granted.as_deref(),
        },
        state.clock.now(),
    )
    .await?;
    if !decided {
        return Err(PageError::Unknown);
    }
    state.audit.record(AuditEvent {
        org_id: Some(org.id.clone()),
        action: match decision {
            Decision::Approve => "device_authorization.approved",
            Decision::Deny => "device_authorization.denied",
        },
        success: true,
        actor_user_id: Some(person.user_id.clone()),
        target_type: Some("device_authorization"),
        target_id: Some(row.id.clone()),
        meta: meta.clone(),
        ..AuditEvent::default()
    });
    Ok(decision)
}

/// The pending request of `org` with the user code `typed`, through the throttle.
async fn find(
    state: &AppState,
    org: &organization::Model,
    person: &Person,
    typed: &str,
    ip: Option<&str>,
) -> Result<(device_code::Model, UserCode), PageError> {
    let code = UserCode::parse(typed).ok_or(PageError::Malformed)?;
    let attempt = throttle::attempt(state, org, person, ip)
        .await?
        .map_err(|t| PageError::Throttled {
            retry_after: t.retry_after,
        })?;
    let digest = code.digest(&state.pepper);
    let row = storage::device_codes::pending_by_user_code(
        &state.storage,
        &org.id,
        &digest.0,
        state.clock.now(),
    )
    .await?
    .filter(|r| digest.matches(&r.user_code_digest))
    .ok_or(PageError::Unknown)?;
    throttle::succeeded(state, attempt).await?;
    Ok((row, code))
}

/// The client of `row`, the scope `person` would grant it, and its resources.
async fn describe(
    state: &AppState,
    org: &organization::Model,
    person: &Person,
    row: &device_code::Model,
) -> Result<(ClientView, String, Vec<String>), PageError> {
    let now = state.clock.now();
    let role: Role = storage::users::get(&state.storage, &org.id, &person.user_id)
        .await?
        .filter(|u| !u.disabled && u.deleted_at.is_none())
        .and_then(|u| u.role.parse().ok())
        .ok_or(PageError::Unknown)?;
    let asker = Asker::of(state, org, row, now)
        .await?
        .ok_or(PageError::ClientGone)?;
    let client = match &asker {
        Asker::Key(key) => ClientView {
            client_id: key.id.clone(),
            name: key.name.clone(),
            owner: storage::users::get(&state.storage, &org.id, &key.user_id)
                .await?
                .map(|u| u.email),
            kind: "an API key",
        },
        Asker::Browser(client) => ClientView {
            client_id: client.client_id.clone(),
            name: client.name.clone(),
            owner: None,
            kind: match client.source {
                ClientSource::BuiltIn => "keygate's command line",
                ClientSource::MetadataDocument => "an application described at that address",
                ClientSource::Registered => "an application registered with this organization",
                ClientSource::Dynamic => "an application that registered itself here",
            },
        },
    };
    let (scope, target) = grantable(
        state,
        org,
        &asker,
        row.scope.as_deref(),
        row.resources.as_deref(),
        role,
    )
    .await
    .map_err(|e| match e {
        TargetError::Storage(e) => PageError::Storage(e),
        _ => PageError::ClientGone,
    })?;
    Ok((client, scope, target.map(|t| t.uris).unwrap_or_default()))
}
