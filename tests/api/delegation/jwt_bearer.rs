//! The JWT bearer grant (RFC 7523 §2.1): a trusted issuer's token registered with
//! `allow_jwt_bearer` gets a keygate token for the user it names, once per `jti`, with every
//! check of a trusted issuer's token.

use keygate::types::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::oauth_error;
use crate::admin_helpers::Session;
use crate::federation::{AUDIENCE, ISSUER, ProviderKey, trust};
use crate::helpers::{Credentials, TestApp, claims_of, json as json_of, spawn_app};

const GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const WORKLOAD: &str = "system:serviceaccount:ci:deployer";

struct Setup {
    app: TestApp,
    owner: Session,
    key: ProviderKey,
    service: Credentials,
}

/// An app trusting [`ISSUER`] (inline JWKS) with `allow_jwt_bearer`, and a service user
/// whose `external_subject` is [`WORKLOAD`].
async fn setup(allow: bool) -> Setup {
    let app = spawn_app().await;
    let owner = app.session(&app.owner.clone()).await;
    let key = ProviderKey::es256("k8s-1");
    let reply = trust(
        &app,
        &owner,
        json!({"issuer": ISSUER, "jwks": {"keys": [key.jwk()]}, "audience": AUDIENCE,
               "algorithms": ["ES256"], "allow_jwt_bearer": allow}),
    )
    .await;
    assert_eq!(reply.expect(StatusCode::CREATED)["allow_jwt_bearer"], allow);
    let service = app.create_user("default", Role::Service).await;
    app.patch_as(
        &owner.token,
        &format!("/v1/default/users/{}", service.user_id),
        &json!({"external_subject": WORKLOAD}),
    )
    .await
    .expect(StatusCode::OK);
    Setup {
        app,
        owner,
        key,
        service,
    }
}

async fn grant(
    app: &TestApp,
    client: Option<&Credentials>,
    assertion: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut form = vec![("grant_type", GRANT), ("assertion", assertion)];
    form.extend_from_slice(extra);
    let mut req = app
        .client
        .post(app.url("/v1/default/oauth/token"))
        .form(&form);
    if let Some(c) = client {
        req = req.basic_auth(&c.api_key_id, Some(&c.api_key));
    }
    json_of(req.send().await.unwrap()).await
}

