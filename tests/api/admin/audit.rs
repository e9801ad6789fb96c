//! Audit events: one per action, filters and pagination.

use super::*;

// ---------------------------------------------------------------------------------------
// 6. Audit events
// ---------------------------------------------------------------------------------------

/// The one event the request `reply` left, asserting it is exactly one with `action`.
async fn the_event(app: &TestApp, reply: &Reply, action: &str) -> entity::audit_event::Model {
    let rid = reply.request_id();
    let events = app.audit_events("default").await;
    let mine: Vec<_> = events
        .iter()
        .filter(|e| e.request_id.as_deref() == Some(rid.as_str()))
        .collect();
    assert_eq!(
        mine.len(),
        1,
        "exactly one event for request {rid}: {mine:#?}"
    );
    assert_eq!(mine[0].action, action, "{mine:#?}");
    assert_eq!(
        events.iter().filter(|e| e.action == action).count(),
        1,
        "one {action} event in all: {events:#?}"
    );
    mine[0].clone()
}

#[track_caller]
fn assert_event(
    e: &entity::audit_event::Model,
    outcome: &str,
    actor: &Credentials,
    target_type: &str,
    target_id: &str,
) {
    assert_eq!(e.outcome, outcome, "{e:#?}");
    assert_eq!(
        e.actor_user_id.as_deref(),
        Some(actor.user_id.as_str()),
        "{e:#?}"
    );
    assert_eq!(
        e.actor_key_id.as_deref(),
        Some(actor.api_key_id.as_str()),
        "{e:#?}"
    );
    assert_eq!(e.target_type.as_deref(), Some(target_type), "{e:#?}");
    assert_eq!(e.target_id.as_deref(), Some(target_id), "{e:#?}");
    assert!(e.request_id.as_deref().is_some_and(|r| !r.is_empty()));
}

