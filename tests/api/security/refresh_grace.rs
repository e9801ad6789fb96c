//! `tokens.refresh_reuse_grace`: presenting a used Bearer refresh token ends the session,
//! except within the grace after its rotation, where the client gets the same new refresh
//! token again (a client that lost the response). Default 0 s: every reuse ends it.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::Barrier;

use crate::helpers::{TestApp, json, spawn_app_with};

const GRACE: Duration = Duration::from_secs(30);

async fn spawn(grace: Duration) -> TestApp {
    spawn_app_with(|s| {
        s.tokens.refresh_reuse_grace = grace;
        s.server.workers = Some(4);
    })
    .await
}

async fn refresh(app: &TestApp, refresh_token: &str) -> (StatusCode, Value) {
    json(
        app.client
            .post(app.url("/v1/default/oauth/token"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ])
            .send()
            .await
            .expect("token request"),
    )
    .await
}

/// Refreshes, expecting success: (new refresh token, new access token).
async fn refresh_ok(app: &TestApp, refresh_token: &str, label: &str) -> (String, String) {
    let (status, body) = refresh(app, refresh_token).await;
    assert_eq!(status, StatusCode::OK, "{label}: {body}");
    (
        body["refresh_token"].as_str().unwrap().to_owned(),
        body["access_token"].as_str().unwrap().to_owned(),
    )
}

#[track_caller]
fn assert_invalid_grant(result: &(StatusCode, Value), label: &str) {
    assert_eq!(
        (result.0, result.1["error"].as_str().unwrap_or_default()),
        (StatusCode::BAD_REQUEST, "invalid_grant"),
        "{label}: {}",
        result.1
    );
}

async fn assert_session_ended(app: &TestApp, access: &str, label: &str) {
    let (status, body) = json(app.me("default", access).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}: {body}");
    assert_eq!(body["error"]["code"], "invalid_token", "{label}: {body}");
}

/// A fresh session of the owner: its first refresh token.
async fn first_refresh_token(app: &TestApp) -> String {
    app.signin(&app.owner).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn without_a_grace_a_reused_refresh_token_ends_the_session() {
    let app = spawn(Duration::ZERO).await;
    let rt1 = first_refresh_token(&app).await;
    let (rt2, access) = refresh_ok(&app, &rt1, "first use").await;
    assert_invalid_grant(&refresh(&app, &rt1).await, "reuse at once");
    assert_invalid_grant(&refresh(&app, &rt2).await, "successor after the reuse");
    assert_session_ended(&app, &access, "after the reuse").await;
}

#[tokio::test]
async fn within_the_grace_a_reused_refresh_token_gets_the_same_new_one() {
    let app = spawn(GRACE).await;
    let rt1 = first_refresh_token(&app).await;
    let (rt2, _) = refresh_ok(&app, &rt1, "first use").await;
    app.clock.advance(GRACE - Duration::from_secs(1));
    let (again, access) = refresh_ok(&app, &rt1, "reuse within the grace").await;
    assert_eq!(again, rt2, "the same new refresh token");
    // The session lives on: its access token works, the successor rotates as usual.
    let (status, body) = json(app.me("default", &access).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (rt3, _) = refresh_ok(&app, &rt2, "the successor").await;
    assert_ne!(rt3, rt2);
    refresh_ok(&app, &rt3, "and its successor").await;
}

#[tokio::test]
async fn after_the_grace_a_reused_refresh_token_ends_the_session() {
    let app = spawn(GRACE).await;
    let rt1 = first_refresh_token(&app).await;
    let (rt2, access) = refresh_ok(&app, &rt1, "first use").await;
    app.clock.advance(GRACE + Duration::from_secs(1));
    assert_invalid_grant(&refresh(&app, &rt1).await, "reuse after the grace");
    assert_invalid_grant(&refresh(&app, &rt2).await, "successor after the reuse");
    assert_session_ended(&app, &access, "after the reuse").await;
}

#[tokio::test]
async fn within_the_grace_a_token_whose_successor_was_used_ends_the_session() {
    // The client did get the response (it used the successor): an old token presented
    // again is a thief's.
    let app = spawn(GRACE).await;
    let rt1 = first_refresh_token(&app).await;
    let (rt2, _) = refresh_ok(&app, &rt1, "first use").await;
    let (rt3, access) = refresh_ok(&app, &rt2, "the successor").await;
    assert_invalid_grant(&refresh(&app, &rt1).await, "reuse of the first");
    assert_invalid_grant(&refresh(&app, &rt3).await, "latest after the reuse");
    assert_session_ended(&app, &access, "after the reuse").await;
}

/// Presents one refresh token `n` times at once (released together by a barrier).
async fn concurrent_refreshes(app: &TestApp, rt: &str, n: usize) -> Vec<(StatusCode, Value)> {
    let barrier = Arc::new(Barrier::new(n));
    let attempts = (0..n).map(|_| {
        let barrier = barrier.clone();
        let client = app.client.clone();
        let url = app.url("/v1/default/oauth/token");
        let rt = rt.to_owned();
        tokio::spawn(async move {
            let request = client.post(url).form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt.as_str()),
            ]);
            barrier.wait().await;
            json(request.send().await.expect("token request")).await
        })
    });
    let mut results = Vec::new();
    for attempt in attempts.collect::<Vec<_>>() {
        results.push(attempt.await.unwrap());
    }
    results
}

const ROUNDS: usize = 10;

#[tokio::test]
async fn with_a_grace_concurrent_refreshes_of_one_token_all_get_the_same_pair() {
    let app = spawn(GRACE).await;
    for round in 0..ROUNDS {
        let rt = first_refresh_token(&app).await;
        let results = concurrent_refreshes(&app, &rt, 2).await;
        for (status, body) in &results {
            assert_eq!(*status, StatusCode::OK, "round {round}: {body}");
        }
        let next = results[0].1["refresh_token"].as_str().unwrap().to_owned();
        assert_eq!(
            results[1].1["refresh_token"], next,
            "round {round}: one new refresh token"
        );
        refresh_ok(&app, &next, "the shared successor").await;
    }
}

#[tokio::test]
async fn without_a_grace_concurrent_refreshes_of_one_token_succeed_once_and_end_the_session() {
    let app = spawn(Duration::ZERO).await;
    for round in 0..ROUNDS {
        let rt = first_refresh_token(&app).await;
        let results = concurrent_refreshes(&app, &rt, 2).await;
        let winners: Vec<_> = results
            .iter()
            .filter(|(s, _)| *s == StatusCode::OK)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        for loser in results.iter().filter(|(s, _)| *s != StatusCode::OK) {
            assert_invalid_grant(loser, &format!("round {round}: the loser"));
        }
        // The loser's attempt was a reuse: the session is over, the winner's token too.
        let next = winners[0].1["refresh_token"].as_str().unwrap();
        assert_invalid_grant(
            &refresh(&app, next).await,
            &format!("round {round}: the winner's new token"),
        );
    }
}
