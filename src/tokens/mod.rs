//! Access tokens (RFC 9068): the claims, issuing, and the one verifier that
//! every protected endpoint (and later introspection) shares. No HTTP, no database: the
//! caller passes the key set, the expected issuer and audience, and the time.

mod claims;
mod verify;

pub use claims::{AccessClaims, Actor, Audience, Confirmation};
pub use verify::{
    Expectation, TokenError, check_times, verify, verify_any_audience_with_kid, verify_with_kid,
};

use jsonwebtoken::Header;

use crate::keys::signing::KeySet;

/// RFC 9068 §2.1: the `typ` header of an access token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("no signing key is active")]
    NoActiveKey,
    #[error("signing failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Signs `claims` with the active key: header `typ: at+jwt`, `alg`, `kid`.
pub fn issue(keys: &KeySet, claims: &AccessClaims) -> Result<String, IssueError> {
    let active = keys.active().ok_or(IssueError::NoActiveKey)?;
    let mut header = Header::new(active.alg.jwt_algorithm());
    header.typ = Some(ACCESS_TOKEN_TYP.into());
    header.kid = Some(active.kid.clone());
    Ok(jsonwebtoken::encode(&header, claims, &active.key)?)
}
