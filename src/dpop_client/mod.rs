//! The client side of DPoP (RFC 9449), behind `keygate dpop`: an EC key pair in a PEM file and
//! the proofs it signs. This is an implementation of its own, on the RustCrypto curve crates,
//! independent of the server's verifier (`crate::auth::dpop`), so each checks the other.
//! The same keys sign `private_key_jwt` client assertions ([`assertion`]).

pub mod assertion;
pub mod proxy;

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rand_core::{OsRng, RngCore};
use serde::Serialize;
use url::Url;
use zeroize::Zeroizing;

/// A proof's signature algorithm, which names the key's curve too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DpopAlg {
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// ECDSA on P-521 with SHA-512.
    ES512,
}

impl DpopAlg {
    pub const ALL: [DpopAlg; 3] = [DpopAlg::ES256, DpopAlg::ES384, DpopAlg::ES512];

    pub fn as_str(self) -> &'static str {
        match self {
            DpopAlg::ES256 => "ES256",
            DpopAlg::ES384 => "ES384",
            DpopAlg::ES512 => "ES512",
        }
    }

    /// The JWK `crv` of the algorithm's curve.
    pub fn curve(self) -> &'static str {
        match self {
            DpopAlg::ES256 => "P-256",
            DpopAlg::ES384 => "P-384",
            DpopAlg::ES512 => "P-521",
        }
    }

    /// Bytes in one coordinate (and in each of `r` and `s`).
    pub fn field_len(self) -> usize {
        match self {
            DpopAlg::ES256 => 32,
            DpopAlg::ES384 => 48,
            DpopAlg::ES512 => 66,
        }
    }
}

impl fmt::Display for DpopAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DpopAlg {
    type Err = DpopClientError;

    /// `ES256`, `ES384` or `ES512`, in any case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        DpopAlg::ALL
            .into_iter()
            .find(|alg| alg.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| DpopClientError::UnknownAlg(text.to_owned()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DpopClientError {
    #[error("unknown alg `{0}`: expected ES256, ES384 or ES512")]
    UnknownAlg(String),
    #[error("{0}")]
    BadKey(String),
    #[error("the key is on {curve}, so its alg is {key}, not {asked}")]
    AlgMismatch {
        curve: &'static str,
        key: DpopAlg,
        asked: DpopAlg,
    },
    #[error("bad URL `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("bad HTTP method `{0}`")]
    BadMethod(String),
    #[error("signing failed: {0}")]
    Signing(String),
}

/// A client's private proof key.
#[derive(Clone)]
pub enum ClientKey {
    P256(p256::SecretKey),
    P384(p384::SecretKey),
    P521(p521::SecretKey),
}

impl fmt::Debug for ClientKey {
    /// The algorithm and the public key's thumbprint, never the private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKey")
            .field("alg", &self.alg())
            .field("thumbprint", &self.thumbprint())
            .finish()
    }
}

/// A public EC key as a JWK with only the members RFC 9449 needs, in RFC 7638 member set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PublicJwk {
    pub kty: &'static str,
    pub crv: &'static str,
    pub x: String,
    pub y: String,
}

#[derive(Serialize)]
struct Header<'a> {
    typ: &'static str,
    alg: &'static str,
    jwk: &'a PublicJwk,
}

#[derive(Serialize)]
struct Claims<'a> {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ath: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
}

const PKCS8_LABEL: &str = "PRIVATE KEY";
const SEC1_LABEL: &str = "EC PRIVATE KEY";
const ENCRYPTED_LABEL: &str = "ENCRYPTED PRIVATE KEY";

/// The first PEM block labelled `label` in `text`, if any (text around it is ignored, e.g.
/// the `EC PARAMETERS` block `openssl ecparam -genkey` writes first).
fn pem_block(text: &str, label: &str) -> Option<String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let stop = start + text.get(start..)?.find(&end)? + end.len();
    Some(format!("{}\n", text.get(start..stop)?))
}

fn bad_key(reason: &str) -> DpopClientError {
    DpopClientError::BadKey(reason.to_owned())
}

impl ClientKey {
    /// A new random key on the curve of `alg`.
    pub fn generate(alg: DpopAlg) -> Self {
        match alg {
            DpopAlg::ES256 => ClientKey::P256(p256::SecretKey::random(&mut OsRng)),
            DpopAlg::ES384 => ClientKey::P384(p384::SecretKey::random(&mut OsRng)),
            DpopAlg::ES512 => ClientKey::P521(p521::SecretKey::random(&mut OsRng)),
        }
    }

