//! The client side of `private_key_jwt` (RFC 7523 §2.2), behind `keygate client-assertion`:
//! the public JWK Set to register for a key, and client assertions signed with it. The same
//! EC keys and RustCrypto signer as DPoP proofs, independent of the server's verifier.

use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::{B64, ClientKey, DpopClientError, random_jti, signing_error};

/// The longest lifetime keygate accepts for an assertion (its `exp` at most 5 minutes ahead).
pub const MAX_LIFETIME: Duration = Duration::from_secs(300);

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<&'a str>,
}

/// RFC 7523 §3: `iss` = `sub` = the client id, `aud`, `exp`, `iat`, a random `jti`.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    jti: String,
}

/// What an assertion says.
pub struct AssertionRequest<'a> {
    /// The client id: the key-pair client's API key id (`key_…`).
    pub client_id: &'a str,
    /// The authorization server's issuer (`{public_url}/v1/{org}`) or the endpoint's URL.
    pub audience: &'a str,
    /// From `now` to `exp`: more than 0 s, at most [`MAX_LIFETIME`].
    pub lifetime: Duration,
    /// The key's `kid` as registered; `None`: its RFC 7638 thumbprint.
    pub kid: Option<&'a str>,
    pub now: DateTime<Utc>,
}

impl ClientKey {
    /// The public JWK Set to register as the client's `public_jwks`: this key with `kid`
    /// (default: its thumbprint), `alg` and `use: sig`. No private member.
    pub fn public_jwks(&self, kid: Option<&str>) -> Value {
        let jwk = self.public_jwk();
        json!({"keys": [{
            "kty": jwk.kty, "crv": jwk.crv, "x": jwk.x, "y": jwk.y,
            "kid": kid.map_or_else(|| self.thumbprint(), str::to_owned),
            "alg": self.alg().as_str(), "use": "sig",
        }]})
    }

    /// A client assertion (a compact JWS) for one request.
    pub fn client_assertion(&self, req: &AssertionRequest<'_>) -> Result<String, DpopClientError> {
        if req.lifetime.is_zero() || req.lifetime > MAX_LIFETIME {
            return Err(signing_error(
                "the lifetime must be more than 0s and at most 5m (keygate refuses longer)",
            ));
        }
        let thumbprint = self.thumbprint();
        let header = Header {
            alg: self.alg().as_str(),
            typ: "JWT",
            kid: Some(req.kid.unwrap_or(&thumbprint)),
        };
        let iat = req.now.timestamp();
        let claims = Claims {
            iss: req.client_id,
            sub: req.client_id,
            aud: req.audience,
            exp: iat.saturating_add(i64::try_from(req.lifetime.as_secs()).unwrap_or(300)),
            iat,
            jti: random_jti(),
        };
        let header = serde_json::to_vec(&header).map_err(signing_error)?;
        let claims = serde_json::to_vec(&claims).map_err(signing_error)?;
        let input = format!("{}.{}", B64.encode(header), B64.encode(claims));
        let signature = self.sign(input.as_bytes())?;
        Ok(format!("{input}.{}", B64.encode(signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpop_client::DpopAlg;
    use crate::keys::client_jwks::{AssertionAlg, ClientJwks};

    #[test]
    fn the_server_side_verifies_what_the_client_side_signs() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        for alg in DpopAlg::ALL {
            let key = ClientKey::generate(alg);
            let jwks = ClientJwks::parse(&key.public_jwks(None)).unwrap();
            let assertion = key
                .client_assertion(&AssertionRequest {
                    client_id: "key_x",
                    audience: "https://as.example/v1/acme",
                    lifetime: Duration::from_secs(60),
                    kid: None,
                    now,
                })
                .unwrap();
            let (input, signature) = assertion.rsplit_once('.').unwrap();
            let (header, claims) = input.split_once('.').unwrap();
            let header: Value = serde_json::from_slice(&B64.decode(header).unwrap()).unwrap();
            let claims: Value = serde_json::from_slice(&B64.decode(claims).unwrap()).unwrap();
            assert_eq!(header["kid"], json!(key.thumbprint()));
            assert_eq!(claims["iss"], "key_x");
            assert_eq!(claims["sub"], "key_x");
            assert_eq!(claims["exp"], json!(1_700_000_060));
            let public = jwks.select(header["kid"].as_str()).unwrap();
            let alg = AssertionAlg::parse(header["alg"].as_str().unwrap()).unwrap();
            let signature = B64.decode(signature).unwrap();
            assert!(
                public.verifies(alg, input.as_bytes(), &signature),
                "{alg:?}"
            );
        }
        let key = ClientKey::generate(DpopAlg::ES256);
        let too_long = AssertionRequest {
            client_id: "key_x",
            audience: "a",
            lifetime: Duration::from_secs(301),
            kid: None,
            now,
        };
        assert!(key.client_assertion(&too_long).is_err());
    }
}
