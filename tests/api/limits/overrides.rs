//! A key's own limits: set at creation or by `PATCH /v1/{org}/api_keys/{id}`, by owners and
//! admins only (a member cannot raise the limit that contains its own agent, an admin
//! cannot touch an owner's key), checked and answered 400 when out of range, kept by a
//! rotation, and effective at the key's next token.

use reqwest::StatusCode;
use serde_json::json;

use super::{advance, assert_limited, real_limits, signin};
use crate::helpers::{Credentials, spawn_app_with};
use keygate::types::Role;

fn key_path(creds: &Credentials) -> String {
    format!("/v1/{}/api_keys/{}", creds.org, creds.api_key_id)
}

#[tokio::test]
async fn an_owner_lowers_and_raises_a_keys_limits_and_null_returns_to_the_default() {
    let app = spawn_app_with(|s| real_limits(s, 3)).await;
    let owner = app.session(&app.owner).await;
    let agent = app.create_user("default", Role::Service).await;
    let path = key_path(&agent);

    let reply = app
        .patch_as(&owner.token, &path, &json!({"limits": {"per_minute": 1}}))
        .await;
    assert_eq!(
        reply.expect(StatusCode::OK)["limits"],
        json!({"per_minute": 1, "per_hour": null})
    );
    signin(&app, &agent).await.expect(StatusCode::OK);
    let refused = signin(&app, &agent).await;
    assert_eq!(assert_limited(&refused), 60);
    assert!(
        refused
            .header("ratelimit-policy")
            .unwrap()
            .starts_with(r#""issuance-per-minute";q=1;w=60"#)
    );

    // Raised above the server's default: takes effect at the next token, with a fresh
    // count under the new limit.
    app.patch_as(
        &owner.token,
        &path,
        &json!({"limits": {"per_minute": 10, "per_hour": 100}}),
    )
    .await
    .expect(StatusCode::OK);
    let got = app.get_as(&owner.token, &path).await;
    assert_eq!(
        got.expect(StatusCode::OK)["limits"],
        json!({"per_minute": 10, "per_hour": 100})
    );
    for _ in 0..10 {
        signin(&app, &agent).await.expect(StatusCode::OK);
    }
    assert_limited(&signin(&app, &agent).await);

    // `null` returns to the server's 3 a minute; an absent field is kept.
    let reply = app
        .patch_as(
            &owner.token,
            &path,
            &json!({"limits": {"per_minute": null}}),
        )
        .await;
    assert_eq!(
        reply.expect(StatusCode::OK)["limits"],
        json!({"per_minute": null, "per_hour": 100})
    );
    advance(&app, 3600);
    for _ in 0..3 {
        signin(&app, &agent).await.expect(StatusCode::OK);
    }
    assert_limited(&signin(&app, &agent).await);
}

#[tokio::test]
async fn limits_are_given_at_creation_and_kept_by_a_rotation() {
    let app = spawn_app_with(|s| real_limits(s, 600)).await;
    let owner = app.session(&app.owner).await;
    let created = app
        .post_as(
            &owner.token,
            "/v1/default/api_keys",
            &json!({"name": "agent", "limits": {"per_minute": 2, "per_hour": 50}}),
        )
        .await;
    let body = created.expect(StatusCode::CREATED).clone();
    assert_eq!(body["limits"], json!({"per_minute": 2, "per_hour": 50}));
    let key_id = body["api_key_id"].as_str().unwrap();
    let rotated = app
        .post_as(
            &owner.token,
            &format!("/v1/default/api_keys/{key_id}/rotate"),
            &json!({"grace_period": "1h"}),
        )
        .await;
    let rotated = rotated.expect(StatusCode::CREATED).clone();
    assert_eq!(rotated["limits"], json!({"per_minute": 2, "per_hour": 50}));
    let creds = Credentials {
        org: "default".into(),
        user_id: app.owner.user_id.clone(),
        api_key_id: rotated["api_key_id"].as_str().unwrap().into(),
        api_key: rotated["api_key"].as_str().unwrap().into(),
    };
    signin(&app, &creds).await.expect(StatusCode::OK);
    signin(&app, &creds).await.expect(StatusCode::OK);
    assert_eq!(assert_limited(&signin(&app, &creds).await), 30);
}

/// The attacker's test: whoever a limit contains cannot lift it.
#[tokio::test]
async fn a_member_cannot_raise_its_own_limit_nor_an_admin_an_owners() {
    let app = spawn_app_with(|s| real_limits(s, 600)).await;
    let member = app.create_user("default", Role::Member).await;
    let member_session = app.session(&member).await;
    let admin = app.create_user("default", Role::Admin).await;
    let admin_session = app.session(&admin).await;
    let raise = json!({"limits": {"per_minute": 1_000_000, "per_hour": 60_000_000}});

    app.patch_as(&member_session.token, &key_path(&member), &raise)
        .await
        .expect_error(StatusCode::FORBIDDEN, "permission_denied");
    app.post_as(
        &member_session.token,
        "/v1/default/api_keys",
        &json!({"name": "mine", "limits": {"per_minute": 1_000_000}}),
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "permission_denied");
    // Without limits the member still creates its own keys.
    app.post_as(
        &member_session.token,
        "/v1/default/api_keys",
        &json!({"name": "mine"}),
    )
    .await
    .expect(StatusCode::CREATED);
    app.patch_as(&admin_session.token, &key_path(&app.owner), &raise)
        .await
        .expect_error(StatusCode::FORBIDDEN, "permission_denied");
    // An admin manages a member's key and its own.
    app.patch_as(&admin_session.token, &key_path(&member), &raise)
        .await
        .expect(StatusCode::OK);
    app.patch_as(&admin_session.token, &key_path(&admin), &raise)
        .await
        .expect(StatusCode::OK);
    // Nothing the member tried was written.
    let owner = app.session(&app.owner).await;
    let key = app.get_as(&owner.token, &key_path(&app.owner)).await;
    assert_eq!(
        key.expect(StatusCode::OK)["limits"],
        json!({"per_minute": null, "per_hour": null})
    );
}

#[tokio::test]
async fn bad_limits_are_400_invalid_request_and_unknown_keys_404() {
    let app = spawn_app_with(|s| real_limits(s, 600)).await;
    let owner = app.session(&app.owner).await;
    let path = key_path(&app.owner);
    for body in [
        json!({"limits": {"per_minute": 0}}),
        json!({"limits": {"per_minute": -5}}),
        json!({"limits": {"per_minute": 1_000_001}}),
        json!({"limits": {"per_hour": 60_000_001}}),
        json!({"limits": {"per_minute": "ten"}}),
        json!({"limits": {"per_day": 5}}),
        json!({"limits": 5}),
        json!({"name": "renamed"}),
        json!({}),
    ] {
        let reply = app.patch_as(&owner.token, &path, &body).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.body
        );
        assert_eq!(
            crate::helpers::error_code(&reply.body),
            "invalid_request",
            "{body}"
        );
    }
    app.post_as(
        &owner.token,
        "/v1/default/api_keys",
        &json!({"name": "x", "limits": {"per_hour": 0}}),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    app.patch_as(
        &owner.token,
        "/v1/default/api_keys/key_doesnotexist",
        &json!({"limits": {"per_minute": 5}}),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");
}
