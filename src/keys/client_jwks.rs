//! The public keys of a key-pair client (README, "Key-pair clients (private_key_jwt)"): a
//! JWK Set (RFC 7517 §5) registered as `public_jwks` when the key is created, checked once
//! there and stored in a canonical form, and the signature check of the client's assertions
//! (RFC 7523 §2.2). Pure: no HTTP, no database.
//!
//! Accepted keys: EC on P-256, P-384 or P-521 (RFC 7518 §6.2), Ed25519 (`OKP`, RFC 8037)
//! and RSA of 2048 to 8192 bits (RFC 7518 §6.3), public members only. Signatures are checked
//! with aws-lc-rs, as DPoP proofs are (jsonwebtoken has no ES512).

use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ECDSA_P521_SHA512_FIXED, ED25519,
    ParsedPublicKey, RsaParameters, RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

/// The most keys one client may register (room for a rotation or two).
pub const MAX_KEYS: usize = 10;
/// The smallest RSA modulus accepted (RFC 7518 §3.3 asks for at least 2048 bits).
pub const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus the verifier takes.
pub const MAX_RSA_BITS: usize = 8192;
/// The longest `kid` accepted.
const MAX_KID_CHARS: usize = 128;

/// The members that only a private key has (RFC 7518 §6.2.2, §6.3.2; `k` of a symmetric
/// key, §6.4.1): any of them refuses the key.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A client assertion's signature algorithm (RFC 7518 §3.1, RFC 8037 §3.1). `none` and the
/// HMAC algorithms are not among them: an assertion is signed with the client's private key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssertionAlg {
    ES256,
    ES384,
    ES512,
    EdDSA,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
}

impl AssertionAlg {
    pub const ALL: [AssertionAlg; 10] = [
        AssertionAlg::ES256,
        AssertionAlg::ES384,
        AssertionAlg::ES512,
        AssertionAlg::EdDSA,
        AssertionAlg::RS256,
        AssertionAlg::RS384,
        AssertionAlg::RS512,
        AssertionAlg::PS256,
        AssertionAlg::PS384,
        AssertionAlg::PS512,
    ];
    const RSA: [AssertionAlg; 6] = [
        AssertionAlg::RS256,
        AssertionAlg::RS384,
        AssertionAlg::RS512,
        AssertionAlg::PS256,
        AssertionAlg::PS384,
        AssertionAlg::PS512,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AssertionAlg::ES256 => "ES256",
            AssertionAlg::ES384 => "ES384",
            AssertionAlg::ES512 => "ES512",
            AssertionAlg::EdDSA => "EdDSA",
            AssertionAlg::RS256 => "RS256",
            AssertionAlg::RS384 => "RS384",
            AssertionAlg::RS512 => "RS512",
            AssertionAlg::PS256 => "PS256",
            AssertionAlg::PS384 => "PS384",
            AssertionAlg::PS512 => "PS512",
        }
    }

    /// Exact, case-sensitive names (RFC 7515 §4.1.1).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    fn rsa_parameters(self) -> Option<&'static RsaParameters> {
        Some(match self {
            AssertionAlg::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            AssertionAlg::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            AssertionAlg::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            AssertionAlg::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            AssertionAlg::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            AssertionAlg::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            _ => return None,
        })
    }
}

/// Why a `public_jwks` document was refused; the message says which key and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`public_jwks`: {0}")]
pub struct JwksError(pub String);

/// The public part of one registered key, ready to verify.
#[derive(Clone, Debug)]
enum Material {
    /// A SEC1 uncompressed point on the curve of `alg`.
    Ec {
        alg: AssertionAlg,
        point: Vec<u8>,
    },
    Ed25519 {
        x: Vec<u8>,
    },
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
}

/// One registered public key.
#[derive(Clone, Debug)]
pub struct PublicKey {
    kid: Option<String>,
    /// The JWK's own `alg`, when it named one: then only that algorithm is accepted.
    alg: Option<AssertionAlg>,
    material: Material,
    /// The key as stored and shown: its public members only.
    jwk: Map<String, Value>,
}

