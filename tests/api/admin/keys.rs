//! Scopes, the key lifecycle, the own-key and last-owner rules, and pagination of keys.

use super::*;

// ---------------------------------------------------------------------------------------
// 2. Scopes
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_token_without_the_scope_gets_insufficient_scope_with_a_challenge() {
    let app = spawn_app().await;
    let boss = app.session(&app.owner).await;
    let created = app
        .post_as(
            &boss.token,
            KEYS,
            &json!({"name": "read-only", "scopes": ["keys:read"]}),
        )
        .await;
    created.expect(StatusCode::CREATED);
    assert_eq!(created.body["scopes"], json!(["keys:read"]));
    let ro = app.session(&app.creds_from(&created)).await;

    let denied = app.post_as(&ro.token, KEYS, &json!({"name": "x"})).await;
    denied.expect_error(StatusCode::FORBIDDEN, "insufficient_scope");
    let challenge = denied.header("www-authenticate").expect("a challenge");
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"keys:write\""), "{challenge}");

    let denied = app.get_as(&ro.token, USERS).await;
    denied.expect_error(StatusCode::FORBIDDEN, "insufficient_scope");
    let challenge = denied.header("www-authenticate").expect("a challenge");
    assert!(challenge.contains("scope=\"users:read\""), "{challenge}");

    let denied = app.get_as(&ro.token, AUDIT).await;
    denied.expect_error(StatusCode::FORBIDDEN, "insufficient_scope");
    assert!(
        denied
            .header("www-authenticate")
            .unwrap()
            .contains("scope=\"audit:read\"")
    );

    // Still allowed: what keys:read covers.
    let keys = app.list_page(&ro.token, KEYS).await;
    assert!(has(&keys, "api_key_id", &app.owner.api_key_id));
    app.get_as(&ro.token, &key_path(&app.owner.api_key_id))
        .await
        .expect(StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// 3. The key lifecycle
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_key_is_created_used_rotated_with_grace_and_revoked() {
    let app = spawn_app().await;
    let boss = app.session(&app.owner).await;

    let created = app
        .post_as(&boss.token, KEYS, &json!({"name": "lifecycle"}))
        .await;
    created.expect(StatusCode::CREATED);
    assert!(created.str("api_key").starts_with("ak_live_"));
    assert!(created.str("api_key_id").starts_with("key_"));
    assert_eq!(created.body["user_id"], app.owner.user_id.as_str());
    assert_eq!(created.body["name"], "lifecycle");
    assert_eq!(created.body["environment"], "live");
    assert_eq!(created.body["status"], "active");
    assert!(created.body["revoked_at"].is_null());
    assert!(created.body["last_used_at"].is_null());
    let lifetime = time(&created.body["expires_at"]) - time(&created.body["created_at"]);
    assert_eq!(lifetime, chrono::Duration::days(90), "the default duration");
    let old = app.creds_from(&created);
    let old_session = app.session(&old).await;

    // The secret is shown at creation only.
    let got = app.get_as(&boss.token, &key_path(&old.api_key_id)).await;
    got.expect(StatusCode::OK);
    assert!(got.body.get("api_key").is_none(), "{}", got.body);
    assert_eq!(got.body["name"], "lifecycle");
    assert!(
        got.body["last_used_at"].is_string(),
        "the sign-in set last_used_at: {}",
        got.body
    );
    for k in app.list_all(&boss.token, KEYS, 50).await {
        assert!(k.get("api_key").is_none(), "{k}");
    }
    assert!(!got.body.to_string().contains(&old.api_key));

    // Rotation with a grace period.
    let rotated = app
        .post_as(
            &boss.token,
            &rotate_path(&old.api_key_id),
            &json!({"grace_period": "1h"}),
        )
        .await;
    rotated.expect(StatusCode::CREATED);
    let new = app.creds_from(&rotated);
    assert_ne!(new.api_key_id, old.api_key_id);
    assert_ne!(new.api_key, old.api_key);
    assert!(new.api_key.starts_with("ak_live_"));
    assert_eq!(rotated.body["name"], "lifecycle");
    assert_eq!(rotated.body["user_id"], app.owner.user_id.as_str());
    assert_eq!(rotated.body["scopes"], created.body["scopes"]);
    assert_eq!(rotated.body["environment"], "live");
    assert_eq!(
        time(&rotated.body["expires_at"]) - time(&rotated.body["created_at"]),
        lifetime,
        "the same lifetime"
    );

    // In its grace period the old key is active and shows when it stops.
    let got = app.get_as(&boss.token, &key_path(&old.api_key_id)).await;
    got.expect(StatusCode::OK);
    assert_eq!(got.body["status"], "active", "{}", got.body);
    let stops = time(&got.body["revoked_at"]) - (app.now() + chrono::Duration::hours(1));
    assert!(
        stops.abs() < chrono::Duration::seconds(1),
        "revoked_at is the end of the grace period: {}",
        got.body
    );

    let during_grace = app.session(&old).await;
    app.session(&new).await;

    app.clock.advance(Duration::from_secs(3600 + 1));
    signin_fails(&app, &old, StatusCode::UNAUTHORIZED, "revoked_api_key").await;
    let (status, error) = app
        .refresh_grant("default", &during_grace.refresh_token, None)
        .await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant"),
        "the old key's sessions end with its grace period"
    );
    let (status, error) = app
        .refresh_grant("default", &old_session.refresh_token, None)
        .await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    let new_session = app.session(&new).await;
    let (status, error) = app
        .refresh_grant("default", &new_session.refresh_token, Some(&new))
        .await;
    assert_eq!(status, StatusCode::OK, "{error}");
    let new_session = app.session(&new).await;

    let boss = app.session(&app.owner).await;
    let got = app.get_as(&boss.token, &key_path(&old.api_key_id)).await;
    assert_eq!(got.expect(StatusCode::OK)["status"], "revoked");

    // Revocation: at once.
    app.delete_as(&boss.token, &key_path(&new.api_key_id))
        .await
        .expect(StatusCode::NO_CONTENT);
    signin_fails(&app, &new, StatusCode::UNAUTHORIZED, "revoked_api_key").await;
    let (status, error) = app
        .refresh_grant("default", &new_session.refresh_token, None)
        .await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    app.clock.advance(Duration::from_secs(5));
    token_rejected(&app, &new_session.token).await;

    let got = app.get_as(&boss.token, &key_path(&new.api_key_id)).await;
    assert_eq!(got.expect(StatusCode::OK)["status"], "revoked");
    assert!(got.body["revoked_at"].is_string());
    let revoked = app
        .list_all(&boss.token, &format!("{KEYS}?status=revoked"), 50)
        .await;
    assert!(has(&revoked, "api_key_id", &new.api_key_id));
    assert!(has(&revoked, "api_key_id", &old.api_key_id));
    assert!(revoked.iter().all(|k| k["status"] == "revoked"));

    // Revoking again is 204 again; a revoked key cannot be rotated.
    app.delete_as(&boss.token, &key_path(&new.api_key_id))
        .await
        .expect(StatusCode::NO_CONTENT);
    app.post_as(
        &boss.token,
        &rotate_path(&new.api_key_id),
        &json!({"grace_period": "1h"}),
    )
    .await
    .expect_error(StatusCode::CONFLICT, "conflict");
}

