//! API key credentials, shared by sign-in and the OAuth client authentication: the key id
//! and secret pair of an organization, its revocation and expiry, its owner, and whether the
//! owner may act for another user. Unknown key, wrong secret, key of another organization
//! and unknown or disabled user are one error, [`CredentialError::Invalid`].

use entity::{api_key, organization, user};

use crate::audit::{AuditEvent, RequestMeta};
use crate::keys::api_key::PlainApiKey;
use crate::state::AppState;
use crate::storage::StorageError;
use crate::types::Role;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("the API key credential is invalid")]
    Invalid,
    #[error("the API key has expired")]
    Expired,
    #[error("the API key has been revoked")]
    Revoked,
    /// A self-registered key an admin has not approved yet (reported once the secret matched).
    #[error("the API key is pending an administrator's approval")]
    Pending,
    #[error("the API key's owner may not act for this user")]
    PermissionDenied,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A key whose secret matched, still valid, with its enabled owner.
pub struct KeyHolder {
    pub key: api_key::Model,
    pub owner: user::Model,
}

/// Checks `key_id` + `secret` at `org`: looked up by the secret's digest (compared in
/// constant time); revocation and expiry are reported only once the secret matched.
///
/// The key and its owner come from the [`crate::auth::cache::Directory`] (fresh within the
/// revocation window, at once for changes made on this node); a session opened with them
/// is checked against the database again when it is committed, so a key revoked or a user
/// disabled elsewhere never gets a new session.
pub async fn check_key(
    state: &AppState,
    org: &organization::Model,
    key_id: &str,
    secret: &PlainApiKey,
) -> Result<KeyHolder, CredentialError> {
    let digest = secret.digest(&state.pepper);
    let key = state
        .directory
        .key_by_digest(&state.storage, &digest.0)
        .await?
        .filter(|k| digest.matches(&k.digest) && k.id == key_id && k.org_id == org.id)
        // A key-pair client has no secret (its digest matches none); never one by accident.
        .filter(|k| k.public_jwks.is_none())
        .ok_or(CredentialError::Invalid)?;
    let now = state.clock.now();
    if key.revoked_at.is_some_and(|t| t <= now) {
        return Err(CredentialError::Revoked);
    }
    if key.expires_at <= now {
        return Err(CredentialError::Expired);
    }
    if key.pending {
        return Err(CredentialError::Pending);
    }
    let owner = active_user(state, org, &key.user_id).await?;
    Ok(KeyHolder {
        key: api_key::Model::clone(&key),
        owner,
    })
}

/// The user a key's holder signs in as: its owner, or (for an `owner` or `admin`) another
/// user of the organization, with the owner as the actor. Acting for a user needs the key
/// owner's stored role to be at least the target's (`Role::ranks_at_least`): an
/// admin never acts for an owner. A refusal is written to the audit log as
/// `permission.denied` (reason `permission_denied:users.act_for`).
pub async fn subject(
    state: &AppState,
    org: &organization::Model,
    holder: &KeyHolder,
    user_id: Option<&str>,
    meta: &RequestMeta,
) -> Result<(user::Model, Option<String>), CredentialError> {
    let owner = &holder.owner;
    let Some(user_id) = user_id.filter(|id| *id != owner.id) else {
        return Ok((owner.clone(), None));
    };
    let deny = |target: Option<&user::Model>| {
        state.audit.record(AuditEvent {
            org_id: Some(org.id.clone()),
            action: "permission.denied",
            success: false,
            reason: Some("permission_denied:users.act_for".into()),
            actor_user_id: Some(owner.id.clone()),
            actor_key_id: Some(holder.key.id.clone()),
            target_type: Some("user"),
            // Only an id read from the database, never one the caller made up.
            target_id: target.map(|t| t.id.clone()),
            meta: meta.clone(),
            act: None,
        });
        CredentialError::PermissionDenied
    };
    let Ok(owner_role) = owner.role.parse::<Role>() else {
        return Err(deny(None));
    };
    if !owner_role.is_admin() {
        return Err(deny(None));
    }
    let target = active_user(state, org, user_id).await?;
    match target.role.parse::<Role>() {
        Ok(target_role) if owner_role.ranks_at_least(target_role) => {
            Ok((target, Some(owner.id.clone())))
        }
        _ => Err(deny(Some(&target))),
    }
}

async fn active_user(
    state: &AppState,
    org: &organization::Model,
    user_id: &str,
) -> Result<user::Model, CredentialError> {
    state
        .directory
        .user(&state.storage, &org.id, user_id)
        .await?
        .filter(|u| !u.disabled)
        .map(|u| user::Model::clone(&u))
        .ok_or(CredentialError::Invalid)
}
