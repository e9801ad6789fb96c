//! Sessions and users, and what organizations see of each other.

use super::*;

// ---------------------------------------------------------------------------------------
// 9. Sessions
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_revoked_session_stops_refreshing_at_once_and_its_tokens_within_5s() {
    let app = spawn_app().await;
    let boss = app.session(&app.owner).await;
    let member = app.create_user("default", Role::Member).await;
    let first = app.session(&member).await;
    let second = app.session(&member).await;

    let listed = app
        .list_all(
            &boss.token,
            &format!("{SESSIONS}?user_id={}", member.user_id),
            50,
        )
        .await;
    assert_eq!(
        ids(&listed, "session_id")
            .into_iter()
            .collect::<HashSet<_>>(),
        [first.session_id.clone(), second.session_id.clone()]
            .into_iter()
            .collect()
    );
    for s in &listed {
        assert_eq!(s["user_id"], member.user_id.as_str());
        assert_eq!(s["api_key_id"], member.api_key_id.as_str());
        assert_eq!(s["status"], "active");
        assert_eq!(s["dpop_bound"], false);
        assert!(s["revoked_at"].is_null());
        assert!(s["actor_user_id"].is_null());
        assert!(s.get("refresh_token").is_none());
    }
    let by_key = app
        .list_all(
            &boss.token,
            &format!("{SESSIONS}?api_key_id={}", member.api_key_id),
            50,
        )
        .await;
    assert_eq!(by_key.len(), 2);

    app.delete_as(&boss.token, &session_path(&first.session_id))
        .await
        .expect(StatusCode::NO_CONTENT);
    let (status, error) = app
        .refresh_grant("default", &first.refresh_token, Some(&member))
        .await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    app.clock.advance(Duration::from_secs(5));
    token_rejected(&app, &first.token).await;
    // The other session is untouched.
    token_accepted(&app, &second.token).await;
    let (status, error) = app
        .refresh_grant("default", &second.refresh_token, Some(&member))
        .await;
    assert_eq!(status, StatusCode::OK, "{error}");

    let revoked = app
        .list_all(&boss.token, &format!("{SESSIONS}?status=revoked"), 50)
        .await;
    assert_eq!(ids(&revoked, "session_id"), vec![first.session_id.clone()]);
    assert_eq!(revoked[0]["status"], "revoked");
    assert!(revoked[0]["revoked_at"].is_string());
    let active = app
        .list_all(
            &boss.token,
            &format!("{SESSIONS}?status=active&user_id={}", member.user_id),
            50,
        )
        .await;
    assert_eq!(ids(&active, "session_id"), vec![second.session_id.clone()]);

    // Revoking the session you are using is a sign-out.
    let me = app.session(&member).await;
    app.delete_as(&me.token, &session_path(&me.session_id))
        .await
        .expect(StatusCode::NO_CONTENT);
    app.clock.advance(Duration::from_secs(5));
    token_rejected(&app, &me.token).await;
}

