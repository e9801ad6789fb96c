//! Forged access tokens, each wrong in one way only: signed with keygate's own active
//! signing key (read from the running application's key set) so that the signature check
//! alone cannot be what rejects them. Each is 401 `invalid_token` (`expired_token` past its
//! expiry) with `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 §3.1, RFC 9068
//! §4), at `/user/me` and at an admin route, and introspects as `{"active": false}`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey};
use keygate::types::Role;
use keygate::types::SigningAlg;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{expect_unauthorized, inactive, introspect};
use crate::helpers::{ALL_ALGS, TestApp, claims_of, spawn_app_with};

/// Signs `header.claims` with keygate's active signing key, whatever the header says.
async fn sign_with_keygates_key(app: &TestApp, header: &Value, claims: &Value) -> String {
    let keys = app.state.signing_keys.current().await;
    let active = keys.active().expect("an active signing key");
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let signature = B64.encode(active.sign(input.as_bytes()).unwrap());
    format!("{input}.{signature}")
}

/// HS256 over `header.claims` with `secret`.
fn sign_hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let signature = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(secret),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{input}.{signature}")
}

/// Signs with a P-256 key keygate never published (josekit, an independent implementation).
fn sign_with_a_stranger(header: &Value, claims: &Value) -> String {
    use josekit::jws::{ES256, JwsHeader};
    use josekit::jwt::{self, JwtPayload};
    let pair = ES256.generate_key_pair().unwrap();
    let signer = ES256.signer_from_jwk(&pair.to_jwk_private_key()).unwrap();
    let header = JwsHeader::from_map(header.as_object().unwrap().clone()).unwrap();
    let payload = JwtPayload::from_map(claims.as_object().unwrap().clone()).unwrap();
    jwt::encode_with_signer(&payload, &header, &signer).unwrap()
}

/// An algorithm name other than the key's, for the header.
fn other_algs(alg: SigningAlg) -> &'static [&'static str] {
    match alg {
        SigningAlg::ES256 => &["ES384", "EdDSA", "RS256"],
        SigningAlg::EdDSA => &["ES256", "ES384"],
    }
}

/// Presents `token` at `/user/me` and `GET /api_keys`: 401 with `code` and a Bearer
/// challenge; introspection calls it inactive. Returns what went wrong, if anything.
async fn refused(app: &TestApp, name: &str, token: &str, code: &str) -> Option<String> {
    for path in ["/v1/default/user/me", "/v1/default/api_keys"] {
        let reply = app
            .send(app.client.get(app.url(path)).bearer_auth(token))
            .await;
        if reply.status != StatusCode::UNAUTHORIZED || reply.body["error"]["code"] != code {
            return Some(format!("{name} at {path}: {} {}", reply.status, reply.body));
        }
        expect_unauthorized(&reply, code, "Bearer");
    }
    let info = introspect(app, "default", &app.owner, token).await;
    (info != inactive()).then(|| format!("{name} introspects as {info}"))
}