    /// Reads a private key: PKCS#8 (`BEGIN PRIVATE KEY`, what [`ClientKey::to_pem`] writes)
    /// or SEC1 (`BEGIN EC PRIVATE KEY`, what `openssl ecparam -genkey` writes) on P-256,
    /// P-384 or P-521. Encrypted keys are not supported.
    pub fn from_pem(text: &str) -> Result<Self, DpopClientError> {
        if let Some(pem) = pem_block(text, PKCS8_LABEL) {
            // Each curve's decoder checks the key's algorithm and curve OIDs.
            if let Ok(key) = p256::SecretKey::from_pkcs8_pem(&pem) {
                return Ok(ClientKey::P256(key));
            }
            if let Ok(key) = p384::SecretKey::from_pkcs8_pem(&pem) {
                return Ok(ClientKey::P384(key));
            }
            if let Ok(key) = p521::SecretKey::from_pkcs8_pem(&pem) {
                return Ok(ClientKey::P521(key));
            }
            return Err(bad_key(
                "not a valid PKCS#8 EC private key on P-256, P-384 or P-521",
            ));
        }
        if let Some(pem) = pem_block(text, SEC1_LABEL) {
            // SEC1 private keys are fixed-width (32, 48, 66 bytes) and a decoder refuses a
            // longer one, so trying the curves from the smallest up finds the right one.
            if let Ok(key) = p256::SecretKey::from_sec1_pem(&pem) {
                return Ok(ClientKey::P256(key));
            }
            if let Ok(key) = p384::SecretKey::from_sec1_pem(&pem) {
                return Ok(ClientKey::P384(key));
            }
            if let Ok(key) = p521::SecretKey::from_sec1_pem(&pem) {
                return Ok(ClientKey::P521(key));
            }
            return Err(bad_key(
                "not a valid SEC1 EC private key on P-256, P-384 or P-521",
            ));
        }
        if text.contains(&format!("-----BEGIN {ENCRYPTED_LABEL}-----")) {
            return Err(bad_key("encrypted private keys are not supported"));
        }
        Err(bad_key(
            "no `BEGIN PRIVATE KEY` or `BEGIN EC PRIVATE KEY` PEM block",
        ))
    }

    /// Reads a key, checking it against an `alg` the caller asked for.
    pub fn from_pem_with_alg(text: &str, alg: Option<DpopAlg>) -> Result<Self, DpopClientError> {
        let key = Self::from_pem(text)?;
        match alg {
            Some(asked) if asked != key.alg() => Err(DpopClientError::AlgMismatch {
                curve: key.alg().curve(),
                key: key.alg(),
                asked,
            }),
            _ => Ok(key),
        }
    }

    /// The private key as a PKCS#8 PEM document (LF line endings).
    pub fn to_pem(&self) -> Result<Zeroizing<String>, DpopClientError> {
        let pem = match self {
            ClientKey::P256(k) => k.to_pkcs8_pem(LineEnding::LF),
            ClientKey::P384(k) => k.to_pkcs8_pem(LineEnding::LF),
            ClientKey::P521(k) => k.to_pkcs8_pem(LineEnding::LF),
        };
        pem.map_err(|e| bad_key(&format!("cannot encode the key: {e}")))
    }

    pub fn alg(&self) -> DpopAlg {
        match self {
            ClientKey::P256(_) => DpopAlg::ES256,
            ClientKey::P384(_) => DpopAlg::ES384,
            ClientKey::P521(_) => DpopAlg::ES512,
        }
    }

    /// The uncompressed SEC1 public point: `0x04 || x || y`, each coordinate full width.
    fn public_point(&self) -> Vec<u8> {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        match self {
            ClientKey::P256(k) => k.public_key().to_encoded_point(false).as_bytes().to_vec(),
            ClientKey::P384(k) => k.public_key().to_encoded_point(false).as_bytes().to_vec(),
            ClientKey::P521(k) => k.public_key().to_encoded_point(false).as_bytes().to_vec(),
        }
    }

