//! Brute force is throttled: failed sign-ins and failed client authentications that could
//! be a guess, per presented key id and per client IP (with `server.trusted_proxies` for
//! `X-Forwarded-For`), answer 429 `rate_limited` with `Retry-After`, checked before the
//! database; successes, malformed input and bad DPoP proofs with a valid key don't count;
//! nothing lasts past `Retry-After`. Also: at sign-in the key is checked before the proof.

use std::time::Duration;

use keygate::config::Settings;
use keygate::keys::api_key::PlainApiKey;
use keygate::types::Environment;
use reqwest::StatusCode;
use serde_json::Value;

use crate::dpop_key::DpopKey;
use crate::helpers::{Credentials, TestApp, error_code, json, spawn_app, spawn_app_with};

const SIGNIN: &str = "/v1/default/user/signin_with_api_key";

/// The documented defaults, set explicitly (the harness raises them for other tests).
fn real_limits(s: &mut Settings) {
    s.limits.failed_auth_per_key_per_minute = 10;
    s.limits.failed_auth_per_ip_per_minute = 30;
}

fn wrong_secret() -> String {
    PlainApiKey::generate(Environment::Live).expose().to_owned()
}

fn unknown_key_id() -> String {
    keygate::ids::new_id("key")
}

async fn signin_from(
    app: &TestApp,
    forwarded_for: Option<&str>,
    secret: &str,
    key_id: &str,
    user_id: &str,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url(SIGNIN))
        .header("x-api-key", secret)
        .header("x-api-key-id", key_id)
        .header("x-user-id", user_id);
    if let Some(xff) = forwarded_for {
        req = req.header("x-forwarded-for", xff);
    }
    req.send().await.unwrap()
}