#[tokio::test]
async fn every_admin_action_and_denial_leaves_one_audit_event_without_secrets() {
    let app = spawn_app().await;
    let o = app.owner.clone();
    let boss = app.session(&o).await;

    let created = app
        .post_as(&boss.token, KEYS, &json!({"name": "audited"}))
        .await;
    created.expect(StatusCode::CREATED);
    let k1 = app.creds_from(&created);
    let e = the_event(&app, &created, "api_key.created").await;
    assert_event(&e, "success", &o, "api_key", &k1.api_key_id);

    let rotated = app
        .post_as(
            &boss.token,
            &rotate_path(&k1.api_key_id),
            &json!({"grace_period": "1h"}),
        )
        .await;
    rotated.expect(StatusCode::CREATED);
    let k2 = app.creds_from(&rotated);
    let e = the_event(&app, &rotated, "api_key.rotated").await;
    assert_event(&e, "success", &o, "api_key", &k1.api_key_id);
    assert_eq!(e.reason.as_deref(), Some(k2.api_key_id.as_str()));

    let revoked = app.delete_as(&boss.token, &key_path(&k2.api_key_id)).await;
    revoked.expect(StatusCode::NO_CONTENT);
    let e = the_event(&app, &revoked, "api_key.revoked").await;
    assert_event(&e, "success", &o, "api_key", &k2.api_key_id);

    let user = app
        .post_as(
            &boss.token,
            USERS,
            &json!({"email": "audited@default.test"}),
        )
        .await;
    user.expect(StatusCode::CREATED);
    let user_id = user.str("user_id");
    let e = the_event(&app, &user, "user.created").await;
    assert_event(&e, "success", &o, "user", &user_id);

    let updated = app
        .patch_as(
            &boss.token,
            &user_path(&user_id),
            &json!({"name": "Audited"}),
        )
        .await;
    updated.expect(StatusCode::OK);
    let e = the_event(&app, &updated, "user.updated").await;
    assert_event(&e, "success", &o, "user", &user_id);

    let member = app.create_user("default", Role::Member).await;
    let member_session = app.session(&member).await;
    let victim = app.session(&member).await;
    let ended = app
        .delete_as(&boss.token, &session_path(&victim.session_id))
        .await;
    ended.expect(StatusCode::NO_CONTENT);
    let e = the_event(&app, &ended, "session.revoked").await;
    assert_event(&e, "success", &o, "session", &victim.session_id);

    let deleted = app.delete_as(&boss.token, &user_path(&user_id)).await;
    deleted.expect(StatusCode::NO_CONTENT);
    let e = the_event(&app, &deleted, "user.deleted").await;
    assert_event(&e, "success", &o, "user", &user_id);

    let denied = app
        .delete_as(&member_session.token, &key_path(&o.api_key_id))
        .await;
    denied.expect_error(StatusCode::FORBIDDEN, "permission_denied");
    let e = the_event(&app, &denied, "permission.denied").await;
    assert_event(&e, "failure", &member, "api_key", &o.api_key_id);
    assert_eq!(
        e.reason.as_deref(),
        Some("permission_denied:keys.revoke"),
        "{e:#?}"
    );

    // A sign-in with a wrong secret.
    let wrong = keygate::keys::api_key::PlainApiKey::generate(keygate::types::Environment::Live);
    let wrong = wrong.expose().to_owned();
    let res = app
        .signin_raw(
            "default",
            Some(&wrong),
            Some(&o.api_key_id),
            Some(&o.user_id),
        )
        .await;
    let failed = Reply::from(res).await;
    failed.expect_error(StatusCode::UNAUTHORIZED, "invalid_api_key");
    let events = app.audit_events("default").await;
    let e = events
        .iter()
        .find(|e| e.request_id.as_deref() == Some(failed.request_id().as_str()))
        .expect("the failed sign-in is audited");
    assert_eq!(e.action, "signin.failed");
    assert_eq!(e.outcome, "failure");
    assert_eq!(e.reason.as_deref(), Some("invalid_api_key"));

    // No secret anywhere in what the API shows.
    let listed = app.list_all(&boss.token, AUDIT, 200).await;
    assert_eq!(listed.len(), events.len(), "the API lists every event");
    let text = serde_json::to_string(&listed).unwrap();
    for secret in [
        &wrong,
        &o.api_key,
        &k1.api_key,
        &k2.api_key,
        &member.api_key,
    ] {
        assert!(!text.contains(secret.as_str()), "a secret in the audit log");
    }
    for token in [&boss.token, &member_session.token, &victim.refresh_token] {
        assert!(!text.contains(token.as_str()), "a token in the audit log");
    }
    let failed_listed = listed
        .iter()
        .find(|e| e["request_id"] == failed.request_id().as_str())
        .expect("the failed sign-in is listed");
    assert_eq!(failed_listed["action"], "signin.failed");
    assert_eq!(failed_listed["reason"], "invalid_api_key");

    // The API shows each stored event as it is.
    let opt = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
    for e in &events {
        let shown = listed
            .iter()
            .find(|l| event_id(l) == e.id)
            .unwrap_or_else(|| panic!("{} is not listed", e.id));
        assert_eq!(shown["action"], e.action.as_str(), "{shown}");
        assert_eq!(shown["outcome"], e.outcome.as_str(), "{shown}");
        assert_eq!(shown["reason"], opt(&e.reason), "{shown}");
        assert_eq!(shown["actor_user_id"], opt(&e.actor_user_id), "{shown}");
        assert_eq!(shown["actor_key_id"], opt(&e.actor_key_id), "{shown}");
        assert_eq!(shown["target_type"], opt(&e.target_type), "{shown}");
        assert_eq!(shown["target_id"], opt(&e.target_id), "{shown}");
        assert_eq!(shown["request_id"], opt(&e.request_id), "{shown}");
    }
}

