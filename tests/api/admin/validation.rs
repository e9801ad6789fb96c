//! Bad input: 400s naming the field, never a 500.

use super::*;

// ---------------------------------------------------------------------------------------
// 8. Validation
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field_and_never_a_500() {
    let app = spawn_app().await;
    let boss = app.session(&app.owner).await;
    let t = boss.token.as_str();
    let an_hour_ago = rfc3339(app.now() - chrono::Duration::hours(1));

    // (name, path, body, the field the message must name)
    #[rustfmt::skip]
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        ("unknown field", KEYS, json!({"name": "x", "colour": "red"}), "colour"),
        ("unknown field on users", USERS, json!({"email": email(), "shoe_size": 42}), "shoe_size"),
        ("no name", KEYS, json!({}), "name"),
        ("empty name", KEYS, json!({"name": ""}), "name"),
        ("name of 201 characters", KEYS, json!({"name": "n".repeat(201)}), "name"),
        ("name not a string", KEYS, json!({"name": 7}), "name"),
        ("unknown scope", KEYS, json!({"name": "x", "scopes": ["keys:read", "root"]}), "scope"),
        ("duration too long", KEYS, json!({"name": "x", "duration": "400d"}), "duration"),
        ("duration nonsense", KEYS, json!({"name": "x", "duration": "forever"}), "duration"),
        ("duration and expires_at", KEYS, json!({"name": "x", "duration": "30d", "expires_at": rfc3339(app.now() + chrono::Duration::days(3))}), "expires_at"),
        ("expires_at in the past", KEYS, json!({"name": "x", "expires_at": an_hour_ago}), "expires_at"),
        ("expires_at not a time", KEYS, json!({"name": "x", "expires_at": "tomorrow"}), "expires_at"),
        ("unknown environment", KEYS, json!({"name": "x", "environment": "prod"}), "environment"),
        ("bad email", USERS, json!({"email": "not-an-email"}), "email"),
        ("no email", USERS, json!({"name": "Nobody"}), "email"),
        ("unknown role", USERS, json!({"email": email(), "role": "root"}), "role"),
        ("user name of 201 characters", USERS, json!({"email": email(), "name": "n".repeat(201)}), "name"),
    ];
    // Every case runs; the failures are reported together.
    let mut problems = Vec::new();
    for (name, path, body, field) in &cases {
        let r = app.post_as(t, path, body).await;
        if r.status != StatusCode::BAD_REQUEST || error_code(&r.body) != "invalid_request" {
            problems.push(format!(
                "{name}: want 400 invalid_request, got {} {}",
                r.status, r.body
            ));
        } else if !r.message().contains(field) {
            problems.push(format!(
                "{name}: the message does not name `{field}`: {}",
                r.message()
            ));
        }
    }

    // Rotation and updates are checked too.
    let key = app.create_key("default", &app.owner.user_id).await;
    for (body, field) in [
        (json!({"grace_period": "8d"}), "grace_period"),
        (json!({"grace_period": "soon"}), "grace_period"),
        (json!({"grace_period": "1h", "extra": 1}), "extra"),
    ] {
        let r = app.post_as(t, &rotate_path(&key.api_key_id), &body).await;
        if r.status != StatusCode::BAD_REQUEST || error_code(&r.body) != "invalid_request" {
            problems.push(format!(
                "rotate {body}: want 400 invalid_request, got {} {}",
                r.status, r.body
            ));
        } else if !r.message().contains(field) {
            problems.push(format!(
                "rotate {body}: the message does not name `{field}`: {}",
                r.message()
            ));
        }
    }
    let member = app.create_user("default", Role::Member).await;
    for (body, field) in [
        (json!({"role": "root"}), "role"),
        (json!({"disabled": "yes"}), "disabled"),
        (json!({"email": "x@default.test"}), "email"),
    ] {
        let r = app.patch_as(t, &user_path(&member.user_id), &body).await;
        if r.status != StatusCode::BAD_REQUEST || error_code(&r.body) != "invalid_request" {
            problems.push(format!(
                "patch {body}: want 400 invalid_request, got {} {}",
                r.status, r.body
            ));
        } else if !r.message().contains(field) {
            problems.push(format!(
                "patch {body}: the message does not name `{field}`: {}",
                r.message()
            ));
        }
    }

    // Bad JSON, another content type, too large.
    let r = app
        .send(
            app.admin_request(Method::POST, KEYS, t)
                .header("content-type", "application/json")
                .body(r#"{"name": "x""#),
        )
        .await;
    r.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    let r = app
        .send(
            app.admin_request(Method::POST, KEYS, t)
                .header("content-type", "text/plain")
                .body(r#"{"name": "x"}"#),
        )
        .await;
    r.expect_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid_request");
    let r = app
        .send(
            app.admin_request(Method::POST, USERS, t)
                .form(&[("email", "form@default.test")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.body);
    let r = app
        .post_as(
            t,
            KEYS,
            &json!({"name": "x", "padding": "p".repeat(70 * 1024)}),
        )
        .await;
    r.expect_error(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request");

    // What is accepted.
    for (duration, seconds) in [
        ("P30D", 30 * 86_400),
        ("P2W", 14 * 86_400),
        ("PT12H", 12 * 3600),
        ("12h", 12 * 3600),
        ("7d", 7 * 86_400),
    ] {
        let r = app
            .post_as(t, KEYS, &json!({"name": "ok", "duration": duration}))
            .await;
        r.expect(StatusCode::CREATED);
        let lifetime = time(&r.body["expires_at"]) - time(&r.body["created_at"]);
        assert_eq!(lifetime.num_seconds(), seconds, "{duration}");
    }
    // A whole second: the API need not show milliseconds.
    let at = DateTime::from_timestamp(app.now().timestamp() + 3 * 86_400, 0).unwrap();
    let r = app
        .post_as(t, KEYS, &json!({"name": "ok", "expires_at": rfc3339(at)}))
        .await;
    r.expect(StatusCode::CREATED);
    assert_eq!(time(&r.body["expires_at"]), at);
    let r = app
        .post_as(t, KEYS, &json!({"name": "ok", "environment": "test"}))
        .await;
    r.expect(StatusCode::CREATED);
    assert!(r.str("api_key").starts_with("ak_test_"));
    assert_eq!(r.body["environment"], "test");
    let r = app
        .post_as(t, KEYS, &json!({"name": "n".repeat(200)}))
        .await;
    r.expect(StatusCode::CREATED);

    // Unknown ids.
    app.get_as(t, &key_path("key_doesnotexist"))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.delete_as(t, &key_path("key_doesnotexist"))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.get_as(t, &user_path("usr_doesnotexist"))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.delete_as(t, &session_path("ses_doesnotexist"))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    let r = app
        .post_as(
            t,
            KEYS,
            &json!({"name": "x", "user_id": "usr_doesnotexist"}),
        )
        .await;
    match r.status {
        StatusCode::NOT_FOUND => r.expect_error(StatusCode::NOT_FOUND, "not_found"),
        _ => r.expect_error(StatusCode::BAD_REQUEST, "invalid_request"),
    };

    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
