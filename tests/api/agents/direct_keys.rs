//! Direct API-key requests: off by default (401 `invalid_token` naming the sign-in
//! endpoint), then `X-API-Key`, `Api-Key` and `Bearer ak_…` authenticate as the key's user
//! with the key's scopes; revocation and expiry act at once; wrong keys are throttled like
//! sign-ins; a DPoP-bound token is still refused as Bearer.

use std::time::Duration;

use keygate::keys::api_key::PlainApiKey;
use keygate::types::{Environment, Role};
use reqwest::StatusCode;
use serde_json::Value;

use super::{me_with, token_of, turn_on};
use crate::dpop_flow::bound_token;
use crate::dpop_key::DpopKey;
use crate::helpers::{Credentials, TestApp, error_code, json, spawn_app, spawn_app_with};

/// The three ways a request carries an API key.
fn forms(secret: &str) -> [(&'static str, String); 3] {
    [
        ("x-api-key", secret.to_owned()),
        ("api-key", secret.to_owned()),
        ("authorization", format!("Bearer {secret}")),
    ]
}

/// A 401 `invalid_token` with a Bearer challenge; the message.
async fn assert_invalid_token(res: reqwest::Response) -> String {
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_code(&body), "invalid_token", "{body}");
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    body["error"]["message"].as_str().unwrap().to_owned()
}

