//! The two codes of a device authorization (RFC 8628 §3.2): the `device_code` the client
//! polls with, a high-entropy secret (`dc_` + 43 base62 characters, ≈256 bits, §5.2), and
//! the `user_code` a person types (§6.1): 8 characters of `BCDFGHJKLMNPQRSTVWXZ` (20
//! consonants: no vowels, so no words; no digits, so no 0/O or 1/I), ≈34.6 bits, shown as
//! `XXXX-XXXX`. A user code is read case-insensitively, and spaces and punctuation are
//! ignored (§6.1); any other character makes it malformed. Both are stored only as HMAC
//! digests under the pepper, in separate domains.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};

use crate::ids::{is_base62, random_base62};
use crate::keys::SecretDigest;
use crate::secrets::Pepper;

/// The user code's alphabet (RFC 8628 §6.1's example).
pub const ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Characters in a user code.
pub const USER_CODE_LEN: usize = 8;
/// The longest input read as a user code (anything longer is malformed, unread).
const MAX_INPUT: usize = 64;

const DEVICE_PREFIX: &str = "dc_";
const DEVICE_RANDOM_LEN: usize = 43;
const DEVICE_DOMAIN: &str = "device_code";
const USER_DOMAIN: &str = "user_code";

/// A `device_code`, as the client holds it.
pub struct DeviceCode(SecretString);

impl DeviceCode {
    pub fn generate() -> Self {
        Self(SecretString::from(format!(
            "{DEVICE_PREFIX}{}",
            random_base62(DEVICE_RANDOM_LEN)
        )))
    }

