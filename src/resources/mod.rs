//! Protected resources and audiences (RFC 8707; README, "Protected resources"): what a
//! token request naming `resource` gets. [`for_grant`] resolves the resources of a new
//! session (sign-in, `client_credentials`), [`for_refresh`] those of a refresh (a subset of
//! the session's, never a new one); both return the token's [`Target`]: its `aud`, its
//! scope and the cap on its lifetime. [`metadata_document`] is the RFC 9728 document a
//! resource publishes. Registering resources is the admin API's (`admin::resources`).
//!
//! Scope rules: the scopes a token may carry are those the named resources define that
//! the API key may use. A key created without a scope list may use every scope of the
//! organization's resources; a key created with one, only those its list names
//! (`admin::key_scopes`). A requested `scope` must lie within that (`invalid_scope`);
//! without one, the token gets all of it, and a key that may use none of the named
//! resources' scopes is refused (`invalid_scope`) rather than given a token with no scope.

pub mod scopes;
pub mod uri;

use std::collections::BTreeSet;
use std::time::Duration;

use entity::{api_key, organization, resource};
use serde_json::{Value, json};

pub use uri::{InvalidUri, ResourceUri};

use crate::auth::dpop::ALGS;
use crate::state::AppState;
use crate::storage::{self, StorageError};
use crate::tokens::Audience;

/// Most resources one token request may name.
pub const MAX_PER_REQUEST: usize = 16;

/// What a token for protected resources is: its audience, scope and longest lifetime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The resources' URIs (normalized, sorted, distinct): the token's `aud`.
    pub uris: Vec<String>,
    /// Space-separated, sorted.
    pub scope: String,
    /// The smallest `access_ttl` of the resources, when any sets one.
    pub access_ttl: Option<Duration>,
}

impl Target {
    /// The session column that remembers the resources.
    pub fn stored(&self) -> String {
        self.uris.join(" ")
    }
}

/// Why a `resource` or `scope` is refused (RFC 8707 §2, RFC 6749 §5.2).
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// `invalid_target`.
    #[error("{0}")]
    InvalidTarget(String),
    /// `invalid_scope`.
    #[error("{0}")]
    InvalidScope(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl TargetError {
    pub fn code(&self) -> &'static str {
        match self {
            TargetError::InvalidTarget(_) => "invalid_target",
            TargetError::InvalidScope(_) => "invalid_scope",
            TargetError::Storage(_) => "internal_error",
        }
    }
}

/// The requested values, normalized and deduplicated; each must be a resource URI.
fn parse_requested(requested: &[String]) -> Result<BTreeSet<ResourceUri>, TargetError> {
    if requested.len() > MAX_PER_REQUEST {
        return Err(TargetError::InvalidTarget(format!(
            "at most {MAX_PER_REQUEST} resources may be named in one request"
        )));
    }
    requested
        .iter()
        .map(|r| ResourceUri::parse(r).map_err(|e| TargetError::InvalidTarget(e.0)))
        .collect()
}

/// The registered resources of `org_id` with these URIs; one that is not is `invalid_target`.
async fn registered(
    state: &AppState,
    org_id: &str,
    uris: &BTreeSet<ResourceUri>,
    missing: &str,
) -> Result<Vec<resource::Model>, TargetError> {
    let wanted: Vec<String> = uris.iter().map(|u| u.as_str().to_owned()).collect();
    let found = storage::resources::by_uris(&state.storage, org_id, &wanted).await?;
    if let Some(absent) = wanted.iter().find(|u| !found.iter().any(|r| &r.uri == *u)) {
        return Err(TargetError::InvalidTarget(format!("`{absent}` {missing}")));
    }
    Ok(found)
}

/// Whether `key` may use `scope` of a resource: every one when it was created without a
/// scope list, else those its list names (keygate's own names included, for a resource
/// that defines a scope of the same name).
fn key_allows(key: &api_key::Model, scope: &str) -> bool {
    let Some(listed) = key.resource_scopes.as_deref() else {
        return true;
    };
    listed
        .split_ascii_whitespace()
        .chain(key.scopes.split_ascii_whitespace())
        .any(|s| s == scope)
}

/// The token's scope: `requested` (each within `usable`), or all of `usable`.
fn pick_scope(
    requested: Option<&str>,
    offered: &BTreeSet<String>,
    usable: &BTreeSet<String>,
) -> Result<String, TargetError> {
    let Some(requested) = requested else {
        if usable.is_empty() && !offered.is_empty() {
            return Err(TargetError::InvalidScope(
                "this client may use none of the scopes of the named resources".into(),
            ));
        }
        return Ok(join(usable.iter()));
    };
    let requested: BTreeSet<&str> = requested.split_ascii_whitespace().collect();
    for scope in &requested {
        if !offered.contains(*scope) {
            return Err(TargetError::InvalidScope(format!(
                "the scope `{}` is not one of the named resources' scopes",
                scope.chars().take(100).collect::<String>()
            )));
        }
        if !usable.contains(*scope) {
            return Err(TargetError::InvalidScope(format!(
                "the scope `{scope}` is not granted to this client"
            )));
        }
    }
    Ok(join(requested.into_iter()))
}

