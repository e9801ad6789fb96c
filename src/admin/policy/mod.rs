//! Who may do what: the one authorization decision every admin endpoint asks for, before it
//! touches anything. Pure: the caller, the action and the target in, allow or a denial out.
//!
//! Two things must both allow an action: the token's scopes (a missing scope is
//! `insufficient_scope`) and the caller's role against the target (`permission_denied`).
//! Issuing a secret (creating or rotating a key) also needs the key's owner not to outrank
//! the caller and the key's scopes (keygate's own) to lie within the caller's token. Scopes
//! of the organization's protected resources on a key are not keygate's powers and no token
//! for keygate holds them: whoever may create or rotate a user's keys may list them.
//! The rules are in docs/admin-api.md; the table-driven tests below and in
//! `tests/api/admin/matrix.rs` and `tests/api/security/roles.rs` hold them.

use entity::organization;

use crate::audit::RequestMeta;
use crate::auth::TokenType;
use crate::auth::access::Caller;
use crate::types::{KNOWN_SCOPES, Role, Scopes};

/// The authenticated caller of an admin endpoint, as the policy sees it.
#[derive(Clone, Debug)]
pub struct Actor {
    pub org: organization::Model,
    /// The token's subject: when acting for another user, that user (with their rights).
    pub user_id: String,
    /// The role as stored now, not as when the token was issued (for a cross-organization
    /// caller: the role its grant gives).
    pub role: Role,
    /// The token's scopes (names keygate does not know are ignored).
    pub scopes: Scopes,
    /// The API key the request authenticated with (the token's `client_id`; `None` for an
    /// identity provider's token).
    pub key_id: Option<String>,
    /// When the token acts for `user_id`: the user acting (`act.sub`), who holds whatever
    /// the request issues.
    pub act: Option<String>,
    /// The whole `act` chain of the token (RFC 8693 §4.1), as JSON, for the audit log.
    pub chain: Option<String>,
    pub token_type: TokenType,
    pub meta: RequestMeta,
}

impl Actor {
    pub fn new(caller: Caller) -> Self {
        let known = caller
            .token
            .scope
            .split_ascii_whitespace()
            .filter(|s| KNOWN_SCOPES.contains(s));
        Self {
            scopes: Scopes::parse(known).unwrap_or_default(),
            role: caller.role,
            user_id: caller.user.id,
            org: caller.org,
            key_id: caller.token.client_id,
            chain: caller
                .token
                .act
                .as_ref()
                .map(|a| serde_json::json!(a).to_string()),
            act: caller.token.act.map(|a| a.sub),
            token_type: caller.token_type,
            meta: caller.meta,
        }
    }

    /// Owners and admins see every item of a listing; others see their own.
    pub fn sees_everything(&self) -> bool {
        self.role.is_admin()
    }
}

/// keygate's own scopes a person with `role` may approve for a browser client
/// (authorization code, device flow): those that let a token do something the role may do
/// (README, "Authorization code + PKCE"). Owners and admins: every scope keygate knows;
/// members and service accounts: those of their self-service (their keys, their user, their
/// sessions), not the audit log's nor the protected resources'.
pub fn grantable(role: Role, scope: &str) -> bool {
    const SELF_SERVICE: &[&str] = &[
        "keys:read",
        "keys:write",
        "users:read",
        "users:write",
        "sessions:write",
    ];
    KNOWN_SCOPES.contains(&scope) && (role.is_admin() || SELF_SERVICE.contains(&scope))
}

