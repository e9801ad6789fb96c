//! API keys through the admin API: list, get, create, revoke, rotate, each checked against
//! the caller and audited.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::api_key;

use super::key_scopes::{self, ScopeList};
use super::policy::{Action, Actor, Target};
use super::{AdminError, CreatedKey, Issuer, NewKey};
use crate::keys::client_jwks::ClientJwks;
use crate::limits::KeyLimits;
use crate::state::AppState;
use crate::storage::api_keys::KeyFilter;
use crate::storage::page::{Page, PageRequest};
use crate::storage::{self};
use crate::types::{Environment, Lifecycle, Role, Scopes};

/// The longest grace period a rotation may give the old key.
pub const MAX_GRACE: Duration = Duration::from_secs(7 * 86_400);

/// Where a key is in its life at `now`.
pub fn status(key: &api_key::Model, now: DateTime<Utc>) -> Lifecycle {
    Lifecycle::of(key.revoked_at, key.expires_at, now)
}

/// How long a new key lives.
#[derive(Clone, Copy, Debug)]
pub enum Lifetime {
    /// `api_keys.default_duration`.
    Default,
    For(Duration),
    Until(DateTime<Utc>),
}

/// A key to create through the API.
#[derive(Clone, Debug)]
pub struct CreateKey {
    pub name: String,
    /// Whose key; `None`: the caller's own.
    pub user_id: Option<String>,
    pub lifetime: Lifetime,
    /// `None` (no list): keygate's scopes of the caller's token, and every scope of the
    /// organization's resources.
    pub scopes: Option<ScopeList>,
    pub environment: Environment,
    /// A key-pair client's public keys (then the key has no secret).
    pub public_jwks: Option<ClientJwks>,
    /// The key's own issuance limits (owners and admins only); default: the server's.
    pub limits: KeyLimits,
}

/// A change of a key's own limits: for each, `None` keeps it, `Some(None)` returns it to
/// the server's default, `Some(Some(n))` sets it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitsPatch {
    pub per_minute: Option<Option<u32>>,
    pub per_hour: Option<Option<u32>>,
}

pub async fn list(
    state: &AppState,
    actor: &Actor,
    mut filter: KeyFilter,
    page: &PageRequest,
) -> Result<Page<api_key::Model>, AdminError> {
    let target = match &filter.user_id {
        Some(owner) => Target::Key {
            owner,
            owner_role: None,
            id: None,
            scopes: None,
        },
        None => Target::Listing,
    };
    actor.check(state, Action::KeysRead, target)?;
    if !actor.sees_everything() {
        filter.user_id = Some(actor.user_id.clone());
    }
    Ok(storage::api_keys::page(&state.storage, &actor.org.id, &filter, page).await?)
}

/// Who a key issued by this request is recorded as issued by: the user holding the caller's
/// token (when acting, the actor, not the subject), with the role the caller has here (for
/// a cross-organization caller, its grant's; when acting, the subject's, which does not
/// exceed the actor's).
fn issuer(actor: &Actor) -> Issuer {
    Issuer {
        user_id: actor.act.clone().unwrap_or_else(|| actor.user_id.clone()),
        role: actor.role,
    }
}

async fn find(state: &AppState, actor: &Actor, id: &str) -> Result<api_key::Model, AdminError> {
    storage::api_keys::get(&state.storage, &actor.org.id, id)
        .await?
        .ok_or_else(|| AdminError::UnknownKey(id.to_owned()))
}

/// The stored role of a key's owner (`None`: no such user in this organization).
async fn owner_role(
    state: &AppState,
    actor: &Actor,
    user_id: &str,
) -> Result<Option<Role>, AdminError> {
    storage::users::get(&state.storage, &actor.org.id, user_id)
        .await?
        .map(|u| u.role.parse::<Role>())
        .transpose()
        .map_err(|e| AdminError::Invalid(e.0))
}

pub async fn get(state: &AppState, actor: &Actor, id: &str) -> Result<api_key::Model, AdminError> {
    let key = find(state, actor, id).await?;
    actor.check(
        state,
        Action::KeysRead,
        Target::Key {
            owner: &key.user_id,
            owner_role: None,
            id: Some(&key.id),
            scopes: None,
        },
    )?;
    Ok(key)
}

