//! Protected resources through the admin API (README, "Protected resources"): owners and
//! admins register the APIs and MCP servers the organization issues tokens for. Each
//! operation checks the caller, validates once, writes, and records the audit event.

use std::time::Duration;

use entity::{organization, resource};

use super::policy::{Action, Actor, Target};
use super::{AdminError, parse_name};
use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::ids::new_id;
use crate::resources::{ResourceUri, scopes};
use crate::state::AppState;
use crate::storage::page::{Page, PageRequest};
use crate::storage::resources::Change;
use crate::storage::{self, Storage, StorageError};

/// The longest `access_ttl` a resource may set (it only ever shortens tokens).
pub const MAX_ACCESS_TTL: Duration = Duration::from_secs(86_400);

/// A resource to register.
#[derive(Clone, Debug)]
pub struct NewResource {
    pub uri: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub access_ttl: Option<Duration>,
}

/// A change to a resource (`None`: unchanged; `access_ttl: Some(None)`: removed).
#[derive(Clone, Debug, Default)]
pub struct ResourcePatch {
    pub uri: Option<String>,
    pub name: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub access_ttl: Option<Option<Duration>>,
}

fn invalid(message: impl Into<String>) -> AdminError {
    AdminError::Invalid(message.into())
}

/// The `aud` values of keygate's own tokens of an organization: its issuer and the
/// configured audience (the CLI knows the issuer only when `server.public_url` is set).
pub fn own_audiences(state: &AppState, org_slug: &str) -> Vec<String> {
    let issuer = state.issuer(org_slug);
    vec![state.audience(&issuer), issuer]
}

/// A resource URI (RFC 8707 §2), normalized; never an audience of keygate's own tokens (a
/// resource's token must never pass at keygate's endpoints).
pub fn parse_uri(own: &[String], uri: &str) -> Result<String, AdminError> {
    let uri = ResourceUri::parse(uri).map_err(|e| invalid(format!("`uri`: {e}")))?;
    if own
        .iter()
        .any(|a| a == uri.as_str() || ResourceUri::parse(a).is_ok_and(|a| a == uri))
    {
        return Err(invalid(
            "`uri`: this is the audience of keygate's own tokens of this organization, not a resource",
        ));
    }
    Ok(uri.into_string())
}

fn parse_scopes(names: &[String]) -> Result<String, AdminError> {
    scopes::parse(names.iter().map(String::as_str))
        .map(|s| scopes::render(&s))
        .map_err(|e| invalid(format!("`scopes`: {e}")))
}

/// Seconds of an `access_ttl`: at least 1 s and at most [`MAX_ACCESS_TTL`].
fn ttl_secs(ttl: Duration) -> Result<i64, AdminError> {
    if ttl < Duration::from_secs(1) || ttl > MAX_ACCESS_TTL {
        return Err(invalid(format!(
            "`access_ttl` must be from 1s to {}",
            humantime::format_duration(MAX_ACCESS_TTL)
        )));
    }
    i64::try_from(ttl.as_secs()).map_err(|_| invalid("`access_ttl` is too long"))
}

fn conflict(e: StorageError) -> AdminError {
    match e {
        StorageError::Conflict(_) => {
            AdminError::Conflict("this organization already has a resource with this uri".into())
        }
        other => other.into(),
    }
}

fn audit(state: &AppState, actor: &Actor, action: &'static str, id: &str) {
    state.audit.record(AuditEvent {
        target_type: Some("resource"),
        target_id: Some(id.to_owned()),
        ..actor.event(action)
    });
}

/// Registers a resource as the operator (the CLI); `own`: [`own_audiences`].
pub async fn register(
    storage: &Storage,
    clock: &dyn Clock,
    org: &organization::Model,
    own: &[String],
    new: NewResource,
) -> Result<resource::Model, AdminError> {
    let now = clock.now();
    let resource = resource::Model {
        id: new_id("res"),
        org_id: org.id.clone(),
        uri: parse_uri(own, &new.uri)?,
        name: parse_name(&new.name, "name")?,
        scopes: parse_scopes(&new.scopes)?,
        access_ttl_secs: new.access_ttl.map(ttl_secs).transpose()?,
        created_at: now,
        updated_at: now,
    };
    storage::resources::insert(storage, resource)
        .await
        .map_err(conflict)
}

