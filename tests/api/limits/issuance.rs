//! A key limited to N tokens a minute: N sign-ins succeed with the RateLimit headers
//! counting down, request N+1 answers 429 with `Retry-After` and the headers, and the key
//! works again once `Retry-After` has passed. The token endpoint answers the OAuth body; a
//! refused refresh does not spend the refresh token; a burst released by a barrier never
//! gets past N; users are limited at protected endpoints.

use std::sync::Arc;

use reqwest::StatusCode;
use tokio::sync::Barrier;

use super::{advance, assert_limited, real_limits, retry_after, signin};
use crate::admin_helpers::Reply;
use crate::helpers::{TestApp, spawn_app_with};

#[tokio::test]
async fn a_key_limited_to_n_per_minute_gets_429_with_headers_on_request_n_plus_1_and_recovers() {
    let app = spawn_app_with(|s| real_limits(s, 5)).await;
    let creds = app.owner.clone();
    for n in 1..=5u32 {
        let reply = signin(&app, &creds).await;
        reply.expect(StatusCode::OK);
        assert_eq!(
            reply.header("ratelimit-policy").as_deref(),
            Some(r#""issuance-per-minute";q=5;w=60, "issuance-per-hour";q=20000;w=3600"#)
        );
        assert_eq!(
            reply.header("ratelimit").as_deref(),
            Some(
                format!(
                    r#""issuance-per-minute";r={};t={}, "issuance-per-hour";r={};t=1"#,
                    5 - n,
                    12 * n,
                    20_000 - n
                )
                .as_str()
            )
        );
    }
    let refused = signin(&app, &creds).await;
    let wait = assert_limited(&refused);
    assert_eq!(wait, 12, "one token every 12 s");
    assert_eq!(
        refused.header("ratelimit").as_deref(),
        Some(r#""issuance-per-minute";r=0;t=60, "issuance-per-hour";r=19995;t=1"#)
    );
    assert!(refused.message().contains("API key"), "{}", refused.body);

    // Another key of the same user is not affected.
    let other = app.create_key(&creds.org, &creds.user_id).await;
    signin(&app, &other).await.expect(StatusCode::OK);

    advance(&app, wait - 1);
    assert_limited(&signin(&app, &creds).await);
    advance(&app, 1);
    signin(&app, &creds).await.expect(StatusCode::OK);
    assert_limited(&signin(&app, &creds).await);
}

async fn client_credentials(app: &TestApp) -> Reply {
    let c = &app.owner;
    let req = app
        .client
        .post(app.url(&format!("/v1/{}/oauth/token", c.org)))
        .basic_auth(&c.api_key_id, Some(&c.api_key))
        .form(&[("grant_type", "client_credentials")]);
    app.send(req).await
}

async fn refresh(app: &TestApp, refresh_token: &str) -> Reply {
    let req = app
        .client
        .post(app.url(&format!("/v1/{}/oauth/token", app.owner.org)))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ]);
    app.send(req).await
}

#[tokio::test]
async fn the_token_endpoint_answers_the_oauth_body_and_a_refused_refresh_keeps_its_token() {
    let app = spawn_app_with(|s| real_limits(s, 2)).await;
    let first = client_credentials(&app).await;
    first.expect(StatusCode::OK);
    let refresh_token = first.body["refresh_token"].as_str().unwrap().to_owned();
    client_credentials(&app).await.expect(StatusCode::OK);

    // Sign-in and the token endpoint share the key's limit.
    for reply in [
        client_credentials(&app).await,
        refresh(&app, &refresh_token).await,
    ] {
        assert_eq!(
            reply.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            reply.body
        );
        assert_eq!(reply.body["error"], "rate_limited", "{}", reply.body);
        assert!(reply.body["error_description"].as_str().is_some());
        assert_eq!(retry_after(&reply), 30);
        assert!(reply.header("ratelimit-policy").is_some());
        assert_eq!(
            reply.header("ratelimit").as_deref(),
            Some(r#""issuance-per-minute";r=0;t=60, "issuance-per-hour";r=19998;t=1"#)
        );
    }
    assert_eq!(
        signin(&app, &app.owner).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    // The refused refresh did not rotate (spend) the Bearer refresh token.
    advance(&app, 30);
    let refreshed = refresh(&app, &refresh_token).await;
    refreshed.expect(StatusCode::OK);
    assert_ne!(refreshed.body["refresh_token"], refresh_token.as_str());
}

/// `concurrent` sign-ins of one key released at once by a barrier.
async fn burst(app: &Arc<TestApp>, concurrent: usize) -> (usize, usize) {
    let barrier = Arc::new(Barrier::new(concurrent));
    let tasks: Vec<_> = (0..concurrent)
        .map(|_| {
            let (app, barrier) = (app.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                signin(&app, &app.owner).await.status
            })
        })
        .collect();
    let (mut ok, mut limited) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    (ok, limited)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_released_by_a_barrier_never_gets_past_the_limit() {
    let app = Arc::new(
        spawn_app_with(|s| {
            real_limits(s, 5);
            s.server.workers = Some(4);
        })
        .await,
    );
    for round in 0..5 {
        let (ok, limited) = burst(&app, 16).await;
        assert_eq!((ok, limited), (5, 11), "round {round}");
        // A full window later, the whole quota is back.
        advance(&app, 60);
    }
}

#[tokio::test]
async fn protected_endpoints_limit_each_user_with_the_same_headers() {
    let app = spawn_app_with(|s| {
        real_limits(s, 600);
        s.limits.requests_per_user_per_minute = 3;
    })
    .await;
    let owner = app.session(&app.owner).await;
    let member = app
        .create_user(&app.owner.org, keygate::types::Role::Member)
        .await;
    let member = app.session(&member).await;
    let bearer = format!("Bearer {}", owner.token);
    for left in (0..3).rev() {
        let reply = app
            .me_with("default", &[("authorization", bearer.as_str())])
            .await;
        reply.expect(StatusCode::OK);
        assert_eq!(
            reply.header("ratelimit-policy").as_deref(),
            Some(r#""requests-per-minute";q=3;w=60"#)
        );
        assert!(
            reply
                .header("ratelimit")
                .unwrap()
                .starts_with(&format!(r#""requests-per-minute";r={left};"#))
        );
    }
    let refused = app.get_as(&owner.token, "/v1/default/api_keys").await;
    assert_eq!(assert_limited(&refused), 20);
    // Another user is not affected; a request that fails authentication is not counted.
    app.get_as(&member.token, "/v1/default/user/me")
        .await
        .expect(StatusCode::OK);
    let unauthenticated = app.get_as("not-a-token", "/v1/default/user/me").await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
    assert!(unauthenticated.header("ratelimit").is_none());
    advance(&app, 20);
    app.get_as(&owner.token, "/v1/default/user/me")
        .await
        .expect(StatusCode::OK);
}

#[tokio::test]
async fn a_limit_of_zero_is_off_and_sends_no_headers() {
    let app = spawn_app_with(|s| {
        s.limits.issuance_per_minute = 0;
        s.limits.issuance_per_hour = 0;
        s.limits.requests_per_user_per_minute = 0;
    })
    .await;
    for _ in 0..3 {
        let reply = signin(&app, &app.owner).await;
        reply.expect(StatusCode::OK);
        assert!(reply.header("ratelimit-policy").is_none());
        assert!(reply.header("ratelimit").is_none());
    }
}