pub async fn create(
    state: &AppState,
    actor: &Actor,
    input: CreateKey,
) -> Result<CreatedKey, AdminError> {
    let owner = input.user_id.unwrap_or_else(|| actor.user_id.clone());
    let owner_role = owner_role(state, actor, &owner).await?;
    actor.check(
        state,
        Action::KeysCreate,
        Target::Key {
            owner: &owner,
            owner_role,
            id: None,
            scopes: input.scopes.as_ref().map(|list| &list.own),
        },
    )?;
    let limited = input.limits != KeyLimits::default();
    if limited {
        actor.check(
            state,
            Action::KeysLimit,
            Target::Key {
                owner: &owner,
                owner_role,
                id: None,
                scopes: None,
            },
        )?;
    }
    // Resource scopes are not keygate's powers: whoever may create this user's keys may
    // list them (the caller's token cannot hold them: its audience is keygate).
    let (scopes, resource_scopes) = match input.scopes {
        None => (actor.scopes.clone(), None),
        Some(list) => {
            key_scopes::check_resources(&state.storage, &actor.org, &list.resources).await?;
            (list.own, Some(list.resources))
        }
    };
    let now = state.clock.now();
    let duration = match input.lifetime {
        Lifetime::Default => None,
        Lifetime::For(d) => Some(d),
        Lifetime::Until(at) => Some(
            (at - now)
                .to_std()
                .map_err(|_| AdminError::Invalid("`expires_at` must be in the future".into()))?,
        ),
    };
    let created = super::issue_key(
        &state.storage,
        &state.pepper,
        state.clock.as_ref(),
        &state.settings.api_keys,
        &actor.org,
        NewKey {
            user_id: owner.clone(),
            name: input.name,
            duration,
            environment: input.environment,
            scopes: Some(scopes),
            resource_scopes,
            public_jwks: input.public_jwks,
        },
        Some(&issuer(actor)),
    )
    .await
    .map_err(|e| outranked(state, actor, Action::KeysCreate, &owner, e))?;
    // Before the secret is shown, so no token is issued under the default first.
    let mut created = created;
    if limited {
        created.key = storage::api_keys::set_limits(
            &state.storage,
            &actor.org.id,
            &created.key.id,
            input.limits.per_minute.map(Some),
            input.limits.per_hour.map(Some),
        )
        .await?;
    }
    state.audit.record(crate::audit::AuditEvent {
        target_type: Some("api_key"),
        target_id: Some(created.key.id.clone()),
        ..actor.event("api_key.created")
    });
    Ok(created)
}

/// Revokes a key at once and ends its sessions. Revoking a revoked key changes nothing.
pub async fn revoke(state: &AppState, actor: &Actor, id: &str) -> Result<(), AdminError> {
    let key = find(state, actor, id).await?;
    actor.check(
        state,
        Action::KeysRevoke,
        Target::Key {
            owner: &key.user_id,
            owner_role: None,
            id: Some(&key.id),
            scopes: None,
        },
    )?;
    let now = state.clock.now();
    if status(&key, now) == Lifecycle::Revoked {
        return Ok(());
    }
    super::revoke_key(&state.storage, state.clock.as_ref(), &actor.org, &key.id).await?;
    state.directory.keys_changed();
    state.revocations.forget_sessions();
    state.audit.record(crate::audit::AuditEvent {
        target_type: Some("api_key"),
        target_id: Some(key.id),
        ..actor.event("api_key.revoked")
    });
    Ok(())
}

/// Sets a key's own issuance limits (owners and admins, for keys of users who do not
/// outrank them). Takes effect at the key's next token: nodes read the key per issuance.
pub async fn set_limits(
    state: &AppState,
    actor: &Actor,
    id: &str,
    patch: LimitsPatch,
) -> Result<api_key::Model, AdminError> {
    let key = find(state, actor, id).await?;
    let owner_role = owner_role(state, actor, &key.user_id).await?;
    actor.check(
        state,
        Action::KeysLimit,
        Target::Key {
            owner: &key.user_id,
            owner_role,
            id: Some(&key.id),
            scopes: None,
        },
    )?;
    let key = storage::api_keys::set_limits(
        &state.storage,
        &actor.org.id,
        &key.id,
        patch.per_minute,
        patch.per_hour,
    )
    .await?;
    state.directory.keys_changed();
    state.audit.record(crate::audit::AuditEvent {
        target_type: Some("api_key"),
        target_id: Some(key.id.clone()),
        ..actor.event("api_key.limits_changed")
    });
    Ok(key)
}

