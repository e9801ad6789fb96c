//! Authentication and sign-in, independent of HTTP: handlers pass in header values and
//! request metadata, and map the typed errors returned here to responses.

pub mod access;
pub mod cache;
pub mod client_assertion;
pub mod credential;
pub mod cross_org;
pub mod direct_key;
pub mod dpop;
pub mod federation;
pub mod revocation;
pub mod session;
pub mod signin;
pub mod throttle;

use serde::Serialize;

/// How an access token is presented (RFC 6750 / RFC 9449).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum TokenType {
    Bearer,
    DPoP,
}

impl TokenType {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Bearer => "Bearer",
            TokenType::DPoP => "DPoP",
        }
    }
}