fn join<S: AsRef<str>>(items: impl Iterator<Item = S>) -> String {
    items
        .map(|s| s.as_ref().to_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The target of a new session: `None` when no `resource` was named (a token for keygate
/// itself, as before). `key` is the client's API key.
pub async fn for_grant(
    state: &AppState,
    org: &organization::Model,
    key: &api_key::Model,
    requested: &[String],
    scope: Option<&str>,
) -> Result<Option<Target>, TargetError> {
    for_approval(state, org, requested, scope, |s| key_allows(key, s)).await
}

/// The target of a new session whose scopes `allows` decides (for an authorization a
/// person approves: what the client may ask for): `None` when no `resource` was named.
pub async fn for_approval(
    state: &AppState,
    org: &organization::Model,
    requested: &[String],
    scope: Option<&str>,
    allows: impl Fn(&str) -> bool,
) -> Result<Option<Target>, TargetError> {
    if requested.is_empty() {
        return Ok(None);
    }
    let uris = parse_requested(requested)?;
    let found = registered(
        state,
        &org.id,
        &uris,
        "is not a registered resource of this organization",
    )
    .await?;
    target_of(&found, scope, |_| true, allows).map(Some)
}

/// The target of `resources`: the scopes they define (those `within` accepts) that
/// `allows` lets the client use, narrowed to `scope` when given.
fn target_of(
    resources: &[resource::Model],
    scope: Option<&str>,
    within: impl Fn(&str) -> bool,
    allows: impl Fn(&str) -> bool,
) -> Result<Target, TargetError> {
    let offered: BTreeSet<String> = resources
        .iter()
        .flat_map(|r| r.scopes.split_ascii_whitespace())
        .filter(|s| within(s))
        .map(str::to_owned)
        .collect();
    let usable: BTreeSet<String> = offered.iter().filter(|s| allows(s)).cloned().collect();
    let scope = pick_scope(scope, &offered, &usable)?;
    let uris: BTreeSet<String> = resources.iter().map(|r| r.uri.clone()).collect();
    let access_ttl = resources
        .iter()
        .filter_map(|r| r.access_ttl_secs)
        .filter_map(|s| u64::try_from(s).ok())
        .min()
        .map(Duration::from_secs);
    Ok(Target {
        uris: uris.into_iter().collect(),
        scope,
        access_ttl,
    })
}

/// The target of a refresh of `session`: the session's resources, or the subset `requested`
/// names (a resource the session was not granted is `invalid_target`), each still
/// registered; the scope stays within the session's and what the resources define now.
/// `key`: the session's API key, whose list bounds the scopes too (`None`: a browser
/// client's session, bounded by what the person approved).
pub async fn for_refresh(
    state: &AppState,
    org: &organization::Model,
    key: Option<&api_key::Model>,
    session: &entity::session::Model,
    requested: &[String],
    scope: Option<&str>,
) -> Result<Option<Target>, TargetError> {
    narrowed(
        state,
        org,
        Granted {
            resources: session.resources.as_deref(),
            scope: &session.scope,
            to_keygate: "this session's tokens are for keygate itself; a refresh cannot add a resource",
            not_granted: "was not granted to this session; a refresh may only narrow its resources",
        },
        requested,
        scope,
        |s| key.is_none_or(|key| key_allows(key, s)),
    )
    .await
}

/// The target of a token exchange (RFC 8693 §2.1): the subject token's resources
/// (`resources`, space-separated; `None`: a token for keygate itself), or the subset the
/// request's `resource` and `audience` name; the scope within the subject token's `scope`
/// and what the resources define now. Never wider than the subject token.
pub async fn for_exchange(
    state: &AppState,
    org: &organization::Model,
    resources: Option<&str>,
    subject_scope: &str,
    requested: &[String],
    scope: Option<&str>,
) -> Result<Option<Target>, TargetError> {
    narrowed(
        state,
        org,
        Granted {
            resources,
            scope: subject_scope,
            to_keygate: "the subject token is for keygate itself; an exchange cannot add a resource",
            not_granted: "is not an audience of the subject token; an exchange may only narrow them",
        },
        requested,
        scope,
        |_| true,
    )
    .await
}

/// What an earlier token was granted, and how to say that a request goes beyond it.
struct Granted<'a> {
    resources: Option<&'a str>,
    scope: &'a str,
    to_keygate: &'static str,
    not_granted: &'static str,
}

/// The granted resources, or the subset `requested` names, each still registered; the
/// scope within the granted scope, what the resources define now and what `allows` lets.
async fn narrowed(
    state: &AppState,
    org: &organization::Model,
    granted: Granted<'_>,
    requested: &[String],
    scope: Option<&str>,
    allows: impl Fn(&str) -> bool,
) -> Result<Option<Target>, TargetError> {
    let Some(resources) = granted.resources else {
        if requested.is_empty() {
            return Ok(None);
        }
        return Err(TargetError::InvalidTarget(granted.to_keygate.into()));
    };
    let resources: BTreeSet<&str> = resources.split_ascii_whitespace().collect();
    let chosen = if requested.is_empty() {
        resources
            .iter()
            .map(|u| ResourceUri::parse(u).map_err(|e| TargetError::InvalidTarget(e.0)))
            .collect::<Result<BTreeSet<_>, _>>()?
    } else {
        let asked = parse_requested(requested)?;
        if let Some(new) = asked.iter().find(|u| !resources.contains(u.as_str())) {
            return Err(TargetError::InvalidTarget(format!(
                "`{new}` {}",
                granted.not_granted
            )));
        }
        asked
    };
    let found = registered(
        state,
        &org.id,
        &chosen,
        "is no longer a registered resource of this organization",
    )
    .await?;
    let granted_scopes: BTreeSet<&str> = granted.scope.split_ascii_whitespace().collect();
    target_of(&found, scope, |s| granted_scopes.contains(s), allows).map(Some)
}

/// Whether keygate issues tokens with this `aud` at `org`: its own audience, or only
/// registered resources of `org` (introspection and revocation answer for those tokens
/// alone; a resource removed since makes its tokens inactive there).
pub async fn audience_issued(
    state: &AppState,
    org: &organization::Model,
    aud: &Audience,
) -> Result<bool, StorageError> {
    let issuer = state.issuer(&org.slug);
    if *aud == Audience::One(state.audience(&issuer)) {
        return Ok(true);
    }
    let uris: Vec<String> = match aud {
        Audience::One(one) => vec![one.clone()],
        Audience::Many(many) => many.clone(),
    };
    if uris.is_empty() {
        return Ok(false);
    }
    let found = storage::resources::by_uris(&state.storage, &org.id, &uris).await?;
    Ok(uris.iter().all(|u| found.iter().any(|r| &r.uri == u)))
}

/// The RFC 9728 §2 metadata of `resource`, which that resource server should publish at
/// its `/.well-known/oauth-protected-resource` (RFC 9728 §3.1: for
/// `https://mcp.example.com/mcp`, at `https://mcp.example.com/.well-known/oauth-protected-resource/mcp`).
pub fn metadata_document(
    state: &AppState,
    org: &organization::Model,
    resource: &resource::Model,
) -> Value {
    let scopes: Vec<&str> = resource.scopes.split_ascii_whitespace().collect();
    json!({
        "resource": resource.uri,
        "authorization_servers": [state.issuer(&org.slug)],
        "scopes_supported": scopes,
        "bearer_methods_supported": ["header"],
        "resource_name": resource.name,
        "dpop_signing_alg_values_supported": ALGS.split(' ').collect::<Vec<_>>(),
        "dpop_bound_access_tokens_required": state.dpop_policy(org).required,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn key(scopes: &str, resource_scopes: Option<&str>) -> api_key::Model {
        api_key::Model {
            id: "key_x".into(),
            org_id: "org_x".into(),
            user_id: "usr_x".into(),
            name: "k".into(),
            environment: "live".into(),
            scopes: scopes.into(),
            resource_scopes: resource_scopes.map(str::to_owned),
            digest: String::new(),
            created_at: chrono::DateTime::UNIX_EPOCH,
            expires_at: chrono::DateTime::UNIX_EPOCH,
            revoked_at: None,
            last_used_at: None,
            created_by_user_id: None,
            created_by_role: None,
            public_jwks: None,
            limit_per_minute: None,
            limit_per_hour: None,
            last_used_ip: None,
            pending: false,
        }
    }

    #[test]
    fn an_unlisted_key_uses_every_resource_scope_a_listed_one_only_those_it_names() {
        assert!(key_allows(&key("keys:read", None), "mcp:tools"));
        assert!(key_allows(&key("", None), "mcp:tools"));
        assert!(!key_allows(&key("keys:read", Some("")), "mcp:tools"));
        assert!(key_allows(
            &key("", Some("files:read mcp:tools")),
            "mcp:tools"
        ));
        assert!(!key_allows(&key("", Some("mcp:tools")), "files:read"));
        // A resource scope named like one of keygate's: the key's own list counts.
        assert!(key_allows(&key("keys:read", Some("")), "keys:read"));
    }

    #[test]
    fn scopes_narrow_within_the_usable_and_name_what_is_wrong() {
        let offered = set(&["files:read", "mcp:tools"]);
        let usable = set(&["mcp:tools"]);
        assert_eq!(pick_scope(None, &offered, &usable).unwrap(), "mcp:tools");
        assert_eq!(
            pick_scope(Some("mcp:tools"), &offered, &usable).unwrap(),
            "mcp:tools"
        );
        for (requested, says) in [
            ("files:read", "not granted"),
            ("keys:read", "not one of"),
            ("mcp:tools other", "not one of"),
        ] {
            let err = pick_scope(Some(requested), &offered, &usable).unwrap_err();
            assert_eq!(err.code(), "invalid_scope");
            assert!(err.to_string().contains(says), "{requested}: {err}");
        }
        assert_eq!(
            pick_scope(None, &offered, &set(&[])).unwrap_err().code(),
            "invalid_scope"
        );
        assert_eq!(pick_scope(None, &set(&[]), &set(&[])).unwrap(), "");
    }
}
