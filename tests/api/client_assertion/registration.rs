//! Registering a key-pair client: which `public_jwks` are taken (every accepted key type
//! authenticates; several keys are picked by `kid`) and which are refused with 400
//! `invalid_request`; a key-pair client has no secret to rotate.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Client, Signer, claims, client, owner_token, refused, register, token};
use crate::dpop_key::DpopKey;
use crate::helpers::{error_code, spawn_app};

#[tokio::test]
async fn every_accepted_key_type_authenticates() {
    let app = spawn_app().await;
    let mut signers: Vec<Signer> = DpopKey::all().into_iter().map(Signer::ec).collect();
    signers.push(Signer::ed25519());
    signers.push(Signer::rsa("RS256"));
    signers.push(Signer::rsa("PS256"));
    for signer in signers {
        let alg = signer.alg();
        let me = client(&app, signer).await;
        let (status, body) = token(&app, &me.assertion(&app)).await;
        assert_eq!(status, StatusCode::OK, "{alg}: {body}");
    }
}

#[tokio::test]
async fn several_keys_are_picked_by_kid() {
    let app = spawn_app().await;
    let signers = [
        Signer::es256().with_kid("ec"),
        Signer::rsa("RS256").with_kid("rsa"),
        Signer::ed25519().with_kid("ed"),
    ];
    let jwks = json!({"keys": signers.iter().map(Signer::jwk).collect::<Vec<_>>()});
    let owner = owner_token(&app).await;
    let reply = register(&app, &owner, jwks).await;
    reply.expect(StatusCode::CREATED);
    let id = reply.str("api_key_id");
    let mut clients: Vec<Client> = signers
        .into_iter()
        .map(|signer| Client {
            id: id.clone(),
            signer,
        })
        .collect();
    for me in &clients {
        let (status, body) = token(&app, &me.assertion(&app)).await;
        assert_eq!(status, StatusCode::OK, "{:?}: {body}", me.signer.kid);
    }
    // No kid: with several keys, ambiguous.
    let rsa = &mut clients[1];
    rsa.signer.kid = None;
    refused(
        &token(&app, &rsa.assertion(&app)).await,
        "several keys",
        "no kid",
    );
    // A kid naming none of them.
    rsa.signer.kid = Some("nope".into());
    refused(
        &token(&app, &rsa.assertion(&app)).await,
        "kid names none",
        "unknown kid",
    );
    // The RSA key's kid on an assertion the EC key signed.
    let ec = &clients[0];
    let mut header = ec.signer.header();
    header["kid"] = json!("rsa");
    let assertion = ec.signer.sign(&header, &claims(&app, &id));
    refused(
        &token(&app, &assertion).await,
        "alg ES256 does not match the selected key (RS256",
        "kid of another key type",
    );
    // Another key of the same type, under the EC key's kid.
    let assertion = Signer::es256().with_kid("ec").assertion_for(&app, &id);
    refused(
        &token(&app, &assertion).await,
        "signature",
        "same kid, another key",
    );
}

impl Signer {
    fn assertion_for(&self, app: &crate::helpers::TestApp, id: &str) -> String {
        self.sign(&self.header(), &claims(app, id))
    }
}

fn ec_jwk() -> Value {
    DpopKey::es256().jwk()
}

fn with(mut jwk: Value, name: &str, value: Value) -> Value {
    jwk[name] = value;
    jwk
}