    /// The public key as a JWK: `kty`, `crv`, `x`, `y`, coordinates at the curve's full
    /// width (66 bytes on P-521), never minimal.
    pub fn public_jwk(&self) -> PublicJwk {
        let point = self.public_point();
        let coordinates = point.get(1..).unwrap_or_default();
        let (x, y) = coordinates.split_at(coordinates.len() / 2);
        PublicJwk {
            kty: "EC",
            crv: self.alg().curve(),
            x: B64.encode(x),
            y: B64.encode(y),
        }
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url): the `cnf.jkt` of a bound token.
    pub fn thumbprint(&self) -> String {
        let jwk = self.public_jwk();
        // The required members in lexicographic order, no whitespace (RFC 7638 §3.2).
        let canonical = format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk.crv, jwk.x, jwk.y
        );
        sha256_b64(canonical.as_bytes())
    }

    /// A JWS signature over `input`: `r || s`, each at the curve's full width (64, 96 or
    /// 132 bytes), as JWA §3.4 requires.
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, DpopClientError> {
        use p256::ecdsa::signature::Signer;
        let signature = match self {
            ClientKey::P256(k) => {
                let signature: p256::ecdsa::Signature =
                    p256::ecdsa::SigningKey::from(k).try_sign(input)?;
                signature.to_bytes().to_vec()
            }
            ClientKey::P384(k) => {
                let signature: p384::ecdsa::Signature =
                    p384::ecdsa::SigningKey::from(k).try_sign(input)?;
                signature.to_bytes().to_vec()
            }
            ClientKey::P521(k) => {
                let signing = p521::ecdsa::SigningKey::from_bytes(&k.to_bytes())?;
                let signature: p521::ecdsa::Signature = signing.try_sign(input)?;
                signature.to_bytes().to_vec()
            }
        };
        Ok(signature)
    }

    /// A fresh DPoP proof (RFC 9449 §4.2) for a `method` request to `url` at `now`: a
    /// compact JWS with header `typ`, `alg`, `jwk` and claims `jti` (128 random bits), `htm`
    /// (upper-cased), `htu` (`url` without query and fragment), `iat`, and `ath` when an
    /// access token is presented with the request, `nonce` when the server asked for one.
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<String, DpopClientError> {
        let jwk = self.public_jwk();
        let header = Header {
            typ: "dpop+jwt",
            alg: self.alg().as_str(),
            jwk: &jwk,
        };
        let claims = Claims {
            jti: random_jti(),
            htm: htm(method)?,
            htu: htu(url)?,
            iat: now.timestamp(),
            ath: access_token.map(ath),
            nonce,
        };
        let header = serde_json::to_vec(&header).map_err(signing_error)?;
        let claims = serde_json::to_vec(&claims).map_err(signing_error)?;
        let input = format!("{}.{}", B64.encode(header), B64.encode(claims));
        let signature = self.sign(input.as_bytes())?;
        Ok(format!("{input}.{}", B64.encode(signature)))
    }
}

fn signing_error(err: impl fmt::Display) -> DpopClientError {
    DpopClientError::Signing(err.to_string())
}

impl From<p256::ecdsa::Error> for DpopClientError {
    fn from(err: p256::ecdsa::Error) -> Self {
        signing_error(err)
    }
}

fn sha256_b64(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    B64.encode(digest.as_ref())
}

/// 16 random bytes (128 bits), base64url: 22 characters.
fn random_jti() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    B64.encode(bytes)
}

/// RFC 9449 §4.2: `ath` is base64url(SHA-256(ASCII(access token))).
pub fn ath(access_token: &str) -> String {
    sha256_b64(access_token.as_bytes())
}

/// `htm`: the method upper-cased; an HTTP token (RFC 9110 §5.6.2) of letters only would be
/// stricter than HTTP, so any token character is accepted.
pub fn htm(method: &str) -> Result<String, DpopClientError> {
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if method.is_empty() || !method.chars().all(tchar) {
        return Err(DpopClientError::BadMethod(method.to_owned()));
    }
    Ok(method.to_ascii_uppercase())
}

/// `htu`: an absolute `http`/`https` URL without its query and fragment (RFC 9449 §4.2).
pub fn htu(url: &str) -> Result<String, DpopClientError> {
    let bad = |reason: &str| DpopClientError::BadUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let mut parsed = Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("credentials do not belong in a DPoP htu"));
    }
    parsed.set_query(None);
    parsed.set_fragment(None);
    Ok(parsed.into())
}

#[cfg(test)]
mod tests;
