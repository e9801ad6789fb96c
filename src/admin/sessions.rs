//! Sessions through the admin API: list and revoke, checked against the caller and audited.

use entity::session;

use super::AdminError;
use super::policy::{Action, Actor, Target};
use crate::state::AppState;
use crate::storage::page::{Page, PageRequest};
use crate::storage::sessions::SessionFilter;
use crate::storage::{self};

pub async fn list(
    state: &AppState,
    actor: &Actor,
    mut filter: SessionFilter,
    page: &PageRequest,
) -> Result<Page<session::Model>, AdminError> {
    let target = match &filter.user_id {
        Some(user_id) => Target::Session { user_id, id: None },
        None => Target::Listing,
    };
    actor.check(state, Action::SessionsRead, target)?;
    if !actor.sees_everything() {
        filter.user_id = Some(actor.user_id.clone());
    }
    Ok(storage::sessions::page(&state.storage, &actor.org.id, &filter, page).await?)
}

/// Ends a session: its refresh tokens stop at once, its access tokens on this node at once
/// and on others within 5 s. Revoking an ended session changes nothing.
pub async fn revoke(state: &AppState, actor: &Actor, id: &str) -> Result<(), AdminError> {
    let session = storage::sessions::get(&state.storage, &actor.org.id, id)
        .await?
        .ok_or_else(|| AdminError::UnknownSession(id.to_owned()))?;
    actor.check(
        state,
        Action::SessionsRevoke,
        Target::Session {
            user_id: &session.user_id,
            id: Some(&session.id),
        },
    )?;
    let now = state.clock.now();
    if session.revoked_at.is_some_and(|t| t <= now) {
        return Ok(());
    }
    storage::sessions::revoke(&state.storage, &actor.org.id, &session.id, now).await?;
    state.revocations.forget_session(&session.id);
    state.audit.record(crate::audit::AuditEvent {
        target_type: Some("session"),
        target_id: Some(session.id),
        ..actor.event("session.revoked")
    });
    Ok(())
}
