//! The admin API (docs/admin-api.md) over real HTTP: who may do what, scopes, the key
//! lifecycle, the last-owner and own-key rules, pagination, audit events, idempotency,
//! validation, sessions and users.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use keygate::types::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::admin_helpers::{Reply, ids, unique};
use crate::helpers::{Credentials, TestApp, error_code, json as json_of, spawn_app};

const KEYS: &str = "/v1/default/api_keys";
const USERS: &str = "/v1/default/users";
const SESSIONS: &str = "/v1/default/sessions";
const AUDIT: &str = "/v1/default/audit_events";

fn key_path(id: &str) -> String {
    format!("{KEYS}/{id}")
}

fn rotate_path(id: &str) -> String {
    format!("{KEYS}/{id}/rotate")
}

fn user_path(id: &str) -> String {
    format!("{USERS}/{id}")
}

fn session_path(id: &str) -> String {
    format!("{SESSIONS}/{id}")
}

fn email() -> String {
    format!(
        "{}@default.test",
        keygate::ids::random_base62(10).to_lowercase()
    )
}

fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap_or_else(|| panic!("time: {value}")))
        .unwrap_or_else(|e| panic!("{value} is not RFC 3339: {e}"))
        .with_timezone(&Utc)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Signs in with a key and expects `status` and the §6 `code`.
async fn signin_fails(app: &TestApp, creds: &Credentials, status: StatusCode, code: &str) {
    let (got, body) = json_of(
        app.signin_raw(
            &creds.org,
            Some(&creds.api_key),
            Some(&creds.api_key_id),
            Some(&creds.user_id),
        )
        .await,
    )
    .await;
    assert_eq!(got, status, "{body}");
    assert_eq!(error_code(&body), code, "{body}");
}

async fn signin_status(app: &TestApp, creds: &Credentials) -> StatusCode {
    app.signin_raw(
        &creds.org,
        Some(&creds.api_key),
        Some(&creds.api_key_id),
        Some(&creds.user_id),
    )
    .await
    .status()
}

/// `GET /user/me` with a token that must no longer work: 401 `invalid_token`.
async fn token_rejected(app: &TestApp, token: &str) {
    let (status, body) = json_of(app.me("default", token).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_code(&body), "invalid_token", "{body}");
}