fn event_id(e: &Value) -> String {
    e.get("event_id")
        .or_else(|| e.get("id"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("an event id in {e}"))
        .to_owned()
}

#[tokio::test]
async fn audit_events_filter_by_action_actor_outcome_target_and_time_and_paginate() {
    let app = spawn_app().await;
    let o = app.owner.clone();
    let boss = app.session(&o).await;
    let member = app.create_user("default", Role::Member).await;
    let member_session = app.session(&member).await;
    app.delete_as(&member_session.token, &key_path(&o.api_key_id))
        .await
        .expect_error(StatusCode::FORBIDDEN, "permission_denied");

    let mut early = Vec::new();
    for i in 0..3 {
        let r = app
            .post_as(&boss.token, KEYS, &json!({"name": format!("early-{i}")}))
            .await;
        early.push(
            r.expect(StatusCode::CREATED)["api_key_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    app.clock.advance(Duration::from_secs(600));
    let t1 = app.now();
    let boss = app.session(&o).await;
    let mut late = Vec::new();
    for i in 0..2 {
        let r = app
            .post_as(&boss.token, KEYS, &json!({"name": format!("late-{i}")}))
            .await;
        late.push(
            r.expect(StatusCode::CREATED)["api_key_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    app.flush_audit().await;

    let target_ids = |events: &[Value]| -> HashSet<String> {
        events
            .iter()
            .map(|e| e["target_id"].as_str().unwrap_or_default().to_owned())
            .collect()
    };

    let created = app
        .list_all(&boss.token, &format!("{AUDIT}?action=api_key.created"), 200)
        .await;
    assert_eq!(created.len(), 5, "{created:#?}");
    assert!(created.iter().all(|e| e["action"] == "api_key.created"));
    assert!(created.iter().all(|e| e["outcome"] == "success"));

    let by_member = app
        .list_all(
            &boss.token,
            &format!("{AUDIT}?actor={}", member.user_id),
            200,
        )
        .await;
    assert!(!by_member.is_empty());
    assert!(
        by_member
            .iter()
            .all(|e| e["actor_user_id"] == member.user_id.as_str()
                || e["actor_key_id"] == member.user_id.as_str())
    );
    assert!(by_member.iter().any(|e| e["action"] == "permission.denied"));
    assert!(by_member.iter().any(|e| e["action"] == "signin.succeeded"));
    let by_key = app
        .list_all(
            &boss.token,
            &format!("{AUDIT}?actor={}", member.api_key_id),
            200,
        )
        .await;
    assert!(!by_key.is_empty());
    assert!(
        by_key
            .iter()
            .all(|e| e["actor_key_id"] == member.api_key_id.as_str()
                || e["actor_user_id"] == member.api_key_id.as_str())
    );
    assert!(by_key.iter().any(|e| e["action"] == "permission.denied"));

    let failures = app
        .list_all(&boss.token, &format!("{AUDIT}?outcome=failure"), 200)
        .await;
    assert!(!failures.is_empty());
    assert!(failures.iter().all(|e| e["outcome"] == "failure"));
    let on_key = app
        .list_all(&boss.token, &format!("{AUDIT}?target_id={}", early[0]), 200)
        .await;
    assert!(!on_key.is_empty());
    assert!(on_key.iter().all(|e| e["target_id"] == early[0].as_str()));

    let since = app
        .send(
            app.admin_request(Method::GET, AUDIT, &boss.token)
                .query(&[("action", "api_key.created"), ("since", &rfc3339(t1))]),
        )
        .await;
    since.expect(StatusCode::OK);
    let data = since.body["data"].as_array().unwrap();
    assert_eq!(
        target_ids(data),
        late.iter().cloned().collect(),
        "since is inclusive"
    );
    let until = app
        .send(
            app.admin_request(Method::GET, AUDIT, &boss.token)
                .query(&[("action", "api_key.created"), ("until", &rfc3339(t1))]),
        )
        .await;
    until.expect(StatusCode::OK);
    let data = until.body["data"].as_array().unwrap();
    assert_eq!(
        target_ids(data),
        early.iter().cloned().collect(),
        "until is exclusive"
    );

    // Pagination, newest first.
    for i in 0..20 {
        if i % 4 == 0 {
            app.clock.advance(Duration::from_millis(3));
        }
        app.post_as(&boss.token, KEYS, &json!({"name": format!("more-{i}")}))
            .await
            .expect(StatusCode::CREATED);
    }
    app.flush_audit().await;
    let walked = app
        .list_all(&boss.token, &format!("{AUDIT}?action=api_key.created"), 7)
        .await;
    assert_eq!(walked.len(), 25);
    let walked_ids: Vec<String> = walked.iter().map(event_id).collect();
    unique(&walked_ids);
    assert_eq!(target_ids(&walked).len(), 25);
    let all = app.list_all(&boss.token, AUDIT, 13).await;
    unique(&all.iter().map(event_id).collect::<Vec<_>>());
    assert_eq!(all.len(), app.audit_events("default").await.len());

    for query in ["limit=0", "limit=201", "cursor=garbage", "since=yesterday"] {
        app.get_as(&boss.token, &format!("{AUDIT}?{query}"))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
}
