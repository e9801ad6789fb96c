//! A DPoP client key of the tests: proofs (RFC 9449 §4.2) signed with the RustCrypto curve
//! crates, independent of keygate's verifier, and the pieces to forge malformed ones.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rand_core::OsRng;
use serde_json::{Value, json};

use crate::helpers::TestApp;

/// A client's proof key.
pub enum DpopKey {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    P521(p521::ecdsa::SigningKey),
}

impl DpopKey {
    pub fn es256() -> Self {
        DpopKey::P256(p256::ecdsa::SigningKey::random(&mut OsRng))
    }

    pub fn all() -> [Self; 3] {
        [
            Self::es256(),
            DpopKey::P384(p384::ecdsa::SigningKey::random(&mut OsRng)),
            DpopKey::P521(p521::ecdsa::SigningKey::random(&mut OsRng)),
        ]
    }

    pub fn alg(&self) -> &'static str {
        match self {
            DpopKey::P256(_) => "ES256",
            DpopKey::P384(_) => "ES384",
            DpopKey::P521(_) => "ES512",
        }
    }

    pub fn jwk(&self) -> Value {
        let (crv, point) = match self {
            DpopKey::P256(k) => (
                "P-256",
                k.verifying_key()
                    .to_encoded_point(false)
                    .as_bytes()
                    .to_vec(),
            ),
            DpopKey::P384(k) => (
                "P-384",
                k.verifying_key()
                    .to_encoded_point(false)
                    .as_bytes()
                    .to_vec(),
            ),
            DpopKey::P521(k) => (
                "P-521",
                p521::ecdsa::VerifyingKey::from(k)
                    .to_encoded_point(false)
                    .as_bytes()
                    .to_vec(),
            ),
        };
        let (x, y) = point[1..].split_at((point.len() - 1) / 2);
        json!({"kty": "EC", "crv": crv, "x": B64.encode(x), "y": B64.encode(y)})
    }

    /// RFC 7638 thumbprint, computed here from the JWK (not with keygate's code).
    pub fn thumbprint(&self) -> String {
        let jwk = self.jwk();
        let canonical = format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["crv"].as_str().unwrap(),
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        B64.encode(digest.as_ref())
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        use signature::Signer;
        match self {
            DpopKey::P256(k) => Signer::<p256::ecdsa::Signature>::sign(k, message)
                .to_bytes()
                .to_vec(),
            DpopKey::P384(k) => Signer::<p384::ecdsa::Signature>::sign(k, message)
                .to_bytes()
                .to_vec(),
            DpopKey::P521(k) => Signer::<p521::ecdsa::Signature>::sign(k, message)
                .to_bytes()
                .to_vec(),
        }
    }

    /// A valid proof's header and claims, for `method` and `url`, at `iat`.
    pub fn parts(&self, method: &str, url: &str, iat: i64) -> (Value, Value) {
        let jti = keygate::ids::random_base62(22);
        (
            json!({"typ": "dpop+jwt", "alg": self.alg(), "jwk": self.jwk()}),
            json!({"jti": jti, "htm": method, "htu": url, "iat": iat}),
        )
    }

    /// Signs raw header and payload bytes.
    pub fn sign_raw(&self, header: &[u8], payload: &[u8]) -> String {
        let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
        let signature = self.sign(input.as_bytes());
        format!("{input}.{}", B64.encode(signature))
    }

    pub fn sign_parts(&self, header: &Value, claims: &Value) -> String {
        self.sign_raw(header.to_string().as_bytes(), claims.to_string().as_bytes())
    }

    pub fn proof(&self, app: &TestApp, method: &str, path: &str, token: Option<&str>) -> String {
        let (header, mut claims) = self.parts(
            method,
            &format!("{}{path}", app.state.public_url),
            app.now().timestamp(),
        );
        if let Some(token) = token {
            claims["ath"] = json!(keygate::auth::dpop::ath(token));
        }
        self.sign_parts(&header, &claims)
    }
}
