//! Client secrets of confidential browser clients (`client_secret_basic`): `kgcs_`, 40
//! random base62 characters (≈238 bits), then a 6-character base62 CRC32 checksum of
//! everything before it, like API keys: a mistyped secret is refused without a database
//! look-up (and is not counted as a guess), and secret scanners can recognise one. Shown
//! once, at creation; stored only as its HMAC digest under the pepper.

use secrecy::{ExposeSecret, SecretString};

use crate::ids::{base62_fixed, is_base62, random_base62};
use crate::keys::SecretDigest;
use crate::secrets::Pepper;

const PREFIX: &str = "kgcs_";
const RANDOM_LEN: usize = 40;
const CHECKSUM_LEN: usize = 6;
const DIGEST_DOMAIN: &str = "client_secret";

/// A client secret in plain text: exists only between generating it (or reading a request)
/// and computing its digest. Its `Debug` shows nothing.
#[derive(Debug)]
pub struct ClientSecret(SecretString);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the client secret is malformed")]
pub struct MalformedSecret;

fn checksum(body: &str) -> String {
    base62_fixed(u64::from(crc32fast::hash(body.as_bytes())), CHECKSUM_LEN)
}

impl ClientSecret {
    pub fn generate() -> Self {
        let body = format!("{PREFIX}{}", random_base62(RANDOM_LEN));
        let sum = checksum(&body);
        Self(SecretString::from(body + &sum))
    }

    /// Checks prefix, length, alphabet and checksum; no database involved.
    pub fn parse(text: &str) -> Result<Self, MalformedSecret> {
        let rest = text.strip_prefix(PREFIX).ok_or(MalformedSecret)?;
        if rest.len() != RANDOM_LEN + CHECKSUM_LEN || !is_base62(rest) {
            return Err(MalformedSecret);
        }
        let (body, sum) = text.split_at(text.len() - CHECKSUM_LEN);
        if checksum(body) != sum {
            return Err(MalformedSecret);
        }
        Ok(Self(SecretString::from(text)))
    }

    pub fn digest(&self, pepper: &Pepper) -> SecretDigest {
        SecretDigest(pepper.digest(DIGEST_DOMAIN, self.0.expose_secret().as_bytes()))
    }

    /// The secret itself, for the one response or CLI output that shows it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_parse_and_differ() {
        let a = ClientSecret::generate();
        assert!(ClientSecret::parse(a.expose()).is_ok());
        assert_eq!(a.expose().len(), PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN);
        assert_ne!(a.expose(), ClientSecret::generate().expose());
    }

    #[test]
    fn any_single_character_change_is_refused() {
        let text = ClientSecret::generate().expose().to_owned();
        for i in 0..text.len() {
            let mut bytes = text.clone().into_bytes();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let changed = String::from_utf8(bytes).unwrap();
            if changed != text {
                assert_eq!(ClientSecret::parse(&changed).unwrap_err(), MalformedSecret);
            }
        }
        for bad in ["", PREFIX, "ak_live_x", &format!("{text}0"), &text[1..]] {
            assert!(ClientSecret::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn digests_are_domain_separated_and_debug_hides_the_secret() {
        let pepper = Pepper::new(b"pepper");
        let secret = ClientSecret::generate();
        let digest = secret.digest(&pepper);
        assert!(digest.matches(&pepper.digest(DIGEST_DOMAIN, secret.expose().as_bytes())));
        assert!(!digest.matches(&pepper.digest("api_key", secret.expose().as_bytes())));
        assert!(!format!("{secret:?}").contains(secret.expose()));
    }
}