impl PublicKey {
    /// The algorithms this key verifies.
    pub fn algs(&self) -> Vec<AssertionAlg> {
        if let Some(alg) = self.alg {
            return vec![alg];
        }
        match &self.material {
            Material::Ec { alg, .. } => vec![*alg],
            Material::Ed25519 { .. } => vec![AssertionAlg::EdDSA],
            Material::Rsa { .. } => AssertionAlg::RSA.to_vec(),
        }
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether `signature` is this key's `alg` signature over `message` (JWS §5.2 step 8):
    /// false for an algorithm the key does not take.
    pub fn verifies(&self, alg: AssertionAlg, message: &[u8], signature: &[u8]) -> bool {
        if !self.algs().contains(&alg) {
            return false;
        }
        match &self.material {
            Material::Ec { alg: curve, point } => {
                let verification = match curve {
                    AssertionAlg::ES256 => &ECDSA_P256_SHA256_FIXED,
                    AssertionAlg::ES384 => &ECDSA_P384_SHA384_FIXED,
                    _ => &ECDSA_P521_SHA512_FIXED,
                };
                signature::UnparsedPublicKey::new(verification, point)
                    .verify(message, signature)
                    .is_ok()
            }
            Material::Ed25519 { x } => signature::UnparsedPublicKey::new(&ED25519, x)
                .verify(message, signature)
                .is_ok(),
            Material::Rsa { n, e } => alg.rsa_parameters().is_some_and(|params| {
                RsaPublicKeyComponents { n, e }
                    .verify(params, message, signature)
                    .is_ok()
            }),
        }
    }
}

/// A client's registered public keys.
#[derive(Clone, Debug)]
pub struct ClientJwks {
    keys: Vec<PublicKey>,
}

/// Why no registered key fits an assertion's `kid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySelection {
    /// The `kid` names none of the keys.
    UnknownKid,
    /// No `kid`, and there are several keys.
    KidRequired,
}

impl ClientJwks {
    /// Parses and checks a `public_jwks` document (`{"keys": [...]}`): 1 to [`MAX_KEYS`]
    /// public keys of the accepted types, each `kid` unique, and a `kid` on every key when
    /// there are several (it is what selects the key for an assertion).
    pub fn parse(value: &Value) -> Result<Self, JwksError> {
        let err = |m: String| JwksError(m);
        let object = value
            .as_object()
            .ok_or_else(|| err("must be a JWK Set object: {\"keys\": [...]}".into()))?;
        if let Some(other) = object.keys().find(|k| *k != "keys") {
            return Err(err(format!("unknown member `{other}` (only `keys`)")));
        }
        let keys = object
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| err("must have a `keys` array".into()))?;
        if keys.is_empty() || keys.len() > MAX_KEYS {
            return Err(err(format!("`keys` must hold 1 to {MAX_KEYS} keys")));
        }
        let keys = keys
            .iter()
            .enumerate()
            .map(|(i, jwk)| parse_key(jwk).map_err(|m| err(format!("keys[{i}]: {m}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.len() > 1 {
            if keys.iter().any(|k| k.kid.is_none()) {
                return Err(err(
                    "every key needs a `kid` when there are several (it selects the key)".into(),
                ));
            }
            for (i, key) in keys.iter().enumerate() {
                if keys[..i].iter().any(|k| k.kid == key.kid) {
                    return Err(err(format!("keys[{i}]: its `kid` is not unique")));
                }
            }
        }
        Ok(Self { keys })
    }

    /// Reads what [`ClientJwks::to_json`] stored.
    pub fn from_stored(text: &str) -> Result<Self, JwksError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| JwksError(format!("stored form: {e}")))?;
        Self::parse(&value)
    }

    /// The canonical document: each key's public members only.
    pub fn to_value(&self) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .map(|k| Value::Object(k.jwk.clone()))
            .collect();
        json!({ "keys": keys })
    }

    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }

    /// The key an assertion's `kid` selects: the key with that `kid`; the only key when
    /// there is one and it has no `kid` (whatever the assertion names); the only key when
    /// the assertion names none. Several keys and no `kid`: [`KeySelection::KidRequired`].
    pub fn select(&self, kid: Option<&str>) -> Result<&PublicKey, KeySelection> {
        match (kid, self.keys.as_slice()) {
            (_, [only]) if only.kid.is_none() => Ok(only),
            (None, [only]) => Ok(only),
            (None, _) => Err(KeySelection::KidRequired),
            (Some(kid), keys) => keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .ok_or(KeySelection::UnknownKid),
        }
    }
}

fn text<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    jwk.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("`{name}` is missing or not a string"))
}

/// base64url without padding, canonical (the default engine refuses stray bits).
fn bytes(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(text(jwk, name)?)
        .map_err(|_| format!("`{name}` is not base64url without padding"))
}

