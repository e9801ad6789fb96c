//! Idempotency-Key on creating POSTs.

use super::*;

// ---------------------------------------------------------------------------------------
// 7. Idempotency
// ---------------------------------------------------------------------------------------

async fn post_idempotent(app: &TestApp, token: &str, path: &str, key: &str, body: &str) -> Reply {
    app.send(
        app.admin_request(Method::POST, path, token)
            .header("idempotency-key", key)
            .header("content-type", "application/json")
            .body(body.to_owned()),
    )
    .await
}

#[tokio::test]
async fn idempotency_compares_bodies_as_json_not_as_text() {
    let app = spawn_app().await;
    let boss = app.session(&app.owner).await;
    let body = r#"{"name":"idem","duration":"30d","scopes":["keys:read","keys:write"]}"#;
    let first = post_idempotent(&app, &boss.token, KEYS, "idem-json", body).await;
    first.expect(StatusCode::CREATED);
    let before = key_count(&app, &boss.token).await;
    // The same body, whitespace and member order aside.
    let same = r#"{ "scopes": ["keys:read", "keys:write"],
                   "duration": "30d", "name": "idem" }"#;
    let second = post_idempotent(&app, &boss.token, KEYS, "idem-json", same).await;
    second.expect_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(
        second.body["error"]["api_key_id"],
        first.str("api_key_id").as_str()
    );
    assert_eq!(key_count(&app, &boss.token).await, before, "no second key");

    let user = r#"{"email":"order@default.test","name":"Order","role":"member"}"#;
    let first = post_idempotent(&app, &boss.token, USERS, "user-json", user).await;
    first.expect(StatusCode::CREATED);
    let reordered = r#"{"role": "member", "name": "Order", "email": "order@default.test"}"#;
    let second = post_idempotent(&app, &boss.token, USERS, "user-json", reordered).await;
    second.expect(StatusCode::CREATED);
    assert_eq!(second.str("user_id"), first.str("user_id"));
    assert_eq!(
        second.header("idempotent-replayed").as_deref(),
        Some("true")
    );
}

#[tokio::test]
async fn idempotency_keys_replay_users_and_refuse_to_repeat_keys() {
    let app = spawn_app().await;
    let boss = app.session(&app.owner).await;

    let body = r#"{"name":"idem","duration":"30d","scopes":["keys:read","keys:write"]}"#;
    let first = post_idempotent(&app, &boss.token, KEYS, "idem-1", body).await;
    first.expect(StatusCode::CREATED);
    let secret = first.str("api_key");
    let key_id = first.str("api_key_id");
    let before = key_count(&app, &boss.token).await;

    // The same request again.
    let second = post_idempotent(&app, &boss.token, KEYS, "idem-1", body).await;
    second.expect_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(second.body["error"]["api_key_id"], key_id.as_str());
    assert!(!second.body.to_string().contains(&secret));
    assert_eq!(key_count(&app, &boss.token).await, before, "no second key");

    let other = r#"{"name":"idem-other"}"#;
    post_idempotent(&app, &boss.token, KEYS, "idem-1", other)
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused");
    post_idempotent(
        &app,
        &boss.token,
        USERS,
        "idem-1",
        r#"{"email":"i@default.test"}"#,
    )
    .await
    .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused");
    assert_eq!(key_count(&app, &boss.token).await, before);

    // Rotation too.
    let rotate = rotate_path(&key_id);
    let rotated = post_idempotent(
        &app,
        &boss.token,
        &rotate,
        "rot-1",
        r#"{"grace_period":"1h"}"#,
    )
    .await;
    rotated.expect(StatusCode::CREATED);
    let again = post_idempotent(
        &app,
        &boss.token,
        &rotate,
        "rot-1",
        r#"{"grace_period":"1h"}"#,
    )
    .await;
    again.expect_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(
        again.body["error"]["api_key_id"],
        rotated.str("api_key_id").as_str()
    );
    assert_eq!(key_count(&app, &boss.token).await, before + 1);

    // Keys are per caller: another user's same key and body is a new request.
    let admin = app
        .session(&app.create_user("default", Role::Admin).await)
        .await;
    let theirs = post_idempotent(&app, &admin.token, KEYS, "idem-1", body).await;
    theirs.expect(StatusCode::CREATED);
    assert_ne!(theirs.str("api_key_id"), key_id);

    // Users: the original response again.
    let user_body = r#"{"email":"idem@default.test","name":"Idem"}"#;
    let first = post_idempotent(&app, &boss.token, USERS, "user-1", user_body).await;
    first.expect(StatusCode::CREATED);
    assert_ne!(first.header("idempotent-replayed").as_deref(), Some("true"));
    let users_before = app.list_all(&boss.token, USERS, 200).await.len();
    let second = post_idempotent(&app, &boss.token, USERS, "user-1", user_body).await;
    second.expect(StatusCode::CREATED);
    assert_eq!(second.str("user_id"), first.str("user_id"));
    assert_eq!(second.body, first.body);
    assert_eq!(
        second.header("idempotent-replayed").as_deref(),
        Some("true")
    );
    assert_eq!(
        app.list_all(&boss.token, USERS, 200).await.len(),
        users_before
    );

    // A request that failed is not remembered.
    post_idempotent(
        &app,
        &boss.token,
        USERS,
        "user-2",
        r#"{"email":"not-an-email"}"#,
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    post_idempotent(
        &app,
        &boss.token,
        USERS,
        "user-2",
        r#"{"email":"fixed@default.test"}"#,
    )
    .await
    .expect(StatusCode::CREATED);

    // The key itself is checked.
    let too_long = "k".repeat(256);
    post_idempotent(
        &app,
        &boss.token,
        USERS,
        &too_long,
        r#"{"email":"long@default.test"}"#,
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
}
