//! Roles and the credentials they may issue: nobody creates, rotates or acts with a
//! credential of someone who outranks them (in their organization or through a
//! cross-organization grant), a rotation never widens a narrowed token, the organization
//! keeps an enabled owner under concurrent demotions, and a user's own updates never undo
//! an admin's concurrent disable (docs/admin-api.md, "Who may do what").

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keygate::types::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Barrier;

use crate::admin_helpers::{Reply, Session};
use crate::helpers::{TestApp, claims_of, error_code, json as json_of, spawn_app, spawn_app_with};

/// Events of `org` with this action, after the audit writer caught up.
async fn events(app: &TestApp, org: &str, action: &str) -> Vec<entity::audit_event::Model> {
    app.audit_events(org)
        .await
        .into_iter()
        .filter(|e| e.action == action)
        .collect()
}

/// The key ids of `user_id`, as the organization's owner lists them.
async fn keys_of(app: &TestApp, boss: &Session, org: &str, user_id: &str) -> Vec<Value> {
    app.list_all(
        &boss.token,
        &format!("/v1/{org}/api_keys?user_id={user_id}"),
        200,
    )
    .await
}

#[tokio::test]
async fn an_admin_cannot_create_or_rotate_an_owners_key() {
    let app = spawn_app().await;
    let boss = app.session(&app.owner).await;
    let admin = app
        .session(&app.create_user("default", Role::Admin).await)
        .await;
    let owner = app.owner.clone();
    let before = keys_of(&app, &boss, "default", &owner.user_id).await;

    let created = app
        .post_as(
            &admin.token,
            "/v1/default/api_keys",
            &json!({"name": "mine now", "user_id": owner.user_id}),
        )
        .await;
    created.expect_error(StatusCode::FORBIDDEN, "permission_denied");
    assert!(created.body.get("api_key").is_none(), "{}", created.body);

    let rotated = app
        .post_as(
            &admin.token,
            &format!("/v1/default/api_keys/{}/rotate", owner.api_key_id),
            &json!({"grace_period": "1h"}),
        )
        .await;
    rotated.expect_error(StatusCode::FORBIDDEN, "permission_denied");
    assert!(rotated.body.get("api_key").is_none(), "{}", rotated.body);

    // Nothing happened: no new key, the old one untouched and working.
    let after = keys_of(&app, &boss, "default", &owner.user_id).await;
    assert_eq!(
        crate::admin_helpers::ids(&after, "api_key_id"),
        crate::admin_helpers::ids(&before, "api_key_id")
    );
    for key in &after {
        assert!(key["revoked_at"].is_null(), "{key}");
    }
    assert_eq!(app.signin_outcome(&owner).await, (StatusCode::OK, None));

    // Both refusals are in the audit log, naming the action.
    let denied = events(&app, "default", "permission.denied").await;
    for action in ["keys.create", "keys.rotate"] {
        let reason = format!("permission_denied:{action}");
        assert!(
            denied.iter().any(|e| e.reason.as_deref() == Some(&reason)
                && e.actor_user_id.as_deref() == Some(&admin.creds.user_id)),
            "{reason}: {denied:?}"
        );
    }

    // An admin still issues keys of admins, members and service accounts.
    for role in [Role::Admin, Role::Member, Role::Service] {
        let peer = app.create_user("default", role).await;
        app.post_as(
            &admin.token,
            "/v1/default/api_keys",
            &json!({"name": "peer", "user_id": peer.user_id}),
        )
        .await
        .expect(StatusCode::CREATED);
        app.post_as(
            &admin.token,
            &format!("/v1/default/api_keys/{}/rotate", peer.api_key_id),
            &json!({"grace_period": "1h"}),
        )
        .await
        .expect(StatusCode::CREATED);
    }
}

fn basic(org: &str, user_id: &str, token: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{org}_{user_id}:{token}"))
    )
}