fn parse_key(value: &Value) -> Result<PublicKey, String> {
    let jwk = value.as_object().ok_or("is not a JSON object")?;
    if let Some(private) = PRIVATE_MEMBERS.iter().find(|m| jwk.contains_key(**m)) {
        return Err(format!(
            "has the private member `{private}`: register public keys only, and keep the \
             private key with the client"
        ));
    }
    let kid = match jwk.get("kid") {
        None => None,
        Some(Value::String(k)) if !k.is_empty() && k.chars().count() <= MAX_KID_CHARS => {
            Some(k.clone())
        }
        Some(_) => return Err(format!("`kid` must be a string of 1 to {MAX_KID_CHARS}")),
    };
    match jwk.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(_) => return Err("`use` must be `sig`".into()),
    }
    if let Some(ops) = jwk.get("key_ops")
        && !ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op == "verify"))
    {
        return Err("`key_ops` must include `verify`".into());
    }
    let mut public = Map::new();
    let (material, members): (Material, &[&str]) = match text(jwk, "kty")? {
        "EC" => (ec(jwk)?, &["kty", "crv", "x", "y"]),
        "OKP" => (okp(jwk)?, &["kty", "crv", "x"]),
        "RSA" => (rsa(jwk)?, &["kty", "n", "e"]),
        other => {
            return Err(format!(
                "`kty` `{other}` is not accepted: EC (P-256, P-384, P-521), OKP (Ed25519) or RSA"
            ));
        }
    };
    for name in members.iter().chain(&["kid", "use", "alg"]) {
        if let Some(v) = jwk.get(*name) {
            public.insert((*name).to_owned(), v.clone());
        }
    }
    let mut key = PublicKey {
        kid,
        alg: None,
        material,
        jwk: public,
    };
    if let Some(alg) = jwk.get("alg") {
        let alg = alg
            .as_str()
            .and_then(AssertionAlg::parse)
            .filter(|a| key.algs().contains(a))
            .ok_or_else(|| {
                let fits: Vec<_> = key.algs().iter().map(|a| a.as_str()).collect();
                format!("`alg` must be one of {} for this key", fits.join(", "))
            })?;
        key.alg = Some(alg);
    }
    Ok(key)
}

