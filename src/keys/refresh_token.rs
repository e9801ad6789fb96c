//! Refresh tokens: `rt_` and 43 random base62 characters (≈256 bits), opaque to clients,
//! stored only as a digest.

use secrecy::{ExposeSecret, SecretString};

use super::SecretDigest;
use crate::ids::{is_base62, random_base62};
use crate::secrets::Pepper;

const PREFIX: &str = "rt_";
const RANDOM_LEN: usize = 43;
const DIGEST_DOMAIN: &str = "refresh_token";

#[derive(Debug)]
pub struct PlainRefreshToken(SecretString);

impl PlainRefreshToken {
    pub fn generate() -> Self {
        Self(SecretString::from(format!(
            "{PREFIX}{}",
            random_base62(RANDOM_LEN)
        )))
    }

    /// Shape check only; whether it exists is the database's question.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix(PREFIX)?;
        (rest.len() == RANDOM_LEN && is_base62(rest)).then(|| Self(SecretString::from(text)))
    }

    pub fn digest(&self, pepper: &Pepper) -> SecretDigest {
        SecretDigest(pepper.digest(DIGEST_DOMAIN, self.0.expose_secret().as_bytes()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_differ() {
        let a = PlainRefreshToken::generate();
        assert!(PlainRefreshToken::parse(a.expose()).is_some());
        assert_ne!(a.expose(), PlainRefreshToken::generate().expose());
        assert!(PlainRefreshToken::parse("rt_short").is_none());
        assert!(PlainRefreshToken::parse(&a.expose().replace("rt_", "xx_")).is_none());
    }
}
