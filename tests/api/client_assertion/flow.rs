//! A key-pair client end to end: no secret at creation, tokens, refresh, introspection and
//! revocation by assertion; no sign-in or secret for it; one method per request; the replay
//! store failing closed; the throttle; metadata; the CLI.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use keygate::auth::dpop::{ReplayError, ReplayStore};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{
    ASSERTION_TYPE, Signer, claims, client, issuer, owner_token, post, refused, register, token,
};
use crate::helpers::{claims_of, error_code, json, spawn_app, spawn_app_with_store};

#[tokio::test]
async fn a_key_pair_client_has_no_secret_and_uses_every_oauth_endpoint() {
    let app = spawn_app().await;
    let owner = owner_token(&app).await;
    let signer = Signer::es256().with_kid("k1");
    let reply = register(&app, &owner, signer.jwks()).await;
    let created = reply.expect(StatusCode::CREATED).clone();
    assert!(created.get("api_key").is_none(), "no secret: {created}");
    assert_eq!(created["client_auth"], "private_key_jwt");
    assert_eq!(created["public_jwks"], signer.jwks());
    let id = reply.str("api_key_id");
    let shown = app
        .get_as(&owner, &format!("/v1/default/api_keys/{id}"))
        .await;
    assert_eq!(shown.expect(StatusCode::OK)["public_jwks"], signer.jwks());
    assert_eq!(shown.body["client_auth"], "private_key_jwt");
    // A key with a secret says so.
    let secret_key = app
        .get_as(
            &owner,
            &format!("/v1/default/api_keys/{}", app.owner.api_key_id),
        )
        .await;
    assert_eq!(secret_key.body["client_auth"], "client_secret");
    assert!(secret_key.body.get("public_jwks").is_none());

    let client = super::Client { id, signer };
    let (status, body) = token(&app, &client.assertion(&app)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims_of(&access)["client_id"], json!(client.id));
    assert_eq!(claims_of(&access)["sub"], json!(app.owner.user_id));

    // `client_id` in the form is allowed when it is the assertion's `sub`, and `aud` may be
    // the token endpoint's URL (RFC 7523 §3).
    let mut c = claims(&app, &client.id);
    c["aud"] = json!(format!("{}/oauth/token", issuer(&app)));
    let assertion = client.signer.sign(&client.signer.header(), &c);
    let auth = |a: &str| -> Vec<(&'static str, String)> {
        vec![
            ("client_assertion_type", ASSERTION_TYPE.to_owned()),
            ("client_assertion", a.to_owned()),
            ("client_id", client.id.clone()),
        ]
    };
    let mut form = auth(&assertion);
    form.push(("grant_type", "client_credentials".into()));
    let (status, body) = post(&app, "token", &as_refs(&form)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();

    // Refresh, authenticated by an assertion too.
    let mut form = auth(&client.assertion(&app));
    form.push(("grant_type", "refresh_token".into()));
    form.push(("refresh_token", refresh_token.clone()));
    let (status, body) = post(&app, "token", &as_refs(&form)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_ne!(body["refresh_token"], json!(refresh_token), "rotated");

    // Introspection and revocation.
    let mut form = auth(&client.assertion(&app));
    form.push(("token", access.clone()));
    let (status, body) = post(&app, "introspect", &as_refs(&form)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], json!(client.id));
    let mut form = auth(&client.assertion(&app));
    form.push(("token", access.clone()));
    let (status, body) = post(&app, "revoke", &as_refs(&form)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut form = auth(&client.assertion(&app));
    form.push(("token", access.clone()));
    let (_, body) = post(&app, "introspect", &as_refs(&form)).await;
    assert_eq!(body, json!({"active": false}));
    // Each endpoint checks the assertion: a bad one is refused at each.
    for endpoint in ["revoke", "introspect"] {
        let mut c = claims(&app, &client.id);
        c["aud"] = json!("https://elsewhere.example");
        let mut form = auth(&client.signer.sign(&client.signer.header(), &c));
        form.push(("token", access.clone()));
        refused(
            &post(&app, endpoint, &as_refs(&form)).await,
            "aud",
            endpoint,
        );
    }
}

fn as_refs<'a>(form: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    form.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn metadata_advertises_private_key_jwt_at_every_endpoint() {
    let app = spawn_app().await;
    let (status, doc) = json(
        app.client
            .get(app.url("/v1/default/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let algs = json!([
        "ES256", "ES384", "ES512", "EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"
    ]);
    for endpoint in ["token", "revocation", "introspection"] {
        let methods = &doc[format!("{endpoint}_endpoint_auth_methods_supported")];
        // Public browser clients (`none`) at the token and revocation endpoints only.
        let public = if endpoint == "introspection" {
            json!([])
        } else {
            json!(["none"])
        };
        let mut expected = json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt"
        ]);
        expected
            .as_array_mut()
            .unwrap()
            .extend(public.as_array().unwrap().iter().cloned());
        assert_eq!(*methods, expected, "{endpoint}");
        assert_eq!(
            doc[format!("{endpoint}_endpoint_auth_signing_alg_values_supported")],
            algs,
            "{endpoint}"
        );
    }
    assert_eq!(
        doc["service_documentation"],
        json!(format!("{}/docs", app.state.public_url))
    );
}