#[tokio::test]
async fn an_admin_grant_from_another_organization_cannot_issue_an_owners_key() {
    let app = spawn_app().await;
    let acme_owner = app.session(&app.create_org("acme").await).await;
    let acme_admin = app.create_user("acme", Role::Admin).await;
    let visitor = app
        .session(&app.create_user("default", Role::Admin).await)
        .await;
    app.post_as(
        &acme_owner.token,
        "/v1/acme/cross_org_grants",
        &json!({"source_org": "default", "user_id": visitor.creds.user_id, "role": "admin"}),
    )
    .await
    .expect(StatusCode::CREATED);
    let header = basic("default", &visitor.creds.user_id, &visitor.token);
    let post = |path: String, body: Value| {
        let header = header.clone();
        let app = &app;
        async move {
            app.send(
                app.client
                    .request(Method::POST, app.url(&path))
                    .header("authorization", header)
                    .json(&body),
            )
            .await
        }
    };
    let before = keys_of(&app, &acme_owner, "acme", &acme_owner.creds.user_id).await;

    post(
        "/v1/acme/api_keys".into(),
        json!({"name": "mine now", "user_id": acme_owner.creds.user_id}),
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "permission_denied");
    post(
        format!("/v1/acme/api_keys/{}/rotate", acme_owner.creds.api_key_id),
        json!({"grace_period": "1h"}),
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "permission_denied");
    let after = keys_of(&app, &acme_owner, "acme", &acme_owner.creds.user_id).await;
    assert_eq!(after, before);
    assert_eq!(
        app.signin_outcome(&acme_owner.creds).await,
        (StatusCode::OK, None)
    );
    let denied = events(&app, "acme", "permission.denied").await;
    assert_eq!(
        denied
            .iter()
            .filter(|e| e.actor_user_id.as_deref() == Some(&visitor.creds.user_id))
            .count(),
        2,
        "{denied:?}"
    );

    // The grant is an admin's: acme's admins' keys are within it.
    post(
        format!("/v1/acme/api_keys/{}/rotate", acme_admin.api_key_id),
        json!({"grace_period": "1h"}),
    )
    .await
    .expect(StatusCode::CREATED);
}

