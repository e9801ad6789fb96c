//! Key-pair clients (`private_key_jwt`, RFC 7523 §2.2): a key registered with `public_jwks`
//! has no secret and authenticates at the token, revocation and introspection endpoints
//! with assertions signed by its keys. Assertions are signed here with the RustCrypto curve
//! crates (EC) and josekit (RSA, Ed25519), independent of keygate's verifier.

mod checks;
mod flow;
mod fuzz;
mod registration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use josekit::jwk::KeyPair;
use josekit::jws::JwsSigner;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::admin_helpers::Reply;
use crate::dpop_key::DpopKey;
use crate::helpers::TestApp;

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client's private key, with the `kid` it is registered under.
pub struct Signer {
    kind: Kind,
    pub kid: Option<String>,
}

enum Kind {
    Ec(DpopKey),
    Jose {
        alg: &'static str,
        signer: Box<dyn JwsSigner>,
        public: Value,
    },
}

impl Signer {
    pub fn es256() -> Self {
        Self::ec(DpopKey::es256())
    }

    pub fn ec(key: DpopKey) -> Self {
        Self {
            kind: Kind::Ec(key),
            kid: None,
        }
    }

    /// A 2048-bit RSA key for `alg` (`RS256` or `PS256`); its JWK names that `alg`.
    pub fn rsa(alg: &'static str) -> Self {
        let (signer, public): (Box<dyn JwsSigner>, josekit::jwk::Jwk) = match alg {
            "RS256" => {
                let pair = josekit::jws::RS256.generate_key_pair(2048).unwrap();
                let signer = josekit::jws::RS256.signer_from_jwk(&pair.to_jwk_key_pair());
                (Box::new(signer.unwrap()), pair.to_jwk_public_key())
            }
            "PS256" => {
                let pair = josekit::jws::PS256.generate_key_pair(2048).unwrap();
                let signer = josekit::jws::PS256.signer_from_jwk(&pair.to_jwk_key_pair());
                (Box::new(signer.unwrap()), pair.to_jwk_public_key())
            }
            other => panic!("no RSA signer for {other}"),
        };
        Self {
            kind: Kind::Jose {
                alg,
                signer,
                public: Value::Object(public.as_ref().clone()),
            },
            kid: None,
        }
    }

    pub fn ed25519() -> Self {
        let pair = josekit::jws::EdDSA
            .generate_key_pair(josekit::jwk::alg::ed::EdCurve::Ed25519)
            .unwrap();
        Self {
            kind: Kind::Jose {
                alg: "EdDSA",
                signer: Box::new(
                    josekit::jws::EdDSA
                        .signer_from_jwk(&pair.to_jwk_key_pair())
                        .unwrap(),
                ),
                public: Value::Object(pair.to_jwk_public_key().as_ref().clone()),
            },
            kid: None,
        }
    }

    pub fn with_kid(mut self, kid: &str) -> Self {
        self.kid = Some(kid.to_owned());
        self
    }

    pub fn alg(&self) -> &'static str {
        match &self.kind {
            Kind::Ec(key) => key.alg(),
            Kind::Jose { alg, .. } => alg,
        }
    }

    /// The public JWK to register (with `kid` when set).
    pub fn jwk(&self) -> Value {
        let mut jwk = match &self.kind {
            Kind::Ec(key) => key.jwk(),
            Kind::Jose { public, .. } => public.clone(),
        };
        if let Some(kid) = &self.kid {
            jwk["kid"] = json!(kid);
        }
        jwk
    }

    pub fn jwks(&self) -> Value {
        json!({"keys": [self.jwk()]})
    }

    /// Signs header and claims JSON as a compact JWS.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        match &self.kind {
            Kind::Ec(key) => key.sign_parts(header, claims),
            Kind::Jose { signer, .. } => {
                let input = format!(
                    "{}.{}",
                    B64.encode(header.to_string()),
                    B64.encode(claims.to_string())
                );
                let signature = signer.sign(input.as_bytes()).unwrap();
                format!("{input}.{}", B64.encode(signature))
            }
        }
    }

    /// The header keygate expects: `alg`, and `kid` when registered with one.
    pub fn header(&self) -> Value {
        let mut header = json!({"alg": self.alg(), "typ": "JWT"});
        if let Some(kid) = &self.kid {
            header["kid"] = json!(kid);
        }
        header
    }
}

/// Valid claims for `client_id` at the bootstrap organization: aud = the issuer, one
/// minute of life, a fresh `jti`.
pub fn claims(app: &TestApp, client_id: &str) -> Value {
    let now = app.now().timestamp();
    json!({
        "iss": client_id, "sub": client_id, "aud": issuer(app),
        "iat": now, "exp": now + 60, "jti": keygate::ids::random_base62(22),
    })
}

pub fn issuer(app: &TestApp) -> String {
    format!("{}/v1/default", app.state.public_url)
}

/// A key-pair client of the bootstrap organization.
pub struct Client {
    pub id: String,
    pub signer: Signer,
}

impl Client {
    /// A valid assertion.
    pub fn assertion(&self, app: &TestApp) -> String {
        self.signer
            .sign(&self.signer.header(), &claims(app, &self.id))
    }
}

/// The owner's access token for admin calls.
pub async fn owner_token(app: &TestApp) -> String {
    app.session(&app.owner).await.token
}

/// `POST /v1/default/api_keys` with `public_jwks` (for the owner).
pub async fn register(app: &TestApp, token: &str, jwks: Value) -> Reply {
    app.post_as(
        token,
        "/v1/default/api_keys",
        &json!({"name": "agent", "public_jwks": jwks}),
    )
    .await
}

/// Registers `signer` as a new key-pair client.
pub async fn client(app: &TestApp, signer: Signer) -> Client {
    let token = owner_token(app).await;
    let reply = register(app, &token, signer.jwks()).await;
    reply.expect(StatusCode::CREATED);
    Client {
        id: reply.str("api_key_id"),
        signer,
    }
}

/// `POST /v1/default/oauth/{endpoint}` with this form (an empty body reads as `null`).
pub async fn post(app: &TestApp, endpoint: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let reply = Reply::from(
        app.client
            .post(app.url(&format!("/v1/default/oauth/{endpoint}")))
            .form(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    (reply.status, reply.body)
}

/// `client_credentials` authenticated by `assertion`.
pub async fn token(app: &TestApp, assertion: &str) -> (StatusCode, Value) {
    post(
        app,
        "token",
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ],
    )
    .await
}

/// Asserts a 401 `invalid_client` whose description contains `says`.
#[track_caller]
pub fn refused(result: &(StatusCode, Value), says: &str, case: &str) {
    let (status, body) = result;
    assert_eq!(*status, StatusCode::UNAUTHORIZED, "{case}: {body}");
    assert_eq!(body["error"], "invalid_client", "{case}: {body}");
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(
        description.contains(says),
        "{case}: expected a description with {says:?}, got {description:?}"
    );
}
