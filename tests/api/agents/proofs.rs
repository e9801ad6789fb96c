//! Identity proofs: `GET /v1/{org}/user/me/proof` signs an EdDSA JWS that an independent
//! JOSE library (josekit) verifies against `/v1/{org}/.well-known/identity-jwks.json`, with
//! the documented claims, `aud` when asked and `cnf.jkt` for DPoP callers; the identity key
//! is not in the access-token JWKS, a proof is never an access token, and a rotation keeps
//! the old key published until its proofs have expired.

use std::time::Duration;

use base64::Engine;
use josekit::jwk::JwkSet;
use josekit::jws::EdDSA;
use keygate::types::Role;
use reqwest::StatusCode;
use serde_json::Value;

use super::{me_with, token_of, turn_on};
use crate::dpop_flow::bound_token;
use crate::dpop_key::DpopKey;
use crate::helpers::{TestApp, error_code, json, spawn_app, spawn_app_with};

const PROOF: &str = "/v1/default/user/me/proof";
const IDENTITY_JWKS: &str = "/v1/default/.well-known/identity-jwks.json";

async fn proof_with(app: &TestApp, token: &str, query: &str) -> (StatusCode, Value) {
    json(
        app.client
            .get(app.url(&format!("{PROOF}{query}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn identity_jwks(app: &TestApp) -> Value {
    identity_jwks_with(&app.client, app).await
}

async fn identity_jwks_with(client: &reqwest::Client, app: &TestApp) -> Value {
    let res = client.get(app.url(IDENTITY_JWKS)).send().await.unwrap();
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/jwk-set+json"
    );
    assert!(
        res.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public, max-age=")
    );
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn header_of(jws: &str) -> Value {
    let part = jws.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

/// Verifies `proof` with josekit against the identity JWKS; its claims.
async fn verify_with_josekit(app: &TestApp, proof: &str) -> Value {
    let set = JwkSet::from_bytes(identity_jwks(app).await.to_string()).unwrap();
    let header = josekit::jwt::decode_header(proof).unwrap();
    let kid = header
        .claim("kid")
        .and_then(Value::as_str)
        .unwrap()
        .to_owned();
    let jwk = *set.get(&kid).first().expect("the proof's kid is published");
    assert_eq!(jwk.key_type(), "OKP");
    assert_eq!(jwk.curve(), Some("Ed25519"));
    let verifier = EdDSA.verifier_from_jwk(jwk).unwrap();
    let (payload, header) =
        josekit::jwt::decode_with_verifier(proof, &verifier).expect("josekit verifies the proof");
    assert_eq!(header.algorithm(), Some("EdDSA"));
    assert_eq!(header.token_type(), Some("identity-proof+jwt"));
    Value::Object(payload.claims_set().clone())
}

#[tokio::test]
async fn a_proof_verifies_with_josekit_against_the_identity_jwks_with_every_claim() {
    let app = spawn_app().await;
    let admin = app.create_user("default", Role::Admin).await;
    let token = token_of(&app, &admin).await;
    let now = app.now().timestamp();
    let (status, body) = proof_with(&app, &token, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let proof = body["proof"].as_str().unwrap();
    let claims = verify_with_josekit(&app, proof).await;
    assert_eq!(
        claims["iss"],
        format!("{}/v1/default", app.address).as_str()
    );
    assert_eq!(claims["sub"], admin.user_id.as_str());
    assert_eq!(claims["org"], "default");
    assert_eq!(claims["role"], "admin");
    assert_eq!(claims["iat"], now);
    assert_eq!(claims["exp"], now + 3_600);
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert!(claims.get("aud").is_none(), "{claims}");
    assert!(claims.get("cnf").is_none(), "{claims}");
    let expires_at = chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert_eq!(expires_at, now + 3_600);
    // Two proofs are two proofs.
    let (_, again) = proof_with(&app, &token, "").await;
    assert_ne!(
        verify_with_josekit(&app, again["proof"].as_str().unwrap()).await["jti"],
        claims["jti"]
    );
    // keygate's own verifier (what `keygate proof verify` runs) agrees.
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(identity_jwks(&app).await).unwrap();
    let verified = keygate::identity::proof::verify(
        &jwks,
        proof,
        &format!("{}/v1/default", app.address),
        None,
        now,
        0,
    )
    .unwrap();
    assert_eq!(verified.sub, admin.user_id);
    assert!(
        keygate::identity::proof::verify(&jwks, proof, "https://elsewhere", None, now, 0).is_err()
    );
    assert!(
        keygate::identity::proof::verify(&jwks, proof, &verified.iss, None, now + 3_600, 0)
            .is_err(),
        "expired"
    );
}

#[tokio::test]
async fn the_lifetime_is_configurable_and_aud_is_carried_when_asked() {
    let app = spawn_app_with(|s| s.identity_proofs.ttl = Duration::from_secs(600)).await;
    let token = token_of(&app, &app.owner).await;
    let now = app.now().timestamp();
    let (status, body) = proof_with(&app, &token, "?aud=https%3A%2F%2Fshop.example%2Fagents").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = verify_with_josekit(&app, body["proof"].as_str().unwrap()).await;
    assert_eq!(claims["aud"], "https://shop.example/agents");
    assert_eq!(claims["exp"], now + 600);
    for bad in ["?aud=", "?aud=a%0Ab", "?audience=x"] {
        let (status, body) = proof_with(&app, &token, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(error_code(&body), "invalid_request");
    }
    let long = format!("?aud={}", "a".repeat(513));
    assert_eq!(
        proof_with(&app, &token, &long).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn a_dpop_callers_proof_carries_its_key_thumbprint_and_direct_keys_get_proofs_too() {
    let app = spawn_app().await;
    let key = DpopKey::es256();
    let token = bound_token(&app, &key).await;
    let res = app
        .client
        .get(app.url(PROOF))
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", key.proof(&app, "GET", PROOF, Some(&token)))
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = verify_with_josekit(&app, body["proof"].as_str().unwrap()).await;
    assert_eq!(claims["cnf"]["jkt"], key.thumbprint().as_str());

    turn_on(&app, &app.owner, &["direct_api_keys"]).await;
    let res = app
        .client
        .get(app.url(PROOF))
        .header("x-api-key", &app.owner.api_key)
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = verify_with_josekit(&app, body["proof"].as_str().unwrap()).await;
    assert_eq!(claims["sub"], app.owner.user_id.as_str());
    assert!(claims.get("cnf").is_none());
    // No credential, no proof.
    let (status, _) = json(app.client.get(app.url(PROOF)).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_proof_is_never_an_access_token_and_its_key_is_not_in_the_access_token_jwks() {
    let app = spawn_app().await;
    let token = token_of(&app, &app.owner).await;
    let (_, body) = proof_with(&app, &token, "").await;
    let proof = body["proof"].as_str().unwrap().to_owned();
    assert_eq!(header_of(&proof)["typ"], "identity-proof+jwt");

    let identity = kids(&identity_jwks(&app).await);
    assert_eq!(identity.len(), 1);
    for path in [
        "/.well-known/jwks.json",
        "/v1/default/.well-known/jwks.json",
    ] {
        let (_, jwks) = json(app.client.get(app.url(path)).send().await.unwrap()).await;
        let access = kids(&jwks);
        assert!(
            identity.iter().all(|k| !access.contains(k)),
            "{path}: {access:?} holds an identity key"
        );
    }

    // Presented as a token every way a token may come.
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("default_{}:{proof}", app.owner.user_id));
    let dpop_key = DpopKey::es256();
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("Bearer", vec![("authorization", format!("Bearer {proof}"))]),
        (
            "DPoP",
            vec![
                ("authorization", format!("DPoP {proof}")),
                (
                    "dpop",
                    dpop_key.proof(&app, "GET", "/v1/default/user/me", Some(&proof)),
                ),
            ],
        ),
        ("Basic", vec![("authorization", format!("Basic {basic}"))]),
        (
            "Bearer + X-ORG-ID",
            vec![
                ("authorization", format!("Bearer {proof}")),
                ("x-org-id", "default".into()),
            ],
        ),
    ];
    for (name, headers) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (status, body) = json(me_with(&app, "default", &headers).await).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        assert_eq!(error_code(&body), "invalid_token", "{name}: {body}");
    }
    // Nor at introspection: not a token keygate issued.
    let res = app
        .client
        .post(app.url("/v1/default/oauth/introspect"))
        .basic_auth(&app.owner.api_key_id, Some(&app.owner.api_key))
        .form(&[("token", proof.as_str())])
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["active"], false, "{body}");
}

#[tokio::test]
async fn rotation_keeps_the_old_key_published_until_its_proofs_expire() {
    let app = spawn_app().await;
    let org = keygate::admin::find_org(&app.state.storage, "default")
        .await
        .unwrap();
    let token = token_of(&app, &app.owner).await;
    let (_, first) = proof_with(&app, &token, "").await;
    let first = first["proof"].as_str().unwrap().to_owned();
    let old_kid = header_of(&first)["kid"].as_str().unwrap().to_owned();

    let lifetime = Duration::from_secs(3_600 + 30);
    let rotation = keygate::identity::rotate(
        &app.state.storage,
        &app.state.kek,
        &org.id,
        app.now(),
        lifetime,
    )
    .await
    .unwrap();
    app.state.identity_keys.changed(&org.id);
    let new_kid = rotation.key.kid.clone();
    // Published at once; the old key still signs until the new one activates.
    assert_eq!(
        kids(&identity_jwks(&app).await),
        [new_kid.clone(), old_kid.clone()]
    );
    let (_, during) = proof_with(&app, &token, "").await;
    assert_eq!(
        header_of(during["proof"].as_str().unwrap())["kid"],
        old_kid.as_str()
    );

    app.clock.advance(Duration::from_secs(71));
    let token = token_of(&app, &app.owner).await;
    let (_, after) = proof_with(&app, &token, "").await;
    let after = after["proof"].as_str().unwrap().to_owned();
    assert_eq!(header_of(&after)["kid"], new_kid.as_str());
    // The old proofs still verify: their key is published until they have expired.
    verify_with_josekit(&app, &first).await;
    verify_with_josekit(&app, &after).await;

    let until = (rotation.previous_retire_at - app.now()).to_std().unwrap();
    app.clock.advance(until - Duration::from_secs(1));
    assert_eq!(kids(&identity_jwks(&app).await).len(), 2);
    app.clock.advance(Duration::from_secs(2));
    assert_eq!(kids(&identity_jwks(&app).await), [new_kid]);
    // By then every proof of the old key has expired.
    let first_exp = crate::helpers::claims_of(&first)["exp"].as_i64().unwrap();
    assert!(first_exp < app.now().timestamp());
}

#[tokio::test]
async fn the_cli_rotates_identity_keys_and_verifies_proofs() {
    let app = spawn_app().await;
    let token = token_of(&app, &app.owner).await;
    let (_, body) = proof_with(&app, &token, "?aud=shop").await;
    let proof = body["proof"].as_str().unwrap();
    let issuer = format!("{}/v1/default", app.address);

    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
            .args(args)
            .env_remove("KEYGATE_CONFIG")
            .output()
            .unwrap()
    };
    let out = run(&["proof", "verify", "--url", &issuer, "--aud", "shop", proof]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("valid identity proof"), "{stdout}");
    assert!(stdout.contains(&app.owner.user_id), "{stdout}");
    let jwks_url = format!("{issuer}/.well-known/identity-jwks.json");
    let out = run(&[
        "proof", "verify", "--url", &jwks_url, "--aud", "shop", "--json", proof,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let claims: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["role"], "owner");

    // A tampered proof, a wrong audience, another issuer, an access token: all refused.
    let mut tampered = proof.to_owned();
    tampered.replace_range(tampered.len() - 4.., "AAAA");
    let other = format!("{}/v1/other", app.address);
    for (name, args) in [
        (
            "tampered",
            vec!["proof", "verify", "--url", &issuer, tampered.as_str()],
        ),
        (
            "audience",
            vec!["proof", "verify", "--url", &issuer, "--aud", "bank", proof],
        ),
        ("issuer", vec!["proof", "verify", "--url", &other, proof]),
        (
            "access token",
            vec!["proof", "verify", "--url", &issuer, &token],
        ),
    ] {
        let out = run(&args);
        assert!(!out.status.success(), "{name} verified");
    }

    let rotated = crate::cli::keygate_json(
        &app,
        &["identity-key", "rotate", "--org", "default", "--json"],
    );
    assert_eq!(rotated["state"], "published", "{rotated}");
    let listed = crate::cli::keygate_json(
        &app,
        &["identity-key", "list", "--org", "default", "--json"],
    );
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    // Another node (the CLI) rotated: this node serves the new key within a second.
    app.clock.advance(Duration::from_secs(2));
    // A new connection: the pooled one may have idled out while the CLI ran.
    let published = kids(&identity_jwks_with(&reqwest::Client::new(), &app).await);
    assert!(
        published.contains(&rotated["kid"].as_str().unwrap().to_owned()),
        "{published:?}"
    );
}