#[tokio::test]
async fn acting_for_someone_who_outranks_you_is_refused_and_audited() {
    let app = spawn_app().await;
    let owner = app.owner.clone();
    let admin = app.create_user("default", Role::Admin).await;
    let other_admin = app.create_user("default", Role::Admin).await;

    // Sign-in with x-user-id.
    let (status, body) = json_of(
        app.signin_raw(
            "default",
            Some(&admin.api_key),
            Some(&admin.api_key_id),
            Some(&owner.user_id),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(error_code(&body), "permission_denied");

    // The token endpoint with user_id (RFC 6749 §5.2 `unauthorized_client`).
    let res = app
        .client
        .post(app.url("/v1/default/oauth/token"))
        .basic_auth(&admin.api_key_id, Some(&admin.api_key))
        .form(&[
            ("grant_type", "client_credentials"),
            ("user_id", owner.user_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "unauthorized_client", "{body}");

    let denied = events(&app, "default", "permission.denied").await;
    let acting: Vec<_> = denied
        .iter()
        .filter(|e| e.reason.as_deref() == Some("permission_denied:users.act_for"))
        .collect();
    assert_eq!(acting.len(), 2, "{denied:?}");
    for e in acting {
        assert_eq!(e.outcome, "failure");
        assert_eq!(e.actor_user_id.as_deref(), Some(admin.user_id.as_str()));
        assert_eq!(e.actor_key_id.as_deref(), Some(admin.api_key_id.as_str()));
        assert_eq!(e.target_id.as_deref(), Some(owner.user_id.as_str()));
    }

    // An equal role is fine: an admin acts for another admin.
    let body = app.signin_as(&admin, &other_admin.user_id).await;
    let claims = claims_of(body["id_token"].as_str().unwrap());
    assert_eq!(claims["sub"], other_admin.user_id.as_str());
    assert_eq!(claims["act"]["sub"], admin.user_id.as_str());
}

#[tokio::test]
async fn a_narrowed_token_cannot_rotate_a_wider_key_into_its_hands() {
    let app = spawn_app().await;
    let boss = app.session(&app.owner).await;
    // A key of the owner limited to key management, and the token it signs in to.
    let narrow = app
        .post_as(
            &boss.token,
            "/v1/default/api_keys",
            &json!({"name": "keys only", "scopes": ["keys:read", "keys:write"]}),
        )
        .await;
    narrow.expect(StatusCode::CREATED);
    let narrow = app.session(&app.creds_from(&narrow)).await;
    // The owner's bootstrap key holds every scope.
    let wide = app.owner.clone();
    let rotate = format!("/v1/default/api_keys/{}/rotate", wide.api_key_id);

    let r = app
        .post_as(&narrow.token, &rotate, &json!({"grace_period": "1h"}))
        .await;
    r.expect_error(StatusCode::FORBIDDEN, "permission_denied");
    assert!(r.body.get("api_key").is_none(), "{}", r.body);
    let key = app
        .get_as(
            &boss.token,
            &format!("/v1/default/api_keys/{}", wide.api_key_id),
        )
        .await;
    assert!(
        key.expect(StatusCode::OK)["revoked_at"].is_null(),
        "{}",
        key.body
    );

    // The same token narrowed with the OAuth `scope` parameter.
    let res = app
        .client
        .post(app.url("/v1/default/oauth/token"))
        .basic_auth(&wide.api_key_id, Some(&wide.api_key))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "keys:read keys:write"),
        ])
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let scoped = body["access_token"].as_str().unwrap();
    let other_wide = app.create_key("default", &wide.user_id).await;
    app.post_as(
        scoped,
        &format!("/v1/default/api_keys/{}/rotate", other_wide.api_key_id),
        &json!({"grace_period": "1h"}),
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "permission_denied");

    // A key within the token's scopes rotates, and keeps exactly its scopes.
    let again = app
        .post_as(
            &narrow.token,
            &format!("/v1/default/api_keys/{}/rotate", narrow.creds.api_key_id),
            &json!({"grace_period": "1h"}),
        )
        .await;
    again.expect(StatusCode::CREATED);
    assert_eq!(again.body["scopes"], json!(["keys:read", "keys:write"]));
}

/// The enabled, undeleted owners of `org`.
async fn enabled_owners(app: &TestApp, org: &str) -> Vec<String> {
    let org = keygate::admin::find_org(&app.state.storage, org)
        .await
        .unwrap();
    keygate::storage::users::list(&app.state.storage, &org.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|u| u.role == "owner" && !u.disabled && u.deleted_at.is_none())
        .map(|u| u.id)
        .collect()
}

/// Two owners each send a request at the same instant (released by a barrier); returns
/// both replies.
async fn at_once(
    app: &Arc<TestApp>,
    requests: [(String, Method, String, Option<Value>); 2],
) -> Vec<Reply> {
    let barrier = Arc::new(Barrier::new(2));
    let mut tasks = Vec::new();
    for (token, method, path, body) in requests {
        let (app, barrier) = (app.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut req = app.admin_request(method, &path, &token);
            if let Some(body) = &body {
                req = req.json(body);
            }
            barrier.wait().await;
            app.send(req).await
        }));
    }
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.unwrap());
    }
    replies
}

/// Exactly one of two concurrent owner-removing requests may win; the other is refused:
/// 409 `conflict` when both were authorized before the winner committed (the database
/// refuses to remove the last owner), else, when the winner had already taken its caller's
/// owner role away, 403 `permission_denied` (demoted) or 401 `invalid_token` (disabled or
/// deleted). Returns whether the loser met the database's refusal.
fn one_wins(replies: &[Reply], ok: StatusCode, round: usize) -> bool {
    let outcomes: Vec<_> = replies.iter().map(|r| (r.status, r.body.clone())).collect();
    let wins = replies.iter().filter(|r| r.status == ok).count();
    assert_eq!(wins, 1, "round {round}: {outcomes:?}");
    let loser = replies.iter().find(|r| r.status != ok).unwrap();
    match loser.status {
        StatusCode::CONFLICT => {
            loser.expect_error(StatusCode::CONFLICT, "conflict");
            true
        }
        StatusCode::FORBIDDEN => {
            loser.expect_error(StatusCode::FORBIDDEN, "permission_denied");
            false
        }
        _ => {
            loser.expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
            false
        }
    }
}

const ROUNDS: usize = 20;

