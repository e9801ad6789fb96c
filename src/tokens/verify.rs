//! Verification of keygate's own access tokens: `typ`, signature against the published key
//! set, `iss` for the organization of the request, `aud`, `exp` and `iat` with leeway.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode, decode_header};

use super::{ACCESS_TOKEN_TYP, AccessClaims};
use crate::keys::signing::KeySet;

/// What the caller expects of a token at this request.
pub struct Expectation<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub now: DateTime<Utc>,
    pub leeway: Duration,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the access token is not a well-formed JWT")]
    Malformed,
    #[error("the access token is not of type at+jwt")]
    WrongType,
    #[error("the access token was signed by an unknown key")]
    UnknownKey(String),
    #[error("the access token signature is invalid")]
    BadSignature,
    #[error("the access token was issued for another organization or issuer")]
    WrongIssuer,
    #[error("the access token is for another audience")]
    WrongAudience,
    #[error("the access token expired")]
    Expired,
    #[error("the access token was issued in the future")]
    IssuedInFuture,
}

fn is_access_token_type(typ: Option<&str>) -> bool {
    // RFC 9068 §4: `at+jwt`, or the full media type `application/at+jwt`, case-insensitive.
    typ.is_some_and(|t| {
        let t = t.to_ascii_lowercase();
        t == ACCESS_TOKEN_TYP || t == "application/at+jwt"
    })
}

/// Verifies `token`; on `UnknownKey` the caller may refresh its key set and try once more.
pub fn verify(
    keys: &KeySet,
    token: &str,
    expect: &Expectation<'_>,
) -> Result<AccessClaims, TokenError> {
    verify_with_kid(keys, token, expect).map(|(_, claims)| claims)
}

/// [`verify`], also returning the `kid` of the key that signed the token.
pub fn verify_with_kid(
    keys: &KeySet,
    token: &str,
    expect: &Expectation<'_>,
) -> Result<(String, AccessClaims), TokenError> {
    verify_checked(keys, token, expect, Some(expect.audience))
}

/// [`verify_with_kid`] whatever the token's `aud` (`expect.audience` is not checked): for
/// introspection and revocation, which answer for every token the organization issued,
/// including those for protected resources (RFC 8707). Never for authenticating a request.
pub fn verify_any_audience_with_kid(
    keys: &KeySet,
    token: &str,
    expect: &Expectation<'_>,
) -> Result<(String, AccessClaims), TokenError> {
    verify_checked(keys, token, expect, None)
}

fn verify_checked(
    keys: &KeySet,
    token: &str,
    expect: &Expectation<'_>,
    audience: Option<&str>,
) -> Result<(String, AccessClaims), TokenError> {
    let header = decode_header(token).map_err(|_| TokenError::Malformed)?;
    if !is_access_token_type(header.typ.as_deref()) {
        return Err(TokenError::WrongType);
    }
    let kid = header.kid.ok_or(TokenError::Malformed)?;
    let (alg, key) = keys
        .verifier(&kid)
        .ok_or_else(|| TokenError::UnknownKey(kid.clone()))?;
    if header.alg != *alg {
        return Err(TokenError::BadSignature);
    }

    let mut validation = Validation::new(*alg);
    // Time is checked below against the injected clock, not jsonwebtoken's system time.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.required_spec_claims.clear();
    validation.set_issuer(&[expect.issuer]);
    match audience {
        Some(audience) => validation.set_audience(&[audience]),
        None => validation.validate_aud = false,
    }

    let claims = decode::<AccessClaims>(token, key, &validation)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => TokenError::BadSignature,
            ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
            ErrorKind::InvalidAudience => TokenError::WrongAudience,
            _ => TokenError::Malformed,
        })?
        .claims;
    check_times(&claims, expect)?;
    Ok((kid, claims))
}

