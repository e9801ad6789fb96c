//! The issued JWT verifies with the published JWKS by an independent JOSE implementation
//! (josekit), with every claim keygate documents (RFC 9068).

use josekit::jwk::JwkSet;
use josekit::jws::{ES256, EdDSA, JwsVerifier};
use keygate::types::Role;
use keygate::types::SigningAlg;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{ALL_ALGS, TestApp, json, spawn_app_with};

/// Verifies `token` with josekit against the JWKS the server publishes at `path`.
async fn verify_with_josekit(
    app: &TestApp,
    path: &str,
    token: &str,
) -> (Value, josekit::jws::JwsHeader) {
    let (status, jwks) = json(app.client.get(app.url(path)).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let set = JwkSet::from_bytes(jwks.to_string()).expect("a JWK set");
    let header = josekit::jwt::decode_header(token).unwrap();
    let kid = header
        .claim("kid")
        .and_then(Value::as_str)
        .expect("kid header")
        .to_owned();
    let jwk = *set.get(&kid).first().expect("the kid is published");
    let verifier: Box<dyn JwsVerifier> = match jwk.algorithm() {
        Some("ES256") => Box::new(ES256.verifier_from_jwk(jwk).unwrap()),
        Some("EdDSA") => Box::new(EdDSA.verifier_from_jwk(jwk).unwrap()),
        other => panic!("unexpected alg {other:?}"),
    };
    let (payload, header) = josekit::jwt::decode_with_verifier(token, verifier.as_ref())
        .expect("josekit verifies the token");
    (Value::Object(payload.claims_set().clone()), header)
}

#[tokio::test]
async fn tokens_verify_with_josekit_and_carry_every_claim() {
    for alg in ALL_ALGS {
        let app = spawn_app_with(|s| s.tokens.alg = alg).await;
        let member = app.create_user("default", Role::Member).await;
        let issued_at = app.now().timestamp();
        let body = app.signin(&member).await;
        let token = body["id_token"].as_str().unwrap();

        for path in [
            "/.well-known/jwks.json",
            "/v1/default/.well-known/jwks.json",
        ] {
            let (claims, header) = verify_with_josekit(&app, path, token).await;
            assert_eq!(header.token_type(), Some("at+jwt"));
            assert_eq!(header.algorithm(), Some(alg.as_str()));
            let issuer = format!("{}/v1/default", app.address);
            assert_eq!(claims["iss"], issuer.as_str());
            assert_eq!(claims["aud"], issuer.as_str());
            assert_eq!(claims["sub"], member.user_id.as_str());
            assert_eq!(claims["iat"], issued_at);
            assert_eq!(claims["exp"], issued_at + 900);
            assert!(claims["jti"].as_str().is_some_and(|j| j.len() > 16));
            assert_eq!(claims["client_id"], member.api_key_id.as_str());
            assert_eq!(claims["scope"], body["scope"]);
            assert_eq!(claims["sid"], body["session_id"]);
            assert_eq!(claims["org"], "default");
            assert!(claims.get("cnf").is_none(), "a Bearer token has no cnf");
            assert!(claims.get("act").is_none());
        }

        // Every token has its own jti.
        let again = app.signin(&member).await;
        let a = crate::helpers::claims_of(token);
        let b = crate::helpers::claims_of(again["id_token"].as_str().unwrap());
        assert_ne!(a["jti"], b["jti"]);
    }
}

#[tokio::test]
async fn the_configured_audience_and_public_url_shape_the_token() {
    let app = spawn_app_with(|s| {
        s.tokens.audience = Some("https://api.example.com".into());
        s.server.public_url = Some("https://auth.example.com/".into());
        s.tokens.access_ttl = std::time::Duration::from_secs(300);
    })
    .await;
    let body = app.signin(&app.owner).await;
    assert_eq!(body["expires_in"], 300);
    let claims = crate::helpers::claims_of(body["id_token"].as_str().unwrap());
    assert_eq!(claims["iss"], "https://auth.example.com/v1/default");
    assert_eq!(claims["aud"], "https://api.example.com");
    let (status, _) = json(app.me("default", body["id_token"].as_str().unwrap()).await).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_org_jwks_of_an_unknown_org_is_404() {
    let app = spawn_app_with(|s| s.tokens.alg = SigningAlg::ES256).await;
    let (status, body) = json(
        app.client
            .get(app.url("/v1/nope/.well-known/jwks.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(crate::helpers::error_code(&body), "unknown_organization");
}
