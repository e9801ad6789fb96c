//! Consents through the admin API (README, "Authorization code + PKCE"): what a user
//! approved for browser clients, and withdrawing it. The user themself may, and owners and
//! admins over users who do not outrank them ([`policy::authorize`]). Withdrawing ends the
//! user's sessions with those clients at once (their access tokens within the revocation
//! window), so an agent loses what the person approved, not only the page it skipped.

use entity::{consent, user};

use super::AdminError;
use super::policy::{Action, Actor, Target};
use crate::audit::AuditEvent;
use crate::auth::session;
use crate::state::AppState;
use crate::storage::page::{Page, PageRequest};
use crate::storage::{self};
use crate::types::Role;

/// The user `id` of the caller's organization and its role.
async fn target(
    state: &AppState,
    actor: &Actor,
    id: &str,
) -> Result<(user::Model, Role), AdminError> {
    let user = storage::users::get(&state.storage, &actor.org.id, id)
        .await?
        .ok_or_else(|| AdminError::UnknownUser(id.to_owned()))?;
    let role = user
        .role
        .parse()
        .map_err(|e: crate::types::ParseError| AdminError::Invalid(e.0))?;
    Ok((user, role))
}

/// One page of the consents of `user_id`, newest first.
pub async fn list(
    state: &AppState,
    actor: &Actor,
    user_id: &str,
    page: &PageRequest,
) -> Result<Page<consent::Model>, AdminError> {
    let (user, role) = target(state, actor, user_id).await?;
    actor.check(
        state,
        Action::ConsentsRead,
        Target::User { id: &user.id, role },
    )?;
    Ok(storage::consents::page(&state.storage, &actor.org.id, &user.id, page).await?)
}

/// Withdraws the consents of `user_id` (only the one of `client_id` when given) and ends
/// the user's sessions with browser clients (only with `client_id` when given; with it
/// even when no consent was stored, e.g. for a device-flow session). Returns how many
/// sessions ended.
pub async fn revoke(
    state: &AppState,
    actor: &Actor,
    user_id: &str,
    client_id: Option<&str>,
) -> Result<u64, AdminError> {
    let (user, role) = target(state, actor, user_id).await?;
    actor.check(
        state,
        Action::ConsentsRevoke,
        Target::User { id: &user.id, role },
    )?;
    let org_id = &actor.org.id;
    storage::consents::delete(&state.storage, org_id, &user.id, client_id).await?;
    let now = state.clock.now();
    let clients = match client_id {
        Some(client_id) => vec![client_id.to_owned()],
        None => storage::sessions::open_clients_of_user(&state.storage, org_id, &user.id, now)
            .await?
            .into_iter()
            .filter(|id| !session::is_key_client_id(id))
            .collect(),
    };
    let mut ended = 0;
    for client in &clients {
        ended += storage::sessions::revoke_for_user_and_client(
            &state.storage,
            org_id,
            &user.id,
            client,
            now,
        )
        .await?;
    }
    if ended > 0 {
        state.revocations.forget_sessions();
    }
    state.audit.record(AuditEvent {
        target_type: Some("user"),
        target_id: Some(user.id.clone()),
        reason: client_id.map(|c| format!("client:{}", c.chars().take(200).collect::<String>())),
        ..actor.event("consent.revoked")
    });
    Ok(ended)
}