/// `exp` and `iat` against the expectation's time, with its leeway.
pub fn check_times(claims: &AccessClaims, expect: &Expectation<'_>) -> Result<(), TokenError> {
    let now = expect.now.timestamp();
    let leeway = i64::try_from(expect.leeway.as_secs()).unwrap_or(i64::MAX);
    if claims.exp.saturating_add(leeway) <= now {
        return Err(TokenError::Expired);
    }
    if claims.iat.saturating_sub(leeway) > now {
        return Err(TokenError::IssuedInFuture);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::keys::signing::generate;
    use crate::secrets::tests_support::kek;
    use crate::tokens::{Audience, issue};
    use crate::types::SigningAlg;

    fn claims(now: i64) -> AccessClaims {
        AccessClaims {
            iss: "https://kg.example/v1/acme".into(),
            sub: "usr_1".into(),
            aud: "https://kg.example/v1/acme".into(),
            exp: now + 900,
            iat: now,
            jti: "j".into(),
            client_id: "key_1".into(),
            scope: "keys:read".into(),
            sid: "ses_1".into(),
            org: "acme".into(),
            cnf: None,
            act: None,
            may_act: None,
        }
    }

    #[test]
    fn verifies_both_algorithms_and_rejects_each_mismatch() {
        let clock = ManualClock::starting_now();
        let kek = kek();
        for alg in [SigningAlg::ES256, SigningAlg::EdDSA] {
            let record = generate(alg, &kek, clock.now()).unwrap();
            let keys = KeySet::build(&[record], &kek, clock.now()).unwrap();
            let now = clock.now();
            let token = issue(&keys, &claims(now.timestamp())).unwrap();
            let expect = Expectation {
                issuer: "https://kg.example/v1/acme",
                audience: "https://kg.example/v1/acme",
                now,
                leeway: Duration::from_secs(30),
            };
            assert_eq!(
                verify(&keys, &token, &expect).unwrap(),
                claims(now.timestamp())
            );

            let other_org = Expectation {
                issuer: "https://kg.example/v1/other",
                ..expect
            };
            assert_eq!(
                verify(&keys, &token, &other_org),
                Err(TokenError::WrongIssuer)
            );
            let other_aud = Expectation {
                audience: "api",
                ..expect
            };
            assert_eq!(
                verify(&keys, &token, &other_aud),
                Err(TokenError::WrongAudience)
            );
            let later = Expectation {
                now: now + chrono::Duration::seconds(931),
                ..expect
            };
            assert_eq!(verify(&keys, &token, &later), Err(TokenError::Expired));
            let within_leeway = Expectation {
                now: now + chrono::Duration::seconds(920),
                ..expect
            };
            assert!(verify(&keys, &token, &within_leeway).is_ok());

            // Flip the first character of the signature: still valid base64url, wrong bytes.
            let sig_at = token.rfind('.').unwrap() + 1;
            let mut tampered = token.clone();
            let flipped = if &token[sig_at..=sig_at] == "A" {
                "B"
            } else {
                "A"
            };
            tampered.replace_range(sig_at..=sig_at, flipped);
            assert_eq!(
                verify(&keys, &tampered, &expect),
                Err(TokenError::BadSignature)
            );
            assert_eq!(
                verify(&keys, "not.a.jwt", &expect),
                Err(TokenError::Malformed)
            );

            // A token for protected resources (RFC 8707): refused where keygate is the
            // audience, verified when any audience is accepted.
            let resource_claims = AccessClaims {
                aud: Audience::of(vec![
                    "https://mcp.example/a".into(),
                    "https://mcp.example/b".into(),
                ]),
                ..claims(now.timestamp())
            };
            let resource_token = issue(&keys, &resource_claims).unwrap();
            assert_eq!(
                verify(&keys, &resource_token, &expect),
                Err(TokenError::WrongAudience)
            );
            assert_eq!(
                verify_any_audience_with_kid(&keys, &resource_token, &expect)
                    .unwrap()
                    .1,
                resource_claims
            );

            let stranger = KeySet::build(&[generate(alg, &kek, now).unwrap()], &kek, now).unwrap();
            assert!(matches!(
                verify(&stranger, &token, &expect),
                Err(TokenError::UnknownKey(_))
            ));
        }
    }
}
