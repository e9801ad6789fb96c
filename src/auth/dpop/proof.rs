//! A DPoP proof before its signature is checked: [`UnverifiedProof`] is the only place that
//! decodes one, and nothing in it may be trusted until [`UnverifiedProof::verify_signature`]
//! succeeds.

use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ECDSA_P521_SHA512_FIXED,
    UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;

use super::DpopError;
use crate::keys::jwk::ec_thumbprint;

/// RFC 9449 §4.2: the proof's `typ`.
const TYP: &str = "dpop+jwt";

/// The three algorithms keygate accepts, with their curve and coordinate size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ProofAlg {
    ES256,
    ES384,
    ES512,
}

impl ProofAlg {
    fn parse(alg: &str) -> Option<Self> {
        match alg {
            "ES256" => Some(Self::ES256),
            "ES384" => Some(Self::ES384),
            "ES512" => Some(Self::ES512),
            _ => None,
        }
    }

    fn curve(self) -> &'static str {
        match self {
            Self::ES256 => "P-256",
            Self::ES384 => "P-384",
            Self::ES512 => "P-521",
        }
    }

    /// Bytes of one coordinate (and of r and s in the signature).
    fn coordinate_len(self) -> usize {
        match self {
            Self::ES256 => 32,
            Self::ES384 => 48,
            Self::ES512 => 66,
        }
    }

    fn verification(self) -> &'static signature::EcdsaVerificationAlgorithm {
        match self {
            Self::ES256 => &ECDSA_P256_SHA256_FIXED,
            Self::ES384 => &ECDSA_P384_SHA384_FIXED,
            Self::ES512 => &ECDSA_P521_SHA512_FIXED,
        }
    }
}

/// The header members keygate reads. A duplicated member is a parse error.
#[derive(Deserialize)]
struct RawHeader {
    typ: Option<Value>,
    alg: Option<Value>,
    jwk: Option<RawJwk>,
    crit: Option<Value>,
}

/// The `jwk` members keygate reads; any other member (`kid`, `use`, …) is ignored.
#[derive(Deserialize)]
struct RawJwk {
    kty: Option<Value>,
    crv: Option<Value>,
    x: Option<Value>,
    y: Option<Value>,
    /// Present only in a private key: refused.
    d: Option<Value>,
}

/// The claims keygate reads (RFC 9449 §4.2). `exp` and others are ignored.
#[derive(Deserialize)]
struct RawClaims {
    jti: Option<Value>,
    htm: Option<Value>,
    htu: Option<Value>,
    iat: Option<Value>,
    ath: Option<Value>,
    nonce: Option<Value>,
}

pub(super) struct Claims {
    pub jti: String,
    pub htm: String,
    pub htu: String,
    /// Seconds since the epoch (a fractional NumericDate is truncated).
    pub iat: i64,
    pub ath: Option<String>,
    pub nonce: Option<String>,
}

pub(super) struct UnverifiedProof<'a> {
    signing_input: &'a [u8],
    signature: &'a [u8],
    alg: ProofAlg,
    /// RFC 7638 thumbprint of the `jwk`.
    jkt: String,
    /// SEC1 uncompressed point: 0x04 ‖ x ‖ y.
    point: Vec<u8>,
    pub claims: Claims,
}

fn b64(part: &[u8], what: &'static str) -> Result<Vec<u8>, DpopError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| DpopError::Malformed(what))
}

fn string(value: Option<Value>, name: &'static str) -> Result<String, DpopError> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        _ => Err(DpopError::MissingClaim(name)),
    }
}

