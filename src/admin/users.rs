//! Users through the admin API: list, get, create, update, soft delete, each checked against
//! the caller and audited. An organization always keeps one enabled owner.

use entity::user;

use super::policy::{Action, Actor, Target};
use super::{AdminError, parse_name};
use crate::state::AppState;
use crate::storage::page::{Page, PageRequest};
use crate::storage::users::{Refusal, UserChange, UserFilter};
use crate::storage::{self};
use crate::types::Role;

/// A change to a user; absent fields stay as they are.
#[derive(Clone, Debug, Default)]
pub struct UserPatch {
    pub name: Option<String>,
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    /// `Some(None)` removes the user's identity-provider subject.
    pub external_subject: Option<Option<String>>,
}

/// A subject as identity providers issue them: 1 to 255 visible characters.
fn parse_external_subject(subject: &str) -> Result<String, AdminError> {
    if (1..=255).contains(&subject.len()) && !subject.chars().any(char::is_control) {
        Ok(subject.to_owned())
    } else {
        Err(AdminError::Invalid(
            "`external_subject` must be 1 to 255 characters, without control characters".into(),
        ))
    }
}

fn role_of(user: &user::Model) -> Result<Role, AdminError> {
    user.role
        .parse()
        .map_err(|e: crate::types::ParseError| AdminError::Invalid(e.0))
}

pub async fn list(
    state: &AppState,
    actor: &Actor,
    mut filter: UserFilter,
    page: &PageRequest,
) -> Result<Page<user::Model>, AdminError> {
    actor.check(state, Action::UsersRead, Target::Listing)?;
    if !actor.sees_everything() {
        filter.user_id = Some(actor.user_id.clone());
    }
    Ok(storage::users::page(&state.storage, &actor.org.id, &filter, page).await?)
}

async fn find(state: &AppState, actor: &Actor, id: &str) -> Result<user::Model, AdminError> {
    storage::users::get(&state.storage, &actor.org.id, id)
        .await?
        .ok_or_else(|| AdminError::UnknownUser(id.to_owned()))
}

pub async fn get(state: &AppState, actor: &Actor, id: &str) -> Result<user::Model, AdminError> {
    let user = find(state, actor, id).await?;
    let role = role_of(&user)?;
    actor.check(state, Action::UsersRead, Target::User { id, role })?;
    Ok(user)
}

pub async fn create(
    state: &AppState,
    actor: &Actor,
    email: &str,
    name: Option<String>,
    role: Role,
) -> Result<user::Model, AdminError> {
    actor.check(state, Action::UsersCreate, Target::NewUser { role })?;
    let user = super::create_user(
        &state.storage,
        state.clock.as_ref(),
        &actor.org,
        email,
        name,
        role,
    )
    .await?;
    state.audit.record(crate::audit::AuditEvent {
        target_type: Some("user"),
        target_id: Some(user.id.clone()),
        ..actor.event("user.created")
    });
    Ok(user)
}

/// Writes `change` (only its columns) to the user the caller's decision was about, as long
/// as its role is still `expected`, it is not deleted, and the organization keeps an
/// enabled owner; each refusal is a 409.
async fn write(
    state: &AppState,
    actor: &Actor,
    id: &str,
    expected: Role,
    change: UserChange,
) -> Result<user::Model, AdminError> {
    let now = state.clock.now();
    let written = storage::users::update(&state.storage, &actor.org.id, id, expected, change, now)
        .await
        .map_err(|e| match e {
            storage::StorageError::Conflict(_) => AdminError::Conflict(
                "another user of this organization has this external_subject".into(),
            ),
            other => other.into(),
        })?;
    // This node's protected requests see the change at once (auth::cache).
    state.directory.users_changed();
    written.map_err(|refusal| {
        AdminError::Conflict(
            match refusal {
                Refusal::Gone => "a deleted user cannot be changed",
                Refusal::RoleChanged => {
                    "the user's role changed while this request ran: read it again and retry"
                }
                Refusal::LastOwner => {
                    "this is the organization's last enabled owner: make another user owner first"
                }
            }
            .into(),
        )
    })
}