/// Removes a resource as the operator (the CLI).
pub async fn remove(
    storage: &Storage,
    org: &organization::Model,
    id: &str,
) -> Result<(), AdminError> {
    if storage::resources::delete(storage, &org.id, id).await? {
        Ok(())
    } else {
        Err(AdminError::UnknownResource(id.to_owned()))
    }
}

pub async fn create(
    state: &AppState,
    actor: &Actor,
    new: NewResource,
) -> Result<resource::Model, AdminError> {
    actor.check(state, Action::ResourcesWrite, Target::Resource { id: None })?;
    let own = own_audiences(state, &actor.org.slug);
    let resource = register(&state.storage, state.clock.as_ref(), &actor.org, &own, new).await?;
    audit(state, actor, "resource.created", &resource.id);
    Ok(resource)
}

pub async fn list(
    state: &AppState,
    actor: &Actor,
    page: &PageRequest,
) -> Result<Page<resource::Model>, AdminError> {
    actor.check(state, Action::ResourcesRead, Target::Listing)?;
    Ok(storage::resources::page(&state.storage, &actor.org.id, page).await?)
}

pub async fn get(state: &AppState, actor: &Actor, id: &str) -> Result<resource::Model, AdminError> {
    actor.check(
        state,
        Action::ResourcesRead,
        Target::Resource { id: Some(id) },
    )?;
    storage::resources::get(&state.storage, &actor.org.id, id)
        .await?
        .ok_or_else(|| AdminError::UnknownResource(id.to_owned()))
}

/// Changes a resource. Tokens already issued keep their `aud` and scope until they expire;
/// a session's next refresh sees the change (a removed scope is no longer issued; a
/// changed `uri` no longer matches the sessions that named the old one).
pub async fn update(
    state: &AppState,
    actor: &Actor,
    id: &str,
    patch: ResourcePatch,
) -> Result<resource::Model, AdminError> {
    actor.check(
        state,
        Action::ResourcesWrite,
        Target::Resource { id: Some(id) },
    )?;
    let change = Change {
        uri: patch
            .uri
            .map(|u| parse_uri(&own_audiences(state, &actor.org.slug), &u))
            .transpose()?,
        name: patch.name.map(|n| parse_name(&n, "name")).transpose()?,
        scopes: patch.scopes.map(|s| parse_scopes(&s)).transpose()?,
        access_ttl_secs: patch
            .access_ttl
            .map(|ttl| ttl.map(ttl_secs).transpose())
            .transpose()?,
    };
    let resource =
        storage::resources::update(&state.storage, &actor.org.id, id, change, state.clock.now())
            .await
            .map_err(conflict)?
            .ok_or_else(|| AdminError::UnknownResource(id.to_owned()))?;
    audit(state, actor, "resource.updated", id);
    Ok(resource)
}

/// Removes a resource: no token is issued for it from the next request on (a session that
/// named it fails its next refresh with `invalid_target`); tokens already issued stay valid
/// at the resource until they expire (it verifies them offline).
pub async fn delete(state: &AppState, actor: &Actor, id: &str) -> Result<(), AdminError> {
    actor.check(
        state,
        Action::ResourcesWrite,
        Target::Resource { id: Some(id) },
    )?;
    remove(&state.storage, &actor.org, id).await?;
    audit(state, actor, "resource.deleted", id);
    Ok(())
}

/// The RFC 9728 document of a resource (readable by whoever may read the resource).
pub async fn metadata(
    state: &AppState,
    actor: &Actor,
    id: &str,
) -> Result<serde_json::Value, AdminError> {
    let resource = get(state, actor, id).await?;
    Ok(crate::resources::metadata_document(
        state, &actor.org, &resource,
    ))
}
