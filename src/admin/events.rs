//! The audit log through the admin API.

use entity::audit_event;

use super::AdminError;
use super::policy::{Action, Actor, Target};
use crate::state::AppState;
use crate::storage::audit::EventFilter;
use crate::storage::page::{Page, PageRequest};
use crate::storage::{self};

pub async fn list(
    state: &AppState,
    actor: &Actor,
    filter: &EventFilter,
    page: &PageRequest,
) -> Result<Page<audit_event::Model>, AdminError> {
    actor.check(state, Action::AuditRead, Target::Listing)?;
    Ok(storage::audit::page(&state.storage, &actor.org.id, filter, page).await?)
}