#[tokio::test]
async fn public_jwks_must_hold_public_keys_of_accepted_types() {
    let app = spawn_app().await;
    let owner = owner_token(&app).await;
    // A real 1024-bit modulus shape: 128 bytes, top bit set, odd.
    let mut small_n = vec![0xC3u8; 128];
    small_n[127] = 0x01;
    let small_rsa = json!({"kty": "RSA", "e": "AQAB", "n": B64.encode(&small_n)});
    let rsa = Signer::rsa("RS256").jwk();
    let ed = Signer::ed25519().jwk();
    let many: Vec<Value> = (0..11)
        .map(|i| with(ec_jwk(), "kid", json!(format!("k{i}"))))
        .collect();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "EC private key",
            json!({"keys": [with(ec_jwk(), "d", json!("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"))]}),
            "private member `d`",
        ),
        (
            "RSA private key",
            json!({"keys": [with(with(rsa.clone(), "p", json!("AQAB")), "q", json!("AQAB"))]}),
            "private member `p`",
        ),
        (
            "RSA with dp",
            json!({"keys": [with(rsa.clone(), "dp", json!("AQAB"))]}),
            "private member `dp`",
        ),
        (
            "Ed25519 private key",
            json!({"keys": [with(ed.clone(), "d", json!(B64.encode([7u8; 32])))]}),
            "private member `d`",
        ),
        (
            "a symmetric key",
            json!({"keys": [{"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"}]}),
            "private member `k`",
        ),
        ("RSA of 1024 bits", json!({"keys": [small_rsa]}), "2048"),
        (
            "EC on secp256k1",
            json!({"keys": [with(ec_jwk(), "crv", json!("secp256k1"))]}),
            "P-256, P-384 or P-521",
        ),
        (
            "a point off the curve",
            json!({"keys": [with(ec_jwk(), "y", json!(B64.encode([1u8; 32])))]}),
            "not on the curve",
        ),
        (
            "short coordinates",
            json!({"keys": [with(ec_jwk(), "x", json!(B64.encode([1u8; 31])))]}),
            "32 bytes",
        ),
        (
            "X25519",
            json!({"keys": [with(ed.clone(), "crv", json!("X25519"))]}),
            "Ed25519",
        ),
        (
            "unknown kty",
            json!({"keys": [{"kty": "PQ", "x": "AA"}]}),
            "`kty`",
        ),
        ("no kty", json!({"keys": [{"x": "AA"}]}), "`kty`"),
        (
            "two keys without kid",
            json!({"keys": [ec_jwk(), ec_jwk()]}),
            "needs a `kid`",
        ),
        (
            "the same kid twice",
            json!({"keys": [with(ec_jwk(), "kid", json!("a")), with(ec_jwk(), "kid", json!("a"))]}),
            "not unique",
        ),
        ("11 keys", json!({"keys": many}), "1 to 10"),
        ("no keys", json!({"keys": []}), "1 to 10"),
        ("not a set", ec_jwk(), "unknown member"),
        ("keys not a list", json!({"keys": {}}), "`keys` array"),
        ("a string", json!("{\"keys\": []}"), "JWK Set"),
        (
            "use enc",
            json!({"keys": [with(ec_jwk(), "use", json!("enc"))]}),
            "`use`",
        ),
        (
            "alg for another type",
            json!({"keys": [with(ec_jwk(), "alg", json!("RS256"))]}),
            "`alg` must be one of ES256",
        ),
        (
            "alg HS256",
            json!({"keys": [with(rsa.clone(), "alg", json!("HS256"))]}),
            "`alg` must be one of",
        ),
        (
            "key_ops without verify",
            json!({"keys": [with(ec_jwk(), "key_ops", json!(["sign"]))]}),
            "`key_ops`",
        ),
        (
            "padded base64",
            json!({"keys": [with(ec_jwk(), "x", json!(format!("{}=", ec_jwk()["x"].as_str().unwrap())))]}),
            "base64url",
        ),
    ];
    for (name, jwks, says) in cases {
        let reply = register(&app, &owner, jwks).await;
        let body = reply.expect(StatusCode::BAD_REQUEST);
        assert_eq!(error_code(body), "invalid_request", "{name}");
        assert!(
            reply.message().contains(says),
            "{name}: {}",
            reply.message()
        );
    }
    // Nothing was created by the refusals.
    let keys = app.list_page(&owner, "/v1/default/api_keys").await;
    assert_eq!(keys.len(), 1, "only the bootstrap key: {keys:?}");
}

#[tokio::test]
async fn a_key_pair_client_has_no_secret_to_rotate() {
    let app = spawn_app().await;
    let owner = owner_token(&app).await;
    let me = client(&app, Signer::es256()).await;
    let reply = app
        .post_as(
            &owner,
            &format!("/v1/default/api_keys/{}/rotate", me.id),
            &json!({}),
        )
        .await;
    reply.expect(StatusCode::CONFLICT);
    assert!(
        reply.message().contains("no secret to rotate"),
        "{}",
        reply.message()
    );
    assert_eq!(
        token(&app, &me.assertion(&app)).await.0,
        StatusCode::OK,
        "untouched"
    );
}