impl<'a> UnverifiedProof<'a> {
    /// Checks 2–6 of [`super::Dpop::verify`]: shape, `typ`, `alg`, `jwk`, claims.
    pub fn parse(raw: &'a [u8], token_presented: bool) -> Result<Self, DpopError> {
        // 2. Compact JWS: header.payload.signature, base64url without padding.
        let mut parts = raw.split(|b| *b == b'.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(DpopError::Malformed("it does not have three parts"));
        };
        if header.is_empty() || payload.is_empty() || signature.is_empty() {
            return Err(DpopError::Malformed("a part is empty"));
        }
        let signing_input = raw
            .get(..header.len() + 1 + payload.len())
            .unwrap_or_default();
        let header_json = b64(header, "the header is not base64url")?;
        let header: RawHeader = serde_json::from_slice(&header_json).map_err(|_| {
            DpopError::Malformed("the header is not a JSON object, or its jwk is not an object")
        })?;
        if header.crit.is_some() {
            return Err(DpopError::Malformed(
                "the header has crit, which is not understood",
            ));
        }

        // 3.
        match &header.typ {
            Some(Value::String(t)) if t.eq_ignore_ascii_case(TYP) => {}
            _ => return Err(DpopError::WrongType),
        }
        // 4.
        let alg = match &header.alg {
            Some(Value::String(a)) => ProofAlg::parse(a).ok_or(DpopError::UnsupportedAlg)?,
            _ => return Err(DpopError::UnsupportedAlg),
        };
        // 5.
        let (jkt, point) = public_key(header.jwk, alg)?;

        // 6.
        let payload_json = b64(payload, "the payload is not base64url")?;
        let claims: RawClaims = serde_json::from_slice(&payload_json)
            .map_err(|_| DpopError::Malformed("the payload is not a JSON object"))?;
        let iat = match claims.iat {
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
                .ok_or(DpopError::MissingClaim("iat"))?,
            _ => return Err(DpopError::MissingClaim("iat")),
        };
        let claims = Claims {
            jti: string(claims.jti, "jti")?,
            htm: string(claims.htm, "htm")?,
            htu: string(claims.htu, "htu")?,
            iat,
            ath: match claims.ath {
                None if !token_presented => None,
                other => Some(string(other, "ath")?),
            },
            nonce: match claims.nonce {
                None => None,
                other => Some(string(other, "nonce")?),
            },
        };
        if claims.jti.len() > 256 {
            return Err(DpopError::MissingClaim("jti"));
        }

        Ok(Self {
            signing_input,
            signature,
            alg,
            jkt,
            point,
            claims,
        })
    }

    /// RFC 7638 thumbprint of the proof key.
    pub fn thumbprint(&self) -> &str {
        &self.jkt
    }

    /// 12. The JWS signature (r ‖ s, fixed width) over `header.payload`.
    pub fn verify_signature(&self) -> Result<(), DpopError> {
        let signature = b64(self.signature, "the signature is not base64url")?;
        if signature.len() != 2 * self.alg.coordinate_len() {
            return Err(DpopError::BadSignature);
        }
        UnparsedPublicKey::new(self.alg.verification(), &self.point)
            .verify(self.signing_input, &signature)
            .map_err(|_| DpopError::BadSignature)
    }
}

/// Check 5, the `jwk`: an EC public key on the curve of `alg`, coordinates of the exact
/// size, no private member. Returns its thumbprint and the SEC1 point.
fn public_key(jwk: Option<RawJwk>, alg: ProofAlg) -> Result<(String, Vec<u8>), DpopError> {
    let Some(jwk) = jwk else {
        return Err(DpopError::BadJwk("the header has no jwk object"));
    };
    if jwk.d.is_some() {
        return Err(DpopError::BadJwk("it contains a private key"));
    }
    if jwk.kty.as_ref().and_then(Value::as_str) != Some("EC") {
        return Err(DpopError::BadJwk("kty is not EC"));
    }
    if jwk.crv.as_ref().and_then(Value::as_str) != Some(alg.curve()) {
        return Err(DpopError::BadJwk("crv does not match alg"));
    }
    fn text(value: &Option<Value>) -> Result<&str, DpopError> {
        value
            .as_ref()
            .and_then(Value::as_str)
            .ok_or(DpopError::BadJwk("a coordinate is missing"))
    }
    let (x_text, y_text) = (text(&jwk.x)?, text(&jwk.y)?);
    let coordinate = |text: &str| -> Result<Vec<u8>, DpopError> {
        // The default engine refuses non-canonical encodings, so one key has one thumbprint.
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| DpopError::BadJwk("a coordinate is not base64url"))?;
        if bytes.len() != alg.coordinate_len() {
            return Err(DpopError::BadJwk("a coordinate has the wrong length"));
        }
        Ok(bytes)
    };
    let (x, y) = (coordinate(x_text)?, coordinate(y_text)?);
    let mut point = Vec::with_capacity(1 + 2 * alg.coordinate_len());
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok((ec_thumbprint(alg.curve(), x_text, y_text), point))
}
