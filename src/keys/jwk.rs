//! RFC 7638 JWK thumbprints: SHA-256 over the JSON object of the key's required members
//! (§3.2), in lexicographic order with no whitespace, base64url without padding.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ThumbprintError {
    #[error("the JWK has no supported `kty` (EC, OKP or RSA)")]
    UnsupportedKty,
    #[error("the JWK lacks its required member `{0}` or it is not a string")]
    MissingMember(&'static str),
}

/// RFC 7638 §3.2: the required members for each key type.
fn required_members(kty: &str) -> Option<&'static [&'static str]> {
    match kty {
        "EC" => Some(&["crv", "kty", "x", "y"]),
        "OKP" => Some(&["crv", "kty", "x"]),
        "RSA" => Some(&["e", "kty", "n"]),
        _ => None,
    }
}

/// The base64url SHA-256 thumbprint of a public JWK (any other members are ignored).
pub fn thumbprint(jwk: &Map<String, Value>) -> Result<String, ThumbprintError> {
    let kty = jwk
        .get("kty")
        .and_then(Value::as_str)
        .ok_or(ThumbprintError::UnsupportedKty)?;
    let members = required_members(kty).ok_or(ThumbprintError::UnsupportedKty)?;
    // serde_json's Map is ordered by key (BTreeMap), which is exactly the order §3.3 asks for.
    let mut canonical = Map::new();
    for name in members {
        let value = jwk
            .get(*name)
            .and_then(Value::as_str)
            .ok_or(ThumbprintError::MissingMember(name))?;
        canonical.insert((*name).to_owned(), Value::String(value.to_owned()));
    }
    let text = Value::Object(canonical).to_string();
    Ok(URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, text.as_bytes())))
}

/// RFC 7638 §3.2 for an EC key, from its members directly: the hot path of every DPoP
/// proof, without building a JSON object first. Equal to [`thumbprint`] of the same key.
pub fn ec_thumbprint(crv: &str, x: &str, y: &str) -> String {
    // Field order is the serialisation order: lexicographic, as §3.3 asks.
    #[derive(serde::Serialize)]
    struct Required<'a> {
        crv: &'a str,
        kty: &'a str,
        x: &'a str,
        y: &'a str,
    }
    let text = serde_json::to_vec(&Required {
        crv,
        kty: "EC",
        x,
        y,
    })
    .unwrap_or_default();
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, &text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn rfc7638_section_3_1_rsa_example() {
        let jwk = obj(json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }));
        assert_eq!(
            thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn rfc9449_section_4_1_ec_proof_key() {
        let jwk = obj(json!({
            "kty": "EC",
            "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
            "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
            "crv": "P-256"
        }));
        assert_eq!(
            thumbprint(&jwk).unwrap(),
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
        assert_eq!(
            ec_thumbprint(
                "P-256",
                "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
                "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"
            ),
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
    }

    #[test]
    fn missing_members_and_unknown_types_are_errors() {
        assert_eq!(
            thumbprint(&obj(json!({"kty": "EC", "crv": "P-256", "x": "a"}))),
            Err(ThumbprintError::MissingMember("y"))
        );
        assert_eq!(
            thumbprint(&obj(json!({"kty": "oct", "k": "a"}))),
            Err(ThumbprintError::UnsupportedKty)
        );
        assert_eq!(
            thumbprint(&obj(json!({"kty": "EC", "crv": 1, "x": "a", "y": "b"}))),
            Err(ThumbprintError::MissingMember("crv"))
        );
    }
}
