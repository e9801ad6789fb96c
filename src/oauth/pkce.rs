//! Proof Key for Code Exchange (RFC 7636), `S256` only: OAuth 2.1 and RFC 9700 §2.1.1 want
//! the `plain` method refused, since a challenge that equals the verifier protects nothing
//! once the authorization request is seen. Pure functions; no HTTP, no storage.

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

/// The only `code_challenge_method` keygate accepts.
pub const S256: &str = "S256";

/// RFC 7636 §4.1: a verifier is 43 to 128 characters.
const VERIFIER_LEN: std::ops::RangeInclusive<usize> = 43..=128;
/// RFC 7636 §4.2: an S256 challenge is BASE64URL(SHA-256(verifier)): 32 bytes, 43 characters.
const CHALLENGE_LEN: usize = 43;

/// RFC 3986 §2.3 unreserved characters, the alphabet of a verifier (RFC 7636 §4.1).
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_')
}

/// Checks the PKCE parameters of an authorization request (RFC 7636 §4.3, §4.4.1): a
/// challenge is required, its method must be `S256` (absent means `plain`, §4.3, so it is
/// refused too), and it must be the shape an S256 challenge has. The error says what is
/// wrong (`invalid_request`).
pub fn check_challenge(challenge: Option<&str>, method: Option<&str>) -> Result<(), String> {
    let Some(challenge) = challenge else {
        return Err("code_challenge is required (PKCE, RFC 7636, with S256)".into());
    };
    match method {
        Some(S256) => {}
        None => {
            return Err(
                "code_challenge_method is required and must be S256 (plain is not supported)"
                    .into(),
            );
        }
        Some(_) => {
            return Err("code_challenge_method must be S256 (plain is not supported)".into());
        }
    }
    let bytes = challenge.as_bytes();
    // The last character of 32 bytes in base64url carries 4 bits: one of `AEIMQUYcgkosw048`.
    let canonical = bytes.len() == CHALLENGE_LEN
        && bytes.iter().all(|b| is_base64url(*b))
        && URL_SAFE_NO_PAD.decode(bytes).is_ok_and(|d| d.len() == 32);
    if !canonical {
        return Err(
            "code_challenge must be BASE64URL(SHA-256(code_verifier)): 43 characters".into(),
        );
    }
    Ok(())
}

/// Whether `verifier` has the shape RFC 7636 §4.1 gives it.
pub fn is_verifier(verifier: &str) -> bool {
    VERIFIER_LEN.contains(&verifier.len()) && verifier.bytes().all(is_unreserved)
}

/// The S256 challenge of `verifier` (RFC 7636 §4.2).
pub fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()))
}

/// RFC 7636 §4.6: whether `verifier` is well formed and its S256 challenge is `challenge`,
/// compared in constant time.
pub fn verifies(verifier: &str, challenge: &str) -> bool {
    is_verifier(verifier)
        && bool::from(
            challenge_of(verifier)
                .as_bytes()
                .ct_eq(challenge.as_bytes()),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn the_rfc_7636_appendix_b_example() {
        assert_eq!(challenge_of(VERIFIER), CHALLENGE);
        assert!(verifies(VERIFIER, CHALLENGE));
        assert!(check_challenge(Some(CHALLENGE), Some("S256")).is_ok());
    }

    #[test]
    fn a_wrong_or_malformed_verifier_fails() {
        let mut wrong = VERIFIER.to_owned();
        wrong.replace_range(0..1, "e");
        assert!(!verifies(&wrong, CHALLENGE));
        assert!(!verifies("", CHALLENGE));
        // The challenge itself is not a verifier of itself (that would be `plain`).
        assert!(!verifies(CHALLENGE, CHALLENGE));
        // Too short, too long, outside the alphabet: refused even before hashing.
        assert!(!is_verifier(&"a".repeat(42)));
        assert!(is_verifier(&"a".repeat(43)));
        assert!(is_verifier(&"a".repeat(128)));
        assert!(!is_verifier(&"a".repeat(129)));
        assert!(!is_verifier(&format!("{}+", "a".repeat(42))));
        assert!(!is_verifier(&format!("{} ", "a".repeat(42))));
    }

    #[test]
    fn challenges_must_be_s256_and_well_formed() {
        for (challenge, method, says) in [
            (None, Some("S256"), "required"),
            (Some(CHALLENGE), None, "plain"),
            (Some(CHALLENGE), Some("plain"), "plain"),
            (Some(CHALLENGE), Some("s256"), "must be S256"),
            (Some("short"), Some("S256"), "43 characters"),
            (Some(&CHALLENGE[..42]), Some("S256"), "43 characters"),
            (
                Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"),
                Some("S256"),
                "43",
            ),
            // 43 characters whose last one carries bits a 32-byte value cannot have.
            (
                Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"),
                Some("S256"),
                "43",
            ),
        ] {
            let err = check_challenge(challenge, method).unwrap_err();
            assert!(err.contains(says), "{challenge:?} {method:?}: {err}");
        }
    }

    proptest! {
        #[test]
        fn every_well_formed_verifier_verifies_against_its_own_challenge_only(
            verifier in "[A-Za-z0-9._~-]{43,128}",
            other in "[A-Za-z0-9._~-]{43,128}",
        ) {
            let challenge = challenge_of(&verifier);
            prop_assert!(check_challenge(Some(&challenge), Some(S256)).is_ok());
            prop_assert!(verifies(&verifier, &challenge));
            prop_assert_eq!(verifies(&other, &challenge), other == verifier);
        }
    }
}
