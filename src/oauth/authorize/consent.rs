//! Consent: what the person approved before (remembered per person and client), and the
//! consent page's content.

use std::collections::BTreeSet;

use entity::organization;

use super::Grant;
use super::request::Params;
use crate::clients::{Client, ClientSource};
use crate::ids::new_id;
use crate::people::Person;
use crate::state::AppState;
use crate::storage::{self, StorageError};
use crate::types::scope_description;

/// What the consent page shows and posts back.
#[derive(Debug)]
pub struct ConsentView {
    pub client_name: String,
    /// For a Client ID Metadata Document client: the host its document is served from.
    pub client_host: Option<String>,
    pub email: String,
    /// `(scope, what it lets the client do)`: a description for keygate's scopes, `None` for
    /// a resource's (shown by name).
    pub scopes: Vec<(String, Option<&'static str>)>,
    /// `(URI, name)` of the protected resources.
    pub resources: Vec<(String, String)>,
    /// The request's parameters, posted back as hidden fields.
    pub hidden: Vec<(String, String)>,
    pub csrf: String,
    /// Where the form posts.
    pub action: String,
    /// The client's redirect URI as a CSP source (its origin, or `scheme:` for a native
    /// app's private-use scheme): browsers check `form-action` against the redirect that
    /// answers the form too, so the page must allow it.
    pub redirect_source: Option<String>,
}

/// Whether `consent` already covers everything `grant` asks for.
pub(super) fn covers(consent: &entity::consent::Model, grant: &Grant) -> bool {
    let scopes: BTreeSet<&str> = consent.scope.split_ascii_whitespace().collect();
    let uris: BTreeSet<&str> = consent.resources.split_ascii_whitespace().collect();
    grant
        .scope
        .split_ascii_whitespace()
        .all(|s| scopes.contains(s))
        && grant.resources().iter().all(|u| uris.contains(u.as_str()))
}

/// Records the approval: what the person approved before for this client, and this.
pub(super) async fn remember(
    state: &AppState,
    org: &organization::Model,
    client: &Client,
    person: &Person,
    existing: Option<entity::consent::Model>,
    grant: &Grant,
) -> Result<(), StorageError> {
    let now = state.clock.now();
    let scope = union(
        existing.as_ref().map_or("", |c| c.scope.as_str()),
        grant.scope.split_ascii_whitespace(),
    );
    let resources = union(
        existing.as_ref().map_or("", |c| c.resources.as_str()),
        grant.resources().iter().map(String::as_str),
    );
    storage::consents::put(
        &state.storage,
        entity::consent::Model {
            id: existing
                .as_ref()
                .map_or_else(|| new_id("cns"), |c| c.id.clone()),
            org_id: org.id.clone(),
            user_id: person.user_id.clone(),
            client_id: client.client_id.clone(),
            client_name: client.name.clone(),
            scope,
            resources,
            created_at: existing.as_ref().map_or(now, |c| c.created_at),
            updated_at: now,
        },
    )
    .await
}

/// The names of space-separated `old` and of `new`, sorted, each once.
pub(super) fn union<'a>(old: &'a str, new: impl Iterator<Item = &'a str>) -> String {
    let all: BTreeSet<&str> = old.split_ascii_whitespace().chain(new).collect();
    all.into_iter().collect::<Vec<_>>().join(" ")
}

/// What the consent page shows.
pub(super) async fn view(
    state: &AppState,
    org: &organization::Model,
    client: &Client,
    person: &Person,
    params: &Params,
    grant: &Grant,
) -> Result<ConsentView, StorageError> {
    let resources = storage::resources::by_uris(&state.storage, &org.id, grant.resources())
        .await?
        .into_iter()
        .map(|r| (r.uri, r.name))
        .collect();
    Ok(ConsentView {
        client_name: client.name.clone(),
        client_host: (client.source == ClientSource::MetadataDocument)
            .then(|| url::Url::parse(&client.client_id).ok())
            .flatten()
            .and_then(|u| u.host_str().map(str::to_owned)),
        email: person.email.clone(),
        scopes: grant
            .scope
            .split_ascii_whitespace()
            .map(|s| {
                let own = grant.target.is_none();
                (s.to_owned(), own.then(|| scope_description(s)).flatten())
            })
            .collect(),
        resources,
        hidden: params.request(),
        csrf: person.csrf_token().to_owned(),
        action: format!("/v1/{}/oauth/authorize", org.slug),
        redirect_source: params.get("redirect_uri").and_then(csp_source),
    })
}

/// `uri` as a CSP source expression: its origin (`https://app.example:8443`), or its scheme
/// (`com.example.app:`) when it has no host.
pub(super) fn csp_source(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    Some(match url.origin() {
        origin @ url::Origin::Tuple(..) => origin.ascii_serialization(),
        url::Origin::Opaque(_) => format!("{}:", url.scheme()),
    })
}