#[tokio::test]
async fn a_secretless_key_cannot_sign_in_nor_use_a_client_secret() {
    let app = spawn_app().await;
    let client = client(&app, Signer::es256()).await;
    // Whatever secret is presented with its id (the owner's own, a fresh well-formed one).
    let fresh = keygate::keys::api_key::PlainApiKey::generate(keygate::types::Environment::Live);
    for secret in [app.owner.api_key.as_str(), fresh.expose()] {
        let res = app
            .signin_raw(
                "default",
                Some(secret),
                Some(&client.id),
                Some(&app.owner.user_id),
            )
            .await;
        let (status, body) = json(res).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(error_code(&body), "invalid_api_key");
        let result = post(
            &app,
            "token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client.id),
                ("client_secret", secret),
            ],
        )
        .await;
        refused(
            &result,
            "client authentication failed",
            "client_secret_post",
        );
    }
}

#[tokio::test]
async fn one_client_authentication_method_per_request() {
    let app = spawn_app().await;
    let client = client(&app, Signer::es256()).await;
    let assertion = client.assertion(&app);
    let base = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion.as_str()),
    ];
    // With a client secret in the form, or with HTTP Basic: RFC 6749 §2.3 and §5.2.
    let mut with_secret = base.to_vec();
    with_secret.push(("client_secret", &app.owner.api_key));
    let (status, body) = post(&app, "token", &with_secret).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_request");
    let res = app
        .client
        .post(app.url("/v1/default/oauth/token"))
        .basic_auth(&app.owner.api_key_id, Some(&app.owner.api_key))
        .form(&base)
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_request");
    // The two assertion parameters go together, and the type is RFC 7523's.
    let (status, body) = post(&app, "token", &[base[0], base[2]]).await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_request"))
    );
    let (status, body) = post(&app, "token", &[base[0], base[1]]).await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_request"))
    );
    let wrong_type = [
        base[0],
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
        ),
        base[2],
    ];
    refused(
        &post(&app, "token", &wrong_type).await,
        "client_assertion_type",
        "saml",
    );
    // None of these consumed the assertion: it still works.
    assert_eq!(token(&app, &assertion).await.0, StatusCode::OK);
}

/// A replay store that cannot record anything (full, or Redis down).
#[derive(Debug)]
struct Unavailable;

#[async_trait::async_trait]
impl ReplayStore for Unavailable {
    async fn insert_if_absent(&self, _: [u8; 32], _: Duration) -> Result<bool, ReplayError> {
        Err(ReplayError::Unreachable("down for the test".into()))
    }
}