#[tokio::test]
async fn a_workload_token_gets_a_keygate_token_for_its_user_with_no_secret() {
    let s = setup(true).await;
    let assertion = s.key.token(&s.app, WORKLOAD, json!({"jti": "j-1"}));
    let (status, body) = grant(&s.app, None, &assertion, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert_eq!(body["token_type"], "Bearer");
    let token = body["access_token"].as_str().unwrap();
    let claims = claims_of(token);
    assert_eq!(claims["sub"], s.service.user_id.as_str());
    assert!(claims["client_id"].as_str().unwrap().starts_with("tis_"));
    // Never beyond the assertion's own end (10 minutes here), nor the access TTL.
    let assertion_exp = claims_of(&assertion)["exp"].as_i64().unwrap();
    assert!(claims["exp"].as_i64().unwrap() <= assertion_exp);
    // A service user's self-service scopes, not the audit log's.
    let scope = claims["scope"].as_str().unwrap();
    assert!(
        scope.contains("keys:read") && !scope.contains("audit:read"),
        "{scope}"
    );

    let (status, me) = json_of(s.app.me("default", token).await).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["user_id"], s.service.user_id.as_str());

    // A narrower scope may be asked for; a wider one is refused.
    let narrow = s.key.token(&s.app, WORKLOAD, json!({}));
    let (status, body) = grant(&s.app, None, &narrow, &[("scope", "keys:read")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "keys:read");
    let (status, body) = grant(&s.app, None, &narrow, &[("scope", "audit:read")]).await;
    oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_scope");

    let events = s.app.audit_events("default").await;
    assert!(
        events
            .iter()
            .any(|e| e.action == "token.jwt_bearer.succeeded"
                && e.actor_user_id.as_deref() == Some(s.service.user_id.as_str()))
    );
}

#[tokio::test]
async fn a_replayed_jti_is_refused() {
    let s = setup(true).await;
    let assertion = s.key.token(&s.app, WORKLOAD, json!({"jti": "once"}));
    let (status, body) = grant(&s.app, None, &assertion, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = grant(&s.app, None, &assertion, &[]).await;
    oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(
        body["error_description"].as_str().unwrap().contains("jti"),
        "{body}"
    );
    // Another assertion with the same jti is the same use.
    let again = s.key.token(
        &s.app,
        WORKLOAD,
        json!({"jti": "once", "iat": s.app.now().timestamp() - 1}),
    );
    let (status, body) = grant(&s.app, None, &again, &[]).await;
    oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn concurrent_replays_of_one_jti_succeed_once() {
    let s = setup(true).await;
    for round in 0..5 {
        let assertion = s
            .key
            .token(&s.app, WORKLOAD, json!({"jti": format!("race-{round}")}));
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(4));
        let mut handles = Vec::new();
        for _ in 0..4 {
            let client = s.app.client.clone();
            let url = s.app.url("/v1/default/oauth/token");
            let assertion = assertion.clone();
            let barrier = barrier.clone();
            handles.push(tokio::spawn(async move {
                barrier.wait().await;
                client
                    .post(url)
                    .form(&[("grant_type", GRANT), ("assertion", assertion.as_str())])
                    .send()
                    .await
                    .unwrap()
                    .status()
            }));
        }
        let mut ok = 0;
        for handle in handles {
            if handle.await.unwrap() == StatusCode::OK {
                ok += 1;
            }
        }
        assert_eq!(ok, 1, "round {round}");
    }
}

#[tokio::test]
async fn an_issuer_without_allow_jwt_bearer_is_refused() {
    let s = setup(false).await;
    let assertion = s.key.token(&s.app, WORKLOAD, json!({}));
    let (status, body) = grant(&s.app, None, &assertion, &[]).await;
    oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    // The same token still works where a trusted issuer's token always did (Basic).
    let reply = crate::federation::me(
        &s.app,
        "default",
        &crate::federation::basic(&s.service.user_id, &assertion),
    )
    .await;
    reply.expect(StatusCode::OK);
    let _ = &s.owner;
}

#[tokio::test]
async fn every_failed_check_of_the_assertion_is_invalid_grant() {
    let s = setup(true).await;
    let now = s.app.now().timestamp();
    let stranger = ProviderKey::es256("k8s-1");
    let cases: Vec<(&str, String)> = vec![
        (
            "unknown subject",
            s.key.token(&s.app, "system:serviceaccount:x:y", json!({})),
        ),
        (
            "wrong aud",
            s.key
                .token(&s.app, WORKLOAD, json!({"aud": "someone-else"})),
        ),
        (
            "no aud",
            s.key.token(&s.app, WORKLOAD, json!({"aud": null})),
        ),
        (
            "expired",
            s.key.token(&s.app, WORKLOAD, json!({"exp": now - 120})),
        ),
        (
            "no exp",
            s.key.token(&s.app, WORKLOAD, json!({"exp": null})),
        ),
        (
            "not yet valid",
            s.key.token(&s.app, WORKLOAD, json!({"nbf": now + 600})),
        ),
        (
            "issued in the future",
            s.key.token(&s.app, WORKLOAD, json!({"iat": now + 600})),
        ),
        (
            "untrusted issuer",
            s.key
                .token(&s.app, WORKLOAD, json!({"iss": "https://evil.example"})),
        ),
        ("another key", stranger.token(&s.app, WORKLOAD, json!({}))),
        (
            "an empty jti",
            s.key.token(&s.app, WORKLOAD, json!({"jti": ""})),
        ),
        ("garbage", "a.b.c".into()),
    ];
    for (why, assertion) in cases {
        let (status, body) = grant(&s.app, None, &assertion, &[]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant")),
            "{why}: {body}"
        );
    }
    let (status, body) = grant(&s.app, None, "", &[]).await;
    oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    // A disabled user is unknown.
    s.app
        .patch_as(
            &s.owner.token,
            &format!("/v1/default/users/{}", s.service.user_id),
            &json!({"disabled": true}),
        )
        .await
        .expect(StatusCode::OK);
    let (status, body) = grant(&s.app, None, &s.key.token(&s.app, WORKLOAD, json!({})), &[]).await;
    oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn client_authentication_is_optional_and_when_present_must_match() {
    let s = setup(true).await;
    let assertion = s.key.token(&s.app, WORKLOAD, json!({}));
    // The service user's own key: the token's client is that key.
    let (status, body) = grant(&s.app, Some(&s.service), &assertion, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        claims_of(body["access_token"].as_str().unwrap())["client_id"],
        s.service.api_key_id.as_str()
    );
    // Another user's key: refused.
    let other = s.app.create_user("default", Role::Member).await;
    let (status, body) = grant(&s.app, Some(&other), &assertion, &[]).await;
    oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    // A wrong secret: invalid_client.
    let wrong = Credentials {
        api_key: s.app.owner.api_key.clone(),
        ..s.service.clone()
    };
    let (status, body) = grant(&s.app, Some(&wrong), &assertion, &[]).await;
    oauth_error(status, &body, StatusCode::UNAUTHORIZED, "invalid_client");
}

#[tokio::test]
async fn the_cli_registers_an_issuer_for_the_jwt_bearer_grant() {
    let app = spawn_app().await;
    let key = ProviderKey::es256("ci-1");
    let jwks = app.data_dir.path().join("ci-jwks.json");
    std::fs::write(&jwks, json!({"keys": [key.jwk()]}).to_string()).unwrap();
    let jwks = jwks.to_str().unwrap();
    let created = crate::cli::keygate_json(
        &app,
        &[
            "issuer",
            "create",
            "--org",
            "default",
            "--issuer",
            ISSUER,
            "--jwks",
            jwks,
            "--audience",
            AUDIENCE,
            "--alg",
            "ES256",
            "--allow-jwt-bearer",
            "--json",
        ],
    );
    assert_eq!(created["allow_jwt_bearer"], true);
    let listed = crate::cli::keygate_json(&app, &["issuer", "list", "--org", "default", "--json"]);
    assert_eq!(listed[0]["id"], created["id"]);

    let owner = app.session(&app.owner.clone()).await;
    let service = app.create_user("default", Role::Service).await;
    app.patch_as(
        &owner.token,
        &format!("/v1/default/users/{}", service.user_id),
        &json!({"external_subject": WORKLOAD}),
    )
    .await
    .expect(StatusCode::OK);
    let (status, body) = grant(&app, None, &key.token(&app, WORKLOAD, json!({})), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        json_of(app.me("default", &token).await).await.0,
        StatusCode::OK
    );

    // Deleting the issuer ends the sessions its tokens opened.
    let id = created["id"].as_str().unwrap();
    crate::cli::keygate_json(
        &app,
        &["issuer", "delete", "--org", "default", id, "--json"],
    );
    app.clock
        .advance(keygate::auth::revocation::STALENESS + std::time::Duration::from_secs(1));
    assert_eq!(
        json_of(app.me("default", &token).await).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = grant(&app, None, &key.token(&app, WORKLOAD, json!({})), &[]).await;
    oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
}
