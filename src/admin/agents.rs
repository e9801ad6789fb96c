//! What other agent platforms offer, on the admin side (README, "Coming from another agent
//! platform"): an organization's settings (direct API-key requests, self-registration and
//! its approval; read by owners and admins, changed by owners, and by the operator through
//! the CLI) and the approval of a self-registered key that is pending. Each operation is
//! check → operation → audit event.

use entity::{api_key, organization};

use super::policy::{Action, Actor, Target};
use super::{AdminError, find_org};
use crate::state::AppState;
use crate::storage::agents::AgentSwitches;
use crate::storage::{self, Storage};

/// The settings as `GET /v1/{org}/settings` shows them (an unset switch is off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrgSettings {
    pub direct_api_keys: bool,
    pub self_registration: bool,
    pub registration_approval: bool,
}

impl OrgSettings {
    pub fn of(org: &organization::Model) -> Self {
        Self {
            direct_api_keys: org.direct_api_keys == Some(true),
            self_registration: org.self_registration == Some(true),
            registration_approval: org.registration_approval == Some(true),
        }
    }
}

/// Sets the switches of the organization `slug` as the operator (the CLI).
pub async fn set_switches(
    storage: &Storage,
    slug: &str,
    switches: AgentSwitches,
) -> Result<organization::Model, AdminError> {
    let org = find_org(storage, slug).await?;
    storage::agents::set_switches(storage, &org.id, switches)
        .await?
        .ok_or_else(|| AdminError::UnknownOrganization(slug.to_owned()))
}

pub fn read(state: &AppState, actor: &Actor) -> Result<OrgSettings, AdminError> {
    actor.check(state, Action::SettingsRead, Target::Listing)?;
    Ok(OrgSettings::of(&actor.org))
}

/// Changes the settings (owners only); audited as `org.settings_updated`, the reason naming
/// what changed.
pub async fn update(
    state: &AppState,
    actor: &Actor,
    switches: AgentSwitches,
) -> Result<OrgSettings, AdminError> {
    actor.check(state, Action::SettingsWrite, Target::Listing)?;
    let org = storage::agents::set_switches(&state.storage, &actor.org.id, switches)
        .await?
        .ok_or_else(|| AdminError::UnknownOrganization(actor.org.slug.clone()))?;
    state.directory.orgs_changed();
    let changed: Vec<String> = [
        ("direct_api_keys", switches.direct_api_keys),
        ("self_registration", switches.self_registration),
        ("registration_approval", switches.registration_approval),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|v| format!("{name}={v}")))
    .collect();
    state.audit.record(crate::audit::AuditEvent {
        reason: Some(changed.join(" ")),
        target_type: Some("organization"),
        target_id: Some(org.id.clone()),
        ..actor.event("org.settings_updated")
    });
    Ok(OrgSettings::of(&org))
}

/// Approves a pending key (owners and admins); audited as `api_key.approved`. A key that is
/// not pending is a 409 `conflict`.
pub async fn approve(
    state: &AppState,
    actor: &Actor,
    id: &str,
) -> Result<api_key::Model, AdminError> {
    let key = storage::api_keys::get(&state.storage, &actor.org.id, id)
        .await?
        .ok_or_else(|| AdminError::UnknownKey(id.to_owned()))?;
    actor.check(
        state,
        Action::KeysApprove,
        Target::Key {
            owner: &key.user_id,
            owner_role: None,
            id: Some(&key.id),
            scopes: None,
        },
    )?;
    if !storage::agents::approve(&state.storage, &actor.org.id, &key.id).await? {
        return Err(AdminError::Conflict(
            "the API key is not pending approval".into(),
        ));
    }
    state.directory.keys_changed();
    state.audit.record(crate::audit::AuditEvent {
        target_type: Some("api_key"),
        target_id: Some(key.id.clone()),
        ..actor.event("api_key.approved")
    });
    Ok(api_key::Model {
        pending: false,
        ..key
    })
}
