//! Cross-organization grants through the admin API (README, "Cross-organization access"): an organization's owners
//! and admins let users of another organization work in it. A grant above `member` needs
//! an owner; `owner` is never granted. A grant made or ended on one node counts there at
//! once and on the others within 5 seconds.

use chrono::{DateTime, Utc};
use entity::{cross_org_grant, organization};

use super::AdminError;
use super::policy::{Action, Actor, Target};
use crate::ids::new_id;
use crate::state::AppState;
use crate::storage::page::{Page, PageRequest};
use crate::storage::{self};
use crate::types::Role;

/// A grant to make.
#[derive(Clone, Debug)]
pub struct NewGrant {
    /// The slug of the organization whose users are let in.
    pub source_org: String,
    /// One user of it; `None`: all of them.
    pub user_id: Option<String>,
    pub role: Role,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A grant with the organization it lets in.
pub struct Grant {
    pub grant: cross_org_grant::Model,
    pub source_org: organization::Model,
}

fn role_of(grant: &cross_org_grant::Model) -> Role {
    grant.role.parse().unwrap_or(Role::Member)
}

pub async fn create(state: &AppState, actor: &Actor, new: NewGrant) -> Result<Grant, AdminError> {
    if new.role == Role::Owner {
        return Err(AdminError::Invalid(
            "`role`: a grant gives `admin`, `member` or `service`, never `owner`".into(),
        ));
    }
    actor.check(
        state,
        Action::GrantsCreate { role: new.role },
        Target::Grant { id: None },
    )?;
    let source = storage::orgs::by_slug(&state.storage, &new.source_org)
        .await?
        .ok_or_else(|| AdminError::UnknownOrganization(new.source_org.clone()))?;
    if source.id == actor.org.id {
        return Err(AdminError::Invalid(
            "`source_org`: an organization's own users need no grant".into(),
        ));
    }
    if let Some(user_id) = &new.user_id {
        storage::users::get(&state.storage, &source.id, user_id)
            .await?
            .ok_or_else(|| AdminError::UnknownUser(user_id.clone()))?;
    }
    let now = state.clock.now();
    if new.expires_at.is_some_and(|t| t <= now) {
        return Err(AdminError::Invalid(
            "`expires_at` must be in the future".into(),
        ));
    }
    let grant = storage::cross_org_grants::insert(
        &state.storage,
        cross_org_grant::Model {
            id: new_id("cog"),
            org_id: actor.org.id.clone(),
            source_org_id: source.id.clone(),
            user_id: new.user_id,
            role: new.role.as_str().to_owned(),
            created_by: actor.user_id.clone(),
            created_at: now,
            expires_at: new.expires_at,
            revoked_at: None,
        },
    )
    .await?;
    // A refusal cached a moment ago must not outlive the grant that lifts it.
    state.cross_org.forget_grants();
    state.audit.record(crate::audit::AuditEvent {
        target_type: Some("cross_org_grant"),
        target_id: Some(grant.id.clone()),
        ..actor.event("cross_org_grant.created")
    });
    Ok(Grant {
        grant,
        source_org: source,
    })
}

/// The organization's live grants, with the organizations they let in.
pub async fn list(
    state: &AppState,
    actor: &Actor,
    page: &PageRequest,
) -> Result<Page<Grant>, AdminError> {
    actor.check(state, Action::GrantsRead, Target::Listing)?;
    let grants =
        storage::cross_org_grants::page(&state.storage, &actor.org.id, state.clock.now(), page)
            .await?;
    let mut sources: std::collections::HashMap<String, organization::Model> = Default::default();
    for grant in &grants.items {
        if !sources.contains_key(&grant.source_org_id)
            && let Some(org) = storage::orgs::by_id(&state.storage, &grant.source_org_id).await?
        {
            sources.insert(org.id.clone(), org);
        }
    }
    let items = grants
        .items
        .into_iter()
        .filter_map(|grant| {
            let source_org = sources.get(&grant.source_org_id)?.clone();
            Some(Grant { grant, source_org })
        })
        .collect();
    Ok(Page {
        items,
        next: grants.next,
    })
}

async fn find(state: &AppState, actor: &Actor, id: &str) -> Result<Grant, AdminError> {
    let grant = storage::cross_org_grants::get(&state.storage, &actor.org.id, id)
        .await?
        .ok_or_else(|| AdminError::UnknownGrant(id.to_owned()))?;
    let source_org = storage::orgs::by_id(&state.storage, &grant.source_org_id)
        .await?
        .ok_or_else(|| AdminError::UnknownGrant(id.to_owned()))?;
    Ok(Grant { grant, source_org })
}

pub async fn get(state: &AppState, actor: &Actor, id: &str) -> Result<Grant, AdminError> {
    actor.check(state, Action::GrantsRead, Target::Grant { id: Some(id) })?;
    find(state, actor, id).await
}

/// Ends a grant: this node stops honouring it at once, others within 5 s. Ending an ended
/// grant changes nothing.
pub async fn revoke(state: &AppState, actor: &Actor, id: &str) -> Result<(), AdminError> {
    let found = find(state, actor, id).await?;
    actor.check(
        state,
        Action::GrantsRevoke {
            role: role_of(&found.grant),
        },
        Target::Grant { id: Some(id) },
    )?;
    if storage::cross_org_grants::revoke(&state.storage, &actor.org.id, id, state.clock.now())
        .await?
    {
        state.cross_org.forget_grants();
        state.audit.record(crate::audit::AuditEvent {
            target_type: Some("cross_org_grant"),
            target_id: Some(id.to_owned()),
            ..actor.event("cross_org_grant.revoked")
        });
    }
    Ok(())
}
