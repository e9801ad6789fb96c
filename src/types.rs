//! Parsed domain values: slugs, roles, key environments, scopes and signing algorithms. A handler or command
//! holds one of these only after its `parse` succeeded, so nothing downstream re-validates.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ParseError(pub String);

/// An organization slug: `[a-z0-9][a-z0-9-]{1,62}`. Never contains `_`, which
/// is what lets `{org}_{user_id}` split unambiguously.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let bytes = s.as_bytes();
        let ok = (2..=63).contains(&bytes.len())
            && bytes[0].is_ascii_lowercase() | bytes[0].is_ascii_digit()
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError(format!(
                "`{s}` is not an organization slug: 2 to 63 characters of a-z, 0-9 and `-`, starting with a letter or digit"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &[Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(ParseError(format!(
                        concat!("`{}` is not a valid ", stringify!($name), " (one of: {})"),
                        s,
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// A user's role in its organization.
    Role { Owner => "owner", Admin => "admin", Member => "member", Service => "service" }
);

impl Role {
    /// Owners and admins manage the organization (and may act for its users).
    pub fn is_admin(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }

    /// The role's rank: owner > admin > member = service.
    pub fn rank(self) -> u8 {
        match self {
            Role::Owner => 3,
            Role::Admin => 2,
            Role::Member | Role::Service => 1,
        }
    }

    /// Whether a user with this role may hold a credential of a user with role `target`:
    /// create or rotate that user's API key, or act for that user. Nobody mints a
    /// credential for someone who outranks them.
    pub fn ranks_at_least(self, target: Role) -> bool {
        self.rank() >= target.rank()
    }

    /// Whether a user with this role may act for a user with role `subject`: owners and
    /// admins may, for users who do not outrank them.
    pub fn may_act_for(self, subject: Role) -> bool {
        self.is_admin() && self.ranks_at_least(subject)
    }
}

string_enum!(
    /// Which kind of secret an API key is: `ak_live_…` or `ak_test_…`.
    Environment { Live => "live", Test => "test" }
);

string_enum!(
    /// Where an API key or a session is in its life: revoked once `revoked_at` has passed
    /// (a rotation's grace period is still `active`), else expired once `expires_at` has.
    Lifecycle { Active => "active", Expired => "expired", Revoked => "revoked" }
);

impl Lifecycle {
    pub fn of(
        revoked_at: Option<chrono::DateTime<chrono::Utc>>,
        expires_at: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        if revoked_at.is_some_and(|t| t <= now) {
            Lifecycle::Revoked
        } else if expires_at <= now {
            Lifecycle::Expired
        } else {
            Lifecycle::Active
        }
    }
}

string_enum!(
    /// Whether a user may sign in, and whether it was deleted.
    UserStatus { Active => "active", Disabled => "disabled", Deleted => "deleted" }
);

/// Every scope keygate knows. A key's scopes are a subset; a token's are the key's.
pub const KNOWN_SCOPES: &[&str] = &[
    "keys:read",
    "keys:write",
    "users:read",
    "users:write",
    "sessions:write",
    "audit:read",
    "resources:read",
    "resources:write",
    "clients:read",
    "clients:write",
];

/// What one of keygate's own scopes lets a token do, in words for the pages where a person
/// approves a client (`None`: not one of keygate's scopes).
pub fn scope_description(scope: &str) -> Option<&'static str> {
    Some(match scope {
        "keys:read" => "See API keys",
        "keys:write" => "Create, rotate and revoke API keys",
        "users:read" => "See users and their sessions",
        "users:write" => "Change users",
        "sessions:write" => "End sessions",
        "audit:read" => "Read the audit log",
        "resources:read" => "See the protected resources",
        "resources:write" => "Register, change and remove protected resources",
        "clients:read" => "See the applications registered here",
        "clients:write" => "Register and delete applications",
        _ => return None,
    })
}

/// A set of known scopes, rendered space-separated (RFC 6749 §3.3).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Scopes(BTreeSet<&'static str>);

impl Scopes {
    pub fn all() -> Self {
        Self(KNOWN_SCOPES.iter().copied().collect())
    }

    /// Parses scope names (each must be known); an empty list is an empty set.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, ParseError> {
        let mut set = BTreeSet::new();
        for name in names {
            let known = KNOWN_SCOPES.iter().find(|s| **s == name).ok_or_else(|| {
                ParseError(format!(
                    "unknown scope `{name}` (known: {})",
                    KNOWN_SCOPES.join(" ")
                ))
            })?;
            set.insert(*known);
        }
        Ok(Self(set))
    }

    /// Parses the stored space-separated form.
    pub fn parse_list(list: &str) -> Result<Self, ParseError> {
        Self::parse(list.split_ascii_whitespace())
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    pub fn iter(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.iter().copied()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let joined: Vec<&str> = self.0.iter().copied().collect();
        f.write_str(&joined.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in ["default", "ab", "a-1", "0rg", &"a".repeat(63)] {
            assert!(Slug::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "-ab", "A-b", "a_b", "a.b", "é-a", &"a".repeat(64)] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn roles_round_trip_and_reject_unknown() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), *role);
        }
        assert!("root".parse::<Role>().is_err());
        assert!("Owner".parse::<Role>().is_err());
    }

    #[test]
    fn scopes_parse_dedupe_and_render_sorted() {
        let s = Scopes::parse_list("users:read keys:read  users:read").unwrap();
        assert_eq!(s.to_string(), "keys:read users:read");
        assert!(Scopes::parse_list("keys:read admin").is_err());
        assert_eq!(Scopes::parse_list("").unwrap().to_string(), "");
    }
}

/// The algorithm of a signing key: ES256 by default, EdDSA (Ed25519) selectable. What it means
/// to the token library is `keys::signing`'s business.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SigningAlg {
    ES256,
    EdDSA,
}

/// A signing algorithm keygate does not offer.
#[derive(Debug, thiserror::Error)]
#[error("unknown signing algorithm `{0}`")]
pub struct UnknownSigningAlg(String);

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::ES256 => "ES256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }
}

impl FromStr for SigningAlg {
    type Err = UnknownSigningAlg;
    fn from_str(s: &str) -> Result<Self, UnknownSigningAlg> {
        match s {
            "ES256" => Ok(SigningAlg::ES256),
            "EdDSA" => Ok(SigningAlg::EdDSA),
            other => Err(UnknownSigningAlg(other.to_owned())),
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
