//! The claims of a keygate access token (RFC 9068 §2.2).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// `{public_url}/v1/{org}` (RFC 9068 §2.2, RFC 8414 issuer).
    pub iss: String,
    /// The user id the token acts as.
    pub sub: String,
    /// keygate's own tokens: the configured audience, default the issuer; a token for
    /// protected resources (RFC 8707): their URIs (a list when several).
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    /// The API key id that signed in (RFC 9068 §2.2, RFC 8693 §4.3).
    pub client_id: String,
    /// Space-separated scopes (RFC 9068 §2.2.3).
    pub scope: String,
    /// Session id.
    pub sid: String,
    /// Organization slug.
    pub org: String,
    /// RFC 9449 §6.1: present when the token is DPoP-bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// RFC 8693 §4.1: the acting party when the key's owner acts for another user, or the
    /// delegation chain of an exchanged token (outermost: the current actor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// RFC 8693 §4.4: who may exchange this token as its actor (set by a token exchange
    /// that asked for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub may_act: Option<MayAct>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// RFC 7638 thumbprint of the DPoP public key.
    pub jkt: String,
}

/// RFC 8693 §4.1 `act`: an actor, with the prior actors of the chain nested inside.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub sub: String,
    /// The actor before this one (RFC 8693 §4.1: nested `act` claims are prior actors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

impl Actor {
    /// One actor with no prior ones.
    pub fn one(sub: String) -> Self {
        Self { sub, act: None }
    }

    /// How many actors the chain holds (this one included).
    pub fn depth(&self) -> usize {
        1 + self.act.as_ref().map_or(0, |prior| prior.depth())
    }
}

/// RFC 8693 §4.4 `may_act`: the party allowed to act for the token's subject.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MayAct {
    pub sub: String,
}

/// RFC 7519 §4.1.3 `aud`: one string, or an array of them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    /// One value as a string, several as an array.
    pub fn of(mut values: Vec<String>) -> Self {
        if values.len() == 1 {
            Audience::One(values.remove(0))
        } else {
            Audience::Many(values)
        }
    }

    pub fn contains(&self, value: &str) -> bool {
        match self {
            Audience::One(one) => one == value,
            Audience::Many(many) => many.iter().any(|a| a == value),
        }
    }
}

impl From<String> for Audience {
    fn from(value: String) -> Self {
        Audience::One(value)
    }
}

impl From<&str> for Audience {
    fn from(value: &str) -> Self {
        Audience::One(value.to_owned())
    }
}