/// Ends a user's sessions on every node (this one at once, others within 5 s).
async fn end_sessions(state: &AppState, actor: &Actor, user_id: &str) -> Result<(), AdminError> {
    let now = state.clock.now();
    storage::sessions::revoke_for_user(&state.storage, &actor.org.id, user_id, now).await?;
    state.revocations.forget_sessions();
    Ok(())
}

pub async fn update(
    state: &AppState,
    actor: &Actor,
    id: &str,
    patch: UserPatch,
) -> Result<user::Model, AdminError> {
    let user = find(state, actor, id).await?;
    let current = role_of(&user)?;
    let disable = patch.disabled == Some(true) && !user.disabled;
    let role = patch.role.filter(|r| *r != current);
    let external_subject = patch
        .external_subject
        .map(|s| s.map(|s| parse_external_subject(&s)).transpose())
        .transpose()?;
    let link = external_subject
        .as_ref()
        .is_some_and(|s| *s != user.external_subject);
    actor.check(
        state,
        Action::UsersUpdate {
            role,
            disable,
            link,
        },
        Target::User { id, role: current },
    )?;
    if user.deleted_at.is_some() {
        return Err(AdminError::Conflict(
            "a deleted user cannot be changed".into(),
        ));
    }
    let mut change = UserChange {
        role,
        external_subject: external_subject.filter(|_| link),
        ..UserChange::default()
    };
    if let Some(name) = &patch.name {
        let name = parse_name(name, "name")?;
        change.name = (user.name.as_ref() != Some(&name)).then_some(name);
    }
    change.disabled = patch.disabled.filter(|d| *d != user.disabled);
    if change.is_empty() {
        return Ok(user);
    }
    let user = write(state, actor, id, current, change).await?;
    // A promotion, once committed, revokes the user's keys issued by someone now below it.
    if let Some(raised) = role.filter(|r| r.rank() > current.rank()) {
        super::keys::revoke_outranked(state, actor, &user.id, raised).await?;
    }
    // Disabling and demotion end the user's sessions, as subject and as actor. A promotion
    // ends the sessions in which someone acts for the user: the caller's rights are the
    // subject's stored role, so the actor would otherwise hold the new rank.
    if disable || role.is_some_and(|r| r.rank() < current.rank()) {
        end_sessions(state, actor, &user.id).await?;
    } else if role.is_some_and(|r| r.rank() > current.rank()) {
        storage::sessions::revoke_acting_for(
            &state.storage,
            &actor.org.id,
            &user.id,
            state.clock.now(),
        )
        .await?;
        state.revocations.forget_sessions();
    }
    state.audit.record(crate::audit::AuditEvent {
        target_type: Some("user"),
        target_id: Some(user.id.clone()),
        ..actor.event("user.updated")
    });
    Ok(user)
}

/// A soft delete: the row stays (disabled, `deleted_at` set), the user's sessions end and
/// keys are revoked. Deleting a deleted user changes nothing.
pub async fn delete(state: &AppState, actor: &Actor, id: &str) -> Result<(), AdminError> {
    let user = find(state, actor, id).await?;
    let role = role_of(&user)?;
    actor.check(state, Action::UsersDelete, Target::User { id, role })?;
    if user.deleted_at.is_some() {
        return Ok(());
    }
    let now = state.clock.now();
    let change = UserChange {
        disabled: Some(true),
        deleted_at: Some(now),
        ..UserChange::default()
    };
    let user = write(state, actor, id, role, change).await?;
    storage::api_keys::revoke_for_user(&state.storage, &actor.org.id, &user.id, now).await?;
    state.directory.keys_changed();
    end_sessions(state, actor, &user.id).await?;
    state.audit.record(crate::audit::AuditEvent {
        target_type: Some("user"),
        target_id: Some(user.id),
        ..actor.event("user.deleted")
    });
    Ok(())
}
