//! The caches of the protected path (`auth::cache`): organizations and users are read from
//! memory for at most the revocation window, a change on this node is seen at once, one on
//! another node (or straight in the database) once the window has passed; a cached token's
//! claims never outlive its `exp`.

use std::time::Duration;

use keygate::auth::revocation::STALENESS;
use keygate::types::Role;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{FLEET_URL, TestApp, json, spawn_app_with};

/// `GET /user/me` at `base`: status and body.
async fn me_at(app: &TestApp, base: &str, token: &str) -> (StatusCode, serde_json::Value) {
    json(
        app.client
            .get(format!("{base}/v1/default/user/me"))
            .bearer_auth(token)
            .send()
            .await
            .expect("me request"),
    )
    .await
}

fn role_of(reply: &(StatusCode, serde_json::Value), label: &str) -> String {
    assert_eq!(reply.0, StatusCode::OK, "{label}: {}", reply.1);
    reply.1["role"].as_str().unwrap_or_default().to_owned()
}

/// A role change through the admin API is seen at once by the node that made it and by
/// another node once the revocation window has passed (a promotion keeps the session).
#[tokio::test]
async fn a_role_change_is_seen_at_once_here_and_within_the_window_elsewhere() {
    let app = spawn_app_with(|s| s.server.public_url = Some(FLEET_URL.into())).await;
    let other = app.second_node().await;
    let owner = app.session(&app.owner).await;
    let u = app.create_user("default", Role::Member).await;
    let token = app.signin(&u).await["id_token"]
        .as_str()
        .expect("id_token")
        .to_owned();
    assert_eq!(
        role_of(&me_at(&app, &app.address, &token).await, "here"),
        "member"
    );
    assert_eq!(
        role_of(&me_at(&app, &other, &token).await, "other"),
        "member"
    );

    let path = format!("/v1/default/users/{}", u.user_id);
    let reply = app
        .patch_as(&owner.token, &path, &json!({"role": "admin"}))
        .await;
    assert!(reply.status.is_success(), "{}", reply.body);
    assert_eq!(
        role_of(&me_at(&app, &app.address, &token).await, "here, after"),
        "admin"
    );
    app.clock.advance(STALENESS + Duration::from_secs(1));
    assert_eq!(
        role_of(
            &me_at(&app, &other, &token).await,
            "other, after the window"
        ),
        "admin"
    );
}

/// A demotion written elsewhere (here: straight to the database, so no session ends) is
/// what `/user/me` reports on every node once the window has passed, and not before: the
/// cached answer is used within the window, then reloaded.
#[tokio::test]
async fn a_demotion_made_elsewhere_is_seen_after_the_window() {
    let app = spawn_app_with(|s| s.server.public_url = Some(FLEET_URL.into())).await;
    let other = app.second_node().await;
    let a = app.create_user("default", Role::Admin).await;
    let token = app.signin(&a).await["id_token"]
        .as_str()
        .expect("id_token")
        .to_owned();
    for base in [&app.address, &other] {
        assert_eq!(role_of(&me_at(&app, base, &token).await, base), "admin");
    }
    app.set_user_directly(&a.user_id, Some(Role::Member), None)
        .await;
    // Within the window the cached row answers (no query per request).
    assert_eq!(
        role_of(&me_at(&app, &other, &token).await, "within the window"),
        "admin"
    );
    app.clock.advance(STALENESS + Duration::from_secs(1));
    for base in [&app.address, &other] {
        assert_eq!(
            role_of(&me_at(&app, base, &token).await, base),
            "member",
            "after the window at {base}"
        );
    }
}

/// A token whose claims are cached is refused once it expires: the cache skips only the
/// signature, never the expiry check.
#[tokio::test]
async fn a_cached_token_is_refused_after_its_exp() {
    let app = spawn_app_with(|_| {}).await;
    let token = app.signin(&app.owner).await["id_token"]
        .as_str()
        .expect("id_token")
        .to_owned();
    for _ in 0..2 {
        assert_eq!(me_at(&app, &app.address, &token).await.0, StatusCode::OK);
    }
    let tokens = &app.state.settings.tokens;
    app.clock
        .advance(tokens.access_ttl + tokens.leeway + Duration::from_secs(1));
    let res = app.me("default", &token).await;
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "expired_token", "{body}");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}

/// Concurrent requests of one user on a cold cache all succeed (they share one load).
#[tokio::test]
async fn concurrent_misses_share_one_load_and_all_succeed() {
    let app = spawn_app_with(|s| s.server.workers = Some(4)).await;
    let token = app.signin(&app.owner).await["id_token"]
        .as_str()
        .expect("id_token")
        .to_owned();
    for round in 0..3 {
        app.clock.advance(STALENESS + Duration::from_secs(1));
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(16));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (client, url, token, barrier) = (
                    app.client.clone(),
                    app.url("/v1/default/user/me"),
                    token.clone(),
                    barrier.clone(),
                );
                tokio::spawn(async move {
                    barrier.wait().await;
                    client
                        .get(url)
                        .bearer_auth(token)
                        .send()
                        .await
                        .expect("me")
                        .status()
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), StatusCode::OK, "round {round}");
        }
    }
}