    /// Shape check only; whether it exists is the database's question.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix(DEVICE_PREFIX)?;
        (rest.len() == DEVICE_RANDOM_LEN && is_base62(rest)).then(|| Self(text.into()))
    }

    pub fn digest(&self, pepper: &Pepper) -> SecretDigest {
        SecretDigest(pepper.digest(DEVICE_DOMAIN, self.0.expose_secret().as_bytes()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for DeviceCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceCode(…)")
    }
}

/// A `user_code` in its canonical form: 8 letters of [`ALPHABET`], no separator.
#[derive(Clone, PartialEq, Eq)]
pub struct UserCode(String);

impl UserCode {
    /// 8 characters drawn uniformly from [`ALPHABET`] by the operating system's CSPRNG.
    pub fn generate() -> Self {
        let rng = SystemRandom::new();
        let mut code = String::with_capacity(USER_CODE_LEN);
        let mut buf = [0u8; 32];
        while code.len() < USER_CODE_LEN {
            if rng.fill(&mut buf).is_err() {
                // As for every other secret (`ids::random_base62`): no safe fallback.
                std::process::abort();
            }
            // Rejection sampling: 240 = 12 × 20, so bytes below it map uniformly.
            for b in buf.iter().filter(|b| **b < 240) {
                if code.len() == USER_CODE_LEN {
                    break;
                }
                code.push(char::from(ALPHABET[usize::from(*b % 20)]));
            }
        }
        Self(code)
    }

    /// What a person typed: any case, with or without the dash, spaces or other ASCII
    /// punctuation; `None` when anything else is left or the length is wrong.
    pub fn parse(input: &str) -> Option<Self> {
        if input.len() > MAX_INPUT {
            return None;
        }
        let mut code = String::with_capacity(USER_CODE_LEN);
        for c in input.chars() {
            if c.is_whitespace() || c.is_ascii_punctuation() {
                continue;
            }
            match u8::try_from(c.to_ascii_uppercase()) {
                Ok(b) if ALPHABET.contains(&b) => code.push(char::from(b)),
                _ => return None,
            }
        }
        (code.len() == USER_CODE_LEN).then_some(Self(code))
    }

    /// `XXXX-XXXX`, as shown to people.
    pub fn display(&self) -> String {
        let (a, b) = self.0.split_at(USER_CODE_LEN / 2);
        format!("{a}-{b}")
    }

    pub fn digest(&self, pepper: &Pepper) -> SecretDigest {
        SecretDigest(pepper.digest(USER_DOMAIN, self.0.as_bytes()))
    }
}

impl std::fmt::Debug for UserCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserCode(…)")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn user_codes_are_eight_letters_of_the_alphabet_shown_with_a_dash() {
        let code = UserCode::generate();
        assert_eq!(code.0.len(), USER_CODE_LEN);
        assert!(code.0.bytes().all(|b| ALPHABET.contains(&b)));
        let shown = code.display();
        assert_eq!(shown.len(), 9);
        assert_eq!(&shown[4..5], "-");
        assert_eq!(UserCode::parse(&shown), Some(code.clone()));
        assert_ne!(UserCode::generate(), UserCode::generate());
        assert_eq!(format!("{code:?}"), "UserCode(…)");
    }

    #[test]
    fn user_codes_are_read_in_any_case_without_separators() {
        let want = UserCode::parse("WDJB-MJHT").unwrap();
        for typed in [
            "wdjbmjht",
            "wdjb-mjht",
            " WDJB MJHT ",
            "Wdjb.Mjht",
            "WD-JB-MJ-HT",
        ] {
            assert_eq!(UserCode::parse(typed).as_ref(), Some(&want), "{typed:?}");
        }
        for bad in [
            "",
            "WDJB-MJH",
            "WDJB-MJHTX",
            "WDJB-MJH0",
            "WAJB-MJHT",
            "WDJB-MJHÉ",
            "ＷDJB-MJHT",
        ] {
            assert_eq!(UserCode::parse(bad), None, "{bad:?}");
        }
        assert_eq!(UserCode::parse(&"-".repeat(100)), None);
    }

    #[test]
    fn every_letter_is_drawn() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            seen.extend(UserCode::generate().0.bytes());
        }
        assert_eq!(seen.len(), ALPHABET.len());
    }

    #[test]
    fn device_codes_are_long_parse_and_digest_by_domain() {
        let pepper = Pepper::new(&[7u8; 32]);
        let code = DeviceCode::generate();
        assert_eq!(code.expose().len(), 46);
        let parsed = DeviceCode::parse(code.expose()).unwrap();
        assert!(parsed.digest(&pepper).matches(&code.digest(&pepper).0));
        assert!(DeviceCode::parse("dc_short").is_none());
        assert!(DeviceCode::parse(&code.expose().replace("dc_", "rt_")).is_none());
        assert_eq!(format!("{code:?}"), "DeviceCode(…)");
        // The same text in the two domains never has the same digest.
        let user = UserCode::parse("BCDFGHJK").unwrap();
        assert_ne!(
            user.digest(&pepper).0,
            pepper.digest(DEVICE_DOMAIN, b"BCDFGHJK")
        );
    }

    proptest! {
        #[test]
        fn any_casing_and_separators_of_a_code_read_back(
            code in proptest::collection::vec(0usize..20, 8),
            lower in proptest::collection::vec(any::<bool>(), 8),
            seps in proptest::collection::vec(prop_oneof![Just(""), Just("-"), Just(" ")], 8),
        ) {
            let canonical: String = code.iter().map(|i| char::from(ALPHABET[*i])).collect();
            let typed: String = canonical
                .chars()
                .zip(&lower)
                .zip(&seps)
                .map(|((c, l), s)| format!("{s}{}", if *l { c.to_ascii_lowercase() } else { c }))
                .collect();
            prop_assert_eq!(UserCode::parse(&typed).map(|c| c.0), Some(canonical));
        }

        #[test]
        fn parsing_never_panics_and_yields_only_canonical_codes(input in ".{0,80}") {
            if let Some(code) = UserCode::parse(&input) {
                prop_assert_eq!(code.0.len(), USER_CODE_LEN);
                prop_assert!(code.0.bytes().all(|b| ALPHABET.contains(&b)));
            }
        }
    }
}
