//! An API key's scope list (README, "Protected resources (RFC 8707)"; docs/admin-api.md,
//! "Key scopes"). A key holds keygate's own scopes (`api_keys.scopes`, the scopes of its
//! tokens for keygate itself) and an allowance of scopes of the organization's protected
//! resources (`api_keys.resource_scopes`):
//! - created without a list, it may use every scope of the organization's resources,
//!   whichever are registered when it asks for a token;
//! - created with a list, only the resource scopes the list names. Each name must then be
//!   one of keygate's scopes or a scope of a resource registered at creation; a name that
//!   a resource stops defining later does nothing (and works again if one defines it).
//!
//! A name that is both keygate's and a resource's is kept as keygate's, and the key may use
//! the resource's scope of that name too.

use std::collections::BTreeSet;

use entity::{api_key, organization};

use super::AdminError;
use crate::resources::scopes;
use crate::storage::{self, Storage};
use crate::types::{KNOWN_SCOPES, Scopes};

/// Most names one key's list may hold.
pub const MAX_LISTED: usize = 100;

/// A key's scope list as given at creation (`scopes` of `POST /v1/{org}/api_keys`,
/// `keygate key create --scope`), split into keygate's own and the others.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeList {
    pub own: Scopes,
    /// Not keygate's: each must be a scope of a registered resource ([`check_resources`]).
    pub resources: BTreeSet<String>,
}

impl ScopeList {
    /// Splits `names`, each an RFC 6749 §3.3 scope token (the error names a bad one).
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut list = ScopeList::default();
        let mut own = Vec::new();
        for name in names {
            scopes::check(name)?;
            if KNOWN_SCOPES.contains(&name) {
                own.push(name);
            } else {
                list.resources.insert(name.to_owned());
            }
        }
        list.own = Scopes::parse(own).map_err(|e| e.0)?;
        if list.own.iter().count() + list.resources.len() > MAX_LISTED {
            return Err(format!("a key lists at most {MAX_LISTED} scopes"));
        }
        Ok(list)
    }
}

/// Checks that each of `names` is a scope of a resource registered in `org`; the error names
/// the first that is not.
pub async fn check_resources(
    storage: &Storage,
    org: &organization::Model,
    names: &BTreeSet<String>,
) -> Result<(), AdminError> {
    if names.is_empty() {
        return Ok(());
    }
    let defined: BTreeSet<String> = storage::resources::list(storage, &org.id)
        .await?
        .iter()
        .flat_map(|r| r.scopes.split_ascii_whitespace())
        .map(str::to_owned)
        .collect();
    match names.iter().find(|n| !defined.contains(*n)) {
        None => Ok(()),
        Some(unknown) => Err(AdminError::Invalid(format!(
            "unknown scope `{unknown}`: neither one of keygate's ({}) nor a scope of a \
             protected resource registered in this organization",
            KNOWN_SCOPES.join(" ")
        ))),
    }
}

/// The resource scopes a stored key lists (`None`: created without a list, every one).
pub fn resource_allowance(key: &api_key::Model) -> Option<BTreeSet<String>> {
    key.resource_scopes
        .as_deref()
        .map(|s| s.split_ascii_whitespace().map(str::to_owned).collect())
}

/// Every name a key's list holds, as key responses show it: keygate's own scopes and the
/// listed resource scopes, sorted and distinct.
pub fn shown(key: &api_key::Model) -> Vec<String> {
    let all: BTreeSet<&str> = key
        .scopes
        .split_ascii_whitespace()
        .chain(
            key.resource_scopes
                .as_deref()
                .unwrap_or("")
                .split_ascii_whitespace(),
        )
        .collect();
    all.into_iter().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_splits_into_keygates_scopes_and_the_others() {
        let list = ScopeList::parse(["mcp:tools", "keys:read", "mcp:tools"]).unwrap();
        assert_eq!(list.own.to_string(), "keys:read");
        assert_eq!(list.resources.iter().collect::<Vec<_>>(), ["mcp:tools"]);
        assert_eq!(ScopeList::parse([]).unwrap(), ScopeList::default());
        for bad in ["", "a b", "quote\"d", "é"] {
            assert!(ScopeList::parse([bad]).is_err(), "{bad:?}");
        }
        let many: Vec<String> = (0..=MAX_LISTED).map(|i| format!("s{i}")).collect();
        assert!(ScopeList::parse(many.iter().map(String::as_str)).is_err());
    }
}