fn ec(jwk: &Map<String, Value>) -> Result<Material, String> {
    let (alg, len, verification) = match text(jwk, "crv")? {
        "P-256" => (AssertionAlg::ES256, 32, &ECDSA_P256_SHA256_FIXED),
        "P-384" => (AssertionAlg::ES384, 48, &ECDSA_P384_SHA384_FIXED),
        "P-521" => (AssertionAlg::ES512, 66, &ECDSA_P521_SHA512_FIXED),
        other => return Err(format!("EC curve `{other}` is not P-256, P-384 or P-521")),
    };
    let (x, y) = (bytes(jwk, "x")?, bytes(jwk, "y")?);
    if x.len() != len || y.len() != len {
        return Err(format!(
            "the coordinates of a {} key are {len} bytes each (RFC 7518 §6.2.1.2)",
            text(jwk, "crv")?
        ));
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    ParsedPublicKey::new(verification, &point).map_err(|_| "the point is not on the curve")?;
    Ok(Material::Ec { alg, point })
}

fn okp(jwk: &Map<String, Value>) -> Result<Material, String> {
    if text(jwk, "crv")? != "Ed25519" {
        return Err("an OKP key must be on Ed25519".into());
    }
    let x = bytes(jwk, "x")?;
    if x.len() != 32 {
        return Err("an Ed25519 `x` is 32 bytes".into());
    }
    ParsedPublicKey::new(&ED25519, &x).map_err(|_| "`x` is not an Ed25519 public key")?;
    Ok(Material::Ed25519 { x })
}

fn rsa(jwk: &Map<String, Value>) -> Result<Material, String> {
    let (n, e) = (bytes(jwk, "n")?, bytes(jwk, "e")?);
    if n.first().is_none_or(|b| *b == 0) || e.first().is_none_or(|b| *b == 0) {
        return Err("`n` and `e` must be unsigned integers without leading zero bytes".into());
    }
    let bits = n.len() * 8 - n.first().map_or(0, |b| b.leading_zeros() as usize);
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(format!(
            "an RSA key must have {MIN_RSA_BITS} to {MAX_RSA_BITS} bits; this one has {bits}"
        ));
    }
    if e.len() > 4 {
        return Err("the RSA exponent `e` is too large".into());
    }
    RsaPublicKeyComponents { n: &n, e: &e }
        .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
        .map_err(|_| "not a valid RSA public key")?;
    Ok(Material::Rsa { n, e })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7515 A.3's P-256 public key.
    fn ec_key(kid: Option<&str>) -> Value {
        let mut k = json!({"kty": "EC", "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
        if let Some(kid) = kid {
            k["kid"] = json!(kid);
        }
        k
    }

    /// RFC 7515 A.3: an ES256 JWS that verifies with [`ec_key`].
    const A3_INPUT: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
    const A3_SIG: &str =
        "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

    #[test]
    fn rfc7515_a3_verifies_with_es256_only() {
        let set = ClientJwks::parse(&json!({"keys": [ec_key(None)]})).unwrap();
        let key = set.select(Some("anything")).unwrap();
        let sig = URL_SAFE_NO_PAD.decode(A3_SIG).unwrap();
        assert!(key.verifies(AssertionAlg::ES256, A3_INPUT.as_bytes(), &sig));
        assert!(!key.verifies(AssertionAlg::ES384, A3_INPUT.as_bytes(), &sig));
        assert!(!key.verifies(AssertionAlg::RS256, A3_INPUT.as_bytes(), &sig));
        assert!(!key.verifies(AssertionAlg::ES256, b"other", &sig));
    }

    #[test]
    fn refused_documents() {
        let private = {
            let mut k = ec_key(None);
            k["d"] = json!("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI");
            k
        };
        let off_curve = {
            let mut k = ec_key(None);
            k["y"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
            k
        };
        let small_rsa =
            json!({"kty": "RSA", "e": "AQAB", "n": URL_SAFE_NO_PAD.encode([0xC5u8; 128])});
        let many: Vec<Value> = (0..=MAX_KEYS)
            .map(|i| ec_key(Some(&i.to_string())))
            .collect();
        for (name, doc, says) in [
            ("not an object", json!([]), "JWK Set"),
            ("no keys", json!({"keys": []}), "1 to"),
            (
                "extra member",
                json!({"keys": [ec_key(None)], "x": 1}),
                "unknown member",
            ),
            ("private", json!({"keys": [private]}), "private member `d`"),
            (
                "symmetric",
                json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
                "private member `k`",
            ),
            (
                "off curve",
                json!({"keys": [off_curve]}),
                "not on the curve",
            ),
            ("short rsa", json!({"keys": [small_rsa]}), "1024"),
            (
                "x25519",
                json!({"keys": [{"kty": "OKP", "crv": "X25519", "x": URL_SAFE_NO_PAD.encode([9u8; 32])}]}),
                "Ed25519",
            ),
            (
                "no kid of two",
                json!({"keys": [ec_key(Some("a")), ec_key(None)]}),
                "needs a `kid`",
            ),
            (
                "same kid",
                json!({"keys": [ec_key(Some("a")), ec_key(Some("a"))]}),
                "not unique",
            ),
            ("too many", json!({"keys": many}), "1 to"),
            (
                "alg mismatch",
                json!({"keys": [{"alg": "RS256", "kty": "EC", "crv": "P-256", "x": ec_key(None)["x"], "y": ec_key(None)["y"]}]}),
                "`alg` must be one of ES256",
            ),
            (
                "use enc",
                json!({"keys": [{"use": "enc", "kty": "EC", "crv": "P-256", "x": ec_key(None)["x"], "y": ec_key(None)["y"]}]}),
                "`use`",
            ),
        ] {
            let err = ClientJwks::parse(&doc).expect_err(name).0;
            assert!(err.contains(says), "{name}: {err}");
        }
    }

    #[test]
    fn kid_selects_and_the_stored_form_round_trips() {
        let set =
            ClientJwks::parse(&json!({"keys": [ec_key(Some("a")), ec_key(Some("b"))]})).unwrap();
        assert_eq!(set.select(Some("b")).unwrap().kid(), Some("b"));
        assert_eq!(set.select(Some("c")).err(), Some(KeySelection::UnknownKid));
        assert_eq!(set.select(None).err(), Some(KeySelection::KidRequired));
        let one = ClientJwks::parse(&json!({"keys": [ec_key(Some("a"))]})).unwrap();
        assert!(one.select(None).is_ok());
        assert_eq!(one.select(Some("z")).err(), Some(KeySelection::UnknownKid));
        let again = ClientJwks::from_stored(&set.to_json()).unwrap();
        assert_eq!(again.to_value(), set.to_value());
    }
}
