//! Access token signing keys: generation, the sealed stored form, and the in-memory
//! [`KeySet`] that signs with the active key and verifies with every published one.
//!
//! Lifecycle: a key is published from creation, signs from `activated_at` (the newest
//! activated key wins; rotation sets it past the JWKS cache lifetime, so verifiers have
//! the key before the first token it signs), and is dropped from the JWKS and from
//! verification at `retire_at`, which rotation sets past the longest lifetime of a token
//! it signed.

use std::collections::HashMap;

use aws_lc_rs::error::Unspecified;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::jwk::thumbprint;
use crate::secrets::{Kek, SecretsError};
use crate::types::{SigningAlg, UnknownSigningAlg};

/// What a signing key's algorithm means to jsonwebtoken (the enum itself is a parsed value in
/// `types`, so configuration can name it without depending on key material).
impl SigningAlg {
    pub fn jwt_algorithm(self) -> Algorithm {
        match self {
            SigningAlg::ES256 => Algorithm::ES256,
            SigningAlg::EdDSA => Algorithm::EdDSA,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    UnknownAlg(#[from] UnknownSigningAlg),
    #[error("key generation failed")]
    Generate,
    #[error("stored signing key {0} is unusable: {1}")]
    Corrupt(String, &'static str),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
}

/// A signing key as the database holds it: the private half still sealed.
#[derive(Clone, Debug)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub alg: String,
    pub private_key_enc: Vec<u8>,
    pub public_jwk: String,
    pub created_at: DateTime<Utc>,
    pub activated_at: DateTime<Utc>,
    pub retire_at: Option<DateTime<Utc>>,
}

/// Generates a key and seals its PKCS#8 document under the KEK (the kid is the AAD).
pub fn generate(
    alg: SigningAlg,
    kek: &Kek,
    now: DateTime<Utc>,
) -> Result<SigningKeyRecord, KeyError> {
    let rng = SystemRandom::new();
    let (pkcs8, mut jwk) = match alg {
        SigningAlg::ES256 => {
            let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| KeyError::Generate)?;
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref())
                .map_err(|_| KeyError::Generate)?;
            // Uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
            let point = pair.public_key().as_ref();
            let (x, y) = point
                .get(1..)
                .filter(|c| c.len() == 64)
                .map(|c| c.split_at(32))
                .ok_or(KeyError::Generate)?;
            let jwk = json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)});
            (Zeroizing::new(doc.as_ref().to_vec()), jwk)
        }
        SigningAlg::EdDSA => {
            let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Generate)?;
            let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|_| KeyError::Generate)?;
            let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
            (
                Zeroizing::new(doc.as_ref().to_vec()),
                json!({"kty": "OKP", "crv": "Ed25519", "x": x}),
            )
        }
    };
    let members = jwk.as_object_mut().ok_or(KeyError::Generate)?;
    let kid = thumbprint(members).map_err(|_| KeyError::Generate)?;
    members.insert("kid".into(), Value::String(kid.clone()));
    members.insert("alg".into(), Value::String(alg.as_str().into()));
    members.insert("use".into(), Value::String("sig".into()));
    Ok(SigningKeyRecord {
        private_key_enc: kek.seal(kid.as_bytes(), &pkcs8)?,
        kid,
        alg: alg.as_str().into(),
        public_jwk: jwk.to_string(),
        created_at: now,
        activated_at: now,
        retire_at: None,
    })
}

/// The key that signs new tokens, parsed once when the set is built (parsing and checking a
/// PKCS#8 key costs more than a signature, so it is never done per token).
pub struct ActiveKey {
    pub kid: String,
    pub alg: SigningAlg,
    signer: Signer,
}

enum Signer {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

impl ActiveKey {
    /// The JWS signature of `message` (ES256: the fixed-size `r ‖ s` of RFC 7518 §3.4).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Unspecified> {
        match &self.signer {
            Signer::Es256(pair) => Ok(pair.sign(&SystemRandom::new(), message)?.as_ref().to_vec()),
            Signer::EdDsa(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

/// One node's view of the published signing keys at the instant it was built.
pub struct KeySet {
    active: Option<ActiveKey>,
    /// The earliest activation time still ahead among the published keys: from then on
    /// this set's choice of the active key is out of date.
    next_activation: Option<DateTime<Utc>>,
    verifiers: HashMap<String, (Algorithm, DecodingKey)>,
    jwks: Value,
}

impl KeySet {
    /// Keeps the records published at `now`; the newest activated one signs.
    pub fn build(
        records: &[SigningKeyRecord],
        kek: &Kek,
        now: DateTime<Utc>,
    ) -> Result<Self, KeyError> {
        let mut published: Vec<&SigningKeyRecord> = records
            .iter()
            .filter(|r| r.retire_at.is_none_or(|t| t > now))
            .collect();
        published.sort_by_key(|r| std::cmp::Reverse(r.activated_at));

        let mut verifiers = HashMap::new();
        let mut jwks = Vec::new();
        for r in &published {
            let alg: SigningAlg = r.alg.parse()?;
            let jwk: Map<String, Value> = serde_json::from_str(&r.public_jwk)
                .map_err(|_| KeyError::Corrupt(r.kid.clone(), "public JWK is not JSON"))?;
            let member = |name: &str| jwk.get(name).and_then(Value::as_str).unwrap_or_default();
            let decoding = match alg {
                SigningAlg::ES256 => DecodingKey::from_ec_components(member("x"), member("y")),
                SigningAlg::EdDSA => DecodingKey::from_ed_components(member("x")),
            }
            .map_err(|_| KeyError::Corrupt(r.kid.clone(), "public JWK does not decode"))?;
            verifiers.insert(r.kid.clone(), (alg.jwt_algorithm(), decoding));
            jwks.push(Value::Object(jwk));
        }

        let active = match published.iter().find(|r| r.activated_at <= now) {
            Some(r) => {
                let pkcs8 = Zeroizing::new(
                    kek.open(r.kid.as_bytes(), &r.private_key_enc)
                        .map_err(|_| {
                            KeyError::Corrupt(
                                r.kid.clone(),
                                "private key does not decrypt under the configured kek",
                            )
                        })?,
                );
                let alg: SigningAlg = r.alg.parse()?;
                let unusable = || KeyError::Corrupt(r.kid.clone(), "private key is not usable");
                let signer = match alg {
                    SigningAlg::ES256 => Signer::Es256(
                        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
                            .map_err(|_| unusable())?,
                    ),
                    SigningAlg::EdDSA => Signer::EdDsa(
                        Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8)
                            .map_err(|_| unusable())?,
                    ),
                };
                Some(ActiveKey {
                    kid: r.kid.clone(),
                    alg,
                    signer,
                })
            }
            None => None,
        };
        let next_activation = published
            .iter()
            .map(|r| r.activated_at)
            .filter(|t| *t > now)
            .min();
        Ok(Self {
            active,
            next_activation,
            verifiers,
            jwks: json!({ "keys": jwks }),
        })
    }

    pub fn active(&self) -> Option<&ActiveKey> {
        self.active.as_ref()
    }

    /// When a published key that does not sign yet is due to (the set must be rebuilt).
    pub fn next_activation(&self) -> Option<DateTime<Utc>> {
        self.next_activation
    }

    pub fn verifier(&self, kid: &str) -> Option<&(Algorithm, DecodingKey)> {
        self.verifiers.get(kid)
    }

    /// The JWKS document (RFC 7517 §5) of every published key, newest first.
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }
}