// ---------------------------------------------------------------------------------------
// 10. Users
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn users_are_created_disabled_and_deleted_with_their_sessions_and_keys() {
    let app = spawn_app().await;
    let boss = app.session(&app.owner).await;

    let created = app
        .post_as(
            &boss.token,
            USERS,
            &json!({"email": "Alice@Example.COM", "name": "Alice"}),
        )
        .await;
    created.expect(StatusCode::CREATED);
    let alice_id = created.str("user_id");
    assert!(alice_id.starts_with("usr_"));
    assert_eq!(created.body["org"], "default");
    assert_eq!(created.body["email"], "alice@example.com");
    assert_eq!(created.body["name"], "Alice");
    assert_eq!(created.body["role"], "member");
    assert_eq!(created.body["disabled"], false);
    assert!(created.body["deleted_at"].is_null());
    assert!(created.body["created_at"].is_string());
    assert!(created.body["updated_at"].is_string());
    let got = app.get_as(&boss.token, &user_path(&alice_id)).await;
    assert_eq!(got.expect(StatusCode::OK), &created.body);

    app.post_as(&boss.token, USERS, &json!({"email": "alice@example.com"}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    app.post_as(
        &boss.token,
        USERS,
        &json!({"email": "ALICE@example.com", "role": "admin"}),
    )
    .await
    .expect_error(StatusCode::CONFLICT, "conflict");

    let service = app
        .post_as(
            &boss.token,
            USERS,
            &json!({"email": "bot@default.test", "role": "service"}),
        )
        .await;
    assert_eq!(service.expect(StatusCode::CREATED)["role"], "service");
    let services = app
        .list_all(&boss.token, &format!("{USERS}?role=service"), 50)
        .await;
    assert_eq!(ids(&services, "user_id"), vec![service.str("user_id")]);

    // Disabling ends the user's sessions.
    let alice_key = app.create_key("default", &alice_id).await;
    let alice = app.session(&alice_key).await;
    token_accepted(&app, &alice.token).await;
    let disabled = app
        .patch_as(
            &boss.token,
            &user_path(&alice_id),
            &json!({"disabled": true}),
        )
        .await;
    disabled.expect(StatusCode::OK);
    assert_eq!(disabled.body["disabled"], true);
    assert_eq!(disabled.body["email"], "alice@example.com");
    let (status, error) = app
        .refresh_grant("default", &alice.refresh_token, None)
        .await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    app.clock.advance(Duration::from_secs(5));
    token_rejected(&app, &alice.token).await;
    signin_fails(
        &app,
        &alice_key,
        StatusCode::UNAUTHORIZED,
        "invalid_api_key",
    )
    .await;
    let disabled_list = app
        .list_all(&boss.token, &format!("{USERS}?status=disabled"), 50)
        .await;
    assert_eq!(ids(&disabled_list, "user_id"), vec![alice_id.clone()]);

    // Deletion: soft, idempotent, and it revokes the user's keys and ends their sessions.
    let bob = app.create_user("default", Role::Member).await;
    let bob_session = app.session(&bob).await;
    let boss = app.session(&app.owner).await;
    app.delete_as(&boss.token, &user_path(&bob.user_id))
        .await
        .expect(StatusCode::NO_CONTENT);
    app.delete_as(&boss.token, &user_path(&bob.user_id))
        .await
        .expect(StatusCode::NO_CONTENT);
    // The key is revoked with its owner (checked before the user, once the secret matched).
    signin_fails(&app, &bob, StatusCode::UNAUTHORIZED, "revoked_api_key").await;
    let key = app.get_as(&boss.token, &key_path(&bob.api_key_id)).await;
    key.expect(StatusCode::OK);
    assert_eq!(key.body["status"], "revoked", "{}", key.body);
    let (status, error) = app
        .refresh_grant("default", &bob_session.refresh_token, None)
        .await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    app.clock.advance(Duration::from_secs(5));
    token_rejected(&app, &bob_session.token).await;

    let gone = app.get_as(&boss.token, &user_path(&bob.user_id)).await;
    gone.expect(StatusCode::OK);
    assert!(gone.body["deleted_at"].is_string(), "{}", gone.body);
    assert_eq!(gone.body["disabled"], true);
    let deleted = app
        .list_all(&boss.token, &format!("{USERS}?status=deleted"), 50)
        .await;
    assert_eq!(ids(&deleted, "user_id"), vec![bob.user_id.clone()]);
    let bob_email = gone.str("email");
    app.post_as(&boss.token, USERS, &json!({"email": bob_email}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    app.patch_as(
        &boss.token,
        &user_path(&bob.user_id),
        &json!({"name": "Bob"}),
    )
    .await
    .expect_error(StatusCode::CONFLICT, "conflict");
}

// ---------------------------------------------------------------------------------------
// More of the contract: DPoP challenges, scopes of new keys, expiry, last use, isolation
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn organizations_see_nothing_of_each_other() {
    let app = spawn_app().await;
    let boss = app.session(&app.owner).await;
    let member = app.create_user("default", Role::Member).await;
    let member_session = app.session(&member).await;
    let acme = app.create_org("acme").await;
    let acme_boss = app.session(&acme).await;
    let t = acme_boss.token.as_str();

    for (method, path) in [
        (
            Method::GET,
            format!("/v1/acme/api_keys/{}", app.owner.api_key_id),
        ),
        (
            Method::DELETE,
            format!("/v1/acme/api_keys/{}", member.api_key_id),
        ),
        (Method::GET, format!("/v1/acme/users/{}", member.user_id)),
        (Method::DELETE, format!("/v1/acme/users/{}", member.user_id)),
        (
            Method::DELETE,
            format!("/v1/acme/sessions/{}", member_session.session_id),
        ),
    ] {
        app.call(method.clone(), &path, t, None)
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");
    }
    app.call(
        Method::PATCH,
        &format!("/v1/acme/users/{}", member.user_id),
        t,
        Some(&json!({"name": "Stolen"})),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.call(
        Method::POST,
        &format!("/v1/acme/api_keys/{}/rotate", member.api_key_id),
        t,
        Some(&json!({"grace_period": "1h"})),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");
    let foreign = app
        .post_as(
            t,
            "/v1/acme/api_keys",
            &json!({"name": "x", "user_id": member.user_id}),
        )
        .await;
    // Another organization's user is no user of this one.
    foreign.expect_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(signin_status(&app, &member).await, StatusCode::OK);
    token_accepted(&app, &member_session.token).await;

    // Exactly acme's own key, user and session (an empty list would prove nothing).
    let keys = app.list_all(t, "/v1/acme/api_keys", 200).await;
    assert_eq!(ids(&keys, "api_key_id"), vec![acme.api_key_id.clone()]);
    assert_eq!(keys[0]["user_id"], acme.user_id.as_str());
    let users = app.list_all(t, "/v1/acme/users", 200).await;
    assert_eq!(ids(&users, "user_id"), vec![acme.user_id.clone()]);
    let sessions = app.list_all(t, "/v1/acme/sessions", 200).await;
    assert_eq!(
        ids(&sessions, "session_id"),
        vec![acme_boss.session_id.clone()]
    );
    assert_eq!(sessions[0]["user_id"], acme.user_id.as_str());
    app.flush_audit().await;
    let events = app.list_all(t, "/v1/acme/audit_events", 200).await;
    assert!(
        !serde_json::to_string(&events)
            .unwrap()
            .contains(&member.user_id)
    );

    // A token of one organization is no token at another; no token is no token.
    let res = app.get_as(&boss.token, "/v1/acme/api_keys").await;
    res.expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
    let challenge = res.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
        "{challenge}"
    );
    let res = app.send(app.client.get(app.url(KEYS))).await;
    res.expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
    let challenge = res.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
        "{challenge}"
    );
}

#[tokio::test]
async fn users_and_sessions_walk_in_pages_too() {
    let app = spawn_app().await;
    let boss = app.session(&app.owner).await;
    let mut users = vec![app.owner.user_id.clone()];
    for i in 0..23 {
        if i % 5 == 0 {
            app.clock.advance(Duration::from_millis(1));
        }
        let r = app
            .post_as(&boss.token, USERS, &json!({"email": email()}))
            .await;
        users.push(
            r.expect(StatusCode::CREATED)["user_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let walked = app.list_all(&boss.token, USERS, 4).await;
    assert_eq!(
        unique(&ids(&walked, "user_id")),
        users.iter().cloned().collect()
    );
    let members = app
        .list_all(&boss.token, &format!("{USERS}?role=member"), 3)
        .await;
    assert_eq!(members.len(), 23);

    let member = app.create_user("default", Role::Member).await;
    let mut sessions = Vec::new();
    for _ in 0..11 {
        sessions.push(app.session(&member).await.session_id);
    }
    let walked = app
        .list_all(
            &boss.token,
            &format!("{SESSIONS}?user_id={}", member.user_id),
            4,
        )
        .await;
    assert_eq!(
        unique(&ids(&walked, "session_id")),
        sessions.iter().cloned().collect()
    );
    for path in [USERS, SESSIONS] {
        app.get_as(&boss.token, &format!("{path}?cursor=garbage"))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
        app.get_as(&boss.token, &format!("{path}?limit=0"))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
}
