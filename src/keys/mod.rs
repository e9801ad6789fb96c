//! Credentials and key material: API key secrets, refresh tokens, JWK thumbprints, key-pair
//! clients' public keys and token signing keys. Pure functions and types; no HTTP, no database.

pub mod api_key;
pub mod client_jwks;
pub mod jwk;
pub mod refresh_token;
pub mod signing;

use subtle::ConstantTimeEq;

/// The stored form of a credential: lower-case hex HMAC-SHA256 under the pepper.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretDigest(pub String);

impl SecretDigest {
    /// Constant-time comparison with a stored digest.
    pub fn matches(&self, stored: &str) -> bool {
        self.0.as_bytes().ct_eq(stored.as_bytes()).into()
    }
}

impl std::fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretDigest(…)")
    }
}
