//! Access tokens (RFC 9068): the claims, issuing, and the one verifier that
//! every protected endpoint (and later introspection) shares. No HTTP, no database: the
//! caller passes the key set, the expected issuer and audience, and the time.

mod claims;
mod verify;

pub use claims::{AccessClaims, Actor, Audience, Confirmation, MayAct};
pub use verify::{
    Expectation, TokenError, check_times, verify, verify_any_audience_with_kid, verify_with_kid,
};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Header;

use crate::keys::signing::KeySet;

/// RFC 9068 §2.1: the `typ` header of an access token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("no signing key is active")]
    NoActiveKey,
    #[error("the claims do not serialize: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("signing failed")]
    Sign,
}

/// Signs `claims` with the active key: header `typ: at+jwt`, `alg`, `kid` (a compact JWS,
/// RFC 7515 §7.1). The key is the set's parsed one, so a token costs one signature.
pub fn issue(keys: &KeySet, claims: &AccessClaims) -> Result<String, IssueError> {
    let active = keys.active().ok_or(IssueError::NoActiveKey)?;
    let mut header = Header::new(active.alg.jwt_algorithm());
    header.typ = Some(ACCESS_TOKEN_TYP.into());
    header.kid = Some(active.kid.clone());
    let mut jws = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?);
    jws.push('.');
    URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(claims)?, &mut jws);
    let signature = active.sign(jws.as_bytes()).map_err(|_| IssueError::Sign)?;
    jws.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut jws);
    Ok(jws)
}