#[tokio::test]
async fn an_assertion_the_replay_store_cannot_record_is_refused_with_503() {
    let app = spawn_app_with_store(|_| {}, |_| Arc::new(Unavailable)).await;
    let client = client(&app, Signer::es256()).await;
    let res = app
        .client
        .post(app.url("/v1/default/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &client.assertion(&app)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().get("retry-after").is_some());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    // A client secret needs no replay store.
    let (status, _) = post(
        &app,
        "token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &app.owner.api_key_id),
            ("client_secret", &app.owner.api_key),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn failed_assertions_count_toward_the_throttle_of_the_key_id() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.limits.failed_auth_per_key_per_minute = 3;
    })
    .await;
    let client = client(&app, Signer::es256()).await;
    let impostor = Signer::es256();
    for _ in 0..3 {
        let forged = impostor.sign(&client.signer.header(), &claims(&app, &client.id));
        refused(&token(&app, &forged).await, "signature", "forged");
    }
    // Now even a good assertion waits for the window to end.
    let (status, body) = token(&app, &client.assertion(&app)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "rate_limited");
    app.clock.advance(Duration::from_secs(61));
    assert_eq!(token(&app, &client.assertion(&app)).await.0, StatusCode::OK);
}

/// `keygate client-assertion --jwks` prints the key to register; without `--jwks` an
/// assertion that keygate accepts. Neither needs a configuration or a database.
#[tokio::test]
async fn the_cli_prints_the_jwks_to_register_and_assertions_keygate_accepts() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("client.pem");
    let keygate = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_keygate"))
            .args(args)
            .current_dir(dir.path())
            .env(
                "KEYGATE__DATABASE__URL",
                "postgres://nobody@127.0.0.1:1/none",
            )
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            stderr,
        )
    };
    let (ok, _, err) = keygate(&[
        "dpop",
        "keygen",
        "--alg",
        "ES384",
        "--out",
        key.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let (ok, jwks, err) = keygate(&["client-assertion", "--key", key.to_str().unwrap(), "--jwks"]);
    assert!(ok, "{err}");
    let jwks: Value = serde_json::from_str(&jwks).unwrap();
    assert!(jwks["keys"][0].get("d").is_none(), "public only: {jwks}");
    let owner = owner_token(&app).await;
    let reply = register(&app, &owner, jwks).await;
    reply.expect(StatusCode::CREATED);
    let id = reply.str("api_key_id");
    let audience = issuer(&app);
    let args = [
        "client-assertion",
        "--key",
        key.to_str().unwrap(),
        "--client-id",
        &id,
        "--audience",
        &audience,
        "--lifetime",
        "2m",
    ];
    let (ok, assertion, err) = keygate(&args);
    assert!(ok, "{err}");
    let assertion = assertion.trim();
    assert_eq!(
        claims_of(assertion)["exp"].as_i64().unwrap()
            - claims_of(assertion)["iat"].as_i64().unwrap(),
        120
    );
    let (status, body) = token(&app, assertion).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A lifetime keygate would refuse is refused here first.
    let mut long = args.to_vec();
    long[8] = "10m";
    let (ok, _, err) = keygate(&long);
    assert!(!ok && err.contains("at most 5m"), "{err}");
}

/// Two nodes of a fleet share the replay store (Redis, when `KEYGATE_TEST_REDIS_URL` is
/// set, as in CI): an assertion accepted by one is a replay at the other. On the in-memory
/// store each node remembers only its own (documented: a fleet must use Redis).
#[tokio::test]
async fn an_assertion_used_at_one_node_is_a_replay_at_another() {
    use crate::replay_store::{REDIS_ENV, prefix, use_redis};
    let prefix = prefix();
    let app = crate::helpers::spawn_app_with(|s| {
        s.server.public_url = Some(crate::helpers::FLEET_URL.into());
        use_redis(s, &prefix);
    })
    .await;
    let shared = std::env::var(REDIS_ENV).is_ok();
    let me = client(&app, Signer::es256()).await;
    let assertion = me.assertion(&app);
    let second = app.second_node().await;
    let at = |base: String| {
        let (client, assertion) = (app.client.clone(), assertion.clone());
        async move {
            let res = client
                .post(format!("{base}/v1/default/oauth/token"))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", ASSERTION_TYPE),
                    ("client_assertion", &assertion),
                ])
                .send()
                .await
                .unwrap();
            json(res).await
        }
    };
    let (status, body) = at(app.address.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let result = at(second).await;
    if shared {
        refused(&result, "used before", "at the second node");
    } else {
        assert_eq!(result.0, StatusCode::OK, "per-node memory: {}", result.1);
    }
}