#[tokio::test]
async fn two_owners_demoting_each_other_at_once_leave_one_owner() {
    let app = Arc::new(spawn_app_with(|s| s.server.workers = Some(4)).await);
    let mut conflicts = 0;
    for round in 0..ROUNDS {
        let org = format!("duel{round}");
        let a = app.session(&app.create_org(&org).await).await;
        let b = app.session(&app.create_user(&org, Role::Owner).await).await;
        let path = |id: &str| format!("/v1/{org}/users/{id}");
        // Demotions, disables and deletes all remove an owner; take turns.
        let (method, body, ok) = match round % 3 {
            0 => (
                Method::PATCH,
                Some(json!({"role": "member"})),
                StatusCode::OK,
            ),
            1 => (
                Method::PATCH,
                Some(json!({"disabled": true})),
                StatusCode::OK,
            ),
            _ => (Method::DELETE, None, StatusCode::NO_CONTENT),
        };
        let replies = at_once(
            &app,
            [
                (
                    a.token.clone(),
                    method.clone(),
                    path(&b.creds.user_id),
                    body.clone(),
                ),
                (b.token.clone(), method, path(&a.creds.user_id), body),
            ],
        )
        .await;
        conflicts += usize::from(one_wins(&replies, ok, round));
        assert_eq!(enabled_owners(&app, &org).await.len(), 1, "round {round}");
    }
    // The race was met, not only its aftermath.
    assert!(
        conflicts > 0,
        "no round had both requests authorized at once"
    );
}

#[tokio::test]
async fn two_owners_demoting_themselves_at_once_leave_one_owner() {
    let app = Arc::new(spawn_app_with(|s| s.server.workers = Some(4)).await);
    for round in 0..ROUNDS {
        let org = format!("step{round}");
        let a = app.session(&app.create_org(&org).await).await;
        let b = app.session(&app.create_user(&org, Role::Owner).await).await;
        let path = |id: &str| format!("/v1/{org}/users/{id}");
        let body = Some(json!({"role": "admin"}));
        let replies = at_once(
            &app,
            [
                (
                    a.token.clone(),
                    Method::PATCH,
                    path(&a.creds.user_id),
                    body.clone(),
                ),
                (b.token.clone(), Method::PATCH, path(&b.creds.user_id), body),
            ],
        )
        .await;
        let wins = replies
            .iter()
            .filter(|r| r.status == StatusCode::OK)
            .count();
        assert_eq!(wins, 1, "round {round}");
        replies
            .iter()
            .find(|r| r.status != StatusCode::OK)
            .unwrap()
            .expect_error(StatusCode::CONFLICT, "conflict");
        assert_eq!(enabled_owners(&app, &org).await.len(), 1, "round {round}");
    }
}

#[tokio::test]
async fn a_user_renaming_itself_never_undoes_its_concurrent_disable() {
    const RENAMERS: usize = 6;
    let app = Arc::new(spawn_app_with(|s| s.server.workers = Some(4)).await);
    let boss = app.session(&app.owner).await;
    for round in 0..ROUNDS {
        let user = app
            .session(&app.create_user("default", Role::Member).await)
            .await;
        let path = format!("/v1/default/users/{}", user.creds.user_id);
        let barrier = Arc::new(Barrier::new(RENAMERS + 1));
        let mut renamers = Vec::new();
        for n in 0..RENAMERS {
            let (app, barrier, path, token) = (
                app.clone(),
                barrier.clone(),
                path.clone(),
                user.token.clone(),
            );
            renamers.push(tokio::spawn(async move {
                barrier.wait().await;
                // Until the disable reaches this user's token.
                for i in 0..50 {
                    let r = app
                        .patch_as(&token, &path, &json!({"name": format!("me {n}.{i}")}))
                        .await;
                    if r.status == StatusCode::UNAUTHORIZED {
                        r.expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
                        return;
                    }
                    r.expect(StatusCode::OK);
                }
            }));
        }
        barrier.wait().await;
        tokio::task::yield_now().await;
        app.patch_as(&boss.token, &path, &json!({"disabled": true}))
            .await
            .expect(StatusCode::OK);
        for r in renamers {
            r.await.unwrap();
        }
        let got = app.get_as(&boss.token, &path).await;
        assert_eq!(
            got.expect(StatusCode::OK)["disabled"],
            true,
            "round {round}: {}",
            got.body
        );
    }
}