/// Issues a replacement; the old key works for `grace` more.
pub async fn rotate(
    state: &AppState,
    actor: &Actor,
    id: &str,
    grace: Duration,
) -> Result<CreatedKey, AdminError> {
    if grace > MAX_GRACE {
        return Err(AdminError::Invalid(
            "`grace_period` must be between 0s and 7d".into(),
        ));
    }
    let key = find(state, actor, id).await?;
    let owner_role = owner_role(state, actor, &key.user_id).await?;
    let scopes = Scopes::parse_list(&key.scopes).map_err(|e| AdminError::Invalid(e.0))?;
    actor.check(
        state,
        Action::KeysRotate {
            immediate: grace.is_zero(),
        },
        Target::Key {
            owner: &key.user_id,
            owner_role,
            id: Some(&key.id),
            scopes: Some(&scopes),
        },
    )?;
    let created = super::rotate_key_as(
        &state.storage,
        &state.pepper,
        state.clock.as_ref(),
        &state.settings.api_keys,
        &actor.org,
        &key.id,
        grace,
        Some(&issuer(actor)),
    )
    .await
    .map_err(|e| {
        outranked(
            state,
            actor,
            Action::KeysRotate {
                immediate: grace.is_zero(),
            },
            &key.user_id,
            e,
        )
    })?;
    state.directory.keys_changed();
    state.revocations.forget_sessions();
    state.audit.record(crate::audit::AuditEvent {
        target_type: Some("api_key"),
        target_id: Some(key.id),
        reason: Some(created.key.id.clone()),
        ..actor.event("api_key.rotated")
    });
    Ok(created)
}

/// A refusal by [`super::issue_key`] (the owner was promoted above the caller while the key
/// was being issued) is audited like the policy's own refusals.
fn outranked(
    state: &AppState,
    actor: &Actor,
    action: Action,
    owner: &str,
    error: AdminError,
) -> AdminError {
    match error {
        AdminError::Denied(denial) => actor.deny(
            state,
            action,
            Target::Key {
                owner,
                owner_role: None,
                id: None,
                scopes: None,
            },
            denial,
        ),
        other => other,
    }
}

/// Whether the issuer of `key` ranks at least `role`: judged by the lower of the role it
/// held when it issued the key and, when it is a user of this organization, the role it
/// holds now (a disabled or deleted issuer ranks below everyone). Operator-issued keys
/// (no issuer) and a user's own keys always pass.
async fn issuer_ranks_at_least(
    state: &AppState,
    key: &api_key::Model,
    role: Role,
) -> Result<bool, AdminError> {
    let Some(issuer_id) = key.created_by_user_id.as_deref() else {
        return Ok(true);
    };
    if issuer_id == key.user_id {
        return Ok(true);
    }
    let at_issuance = key
        .created_by_role
        .as_deref()
        .and_then(|r| r.parse::<Role>().ok());
    if !at_issuance.is_some_and(|r| r.ranks_at_least(role)) {
        return Ok(false);
    }
    Ok(
        match storage::users::get(&state.storage, &key.org_id, issuer_id).await? {
            // An issuer from another organization: only its role at issuance is known here.
            None => true,
            Some(u) if u.disabled || u.deleted_at.is_some() => false,
            Some(u) => u.role.parse::<Role>().is_ok_and(|r| r.ranks_at_least(role)),
        },
    )
}

/// After `user_id` was raised to `role` (the new role already committed): revokes that
/// user's keys whose issuer ranks below `role` (see [`issuer_ranks_at_least`]) and ends
/// their sessions, each audited as `api_key.revoked` with reason `owner_outranks_issuer`.
/// Together with the re-check in [`super::issue_key`], a key issued concurrently with the
/// promotion is caught by one side or the other.
pub async fn revoke_outranked(
    state: &AppState,
    actor: &Actor,
    user_id: &str,
    role: Role,
) -> Result<(), AdminError> {
    let now = state.clock.now();
    let keys =
        storage::api_keys::issued_by_others(&state.storage, &actor.org.id, user_id, now).await?;
    let mut revoked = false;
    for key in keys {
        if issuer_ranks_at_least(state, &key, role).await? {
            continue;
        }
        super::revoke_key(&state.storage, state.clock.as_ref(), &actor.org, &key.id).await?;
        revoked = true;
        state.audit.record(crate::audit::AuditEvent {
            target_type: Some("api_key"),
            target_id: Some(key.id),
            reason: Some("owner_outranks_issuer".into()),
            ..actor.event("api_key.revoked")
        });
    }
    if revoked {
        state.directory.keys_changed();
        state.revocations.forget_sessions();
    }
    Ok(())
}
