//! API key secrets: `ak_live_` or `ak_test_`, 32 random base62 characters
//! (≈190.5 bits), then a 6-character base62 CRC32 checksum of everything before it. The
//! checksum lets keygate reject a mistyped or truncated key without touching the database,
//! and gives secret scanners a pattern with few false positives.

use secrecy::{ExposeSecret, SecretString};

use super::SecretDigest;
use crate::ids::{base62_fixed, is_base62, random_base62};
use crate::secrets::Pepper;
use crate::types::Environment;

const RANDOM_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
const DIGEST_DOMAIN: &str = "api_key";

/// An API key secret in plain text: exists only between parsing a request header (or
/// generating a key) and computing its digest. Its `Debug` shows nothing.
#[derive(Debug)]
pub struct PlainApiKey(SecretString);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the API key is malformed")]
pub struct MalformedApiKey;

fn prefix(env: Environment) -> &'static str {
    match env {
        Environment::Live => "ak_live_",
        Environment::Test => "ak_test_",
    }
}

fn checksum(body: &str) -> String {
    base62_fixed(u64::from(crc32fast::hash(body.as_bytes())), CHECKSUM_LEN)
}

impl PlainApiKey {
    pub fn generate(env: Environment) -> Self {
        let body = format!("{}{}", prefix(env), random_base62(RANDOM_LEN));
        let sum = checksum(&body);
        Self(SecretString::from(body + &sum))
    }

    /// Checks prefix, length, alphabet and checksum; no database involved.
    pub fn parse(text: &str) -> Result<Self, MalformedApiKey> {
        let env = Environment::ALL
            .iter()
            .copied()
            .find(|env| text.starts_with(prefix(*env)))
            .ok_or(MalformedApiKey)?;
        let rest = &text[prefix(env).len()..];
        if rest.len() != RANDOM_LEN + CHECKSUM_LEN || !is_base62(rest) {
            return Err(MalformedApiKey);
        }
        let (body, sum) = text.split_at(text.len() - CHECKSUM_LEN);
        if checksum(body) != sum {
            return Err(MalformedApiKey);
        }
        Ok(Self(SecretString::from(text)))
    }

    pub fn environment(&self) -> Environment {
        if self
            .0
            .expose_secret()
            .starts_with(prefix(Environment::Test))
        {
            Environment::Test
        } else {
            Environment::Live
        }
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
    fn generated_keys_parse_and_keep_their_environment() {
        for env in Environment::ALL {
            let key = PlainApiKey::generate(*env);
            let parsed = PlainApiKey::parse(key.expose()).unwrap();
            assert_eq!(parsed.environment(), *env);
            assert_eq!(key.expose().len(), prefix(*env).len() + 38);
        }
    }

    #[test]
    fn any_single_character_change_is_rejected() {
        let key = PlainApiKey::generate(Environment::Live);
        let text = key.expose().to_owned();
        for i in 0..text.len() {
            let mut bytes = text.clone().into_bytes();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let changed = String::from_utf8(bytes).unwrap();
            if changed != text {
                assert_eq!(
                    PlainApiKey::parse(&changed).unwrap_err(),
                    MalformedApiKey,
                    "{i}"
                );
            }
        }
    }

    #[test]
    fn malformed_shapes_are_rejected() {
        let key = PlainApiKey::generate(Environment::Test);
        let text = key.expose();
        for bad in [
            "",
            "ak_live_",
            "ak_prod_0123456789",
            &text[..text.len() - 1],
            &format!("{text}0"),
            &format!(" {text}"),
            &text.replace("ak_test_", "AK_TEST_"),
        ] {
            assert!(PlainApiKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let key = PlainApiKey::generate(Environment::Live);
        assert!(!format!("{key:?}").contains(key.expose()));
    }
}