async fn token_accepted(app: &TestApp, token: &str) {
    let (status, body) = json_of(app.me("default", token).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

// ---------------------------------------------------------------------------------------
// 1. The role matrix
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Act {
    KeysList,
    KeysGet,
    KeysCreate,
    KeysRevoke,
    KeysRotate,
    UsersList,
    UsersGet,
    UsersCreate(Role),
    UsersRename,
    UsersSetRole(Role),
    UsersDisable,
    UsersDelete,
    SessionsList,
    SessionsRevoke,
    AuditList,
}

/// Whom the action is about: nobody in particular, the caller, a fresh member, a fresh
/// owner (never the last one: the bootstrap owner stays).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Nobody,
    Own,
    Member,
    Owner,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Allow,
    Deny,
    /// Not meaningful for this role (e.g. an owner raising themselves to owner).
    Skip,
}

const A: Want = Want::Allow;
const D: Want = Want::Deny;
const S: Want = Want::Skip;

/// The columns of the matrix.
const ROLES: [Role; 4] = [Role::Owner, Role::Admin, Role::Member, Role::Service];

/// docs/admin-api.md, "Who may do what", as rows of (action, target, [owner, admin,
/// member, service]).
#[rustfmt::skip]
const MATRIX: &[(Act, Target, [Want; 4])] = &[
    // keys: list: owners and admins all keys, members their own; a filter naming someone
    // else is 403 for them.
    (Act::KeysList, Target::Nobody, [A, A, A, A]),
    (Act::KeysList, Target::Own,    [A, A, A, A]),
    (Act::KeysList, Target::Member, [A, A, D, D]),
    (Act::KeysList, Target::Owner,  [A, A, D, D]),
    // keys: get, create, revoke, rotate: any user's for owners and admins, own only else.
    (Act::KeysGet, Target::Own,     [A, A, A, A]),
    (Act::KeysGet, Target::Member,  [A, A, D, D]),
    (Act::KeysGet, Target::Owner,   [A, A, D, D]),
    (Act::KeysCreate, Target::Own,    [A, A, A, A]),
    (Act::KeysCreate, Target::Member, [A, A, D, D]),
    (Act::KeysCreate, Target::Owner,  [A, A, D, D]),
    (Act::KeysRevoke, Target::Own,    [A, A, A, A]),
    (Act::KeysRevoke, Target::Member, [A, A, D, D]),
    (Act::KeysRevoke, Target::Owner,  [A, A, D, D]),
    (Act::KeysRotate, Target::Own,    [A, A, A, A]),
    (Act::KeysRotate, Target::Member, [A, A, D, D]),
    (Act::KeysRotate, Target::Owner,  [A, A, D, D]),
    // users: list: all, or only themselves.
    (Act::UsersList, Target::Nobody, [A, A, A, A]),
    // users: get: any, or only themselves.
    (Act::UsersGet, Target::Own,    [A, A, A, A]),
    (Act::UsersGet, Target::Member, [A, A, D, D]),
    (Act::UsersGet, Target::Owner,  [A, A, D, D]),
    // users: create: owners any role, admins any but owner, members and services no.
    (Act::UsersCreate(Role::Member),  Target::Nobody, [A, A, D, D]),
    (Act::UsersCreate(Role::Service), Target::Nobody, [A, A, D, D]),
    (Act::UsersCreate(Role::Admin),   Target::Nobody, [A, A, D, D]),
    (Act::UsersCreate(Role::Owner),   Target::Nobody, [A, D, D, D]),
    // users: update: owners any; admins anyone but an owner and never to owner; members
    // and services their own name only; nobody raises their own role.
    (Act::UsersRename, Target::Own,    [A, A, A, A]),
    (Act::UsersRename, Target::Member, [A, A, D, D]),
    (Act::UsersRename, Target::Owner,  [A, D, D, D]),
    (Act::UsersSetRole(Role::Owner),   Target::Own,    [S, D, D, D]),
    (Act::UsersSetRole(Role::Admin),   Target::Own,    [A, S, D, D]),
    (Act::UsersSetRole(Role::Member),  Target::Own,    [A, A, S, D]),
    (Act::UsersSetRole(Role::Service), Target::Own,    [A, A, D, S]),
    (Act::UsersSetRole(Role::Owner),   Target::Member, [A, D, D, D]),
    (Act::UsersSetRole(Role::Admin),   Target::Member, [A, A, D, D]),
    (Act::UsersSetRole(Role::Member),  Target::Owner,  [A, D, D, D]),
    // nobody disables or deletes themselves.
    (Act::UsersDisable, Target::Own,    [D, D, D, D]),
    (Act::UsersDisable, Target::Member, [A, A, D, D]),
    (Act::UsersDisable, Target::Owner,  [A, D, D, D]),
    // users: delete: owners any, admins anyone but an owner, members and services no.
    (Act::UsersDelete, Target::Own,    [D, D, D, D]),
    (Act::UsersDelete, Target::Member, [A, A, D, D]),
    (Act::UsersDelete, Target::Owner,  [A, D, D, D]),
    // sessions: list all or own; revoke any or own.
    (Act::SessionsList, Target::Nobody, [A, A, A, A]),
    (Act::SessionsRevoke, Target::Own,    [A, A, A, A]),
    (Act::SessionsRevoke, Target::Member, [A, A, D, D]),
    (Act::SessionsRevoke, Target::Owner,  [A, A, D, D]),
    // audit events: owners and admins.
    (Act::AuditList, Target::Nobody, [A, A, D, D]),
];

fn has(items: &[Value], field: &str, id: &str) -> bool {
    items.iter().any(|i| i[field] == id)
}

/// Runs one cell of the matrix with a fresh actor and fresh targets.
async fn run_cell(app: &TestApp, role: Role, act: Act, target: Target, want: Want) {
    let label = format!("{role} {act:?} {target:?}");
    let actor = app.session(&app.create_user("default", role).await).await;
    let me = actor.creds.user_id.clone();
    let t = actor.token.as_str();
    let privileged = role.is_admin();
    let target_creds: Option<Credentials> = match target {
        Target::Nobody => None,
        Target::Own => Some(actor.creds.clone()),
        Target::Member => Some(app.create_user("default", Role::Member).await),
        Target::Owner => Some(app.create_user("default", Role::Owner).await),
    };
    let target_user = target_creds.as_ref().map(|c| c.user_id.clone());
    let tu = || target_user.clone().expect("a target");
    // Someone else with a key and a session, to see whether lists show them.
    let bystander = app.create_user("default", Role::Member).await;
    let bystander_session = app.session(&bystander).await;

    let (reply, ok) = match act {
        Act::KeysList => {
            let path = match &target_user {
                None => format!("{KEYS}?limit=200"),
                Some(u) => format!("{KEYS}?limit=200&user_id={u}"),
            };
            (app.get_as(t, &path).await, StatusCode::OK)
        }
        Act::KeysGet => {
            let key = match target {
                Target::Own => app.create_key("default", &me).await,
                _ => target_creds.clone().expect("a target"),
            };
            let r = app.get_as(t, &key_path(&key.api_key_id)).await;
            if r.status.is_success() {
                assert_eq!(r.body["api_key_id"], key.api_key_id.as_str(), "{label}");
                assert!(r.body.get("api_key").is_none(), "{label}: {}", r.body);
            }
            (r, StatusCode::OK)
        }
        Act::KeysCreate => {
            let body = if target == Target::Own {
                json!({"name": "matrix"})
            } else {
                json!({"name": "matrix", "user_id": tu()})
            };
            let r = app.post_as(t, KEYS, &body).await;
            if r.status.is_success() {
                assert_eq!(r.body["user_id"], tu().as_str(), "{label}");
                assert!(r.str("api_key").starts_with("ak_live_"), "{label}");
            }
            (r, StatusCode::CREATED)
        }
        Act::KeysRevoke => {
            let key = app.create_key("default", &tu()).await;
            let r = app.delete_as(t, &key_path(&key.api_key_id)).await;
            if r.status.is_success() {
                signin_fails(app, &key, StatusCode::UNAUTHORIZED, "revoked_api_key").await;
            } else {
                assert_eq!(signin_status(app, &key).await, StatusCode::OK, "{label}");
            }
            (r, StatusCode::NO_CONTENT)
        }
        Act::KeysRotate => {
            let key = app.create_key("default", &tu()).await;
            let r = app
                .post_as(
                    t,
                    &rotate_path(&key.api_key_id),
                    &json!({"grace_period": "1h"}),
                )
                .await;
            if r.status.is_success() {
                assert_eq!(r.body["user_id"], tu().as_str(), "{label}");
                assert_ne!(r.str("api_key_id"), key.api_key_id, "{label}");
            }
            (r, StatusCode::CREATED)
        }
        Act::UsersList => (
            app.get_as(t, &format!("{USERS}?limit=200")).await,
            StatusCode::OK,
        ),
        Act::UsersGet => {
            let r = app.get_as(t, &user_path(&tu())).await;
            if r.status.is_success() {
                assert_eq!(r.body["user_id"], tu().as_str(), "{label}");
            }
            (r, StatusCode::OK)
        }
        Act::UsersCreate(new_role) => {
            let r = app
                .post_as(t, USERS, &json!({"email": email(), "role": new_role}))
                .await;
            if r.status.is_success() {
                assert_eq!(r.body["role"], new_role.as_str(), "{label}");
            }
            (r, StatusCode::CREATED)
        }
        Act::UsersRename => {
            let r = app
                .patch_as(t, &user_path(&tu()), &json!({"name": "Renamed"}))
                .await;
            if r.status.is_success() {
                assert_eq!(r.body["name"], "Renamed", "{label}");
            }
            (r, StatusCode::OK)
        }
        Act::UsersSetRole(new_role) => {
            let r = app
                .patch_as(t, &user_path(&tu()), &json!({"role": new_role}))
                .await;
            if r.status.is_success() {
                assert_eq!(r.body["role"], new_role.as_str(), "{label}");
            }
            (r, StatusCode::OK)
        }
        Act::UsersDisable => {
            let r = app
                .patch_as(t, &user_path(&tu()), &json!({"disabled": true}))
                .await;
            if r.status.is_success() {
                assert_eq!(r.body["disabled"], true, "{label}");
            }
            (r, StatusCode::OK)
        }
        Act::UsersDelete => {
            let r = app.delete_as(t, &user_path(&tu())).await;
            if !r.status.is_success() {
                let boss = app.session(&app.owner).await;
                let still = app.get_as(&boss.token, &user_path(&tu())).await;
                still.expect(StatusCode::OK);
                assert!(
                    still.body["deleted_at"].is_null(),
                    "{label}: {}",
                    still.body
                );
            }
            (r, StatusCode::NO_CONTENT)
        }
        Act::SessionsList => (
            app.get_as(t, &format!("{SESSIONS}?limit=200")).await,
            StatusCode::OK,
        ),
        Act::SessionsRevoke => {
            let victim = app.session(target_creds.as_ref().expect("a target")).await;
            let r = app.delete_as(t, &session_path(&victim.session_id)).await;
            let (status, error) = app
                .refresh_grant("default", &victim.refresh_token, Some(&victim.creds))
                .await;
            if r.status.is_success() {
                assert_eq!(
                    (status, error.as_str()),
                    (StatusCode::BAD_REQUEST, "invalid_grant"),
                    "{label}"
                );
            } else {
                assert_eq!(status, StatusCode::OK, "{label}: {error}");
            }
            (r, StatusCode::NO_CONTENT)
        }
        Act::AuditList => (app.get_as(t, AUDIT).await, StatusCode::OK),
    };

    match want {
        Want::Allow => assert_eq!(reply.status, ok, "{label}: {}", reply.body),
        Want::Deny => {
            assert_eq!(
                reply.status,
                StatusCode::FORBIDDEN,
                "{label}: {}",
                reply.body
            );
            assert_eq!(error_code(&reply.body), "permission_denied", "{label}");
            return;
        }
        Want::Skip => unreachable!(),
    }

    // What lists show.
    match act {
        Act::KeysList => {
            let path = match &target_user {
                None => KEYS.to_owned(),
                Some(u) => format!("{KEYS}?user_id={u}"),
            };
            let keys = app.list_all(t, &path, 200).await;
            for k in &keys {
                assert!(k.get("api_key").is_none(), "{label}: {k}");
            }
            match &target_creds {
                Some(c) => {
                    assert!(keys.iter().all(|k| k["user_id"] == c.user_id.as_str()));
                    assert!(has(&keys, "api_key_id", &c.api_key_id), "{label}");
                }
                None if privileged => {
                    assert!(has(&keys, "api_key_id", &bystander.api_key_id), "{label}");
                    assert!(has(&keys, "api_key_id", &actor.creds.api_key_id));
                }
                None => {
                    assert!(
                        keys.iter().all(|k| k["user_id"] == me.as_str()),
                        "{label}: members see their own keys only"
                    );
                    assert!(has(&keys, "api_key_id", &actor.creds.api_key_id));
                }
            }
        }
        Act::UsersList => {
            let users = app.list_all(t, USERS, 200).await;
            if privileged {
                assert!(has(&users, "user_id", &bystander.user_id), "{label}");
                assert!(has(&users, "user_id", &me), "{label}");
                assert!(has(&users, "user_id", &app.owner.user_id), "{label}");
            } else {
                assert_eq!(ids(&users, "user_id"), vec![me.clone()], "{label}");
            }
        }
        Act::SessionsList => {
            let sessions = app.list_all(t, SESSIONS, 200).await;
            assert!(
                has(&sessions, "session_id", &actor.session_id),
                "{label}: {sessions:?}"
            );
            if privileged {
                assert!(
                    has(&sessions, "session_id", &bystander_session.session_id),
                    "{label}"
                );
            } else {
                assert!(
                    sessions.iter().all(|s| s["user_id"] == me.as_str()),
                    "{label}: members see their own sessions only"
                );
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn every_role_may_do_exactly_what_the_table_allows() {
    let app = spawn_app().await;
    for (act, target, wants) in MATRIX {
        for (role, want) in ROLES.iter().zip(wants) {
            if *want == Want::Skip {
                continue;
            }
            // Distinct creation times keep "newest first" meaningful.
            app.clock.advance(Duration::from_millis(10));
            run_cell(&app, *role, *act, *target, *want).await;
        }
    }
}

#[tokio::test]
async fn a_token_acting_for_a_member_has_the_members_rights() {
    let app = spawn_app().await;
    let member = app.create_user("default", Role::Member).await;
    let other = app.create_user("default", Role::Member).await;
    let body = app.signin_as(&app.owner, &member.user_id).await;
    let token = body["id_token"].as_str().unwrap();
    app.get_as(token, AUDIT)
        .await
        .expect_error(StatusCode::FORBIDDEN, "permission_denied");
    app.get_as(token, &key_path(&other.api_key_id))
        .await
        .expect_error(StatusCode::FORBIDDEN, "permission_denied");
    let users = app.list_page(token, USERS).await;
    assert_eq!(ids(&users, "user_id"), vec![member.user_id.clone()]);
}

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
    // The demotion counts at once, for the token B already holds.
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
    let app = spawn_app().await;
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

    // The same walk while 30 more keys are created.
    let create = async {
        let mut made = Vec::new();
        for i in 0..30 {
            if i % 3 == 0 {
                app.clock.advance(Duration::from_millis(1));
            }
            made.push(
                app.create_key("default", &app.owner.user_id)
                    .await
                    .api_key_id,
            );
            tokio::task::yield_now().await;
        }
        made
    };
    let (walked, made) = tokio::join!(walk_keys(&app, &boss.token), create);
    let seen = unique(&walked);
    assert!(
        existing.is_subset(&seen),
        "missing: {:?}",
        existing.difference(&seen).collect::<Vec<_>>()
    );
    let made: HashSet<String> = made.into_iter().collect();
    assert!(seen.difference(&existing).all(|id| made.contains(id)));
    assert_eq!(
        unique(&walk_keys(&app, &boss.token).await).len(),
        existing.len() + made.len()
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

async fn key_count(app: &TestApp, token: &str) -> usize {
    app.list_all(token, KEYS, 200).await.len()
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
    assert_ne!(signin_status(&app, &bob).await, StatusCode::OK);
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
async fn a_dpop_bound_token_without_the_scope_gets_a_dpop_challenge() {
    use crate::dpop_flow::DpopKey;

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

    let keys = app.list_all(t, "/v1/acme/api_keys", 200).await;
    assert!(keys.iter().all(|k| k["user_id"] == acme.user_id.as_str()));
    let users = app.list_all(t, "/v1/acme/users", 200).await;
    assert_eq!(ids(&users, "user_id"), vec![acme.user_id.clone()]);
    let sessions = app.list_all(t, "/v1/acme/sessions", 200).await;
    assert!(
        sessions
            .iter()
            .all(|s| s["user_id"] == acme.user_id.as_str())
    );
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
    let res = app.send(app.client.get(app.url(KEYS))).await;
    res.expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(
        res.header("www-authenticate")
            .unwrap_or_default()
            .contains("invalid_token")
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
