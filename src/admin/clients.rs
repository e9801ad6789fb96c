//! Clients of the browser and device flows through the admin API and the CLI (README,
//! "Browser clients: registered, metadata documents, dynamic registration"): owners and
//! admins register and delete them. Each operation checks the caller, validates once
//! (`clients::metadata`), writes (`clients::registration::create`), and records the audit
//! event. Also the organization's dynamic-registration switch (the CLI's `org update`).

use entity::{client, organization};

use super::AdminError;
use super::policy::{Action, Actor, Target};
use crate::audit::AuditEvent;
use crate::clients::ClientSource;
use crate::clients::metadata::{self, Requested};
use crate::clients::registration::{self, Created};
use crate::clock::Clock;
use crate::secrets::Pepper;
use crate::state::AppState;
use crate::storage::page::{Page, PageRequest};
use crate::storage::{self, Storage};

/// A client to register, as an admin describes it (RFC 7591 §2 names).
#[derive(Clone, Debug)]
pub struct NewClient {
    pub name: String,
    pub redirect_uris: Vec<String>,
    /// `none`, `client_secret_basic` or `private_key_jwt`.
    pub auth: String,
    /// The public JWK Set of a `private_key_jwt` client.
    pub jwks: Option<serde_json::Value>,
    /// The most the client may ask for, space-separated.
    pub scope: Option<String>,
}

/// Registers a client as the operator (the CLI; the admin API after its checks).
pub async fn register(
    storage: &Storage,
    pepper: &Pepper,
    clock: &dyn Clock,
    org: &organization::Model,
    new: NewClient,
) -> Result<Created, AdminError> {
    let checked = metadata::check(Requested {
        name: Some(new.name),
        redirect_uris: new.redirect_uris,
        auth: new.auth,
        jwks: new.jwks,
        jwks_uri: false,
        scope: new.scope,
    })
    .map_err(|e| AdminError::Invalid(e.to_string()))?;
    Ok(registration::create(
        storage,
        pepper,
        clock,
        org,
        checked,
        ClientSource::Registered,
    )
    .await?)
}

/// Deletes a client as the operator, ending its sessions; the number ended.
pub async fn remove(
    storage: &Storage,
    clock: &dyn Clock,
    org: &organization::Model,
    id: &str,
) -> Result<u64, AdminError> {
    storage::clients::delete(storage, &org.id, id, clock.now())
        .await?
        .ok_or_else(|| AdminError::UnknownClient(id.to_owned()))
}

/// Turns RFC 7591 dynamic registration on or off for the organization `slug`.
pub async fn set_dynamic_registration(
    storage: &Storage,
    slug: &str,
    on: bool,
) -> Result<organization::Model, AdminError> {
    let org = super::find_org(storage, slug).await?;
    storage::clients::set_dynamic_registration(storage, &org.id, on)
        .await?
        .ok_or_else(|| AdminError::UnknownOrganization(slug.to_owned()))
}

fn audit(state: &AppState, actor: &Actor, action: &'static str, id: &str) {
    state.audit.record(AuditEvent {
        target_type: Some("client"),
        target_id: Some(id.to_owned()),
        ..actor.event(action)
    });
}

pub async fn create(
    state: &AppState,
    actor: &Actor,
    new: NewClient,
) -> Result<Created, AdminError> {
    actor.check(state, Action::ClientsWrite, Target::Client { id: None })?;
    let created = register(
        &state.storage,
        &state.pepper,
        state.clock.as_ref(),
        &actor.org,
        new,
    )
    .await?;
    audit(state, actor, "client.created", &created.client.id);
    Ok(created)
}

pub async fn list(
    state: &AppState,
    actor: &Actor,
    page: &PageRequest,
) -> Result<Page<client::Model>, AdminError> {
    actor.check(state, Action::ClientsRead, Target::Listing)?;
    Ok(storage::clients::page(&state.storage, &actor.org.id, page).await?)
}

pub async fn get(state: &AppState, actor: &Actor, id: &str) -> Result<client::Model, AdminError> {
    actor.check(state, Action::ClientsRead, Target::Client { id: Some(id) })?;
    storage::clients::get(&state.storage, &actor.org.id, id)
        .await?
        .ok_or_else(|| AdminError::UnknownClient(id.to_owned()))
}

/// Deletes a client: it can no longer start a flow or authenticate, and every session it
/// holds ends at once (its refresh tokens with it; this node forgets its cached sessions
/// now, other nodes within the revocation window).
pub async fn delete(state: &AppState, actor: &Actor, id: &str) -> Result<(), AdminError> {
    actor.check(state, Action::ClientsWrite, Target::Client { id: Some(id) })?;
    remove(&state.storage, state.clock.as_ref(), &actor.org, id).await?;
    state.revocations.forget_sessions();
    audit(state, actor, "client.deleted", id);
    Ok(())
}