async fn get_with(app: &TestApp, path: &str, creds: &Credentials) -> (StatusCode, Value) {
    json(
        app.client
            .get(app.url(path))
            .header("x-api-key", &creds.api_key)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn off_by_default_each_form_answers_invalid_token_naming_the_sign_in_endpoint() {
    let app = spawn_app().await;
    for (name, value) in forms(&app.owner.api_key) {
        let message = assert_invalid_token(me_with(&app, "default", &[(name, &value)]).await).await;
        assert!(
            message.contains("POST /v1/default/user/signin_with_api_key"),
            "{name}: {message}"
        );
    }
}

#[tokio::test]
async fn on_each_form_authenticates_as_the_keys_user() {
    let app = spawn_app().await;
    turn_on(&app, &app.owner, &["direct_api_keys"]).await;
    let member = app.create_user("default", Role::Member).await;
    for (name, value) in forms(&member.api_key) {
        let (status, me) = json(me_with(&app, "default", &[(name, &value)]).await).await;
        assert_eq!(status, StatusCode::OK, "{name}: {me}");
        assert_eq!(me["user_id"], member.user_id.as_str(), "{name}");
        assert_eq!(me["role"], "member");
        assert_eq!(me["auth_method"], "api_key");
        assert_eq!(me["token_type"], "Bearer");
        assert_eq!(me["session_id"], Value::Null);
    }
    // Header names are case-insensitive; a value with surrounding spaces is the key.
    let (status, _) = json(
        me_with(
            &app,
            "default",
            &[("X-Api-Key", &format!(" {} ", member.api_key))],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_direct_key_holds_its_keys_scopes_and_its_users_role() {
    let app = spawn_app().await;
    turn_on(&app, &app.owner, &["direct_api_keys"]).await;
    let read_only = app
        .create_scoped_key("default", &app.owner.user_id, &["keys:read"])
        .await;
    let (status, body) = get_with(&app, "/v1/default/api_keys", &read_only).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = get_with(&app, "/v1/default/users", &read_only).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(error_code(&body), "insufficient_scope");

    let member = app.create_user("default", Role::Member).await;
    let (status, body) = get_with(&app, "/v1/default/audit_events", &member).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(error_code(&body), "permission_denied");
    // The key that made the request cannot revoke itself.
    let res = app
        .client
        .delete(app.url(&format!("/v1/default/api_keys/{}", member.api_key_id)))
        .header("x-api-key", &member.api_key)
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn revocation_and_expiry_take_effect_at_once() {
    let app = spawn_app().await;
    turn_on(&app, &app.owner, &["direct_api_keys"]).await;
    let member = app.create_user("default", Role::Member).await;
    let (status, _) = get_with(&app, "/v1/default/user/me", &member).await;
    assert_eq!(status, StatusCode::OK, "the key is cached now");
    let owner = token_of(&app, &app.owner).await;
    let res = app
        .client
        .delete(app.url(&format!("/v1/default/api_keys/{}", member.api_key_id)))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = me_with(&app, "default", &[("x-api-key", &member.api_key)]).await;
    let message = assert_invalid_token(res).await;
    assert!(message.contains("revoked"), "{message}");

    let short = app
        .create_key_for("default", &member.user_id, Some(Duration::from_secs(3_600)))
        .await;
    let (status, _) = get_with(&app, "/v1/default/user/me", &short).await;
    assert_eq!(status, StatusCode::OK);
    app.clock.advance(Duration::from_secs(3_600));
    let message =
        assert_invalid_token(me_with(&app, "default", &[("x-api-key", &short.api_key)]).await)
            .await;
    assert!(message.contains("expired"), "{message}");
}

#[tokio::test]
async fn wrong_keys_are_throttled_per_client_ip_like_sign_ins() {
    let app = spawn_app_with(|s| s.limits.failed_auth_per_ip_per_minute = 3).await;
    turn_on(&app, &app.owner, &["direct_api_keys"]).await;
    // Malformed keys (no valid checksum) are no guess: they never count.
    for _ in 0..5 {
        let res = me_with(&app, "default", &[("x-api-key", "ak_live_not-a-key")]).await;
        assert_invalid_token(res).await;
    }
    for _ in 0..3 {
        let guess = PlainApiKey::generate(Environment::Live);
        let res = me_with(&app, "default", &[("x-api-key", guess.expose())]).await;
        assert_invalid_token(res).await;
    }
    let guess = PlainApiKey::generate(Environment::Live);
    let res = me_with(&app, "default", &[("api-key", guess.expose())]).await;
    assert!(res.headers().contains_key("retry-after"));
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(error_code(&body), "rate_limited");
    // The throttle is the sign-in's: that address cannot sign in either for now.
    let (status, code) = app.signin_outcome(&app.owner).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{code:?}");
    app.clock.advance(Duration::from_secs(61));
    let (status, _) =
        json(me_with(&app, "default", &[("x-api-key", &app.owner.api_key)]).await).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_dpop_bound_token_is_still_refused_as_bearer() {
    let app = spawn_app().await;
    turn_on(&app, &app.owner, &["direct_api_keys"]).await;
    let key = DpopKey::es256();
    let token = bound_token(&app, &key).await;
    let res = me_with(
        &app,
        "default",
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_code(&body), "invalid_token");
}

#[tokio::test]
async fn mixed_credentials_foreign_keys_and_proofs_with_a_key_are_refused() {
    let app = spawn_app().await;
    turn_on(&app, &app.owner, &["direct_api_keys"]).await;
    let other = app.create_org("other").await;
    turn_on(&app, &other, &["direct_api_keys"]).await;
    let token = token_of(&app, &app.owner).await;
    let key = &app.owner.api_key;
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "a key and a token",
            vec![
                ("x-api-key", key.clone()),
                ("authorization", format!("Bearer {token}")),
            ],
        ),
        (
            "two key headers",
            vec![("x-api-key", key.clone()), ("api-key", key.clone())],
        ),
        (
            "a key of another organization",
            vec![("x-api-key", other.api_key.clone())],
        ),
        (
            "a key with X-ORG-ID of its own organization at another's path",
            vec![
                ("x-api-key", other.api_key.clone()),
                ("x-org-id", "other".into()),
            ],
        ),
        (
            "a key with a DPoP proof",
            vec![
                ("x-api-key", key.clone()),
                (
                    "dpop",
                    DpopKey::es256().proof(&app, "GET", "/v1/default/user/me", None),
                ),
            ],
        ),
    ];
    for (name, headers) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (status, body) = json(me_with(&app, "default", &headers).await).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        assert_eq!(error_code(&body), "invalid_token", "{name}: {body}");
    }
}

#[tokio::test]
async fn an_organization_that_requires_dpop_refuses_direct_keys() {
    let app = spawn_app().await;
    turn_on(&app, &app.owner, &["direct_api_keys"]).await;
    keygate::admin::set_dpop_policy(&app.state.storage, "default", Some(true), None)
        .await
        .unwrap();
    app.state.directory.orgs_changed();
    let (status, body) =
        json(me_with(&app, "default", &[("x-api-key", &app.owner.api_key)]).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_code(&body), "invalid_token");
}

#[tokio::test]
async fn a_direct_key_request_records_the_keys_use() {
    // A key used only directly must not look unused to `?unused_since=`.
    let app = spawn_app().await;
    turn_on(&app, &app.owner, &["direct_api_keys"]).await;
    let agent = app
        .create_scoped_key("default", &app.owner.user_id, &["keys:read"])
        .await;
    let owner = token_of(&app, &app.owner).await;
    let key = |owner: String| {
        let url = app.url(&format!("/v1/default/api_keys/{}", agent.api_key_id));
        let client = app.client.clone();
        async move {
            let res = client.get(url).bearer_auth(owner).send().await.unwrap();
            json(res).await.1
        }
    };
    assert_eq!(key(owner.clone()).await["last_used_at"], Value::Null);

    let (status, me) =
        json(me_with(&app, "default", &[("x-api-key", agent.api_key.as_str())]).await).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    // The use is written off the request's path: wait for it to land.
    let mut seen = Value::Null;
    for _ in 0..200 {
        seen = key(owner.clone()).await;
        if !seen["last_used_at"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(!seen["last_used_at"].is_null(), "{seen}");
    assert_eq!(seen["last_used_ip"], "127.0.0.1", "{seen}");
}
