//! The client of a device authorization request ("the asker") and what a person's approval
//! can give it: what it asked for, nothing when it asked for nothing (a token that only
//! says who the person is, as for an authorization code). An API key client: within the
//! key's scopes. A browser client (registered, a Client ID Metadata Document, or the
//! built-in `keygate-cli`): within its registered scope when it has one.
//! Either way keygate's own scopes are also limited to what the person's role can grant
//! ([`policy::grantable`]), and with `resource` the RFC 8707 rules of `crate::resources`
//! apply.

use chrono::{DateTime, Utc};
use entity::{api_key, device_code, organization};

use crate::admin::policy;
use crate::auth::session::SessionClient;
use crate::clients::{self, Client, ClientError};
use crate::ids::is_id;
use crate::resources::{self, Target, TargetError};
use crate::state::AppState;
use crate::storage::{self, StorageError};
use crate::types::{KNOWN_SCOPES, Role};

/// The client of a device authorization request, as it stands now.
pub enum Asker {
    Key(Box<api_key::Model>),
    Browser(Client),
}

impl Asker {
    /// Its `client_id` (stored in `device_codes.client_id`, the tokens' `client_id`).
    pub fn id(&self) -> &str {
        match self {
            Asker::Key(key) => &key.id,
            Asker::Browser(client) => &client.client_id,
        }
    }

    /// Whether it may hold `scope`, one of keygate's own: within the key's scopes, or
    /// within the browser client's registered `scope` (if any).
    fn allows_own(&self, scope: &str) -> bool {
        match self {
            Asker::Key(key) => key.scopes.split_ascii_whitespace().any(|k| k == scope),
            Asker::Browser(client) => KNOWN_SCOPES.contains(&scope) && client_allows(client, scope),
        }
    }

    pub fn session_client(&self) -> SessionClient<'_> {
        match self {
            Asker::Key(key) => SessionClient::Key(key),
            Asker::Browser(client) => SessionClient::Browser(&client.client_id),
        }
    }

    /// The client of `row` as stored now: `None` when it can no longer get tokens (a key
    /// revoked or expired, a client removed or whose metadata document is gone).
    pub async fn of(
        state: &AppState,
        org: &organization::Model,
        row: &device_code::Model,
        now: DateTime<Utc>,
    ) -> Result<Option<Self>, StorageError> {
        if is_id(&row.client_id, "key") {
            return Ok(
                storage::api_keys::get(&state.storage, &org.id, &row.client_id)
                    .await?
                    .filter(|k| k.revoked_at.is_none_or(|t| t > now) && k.expires_at > now)
                    .map(|k| Asker::Key(Box::new(k))),
            );
        }
        match clients::resolve(state, org, &row.client_id).await {
            Ok(client) => Ok(Some(Asker::Browser(client))),
            Err(ClientError::Storage(err)) => Err(err),
            Err(_) => Ok(None),
        }
    }
}

/// Whether `client` may ask for `scope`: any, unless it registered the most it may ask for.
fn client_allows(client: &Client, scope: &str) -> bool {
    client
        .scope
        .as_deref()
        .is_none_or(|allowed| allowed.split_ascii_whitespace().any(|s| s == scope))
}

/// Checks a browser client's `scope` and `resource` at the device authorization endpoint
/// (the person's role is checked at approval): the scope to store (`None`: the default)
/// and the resources' target.
pub async fn check_browser_request(
    state: &AppState,
    org: &organization::Model,
    client: &Client,
    scope: Option<&str>,
    requested_resources: &[String],
) -> Result<(Option<String>, Option<Target>), TargetError> {
    if !requested_resources.is_empty() {
        let target = resources::for_approval(state, org, requested_resources, scope, |s| {
            client_allows(client, s)
        })
        .await?;
        let scope = scope.and(target.as_ref().map(|t| t.scope.clone()));
        return Ok((scope, target));
    }
    let Some(scope) = scope else {
        return Ok((None, None));
    };
    let mut names: Vec<&str> = scope.split_ascii_whitespace().collect();
    for name in &names {
        let shown: String = name.chars().take(100).collect();
        if !KNOWN_SCOPES.contains(name) {
            return Err(TargetError::InvalidScope(format!(
                "`{shown}` is not one of keygate's scopes (a protected resource's scope needs its `resource`)"
            )));
        }
        if !client_allows(client, name) {
            return Err(TargetError::InvalidScope(format!(
                "`{shown}` is not a scope this client may ask for"
            )));
        }
    }
    names.sort_unstable();
    names.dedup();
    Ok((Some(names.join(" ")), None))
}

/// What a person with `role` grants `asker`: the `requested` scope (none: no scope at all),
/// for keygate itself or for `resources` (stored URIs).
pub async fn grantable(
    state: &AppState,
    org: &organization::Model,
    asker: &Asker,
    requested: Option<&str>,
    resources: Option<&str>,
    role: Role,
) -> Result<(String, Option<Target>), TargetError> {
    if let Some(uris) = resources {
        let uris: Vec<String> = uris.split_ascii_whitespace().map(str::to_owned).collect();
        let target = match asker {
            Asker::Key(key) => resources::for_grant(state, org, key, &uris, requested).await?,
            Asker::Browser(client) => {
                resources::for_approval(state, org, &uris, requested, |s| client_allows(client, s))
                    .await?
            }
        }
        .ok_or_else(|| TargetError::InvalidTarget("no resource".into()))?;
        return Ok((target.scope.clone(), Some(target)));
    }
    // No `scope`: none, a token that only says who the person is, as for an authorization
    // code (README, "Device flow and `keygate login`"): a person approves what was named.
    let mut granted: Vec<&str> = requested
        .unwrap_or_default()
        .split_ascii_whitespace()
        .filter(|s| asker.allows_own(s) && policy::grantable(role, s))
        .collect();
    granted.sort_unstable();
    granted.dedup();
    Ok((granted.join(" "), None))
}