#[tokio::test]
async fn forged_access_tokens_are_refused_for_each_check_of_their_own() {
    for alg in ALL_ALGS {
        let app = spawn_app_with(|s| s.tokens.alg = alg).await;
        app.create_org("acme").await;
        let member = app.create_user("default", Role::Member).await;
        let genuine = app.signin(&member).await["id_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let claims = claims_of(&genuine);
        let header: Value =
            serde_json::from_slice(&B64.decode(genuine.split('.').next().unwrap()).unwrap())
                .unwrap();
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["alg"], alg.as_str());
        let kid = header["kid"].as_str().unwrap().to_owned();
        let now = app.now().timestamp();
        let leeway = app.state.settings.tokens.leeway.as_secs() as i64;

        // The forger works: the genuine header and claims, re-signed, are accepted; so are
        // `application/at+jwt` (RFC 9068 §4) and an `iat` ahead within the leeway.
        let with = |patch: Value| {
            let mut c = claims.clone();
            for (k, v) in patch.as_object().unwrap() {
                c[k] = v.clone();
            }
            c
        };
        let header_with = |patch: Value| {
            let mut h = header.clone();
            for (k, v) in patch.as_object().unwrap() {
                if v.is_null() {
                    h.as_object_mut().unwrap().remove(k);
                } else {
                    h[k] = v.clone();
                }
            }
            h
        };
        for (name, h, c) in [
            ("re-signed", header.clone(), claims.clone()),
            (
                "application/at+jwt",
                header_with(json!({"typ": "application/at+jwt"})),
                claims.clone(),
            ),
            (
                "iat ahead within the leeway",
                header.clone(),
                with(json!({"iat": now + leeway - 1})),
            ),
        ] {
            let token = sign_with_keygates_key(&app, &h, &c).await;
            let reply = app
                .me_with("default", &[("authorization", &format!("Bearer {token}"))])
                .await;
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "{alg:?} {name}: {}",
                reply.body
            );
        }

        let address = &app.address;
        let mut cases: Vec<(String, String, &'static str)> = Vec::new();
        let keygate_signed =
            |name: &str, h: Value, c: Value, code: &'static str| (name.to_owned(), h, c, code);
        let mut forged: Vec<(String, Value, Value, &'static str)> = vec![
            keygate_signed(
                "typ JWT",
                header_with(json!({"typ": "JWT"})),
                claims.clone(),
                "invalid_token",
            ),
            keygate_signed(
                "no typ",
                header_with(json!({"typ": null})),
                claims.clone(),
                "invalid_token",
            ),
            keygate_signed(
                "typ dpop+jwt",
                header_with(json!({"typ": "dpop+jwt"})),
                claims.clone(),
                "invalid_token",
            ),
            keygate_signed(
                "no kid",
                header_with(json!({"kid": null})),
                claims.clone(),
                "invalid_token",
            ),
            keygate_signed(
                "unknown kid",
                header_with(json!({"kid": "kid-nobody-published"})),
                claims.clone(),
                "invalid_token",
            ),
            keygate_signed(
                "iat in the future beyond the leeway",
                header.clone(),
                with(json!({"iat": now + leeway + 60, "exp": now + leeway + 960})),
                "invalid_token",
            ),
            keygate_signed(
                "iss of another organization",
                header.clone(),
                with(json!({"iss": format!("{address}/v1/acme")})),
                "invalid_token",
            ),
            keygate_signed(
                "iss of another server",
                header.clone(),
                with(json!({"iss": "https://evil.example/v1/default"})),
                "invalid_token",
            ),
            keygate_signed(
                "aud of another service",
                header.clone(),
                with(json!({"aud": "https://api.example"})),
                "invalid_token",
            ),
            keygate_signed(
                "org claim of another organization",
                header.clone(),
                with(json!({"org": "acme"})),
                "invalid_token",
            ),
            keygate_signed(
                "expired beyond the leeway",
                header.clone(),
                with(json!({"iat": now - 1000, "exp": now - leeway - 1})),
                "expired_token",
            ),
        ];
        for other in other_algs(alg) {
            forged.push(keygate_signed(
                &format!("header alg {other} with the {} key's kid", alg.as_str()),
                header_with(json!({"alg": other})),
                claims.clone(),
                "invalid_token",
            ));
        }
        for (name, h, c, code) in forged {
            let token = sign_with_keygates_key(&app, &h, &c).await;
            cases.push((name, token, code));
        }

        // `alg: none`, unsigned.
        let none = header_with(json!({"alg": "none"}));
        cases.push((
            "alg none, unsigned".into(),
            format!(
                "{}.{}.",
                B64.encode(none.to_string()),
                B64.encode(claims.to_string())
            ),
            "invalid_token",
        ));
        // HS256 with the public key as the HMAC secret (key confusion).
        let jwks = app.jwks().await;
        let public = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .unwrap()
            .clone();
        let hs256 = header_with(json!({"alg": "HS256"}));
        for secret in [public.to_string(), public["x"].as_str().unwrap().to_owned()] {
            cases.push((
                "HS256 keyed with the public key".into(),
                sign_hs256(&hs256, &claims, secret.as_bytes()),
                "invalid_token",
            ));
        }
        // A key keygate never published, under keygate's kid and under its own.
        let es256 = header_with(json!({"alg": "ES256"}));
        cases.push((
            "a stranger's key under keygate's kid".into(),
            sign_with_a_stranger(&es256, &claims),
            "invalid_token",
        ));
        cases.push((
            "a stranger's key under its own kid".into(),
            sign_with_a_stranger(
                &header_with(json!({"alg": "ES256", "kid": "stranger"})),
                &claims,
            ),
            "invalid_token",
        ));

        // Every case runs before the verdict, so a failure lists each check that is missing.
        let mut failures = Vec::new();
        for (name, token, code) in &cases {
            failures.extend(refused(&app, &format!("{alg:?} {name}"), token, code).await);
        }
        assert!(failures.is_empty(), "accepted:\n{}", failures.join("\n"));

        // The genuine token is still accepted: nothing above was refused by accident.
        let (status, _) = crate::helpers::json(app.me("default", &genuine).await).await;
        assert_eq!(status, StatusCode::OK);
    }
}