/// Something a caller asks to do, with what the decision depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    KeysRead,
    KeysCreate,
    KeysRevoke,
    /// `immediate`: a zero grace period (the old key is revoked at once).
    KeysRotate {
        immediate: bool,
    },
    /// Setting a key's own issuance limits (README, "Limits"): owners and admins only, so
    /// a member or an agent cannot raise the limit that contains it.
    KeysLimit,
    UsersRead,
    UsersCreate,
    /// `role`: the new role, when it changes; `disable`: whether the user is being disabled;
    /// `link`: whether the user's `external_subject` (its identity-provider login) changes.
    UsersUpdate {
        role: Option<Role>,
        disable: bool,
        link: bool,
    },
    UsersDelete,
    SessionsRead,
    SessionsRevoke,
    AuditRead,
    GrantsRead,
    /// `role`: the role the grant gives.
    GrantsCreate {
        role: Role,
    },
    GrantsRevoke {
        role: Role,
    },
    IssuersRead,
    /// Registering or removing a trusted identity provider.
    IssuersWrite,
    ResourcesRead,
    /// Registering, changing or removing a protected resource (RFC 8707).
    ResourcesWrite,
    /// Listing what a user approved for browser clients.
    ConsentsRead,
    /// Withdrawing a user's consents (which ends their sessions with those clients).
    ConsentsRevoke,
    ClientsRead,
    /// Registering or deleting a client of the browser and device flows.
    ClientsWrite,
    /// Reading the organization's settings (direct API keys, self-registration).
    SettingsRead,
    /// Changing them: owners only.
    SettingsWrite,
    /// Approving a self-registered key that is pending.
    KeysApprove,
}

impl Action {
    /// The permission's name, as audit events and error messages give it.
    pub fn name(self) -> &'static str {
        match self {
            Action::KeysRead => "keys.read",
            Action::KeysCreate => "keys.create",
            Action::KeysRevoke => "keys.revoke",
            Action::KeysRotate { .. } => "keys.rotate",
            Action::KeysLimit => "keys.limit",
            Action::UsersRead => "users.read",
            Action::UsersCreate => "users.create",
            Action::UsersUpdate { .. } => "users.update",
            Action::UsersDelete => "users.delete",
            Action::SessionsRead => "sessions.read",
            Action::SessionsRevoke => "sessions.revoke",
            Action::AuditRead => "audit.read",
            Action::GrantsRead => "grants.read",
            Action::GrantsCreate { .. } => "grants.create",
            Action::GrantsRevoke { .. } => "grants.revoke",
            Action::IssuersRead => "trusted_issuers.read",
            Action::IssuersWrite => "trusted_issuers.write",
            Action::ResourcesRead => "resources.read",
            Action::ResourcesWrite => "resources.write",
            Action::ConsentsRead => "consents.read",
            Action::ConsentsRevoke => "consents.revoke",
            Action::ClientsRead => "clients.read",
            Action::ClientsWrite => "clients.write",
            Action::SettingsRead => "settings.read",
            Action::SettingsWrite => "settings.write",
            Action::KeysApprove => "keys.approve",
        }
    }

    /// The scope a token needs for this action.
    pub fn scope(self) -> &'static str {
        match self {
            Action::KeysRead => "keys:read",
            Action::KeysCreate
            | Action::KeysRevoke
            | Action::KeysRotate { .. }
            | Action::KeysLimit
            | Action::KeysApprove => "keys:write",
            Action::UsersRead
            | Action::SessionsRead
            | Action::GrantsRead
            | Action::IssuersRead
            | Action::ConsentsRead
            | Action::SettingsRead => "users:read",
            Action::UsersCreate
            | Action::UsersUpdate { .. }
            | Action::UsersDelete
            | Action::GrantsCreate { .. }
            | Action::GrantsRevoke { .. }
            | Action::IssuersWrite
            | Action::SettingsWrite => "users:write",
            Action::SessionsRevoke | Action::ConsentsRevoke => "sessions:write",
            Action::AuditRead => "audit:read",
            Action::ResourcesRead => "resources:read",
            Action::ResourcesWrite => "resources:write",
            Action::ClientsRead => "clients:read",
            Action::ClientsWrite => "clients:write",
        }
    }
}

