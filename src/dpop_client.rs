//! The client side of DPoP (RFC 9449), behind `keygate dpop`: an EC key pair in a PEM file and
//! the proofs it signs. This is an implementation of its own, on the RustCrypto curve crates,
//! independent of the server's verifier (`crate::auth::dpop`), so each checks the other.

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
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::Value;

    fn decode(part: &str) -> Value {
        serde_json::from_slice(&B64.decode(part).unwrap()).unwrap()
    }

    fn parts(proof: &str) -> (Value, Value, Vec<u8>) {
        let parts: Vec<&str> = proof.split('.').collect();
        assert_eq!(parts.len(), 3, "{proof}");
        (
            decode(parts[0]),
            decode(parts[1]),
            B64.decode(parts[2]).unwrap(),
        )
    }

    fn at() -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000, 0).unwrap()
    }

    /// Verifies `proof`'s signature with the RustCrypto verifier of the key's curve.
    fn verify(key: &ClientKey, proof: &str) -> bool {
        use p256::ecdsa::signature::Verifier;
        let (input, signature) = proof.rsplit_once('.').unwrap();
        let signature = B64.decode(signature).unwrap();
        match key {
            ClientKey::P256(k) => {
                let sig = p256::ecdsa::Signature::from_slice(&signature).unwrap();
                p256::ecdsa::VerifyingKey::from(k.public_key())
                    .verify(input.as_bytes(), &sig)
                    .is_ok()
            }
            ClientKey::P384(k) => {
                let sig = p384::ecdsa::Signature::from_slice(&signature).unwrap();
                p384::ecdsa::VerifyingKey::from(k.public_key())
                    .verify(input.as_bytes(), &sig)
                    .is_ok()
            }
            ClientKey::P521(_) => {
                let sig = p521::ecdsa::Signature::from_slice(&signature).unwrap();
                p521::ecdsa::VerifyingKey::from_sec1_bytes(&key.public_point())
                    .unwrap()
                    .verify(input.as_bytes(), &sig)
                    .is_ok()
            }
        }
    }

    #[test]
    fn alg_names_parse_in_any_case_and_unknown_ones_fail() {
        assert_eq!("ES256".parse::<DpopAlg>().unwrap(), DpopAlg::ES256);
        assert_eq!("es384".parse::<DpopAlg>().unwrap(), DpopAlg::ES384);
        assert_eq!("Es512".parse::<DpopAlg>().unwrap(), DpopAlg::ES512);
        for bad in ["RS256", "EdDSA", "none", "HS256", "", "ES"] {
            let err = bad.parse::<DpopAlg>().unwrap_err();
            assert!(
                matches!(err, DpopClientError::UnknownAlg(_)),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn jwk_coordinates_and_signatures_have_the_curves_full_width() {
        for alg in DpopAlg::ALL {
            // Many keys, so a coordinate with leading zero bytes (1 in 256) is likely seen.
            for _ in 0..64 {
                let key = ClientKey::generate(alg);
                assert_eq!(key.alg(), alg);
                let jwk = key.public_jwk();
                assert_eq!(jwk.kty, "EC");
                assert_eq!(jwk.crv, alg.curve());
                for coordinate in [&jwk.x, &jwk.y] {
                    assert_eq!(B64.decode(coordinate).unwrap().len(), alg.field_len());
                }
                let chars = match alg {
                    DpopAlg::ES256 => 43,
                    DpopAlg::ES384 => 64,
                    DpopAlg::ES512 => 88,
                };
                assert_eq!(jwk.x.len(), chars, "{alg}");
                assert_eq!(jwk.y.len(), chars, "{alg}");
                // The same as the curve crates' own JWK encoding.
                let reference = match &key {
                    ClientKey::P256(k) => k.public_key().to_jwk_string(),
                    ClientKey::P384(k) => k.public_key().to_jwk_string(),
                    ClientKey::P521(k) => k.public_key().to_jwk_string(),
                };
                let reference: Value = serde_json::from_str(&reference).unwrap();
                assert_eq!(serde_json::to_value(&jwk).unwrap(), reference, "{alg}");
            }
            let key = ClientKey::generate(alg);
            let proof = key
                .proof("post", "https://kg.example/a", None, None, at())
                .unwrap();
            let (_, _, signature) = parts(&proof);
            let width = match alg {
                DpopAlg::ES256 => 64,
                DpopAlg::ES384 => 96,
                DpopAlg::ES512 => 132,
            };
            assert_eq!(signature.len(), width, "{alg}");
            assert_eq!(signature.len(), 2 * alg.field_len());
        }
    }

    #[test]
    fn a_proof_has_the_rfc_9449_header_and_claims_and_verifies() {
        for alg in DpopAlg::ALL {
            let key = ClientKey::generate(alg);
            let proof = key
                .proof(
                    "post",
                    "https://KG.example:443/v1/default/user/signin_with_api_key",
                    None,
                    None,
                    at(),
                )
                .unwrap();
            let (header, claims, _) = parts(&proof);
            assert_eq!(
                header,
                serde_json::json!({"typ": "dpop+jwt", "alg": alg.as_str(), "jwk": key.public_jwk()})
            );
            assert_eq!(
                header["jwk"].as_object().unwrap().len(),
                4,
                "kty, crv, x, y only"
            );
            let claims = claims.as_object().unwrap();
            let mut names: Vec<&str> = claims.keys().map(String::as_str).collect();
            names.sort_unstable();
            assert_eq!(names, ["htm", "htu", "iat", "jti"]);
            assert_eq!(claims["htm"], "POST");
            assert_eq!(
                claims["htu"],
                "https://kg.example/v1/default/user/signin_with_api_key"
            );
            assert_eq!(claims["iat"], 1_700_000_000);
            assert!(verify(&key, &proof), "{alg}");
            let mut tampered = proof.clone();
            tampered.insert(tampered.find('.').unwrap() + 1, 'e');
            assert!(!verify(&key, &tampered), "{alg}");
        }
    }

    #[test]
    fn jti_is_128_random_bits_and_fresh_each_time() {
        let key = ClientKey::generate(DpopAlg::ES256);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100 {
            let proof = key.proof("GET", "http://h/", None, None, at()).unwrap();
            let jti = parts(&proof).1["jti"].as_str().unwrap().to_owned();
            assert!(B64.decode(&jti).unwrap().len() >= 16, "{jti}");
            assert!(seen.insert(jti));
        }
    }

    #[test]
    fn htu_strips_query_and_fragment() {
        assert_eq!(
            htu("https://kg.example/v1/x/user/me?a=1&b=2#frag").unwrap(),
            "https://kg.example/v1/x/user/me"
        );
        assert_eq!(
            htu("http://127.0.0.1:8080/p#only-fragment").unwrap(),
            "http://127.0.0.1:8080/p"
        );
        assert_eq!(
            htu("http://127.0.0.1:8080/p?").unwrap(),
            "http://127.0.0.1:8080/p"
        );
        let key = ClientKey::generate(DpopAlg::ES384);
        let proof = key
            .proof("get", "https://kg.example/me?x=1#y", None, None, at())
            .unwrap();
        assert_eq!(parts(&proof).1["htu"], "https://kg.example/me");
    }

    #[test]
    fn bad_urls_and_methods_are_refused() {
        for url in [
            "",
            "not a url",
            "/v1/default/user/me",
            "ftp://kg.example/x",
            "mailto:a@b.example",
            "https://user:pw@kg.example/x",
        ] {
            assert!(
                matches!(htu(url), Err(DpopClientError::BadUrl { .. })),
                "{url}"
            );
        }
        for method in ["", "GE T", "GET\n", "PÖST"] {
            assert!(
                matches!(htm(method), Err(DpopClientError::BadMethod(_))),
                "{method:?}"
            );
        }
        assert_eq!(htm("patch").unwrap(), "PATCH");
    }

    #[test]
    fn ath_matches_the_rfc_9449_section_7_1_example() {
        let token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";
        assert_eq!(ath(token), "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
        let key = ClientKey::generate(DpopAlg::ES256);
        let proof = key
            .proof(
                "GET",
                "https://resource.example.org/protectedresource",
                Some(token),
                Some("eyJ7S_zG.eyJH0-Z.HX4w-7v"),
                at(),
            )
            .unwrap();
        let claims = parts(&proof).1;
        assert_eq!(claims["ath"], "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
        assert_eq!(claims["nonce"], "eyJ7S_zG.eyJH0-Z.HX4w-7v");
    }

    #[test]
    fn thumbprint_matches_the_rfc_7638_canonical_form() {
        // RFC 7638 §3.1's member order, computed here through serde_json.
        let key = ClientKey::generate(DpopAlg::ES512);
        let jwk = key.public_jwk();
        let canonical = serde_json::json!({"crv": jwk.crv, "kty": "EC", "x": jwk.x, "y": jwk.y});
        let mut map: Vec<(String, Value)> =
            canonical.as_object().unwrap().clone().into_iter().collect();
        map.sort_by(|a, b| a.0.cmp(&b.0));
        let text = format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(key.thumbprint(), sha256_b64(text.as_bytes()));
        assert_eq!(key.thumbprint().len(), 43);
    }

    #[test]
    fn pem_round_trips_and_the_curve_gives_the_alg() {
        for alg in DpopAlg::ALL {
            let key = ClientKey::generate(alg);
            let pem = key.to_pem().unwrap();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{alg}");
            assert!(pem.ends_with("-----END PRIVATE KEY-----\n"), "{alg}");
            let back = ClientKey::from_pem(&pem).unwrap();
            assert_eq!(back.alg(), alg);
            assert_eq!(back.public_jwk(), key.public_jwk());
            assert_eq!(back.thumbprint(), key.thumbprint());
            // Surrounding text is ignored.
            let noisy = format!("a comment\n{}\ntrailing", pem.as_str());
            assert_eq!(
                ClientKey::from_pem(&noisy).unwrap().thumbprint(),
                key.thumbprint()
            );
            // The alg the caller asks for must be the key's.
            assert!(ClientKey::from_pem_with_alg(&pem, Some(alg)).is_ok());
            assert!(ClientKey::from_pem_with_alg(&pem, None).is_ok());
            for other in DpopAlg::ALL.into_iter().filter(|a| *a != alg) {
                let err = ClientKey::from_pem_with_alg(&pem, Some(other)).unwrap_err();
                assert!(
                    matches!(err, DpopClientError::AlgMismatch { .. }),
                    "{alg} as {other}: {err}"
                );
            }
        }
    }

    #[test]
    fn sec1_pem_keys_load_on_their_own_curve() {
        for alg in DpopAlg::ALL {
            let key = ClientKey::generate(alg);
            let sec1 = match &key {
                ClientKey::P256(k) => k.to_sec1_pem(LineEnding::LF).unwrap(),
                ClientKey::P384(k) => k.to_sec1_pem(LineEnding::LF).unwrap(),
                ClientKey::P521(k) => k.to_sec1_pem(LineEnding::LF).unwrap(),
            };
            assert!(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----"));
            let back = ClientKey::from_pem(&sec1).unwrap();
            assert_eq!(back.alg(), alg);
            assert_eq!(back.thumbprint(), key.thumbprint());
        }
    }

    #[test]
    fn corrupt_and_foreign_keys_are_refused_without_panicking() {
        let good = ClientKey::generate(DpopAlg::ES256).to_pem().unwrap();
        let mut corrupt = good.to_string();
        corrupt.replace_range(40..60, "AAAAAAAAAAAAAAAAAAAA");
        // An Ed25519 PKCS#8 key (RFC 8410 §10.3).
        let ed25519 = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        for (name, text) in [
            ("empty", ""),
            ("garbage", "garbage"),
            ("corrupt", corrupt.as_str()),
            ("truncated", &good[..good.len() / 2]),
            ("ed25519", ed25519),
            ("encrypted", encrypted),
            (
                "sec1 garbage",
                "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
            ),
        ] {
            let err = ClientKey::from_pem(text).unwrap_err();
            assert!(matches!(err, DpopClientError::BadKey(_)), "{name}: {err}");
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let key = ClientKey::generate(DpopAlg::ES256);
        let shown = format!("{key:?}");
        assert!(shown.contains("ES256"), "{shown}");
        assert!(shown.contains(&key.thumbprint()), "{shown}");
        let ClientKey::P256(secret) = &key else {
            unreachable!()
        };
        assert!(!shown.contains(&B64.encode(secret.to_bytes())));
    }
}