// ---------------------------------------------------------------------------------------
// 4. Own key, own role, last owner
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn nobody_revokes_their_own_key_in_use_nor_demotes_the_last_owner() {
    let app = spawn_app().await;
    let boss = app.session(&app.owner).await;
    let own_key = key_path(&app.owner.api_key_id);

    // The key the request authenticated with.
    app.delete_as(&boss.token, &own_key)
        .await
        .expect_error(StatusCode::FORBIDDEN, "permission_denied");
    app.post_as(
        &boss.token,
        &rotate_path(&app.owner.api_key_id),
        &json!({"grace_period": "0s"}),
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "permission_denied");
    app.send(app.admin_request(
        Method::POST,
        &rotate_path(&app.owner.api_key_id),
        &boss.token,
    ))
    .await
    .expect_error(StatusCode::FORBIDDEN, "permission_denied");
    let got = app.get_as(&boss.token, &own_key).await;
    assert_eq!(got.expect(StatusCode::OK)["status"], "active");
    assert!(got.body["revoked_at"].is_null(), "{}", got.body);
    app.signin(&app.owner).await;
    token_accepted(&app, &boss.token).await;

    // A second owner, demoted by the first.
    let b = app
        .post_as(
            &boss.token,
            USERS,
            &json!({"email": "second-owner@default.test", "role": "owner"}),
        )
        .await;
    b.expect(StatusCode::CREATED);
    let b_id = b.str("user_id");
    let b_session = app.session(&app.create_key("default", &b_id).await).await;
    app.get_as(&b_session.token, AUDIT)
        .await
        .expect(StatusCode::OK);
    let demoted = app
        .patch_as(&boss.token, &user_path(&b_id), &json!({"role": "member"}))
        .await;
    assert_eq!(demoted.expect(StatusCode::OK)["role"], "member");
    // The demotion ends B's sessions, and a new one has only a member's rights.
    app.get_as(&b_session.token, AUDIT)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
    let b_session = app.session(&b_session.creds).await;
    app.get_as(&b_session.token, AUDIT)
        .await
        .expect_error(StatusCode::FORBIDDEN, "permission_denied");
    // Nobody raises their own role.
    app.patch_as(
        &b_session.token,
        &user_path(&b_id),
        &json!({"role": "owner"}),
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "permission_denied");

    // An admin cannot touch an owner at all.
    let admin = app
        .session(&app.create_user("default", Role::Admin).await)
        .await;
    let a_path = user_path(&app.owner.user_id);
    for body in [
        json!({"role": "member"}),
        json!({"name": "Renamed"}),
        json!({"disabled": true}),
    ] {
        app.patch_as(&admin.token, &a_path, &body)
            .await
            .expect_error(StatusCode::FORBIDDEN, "permission_denied");
    }
    app.delete_as(&admin.token, &a_path)
        .await
        .expect_error(StatusCode::FORBIDDEN, "permission_denied");

    // The last owner lowering their own role is allowed by the self rule, but they are
    // the last owner.
    app.patch_as(&boss.token, &a_path, &json!({"role": "admin"}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    app.patch_as(&boss.token, &a_path, &json!({"role": "member"}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    // Disabling or deleting yourself is forbidden outright.
    app.patch_as(&boss.token, &a_path, &json!({"disabled": true}))
        .await
        .expect_error(StatusCode::FORBIDDEN, "permission_denied");
    app.delete_as(&boss.token, &a_path)
        .await
        .expect_error(StatusCode::FORBIDDEN, "permission_denied");

    let me = app.get_as(&boss.token, &a_path).await;
    me.expect(StatusCode::OK);
    assert_eq!(me.body["role"], "owner");
    assert_eq!(me.body["disabled"], false);
    assert!(me.body["deleted_at"].is_null());
    token_accepted(&app, &boss.token).await;
}

// ---------------------------------------------------------------------------------------
// 5. Pagination
// ---------------------------------------------------------------------------------------

/// Walks `GET /api_keys?limit=37`, returning every id in order.
async fn walk_keys(app: &TestApp, token: &str) -> Vec<String> {
    let keys = app.list_all(token, KEYS, 37).await;
    let times: Vec<DateTime<Utc>> = keys.iter().map(|k| time(&k["created_at"])).collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    ids(&keys, "api_key_id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cursor_walk_returns_every_key_once_even_while_keys_are_created() {
    let app = crate::helpers::spawn_app_with(|s| s.server.workers = Some(4)).await;
    let mut existing = vec![app.owner.api_key_id.clone()];
    for i in 0..250 {
        // Some keys share a creation time, so the id must break ties.
        if i % 7 == 0 {
            app.clock.advance(Duration::from_millis(1));
        }
        existing.push(
            app.create_key("default", &app.owner.user_id)
                .await
                .api_key_id,
        );
    }
    let existing: HashSet<String> = existing.into_iter().collect();
    assert_eq!(existing.len(), 251);
    let boss = app.session(&app.owner).await;

    let walked = walk_keys(&app, &boss.token).await;
    assert_eq!(unique(&walked), existing);

    // The same walk while keys are created over HTTP on a multi-worker server: between
    // every two pages one key is created, and another concurrently with each later page's
    // request. Keys are listed newest first and each new key is newer than every key the
    // walk started with, so the walk returns exactly those 251: none twice, none missed,
    // none of the new ones.
    let create = || async {
        app.clock.advance(Duration::from_millis(1));
        let reply = app
            .post_as(&boss.token, KEYS, &json!({"name": "during the walk"}))
            .await;
        reply.expect(StatusCode::CREATED);
        reply.str("api_key_id")
    };
    let page = |cursor: Option<String>| async {
        let mut req = app.admin_request(Method::GET, &format!("{KEYS}?limit=37"), &boss.token);
        if let Some(c) = cursor {
            req = req.query(&[("cursor", c)]);
        }
        let reply = app.send(req).await;
        reply.expect(StatusCode::OK);
        let data = ids(reply.body["data"].as_array().unwrap(), "api_key_id");
        let next = reply.body["next_cursor"].as_str().map(str::to_owned);
        (data, next)
    };
    let (mut walked, mut cursor) = page(None).await;
    let mut made = Vec::new();
    let mut between_pages = 0;
    while cursor.is_some() {
        made.push(create().await);
        between_pages += 1;
        let ((data, next), concurrent) = tokio::join!(page(cursor.take()), create());
        made.push(concurrent);
        walked.extend(data);
        cursor = next;
    }
    assert!(
        between_pages > 0,
        "keys were created while the walk was under way"
    );
    let seen = unique(&walked);
    assert_eq!(
        seen.len(),
        existing.len(),
        "missing: {:?}; new: {:?}",
        existing.difference(&seen).collect::<Vec<_>>(),
        seen.difference(&existing).collect::<Vec<_>>()
    );
    assert_eq!(seen, existing);
    let made = unique(&made);
    assert_eq!(
        unique(&walk_keys(&app, &boss.token).await),
        existing.union(&made).cloned().collect(),
        "a walk after the creations sees every key once"
    );

    for query in [
        "limit=0",
        "limit=201",
        "limit=-1",
        "limit=ten",
        "cursor=garbage",
    ] {
        app.get_as(&boss.token, &format!("{KEYS}?{query}"))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let page = app.get_as(&boss.token, &format!("{KEYS}?limit=200")).await;
    assert_eq!(
        page.expect(StatusCode::OK)["data"]
            .as_array()
            .unwrap()
            .len(),
        200
    );
    let page = app.get_as(&boss.token, KEYS).await;
    assert_eq!(
        page.expect(StatusCode::OK)["data"]
            .as_array()
            .unwrap()
            .len(),
        50,
        "the default limit"
    );
}

#[tokio::test]
async fn a_dpop_bound_token_without_the_scope_gets_a_dpop_challenge() {
    use crate::dpop_key::DpopKey;

    let app = spawn_app().await;
    let ro = app
        .create_key_for("default", &app.owner.user_id, None)
        .await;
    let boss = app.session(&app.owner).await;
    // A read-only key, made over HTTP.
    let created = app
        .post_as(
            &boss.token,
            KEYS,
            &json!({"name": "dpop-ro", "scopes": ["keys:read"]}),
        )
        .await;
    created.expect(StatusCode::CREATED);
    let ro = Credentials {
        api_key_id: created.str("api_key_id"),
        api_key: created.str("api_key"),
        ..ro
    };
    let key = DpopKey::es256();
    let signin = "/v1/default/user/signin_with_api_key";
    let res = app
        .client
        .post(app.url(signin))
        .header("x-api-key", &ro.api_key)
        .header("x-api-key-id", &ro.api_key_id)
        .header("x-user-id", &ro.user_id)
        .header("dpop", key.proof(&app, "POST", signin, None))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let token = body["id_token"].as_str().unwrap().to_owned();

    let denied = app
        .send(
            app.client
                .post(app.url(KEYS))
                .header("authorization", format!("DPoP {token}"))
                .header("dpop", key.proof(&app, "POST", KEYS, Some(&token)))
                .json(&json!({"name": "x"})),
        )
        .await;
    denied.expect_error(StatusCode::FORBIDDEN, "insufficient_scope");
    let challenge = denied.header("www-authenticate").expect("a challenge");
    assert!(challenge.starts_with("DPoP "), "{challenge}");
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"keys:write\""), "{challenge}");

    let listed = app
        .send(
            app.client
                .get(app.url(KEYS))
                .header("authorization", format!("DPoP {token}"))
                .header("dpop", key.proof(&app, "GET", KEYS, Some(&token))),
        )
        .await;
    listed.expect(StatusCode::OK);
    // Bound tokens are listed as such.
    let sessions = app.list_all(&boss.token, SESSIONS, 50).await;
    let bound: Vec<_> = sessions
        .iter()
        .filter(|s| s["api_key_id"] == ro.api_key_id.as_str())
        .collect();
    assert_eq!(bound.len(), 1);
    assert_eq!(bound[0]["dpop_bound"], true);
}

#[tokio::test]
async fn a_new_key_gets_the_callers_scopes_by_default_and_never_more() {
    let app = spawn_app().await;
    let boss = app.session(&app.owner).await;
    let created = app
        .post_as(
            &boss.token,
            KEYS,
            &json!({"name": "rw", "scopes": ["keys:write", "keys:read"]}),
        )
        .await;
    created.expect(StatusCode::CREATED);
    let rw = app.session(&app.creds_from(&created)).await;

    let child = app
        .post_as(&rw.token, KEYS, &json!({"name": "child"}))
        .await;
    child.expect(StatusCode::CREATED);
    let scopes: HashSet<&str> = child.body["scopes"]
        .as_array()
        .expect("scopes")
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(scopes, HashSet::from(["keys:read", "keys:write"]));

    let before = key_count(&app, &boss.token).await;
    let more = app
        .post_as(
            &rw.token,
            KEYS,
            &json!({"name": "escalate", "scopes": ["keys:read", "users:write"]}),
        )
        .await;
    // docs/admin-api.md: a scope the caller does not hold cannot be granted.
    more.expect_error(StatusCode::FORBIDDEN, "permission_denied");
    assert_eq!(key_count(&app, &boss.token).await, before, "no key created");
}

#[tokio::test]
async fn keys_expire_and_record_their_last_use_at_most_once_a_minute() {
    let app = spawn_app().await;
    let boss = app.session(&app.owner).await;
    let created = app
        .post_as(
            &boss.token,
            KEYS,
            &json!({"name": "short", "duration": "1h"}),
        )
        .await;
    created.expect(StatusCode::CREATED);
    let short = app.creds_from(&created);

    let last_used = |reply: &Reply| time(&reply.body["last_used_at"]);
    app.signin(&short).await;
    let first_use = app.now();
    let got = app.get_as(&boss.token, &key_path(&short.api_key_id)).await;
    got.expect(StatusCode::OK);
    let t0 = last_used(&got);
    assert!(
        (t0 - first_use).abs() < chrono::Duration::seconds(1),
        "{}",
        got.body
    );

    // Within the minute: not written again.
    app.clock.advance(Duration::from_secs(30));
    app.signin(&short).await;
    let got = app.get_as(&boss.token, &key_path(&short.api_key_id)).await;
    assert_eq!(last_used(&got), t0, "{}", got.body);

    // After it: a client_credentials grant writes it.
    app.clock.advance(Duration::from_secs(31));
    let res = app
        .client
        .post(app.url("/v1/default/oauth/token"))
        .basic_auth(&short.api_key_id, Some(&short.api_key))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let got = app.get_as(&boss.token, &key_path(&short.api_key_id)).await;
    assert!(
        (last_used(&got) - app.now()).abs() < chrono::Duration::seconds(1),
        "{}",
        got.body
    );

    // Past its lifetime the key is expired.
    app.clock.advance(Duration::from_secs(3600));
    signin_fails(&app, &short, StatusCode::UNAUTHORIZED, "expired_api_key").await;
    let boss = app.session(&app.owner).await;
    let got = app.get_as(&boss.token, &key_path(&short.api_key_id)).await;
    assert_eq!(got.expect(StatusCode::OK)["status"], "expired");
    let expired = app
        .list_all(&boss.token, &format!("{KEYS}?status=expired"), 50)
        .await;
    assert_eq!(ids(&expired, "api_key_id"), vec![short.api_key_id.clone()]);
    let active = app
        .list_all(&boss.token, &format!("{KEYS}?status=active"), 50)
        .await;
    assert!(!has(&active, "api_key_id", &short.api_key_id));
    assert!(has(&active, "api_key_id", &app.owner.api_key_id));
    assert!(active.iter().all(|k| k["status"] == "active"));
}
