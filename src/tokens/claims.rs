//! The claims of a keygate access token (RFC 9068 §2.2).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// `{public_url}/v1/{org}` (RFC 9068 §2.2, RFC 8414 issuer).
    pub iss: String,
    /// The user id the token acts as.
    pub sub: String,
    /// Configured audience, default the issuer.
    pub aud: String,
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
    /// RFC 8693 §4.1: the acting party when the key's owner acts for another user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// RFC 7638 thumbprint of the DPoP public key.
    pub jkt: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub sub: String,
}