/// Asserts 429 `rate_limited` with a `Retry-After` of 1 to 60 seconds; returns it.
async fn assert_throttled(res: reqwest::Response) -> u64 {
    let retry_after = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let code = body["error"]["code"]
        .as_str()
        .or(body["error"].as_str())
        .unwrap_or_default();
    assert_eq!(code, "rate_limited", "{body}");
    let retry_after = retry_after.expect("a Retry-After header in seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    retry_after
}

async fn expect_signin_error(res: reqwest::Response, status: StatusCode, code: &str) {
    let (got, body) = json(res).await;
    assert_eq!(got, status, "{body}");
    assert_eq!(error_code(&body), code, "{body}");
}

#[tokio::test]
async fn a_key_id_is_throttled_after_ten_guesses_and_its_owner_signs_in_after_retry_after() {
    let app = spawn_app_with(real_limits).await;
    let o = app.owner.clone();

    // Malformed secrets are not guesses: any number of them never throttles.
    let mut bad_checksum = o.api_key.clone();
    let last = bad_checksum.pop().unwrap();
    bad_checksum.push(if last == 'a' { 'b' } else { 'a' });
    for _ in 0..15 {
        let res = signin_from(&app, None, &bad_checksum, &o.api_key_id, &o.user_id).await;
        expect_signin_error(res, StatusCode::UNAUTHORIZED, "invalid_api_key").await;
    }
    // Nor does a bad DPoP proof with the valid key.
    for _ in 0..15 {
        let res = app
            .client
            .post(app.url(SIGNIN))
            .header("x-api-key", &o.api_key)
            .header("x-api-key-id", &o.api_key_id)
            .header("x-user-id", &o.user_id)
            .header("dpop", "not.a.proof")
            .send()
            .await
            .unwrap();
        expect_signin_error(res, StatusCode::BAD_REQUEST, "invalid_dpop_proof").await;
    }
    // And a success never counts.
    for _ in 0..12 {
        app.signin(&o).await;
    }

    // Ten well-formed wrong secrets are answered 401 ...
    for _ in 0..10 {
        let res = signin_from(&app, None, &wrong_secret(), &o.api_key_id, &o.user_id).await;
        expect_signin_error(res, StatusCode::UNAUTHORIZED, "invalid_api_key").await;
    }
    // ... then the key id is refused before its secret is even looked at, the right one too.
    let retry_after =
        assert_throttled(signin_from(&app, None, &wrong_secret(), &o.api_key_id, &o.user_id).await)
            .await;
    assert_throttled(signin_from(&app, None, &o.api_key, &o.api_key_id, &o.user_id).await).await;
    // Other keys from the same client IP (10 guesses < 30) are unaffected.
    let other = app.create_key("default", &o.user_id).await;
    app.signin(&other).await;

    // Throttled attempts are counted, not audited one by one: one row per guess.
    assert!(app.state.throttle.throttled_total() >= 2);
    let failed = app
        .audit_events("default")
        .await
        .into_iter()
        .filter(|e| e.action == "signin.failed" && e.reason.as_deref() == Some("invalid_api_key"))
        .count();
    assert_eq!(failed, 10);

    // No lockout: once Retry-After has passed, the owner signs in.
    app.clock.advance(Duration::from_secs(retry_after));
    app.signin(&o).await;
}

#[tokio::test]
async fn a_client_ip_is_throttled_after_thirty_guesses_across_key_ids() {
    let app = spawn_app_with(|s| {
        real_limits(s);
        s.server.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    let o = app.owner.clone();
    let attacker = Some("198.51.100.1, 203.0.113.9");

    for _ in 0..30 {
        let res = signin_from(
            &app,
            attacker,
            &wrong_secret(),
            &unknown_key_id(),
            &o.user_id,
        )
        .await;
        expect_signin_error(res, StatusCode::UNAUTHORIZED, "invalid_api_key").await;
    }
    // The client (203.0.113.9, the right-most address not a trusted proxy) is refused,
    // whatever it presents.
    assert_throttled(signin_from(&app, attacker, &o.api_key, &o.api_key_id, &o.user_id).await)
        .await;
    assert_throttled(
        signin_from(
            &app,
            Some("203.0.113.9"),
            &wrong_secret(),
            &unknown_key_id(),
            &o.user_id,
        )
        .await,
    )
    .await;
    // Another client behind the same proxy is not.
    let res = signin_from(
        &app,
        Some("203.0.113.10"),
        &o.api_key,
        &o.api_key_id,
        &o.user_id,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);

    // The IP is what the audit log records too.
    let events = app.audit_events("default").await;
    let success = events
        .iter()
        .rfind(|e| e.action == "signin.succeeded")
        .unwrap();
    assert_eq!(success.ip.as_deref(), Some("203.0.113.10"));
}

#[tokio::test]
async fn x_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = spawn_app_with(real_limits).await;
    let o = app.owner.clone();
    for i in 0..30 {
        let spoofed = format!("192.0.2.{i}");
        let res = signin_from(
            &app,
            Some(&spoofed),
            &wrong_secret(),
            &unknown_key_id(),
            &o.user_id,
        )
        .await;
        expect_signin_error(res, StatusCode::UNAUTHORIZED, "invalid_api_key").await;
    }
    // Every attempt came from 127.0.0.1, whatever the header said.
    assert_throttled(
        signin_from(
            &app,
            Some("192.0.2.200"),
            &o.api_key,
            &o.api_key_id,
            &o.user_id,
        )
        .await,
    )
    .await;
    app.clock.advance(Duration::from_secs(60));
    app.signin(&o).await;
}

async fn token_request(
    app: &TestApp,
    path: &str,
    client: &Credentials,
    secret: &str,
) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .basic_auth(&client.api_key_id, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("token", "x")])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn failed_client_authentications_are_throttled_at_every_oauth_endpoint() {
    let app = spawn_app_with(real_limits).await;
    let o = app.owner.clone();
    let token = "/v1/default/oauth/token";
    let endpoints = [
        token,
        "/v1/default/oauth/revoke",
        "/v1/default/oauth/introspect",
    ];
    // Ten guesses spread over the three endpoints share the key id's count.
    for i in 0..10 {
        let res = token_request(&app, endpoints[i % 3], &o, &wrong_secret()).await;
        let (status, body) = json(res).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"], "invalid_client", "{body}");
    }
    let mut retry_after = 0;
    for path in endpoints {
        retry_after = assert_throttled(token_request(&app, path, &o, &o.api_key).await).await;
    }
    app.clock.advance(Duration::from_secs(retry_after));
    let (status, body): (StatusCode, Value) =
        json(token_request(&app, token, &o, &o.api_key).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_wrong_key_never_spends_a_dpop_proof() {
    let app = spawn_app().await;
    let o = app.owner.clone();
    let key = DpopKey::es256();
    let proof = key.proof(&app, "POST", SIGNIN, None);
    let send = |secret: String| {
        app.client
            .post(app.url(SIGNIN))
            .header("x-api-key", secret)
            .header("x-api-key-id", &o.api_key_id)
            .header("x-user-id", &o.user_id)
            .header("dpop", &proof)
            .send()
    };
    let res = send(wrong_secret()).await.unwrap();
    expect_signin_error(res, StatusCode::UNAUTHORIZED, "invalid_api_key").await;
    // The proof was never remembered, so its owner can still use it.
    let (status, body) = json(send(o.api_key.clone()).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
}
