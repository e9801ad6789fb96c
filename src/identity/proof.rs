//! Identity proofs (README, "Identity proofs"): a compact JWS (RFC 7515), `alg: EdDSA`
//! (RFC 8037), `typ: identity-proof+jwt`, signed with the organization's identity key, that
//! a caller shows a third party to say who it is. Anyone verifies it offline against
//! `/v1/{org}/.well-known/identity-jwks.json`. The `typ` differs from an access token's
//! `at+jwt` (RFC 9068 §2.1) and the key is in no access-token JWKS (RFC 8725 §3.11: one
//! kind of JWT must not be taken for another).
//! Must not: know about HTTP, or read the time (the caller passes it).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Header;
use serde::{Deserialize, Serialize};

use crate::keys::signing::KeySet;
use crate::tokens::Confirmation;

/// The `typ` header of an identity proof.
pub const IDENTITY_PROOF_TYP: &str = "identity-proof+jwt";

/// The longest `aud` a caller may ask for.
pub const MAX_AUDIENCE: usize = 512;

/// What an identity proof says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofClaims {
    /// The organization's issuer, `{public_url}/v1/{org}`.
    pub iss: String,
    /// The caller's user id.
    pub sub: String,
    /// The organization's slug.
    pub org: String,
    /// The caller's role in the organization.
    pub role: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// The party the proof is meant for, when the caller named one (RFC 7519 §4.1.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// RFC 7800 / RFC 9449 §6: the DPoP key the caller holds, when its token is DPoP-bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error("`aud` must be 1 to {MAX_AUDIENCE} characters without control characters")]
    BadAudience,
    #[error("the organization has no identity key that signs now")]
    NoActiveKey,
    #[error("the claims do not serialize: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("signing failed")]
    Sign,
}

/// A requested `aud`: 1 to [`MAX_AUDIENCE`] characters, no control characters.
pub fn parse_audience(aud: &str) -> Result<String, ProofError> {
    if aud.is_empty() || aud.chars().count() > MAX_AUDIENCE || aud.chars().any(char::is_control) {
        return Err(ProofError::BadAudience);
    }
    Ok(aud.to_owned())
}

/// Signs `claims` with the organization's active identity key: header `alg: EdDSA`,
/// `typ: identity-proof+jwt`, `kid`.
pub fn sign(keys: &KeySet, claims: &ProofClaims) -> Result<String, ProofError> {
    let active = keys.active().ok_or(ProofError::NoActiveKey)?;
    let mut header = Header::new(active.alg.jwt_algorithm());
    header.typ = Some(IDENTITY_PROOF_TYP.into());
    header.kid = Some(active.kid.clone());
    let mut jws = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?);
    jws.push('.');
    URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(claims)?, &mut jws);
    let signature = active.sign(jws.as_bytes()).map_err(|_| ProofError::Sign)?;
    jws.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut jws);
    Ok(jws)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences() {
        assert!(parse_audience("https://shop.example").is_ok());
        assert!(parse_audience("").is_err());
        assert!(parse_audience("a\nb").is_err());
        assert!(parse_audience(&"a".repeat(MAX_AUDIENCE + 1)).is_err());
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("not a compact JWS: {0}")]
    Malformed(String),
    #[error("the JWS is not an identity proof (typ `{0}`, expected `{IDENTITY_PROOF_TYP}`)")]
    WrongType(String),
    #[error("the proof's alg must be EdDSA")]
    WrongAlg,
    #[error("no key `{0}` in the identity JWKS")]
    UnknownKey(String),
    #[error("the proof does not verify: {0}")]
    Invalid(String),
}

/// Verifies `token` as an identity proof against the identity JWKS `jwks` (what any third
/// party does): `typ`, `alg: EdDSA`, the `kid`'s key, the signature, `exp` and `iat` with
/// `leeway`, `iss` = `issuer`, and `aud` when one is expected. The time is the caller's.
pub fn verify(
    jwks: &jsonwebtoken::jwk::JwkSet,
    token: &str,
    issuer: &str,
    audience: Option<&str>,
    now: i64,
    leeway: u64,
) -> Result<ProofClaims, VerifyError> {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    let typ = header.typ.clone().unwrap_or_default();
    if !typ.eq_ignore_ascii_case(IDENTITY_PROOF_TYP) {
        return Err(VerifyError::WrongType(typ));
    }
    if header.alg != Algorithm::EdDSA {
        return Err(VerifyError::WrongAlg);
    }
    let kid = header.kid.unwrap_or_default();
    let jwk = jwks
        .find(&kid)
        .ok_or_else(|| VerifyError::UnknownKey(kid.clone()))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| VerifyError::Invalid(e.to_string()))?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
    validation.leeway = leeway;
    // `exp` is checked below against the caller's clock, not the library's.
    validation.validate_exp = false;
    match audience {
        Some(aud) => validation.set_audience(&[aud]),
        None => validation.validate_aud = false,
    }
    let claims = jsonwebtoken::decode::<ProofClaims>(token, &key, &validation)
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            VerifyError::Invalid(match e.kind() {
                ErrorKind::InvalidSignature => "the signature is wrong".into(),
                ErrorKind::InvalidIssuer => format!("its iss is not {issuer}"),
                ErrorKind::InvalidAudience => {
                    format!("its aud is not {}", audience.unwrap_or_default())
                }
                ErrorKind::MissingRequiredClaim(claim) => format!("it has no {claim}"),
                _ => e.to_string(),
            })
        })?
        .claims;
    let leeway = i64::try_from(leeway).unwrap_or(i64::MAX);
    if claims.exp.saturating_add(leeway) <= now {
        return Err(VerifyError::Invalid("the proof has expired".into()));
    }
    if claims.iat.saturating_sub(leeway) > now {
        return Err(VerifyError::Invalid(
            "the proof is issued in the future".into(),
        ));
    }
    Ok(claims)
}