/// What an action is done to.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// A listing as a whole (members' listings are narrowed to their own, not refused).
    Listing,
    /// A key owned by `owner` (`id: None`: one about to be created). For creating and
    /// rotating: `owner_role` is the owner's stored role (`None`: not known here; the
    /// operation itself refuses a key for a user that does not exist), `scopes` keygate's scopes the new secret would carry (`None`:
    /// the caller's own); its resource scopes are not checked here.
    Key {
        owner: &'a str,
        owner_role: Option<Role>,
        id: Option<&'a str>,
        scopes: Option<&'a Scopes>,
    },
    /// An existing user.
    User { id: &'a str, role: Role },
    /// A user about to be created with this role.
    NewUser { role: Role },
    /// A session of `user_id` (`id: None`: the user's sessions as a listing).
    Session {
        user_id: &'a str,
        id: Option<&'a str>,
    },
    /// A cross-organization grant (`id: None`: one about to be created).
    Grant { id: Option<&'a str> },
    /// A trusted identity provider (`id: None`: one about to be registered).
    Issuer { id: Option<&'a str> },
    /// A protected resource (`id: None`: one about to be registered).
    Resource { id: Option<&'a str> },
    /// A client of the browser and device flows (`id: None`: one about to be registered).
    Client { id: Option<&'a str> },
}

impl Target<'_> {
    /// `(target_type, target_id)` for the audit trail.
    pub fn audit(&self) -> (Option<&'static str>, Option<String>) {
        match self {
            Target::Listing => (None, None),
            Target::Key { id, owner, .. } => (
                Some(if id.is_some() { "api_key" } else { "user" }),
                Some(id.unwrap_or(owner).to_string()),
            ),
            Target::User { id, .. } => (Some("user"), Some((*id).to_owned())),
            Target::NewUser { .. } => (Some("user"), None),
            Target::Session { id, user_id } => (
                Some(if id.is_some() { "session" } else { "user" }),
                Some(id.unwrap_or(user_id).to_string()),
            ),
            Target::Grant { id } => (Some("cross_org_grant"), id.map(str::to_owned)),
            Target::Issuer { id } => (Some("trusted_issuer"), id.map(str::to_owned)),
            Target::Resource { id } => (Some("resource"), id.map(str::to_owned)),
            Target::Client { id } => (Some("client"), id.map(str::to_owned)),
        }
    }
}

/// Why an action was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error("this token lacks the `{scope}` scope")]
    InsufficientScope {
        scope: &'static str,
        scheme: TokenType,
    },
    #[error("{0}")]
    PermissionDenied(String),
}

impl Denial {
    pub fn code(&self) -> &'static str {
        match self {
            Denial::InsufficientScope { .. } => "insufficient_scope",
            Denial::PermissionDenied(_) => "permission_denied",
        }
    }
}

/// What creating or rotating a key must also respect, once the role rules allowed it: the
/// key's owner does not outrank the caller, and the new secret carries no scope the
/// caller's token lacks (a rotation copies the old key's scopes, so a narrowed token
/// cannot turn a wide key into a wide secret of its own).
fn issuing_rules(actor: &Actor, action: Action, target: Target<'_>) -> Result<(), Denial> {
    if let (Action::KeysLimit, Target::Key { owner_role, .. }) = (action, target) {
        return match owner_role {
            Some(role) if !actor.role.ranks_at_least(role) => Err(Denial::PermissionDenied(
                "you cannot set the limits of a key whose owner's role is above yours".into(),
            )),
            _ => Ok(()),
        };
    }
    let (
        Action::KeysCreate | Action::KeysRotate { .. },
        Target::Key {
            owner_role, scopes, ..
        },
    ) = (action, target)
    else {
        return Ok(());
    };
    if let Some(role) = owner_role
        && !actor.role.ranks_at_least(role)
    {
        return Err(Denial::PermissionDenied(
            "you cannot create or rotate an API key of a user whose role is above yours".into(),
        ));
    }
    if let Some(extra) = scopes
        .into_iter()
        .flat_map(Scopes::iter)
        .find(|s| !actor.scopes.contains(s))
    {
        return Err(Denial::PermissionDenied(format!(
            "the key would carry the scope `{extra}`, which your token does not hold"
        )));
    }
    Ok(())
}

/// The decision: `Ok` when `actor` may do `action` to `target`.
pub fn authorize(actor: &Actor, action: Action, target: Target<'_>) -> Result<(), Denial> {
    let deny = |message: &str| Denial::PermissionDenied(message.to_owned());

    if !actor.scopes.contains(action.scope()) {
        return Err(Denial::InsufficientScope {
            scope: action.scope(),
            scheme: actor.token_type,
        });
    }

    // Rules for everyone, whatever the role.
    let is_self = |id: &str| id == actor.user_id;
    match (action, target) {
        (Action::KeysRevoke, Target::Key { id: Some(id), .. })
            if Some(id) == actor.key_id.as_deref() =>
        {
            return Err(deny(
                "you cannot revoke the API key this request authenticated with",
            ));
        }
        (Action::KeysRotate { immediate: true }, Target::Key { id: Some(id), .. })
            if Some(id) == actor.key_id.as_deref() =>
        {
            return Err(deny(
                "rotating the API key this request authenticated with needs a grace_period above 0s",
            ));
        }
        (
            Action::UsersUpdate {
                role: Some(new), ..
            },
            Target::User { id, .. },
        ) if is_self(id) && new.rank() > actor.role.rank() => {
            return Err(deny("you cannot raise your own role"));
        }
        (Action::UsersUpdate { disable: true, .. }, Target::User { id, .. }) if is_self(id) => {
            return Err(deny("you cannot disable yourself"));
        }
        (Action::UsersDelete, Target::User { id, .. }) if is_self(id) => {
            return Err(deny("you cannot delete yourself"));
        }
        _ => {}
    }

    let by_role = match actor.role {
        Role::Owner => Ok(()),
        Role::Admin => match (action, target) {
            (Action::IssuersWrite, _) => Err(deny(
                "only an owner can change which identity providers the organization trusts",
            )),
            (Action::SettingsWrite, _) => {
                Err(deny("only an owner can change the organization's settings"))
            }
            (Action::GrantsCreate { role } | Action::GrantsRevoke { role }, _)
                if role.rank() > Role::Member.rank() =>
            {
                Err(deny("only an owner can manage a grant above member"))
            }
            (Action::UsersCreate, Target::NewUser { role: Role::Owner })
            | (
                Action::UsersUpdate {
                    role: Some(Role::Owner),
                    ..
                },
                _,
            ) => Err(deny("only an owner can make someone an owner")),
            (Action::UsersUpdate { .. } | Action::UsersDelete, Target::User { id, role })
                if role == Role::Owner && !is_self(id) =>
            {
                Err(deny("only an owner can change or delete an owner"))
            }
            (Action::ConsentsRead | Action::ConsentsRevoke, Target::User { id, role })
                if role == Role::Owner && !is_self(id) =>
            {
                Err(deny(
                    "only an owner can see or withdraw an owner's consents",
                ))
            }
            _ => Ok(()),
        },
        Role::Member | Role::Service => {
            let own = match target {
                Target::Listing => true,
                Target::Key { owner, .. } => is_self(owner),
                Target::User { id, .. } => is_self(id),
                Target::Session { user_id, .. } => is_self(user_id),
                Target::NewUser { .. }
                | Target::Grant { .. }
                | Target::Issuer { .. }
                | Target::Resource { .. }
                | Target::Client { .. } => false,
            };
            match action {
                Action::KeysRead
                | Action::KeysCreate
                | Action::KeysRevoke
                | Action::KeysRotate { .. }
                | Action::UsersRead
                | Action::SessionsRead
                | Action::SessionsRevoke
                | Action::ConsentsRead
                | Action::ConsentsRevoke
                    if own =>
                {
                    Ok(())
                }
                Action::UsersUpdate {
                    role: None,
                    disable: false,
                    link: false,
                } if own && !matches!(target, Target::Listing) => Ok(()),
                Action::UsersUpdate { .. } if own => Err(deny(
                    "only an owner or admin can change roles or identity-provider links",
                )),
                Action::UsersCreate
                | Action::KeysLimit
                | Action::UsersDelete
                | Action::AuditRead
                | Action::GrantsRead
                | Action::GrantsCreate { .. }
                | Action::GrantsRevoke { .. }
                | Action::IssuersRead
                | Action::IssuersWrite
                | Action::ResourcesRead
                | Action::ResourcesWrite
                | Action::ClientsRead
                | Action::ClientsWrite
                | Action::SettingsRead
                | Action::SettingsWrite
                | Action::KeysApprove => Err(deny(
                    "only an owner or admin of the organization can do this",
                )),
                _ => Err(deny(
                    "members and service accounts can only manage their own credentials",
                )),
            }
        }
    };
    by_role.and_then(|()| issuing_rules(actor, action, target))
}

#[cfg(test)]
mod tests;
