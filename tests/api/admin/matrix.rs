//! 1. The role matrix: every role × action × target.

use std::collections::BTreeMap;

use super::*;

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
/// admin, a fresh owner (never the last one: the bootstrap owner stays).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Nobody,
    Own,
    Member,
    Admin,
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
    // keys: get, revoke: any user's for owners and admins, own only else.
    (Act::KeysGet, Target::Own,     [A, A, A, A]),
    (Act::KeysGet, Target::Member,  [A, A, D, D]),
    (Act::KeysGet, Target::Owner,   [A, A, D, D]),
    (Act::KeysRevoke, Target::Own,    [A, A, A, A]),
    (Act::KeysRevoke, Target::Member, [A, A, D, D]),
    (Act::KeysRevoke, Target::Owner,  [A, A, D, D]),
    // keys: create, rotate (a new secret): own, or for owners and admins the keys of users
    // who do not outrank them: an admin never gets an owner's secret.
    (Act::KeysCreate, Target::Own,    [A, A, A, A]),
    (Act::KeysCreate, Target::Member, [A, A, D, D]),
    (Act::KeysCreate, Target::Admin,  [A, A, D, D]),
    (Act::KeysCreate, Target::Owner,  [A, D, D, D]),
    (Act::KeysRotate, Target::Own,    [A, A, A, A]),
    (Act::KeysRotate, Target::Member, [A, A, D, D]),
    (Act::KeysRotate, Target::Admin,  [A, A, D, D]),
    (Act::KeysRotate, Target::Owner,  [A, D, D, D]),
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

/// What a refused action must leave as it was, read by the owner: every user (every
/// field), every key (every field but `last_used_at` and `last_used_ip`, which a check's
/// sign-in writes) and
/// whether each session has ended.
struct Snapshot {
    users: BTreeMap<String, Value>,
    keys: BTreeMap<String, Value>,
    sessions: BTreeMap<String, Value>,
}

impl Snapshot {
    async fn take(app: &TestApp, token: &str) -> Self {
        let by_id = |items: Vec<Value>, id: &str, keep: Option<&[&str]>, drop: &[&str]| {
            items
                .into_iter()
                .map(|mut item| {
                    let key = item[id].as_str().expect("an id").to_owned();
                    let fields = item.as_object_mut().expect("an object");
                    fields.retain(|k, _| {
                        keep.is_none_or(|keep| keep.contains(&k.as_str()))
                            && !drop.contains(&k.as_str())
                    });
                    (key, item)
                })
                .collect()
        };
        Self {
            users: by_id(app.list_all(token, USERS, 200).await, "user_id", None, &[]),
            keys: by_id(
                app.list_all(token, KEYS, 200).await,
                "api_key_id",
                None,
                &["last_used_at", "last_used_ip"],
            ),
            sessions: by_id(
                app.list_all(token, SESSIONS, 200).await,
                "session_id",
                Some(&["revoked_at"]),
                &[],
            ),
        }
    }

    /// `after` holds the same users and keys, unchanged, and every session of `self`
    /// unchanged (checks after the action may have opened new ones).
    #[track_caller]
    fn unchanged(&self, after: &Snapshot, label: &str) {
        assert_eq!(self.users, after.users, "{label}: users changed");
        assert_eq!(self.keys, after.keys, "{label}: keys changed");
        for (id, before) in &self.sessions {
            assert_eq!(
                Some(before),
                after.sessions.get(id),
                "{label}: session {id} changed"
            );
        }
    }
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
        Target::Admin => Some(app.create_user("default", Role::Admin).await),
        Target::Owner => Some(app.create_user("default", Role::Owner).await),
    };
    let target_user = target_creds.as_ref().map(|c| c.user_id.clone());
    let tu = || target_user.clone().expect("a target");
    // Someone else with a key and a session, to see whether lists show them.
    let bystander = app.create_user("default", Role::Member).await;
    let bystander_session = app.session(&bystander).await;
    // What the action works on, made before the snapshot: only the action itself may
    // change what the snapshot holds.
    let subject_key = match act {
        Act::KeysGet if target == Target::Own => Some(app.create_key("default", &me).await),
        Act::KeysGet => target_creds.clone(),
        Act::KeysRevoke | Act::KeysRotate => Some(app.create_key("default", &tu()).await),
        _ => None,
    };
    let victim = match act {
        Act::SessionsRevoke => Some(app.session(target_creds.as_ref().expect("a target")).await),
        _ => None,
    };
    let boss = app.session(&app.owner).await;
    let before = match want {
        Want::Deny => Some(Snapshot::take(app, &boss.token).await),
        _ => None,
    };

    let (reply, ok) = match act {
        Act::KeysList => {
            let path = match &target_user {
                None => format!("{KEYS}?limit=200"),
                Some(u) => format!("{KEYS}?limit=200&user_id={u}"),
            };
            (app.get_as(t, &path).await, StatusCode::OK)
        }
        Act::KeysGet => {
            let key = subject_key.clone().expect("a key");
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
            let key = subject_key.clone().expect("a key");
            let r = app.delete_as(t, &key_path(&key.api_key_id)).await;
            if r.status.is_success() {
                signin_fails(app, &key, StatusCode::UNAUTHORIZED, "revoked_api_key").await;
            } else {
                assert_eq!(signin_status(app, &key).await, StatusCode::OK, "{label}");
            }
            (r, StatusCode::NO_CONTENT)
        }
        Act::KeysRotate => {
            let key = subject_key.clone().expect("a key");
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
            let victim = victim.clone().expect("a victim");
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
            // A refusal changes nothing: no user, key or session was created, changed or
            // ended.
            let after = Snapshot::take(app, &boss.token).await;
            before.expect("a snapshot").unchanged(&after, &label);
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
