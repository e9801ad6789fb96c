//! Sign-in and the token endpoint read keys, users and organizations from the directory
//! cache (fresh within the revocation window), but a change made elsewhere (another node,
//! the CLI) is never a way in: the commit of a new session reads the key and the users
//! again and refuses it (docs/security.md, "Speed never buys a weaker check").
//!
//! Each test first signs in once so the key and its users are cached, then changes the
//! database behind this node's back (no cache is cleared), and signs in again at once.

use keygate::types::Role;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Credentials, TestApp, error_code, json, spawn_app};

/// Revokes `creds`' key straight in the database, as `keygate key revoke` or another node
/// does: this node's cache is not told.
async fn revoke_behind_the_cache(app: &TestApp, creds: &Credentials) {
    let org = keygate::admin::find_org(&app.state.storage, &creds.org)
        .await
        .unwrap();
    keygate::storage::api_keys::revoke(&app.state.storage, &org.id, &creds.api_key_id, app.now())
        .await
        .unwrap();
}

async fn signin_as(app: &TestApp, creds: &Credentials, user_id: &str) -> (StatusCode, Value) {
    json(
        app.signin_raw(
            &creds.org,
            Some(&creds.api_key),
            Some(&creds.api_key_id),
            Some(user_id),
        )
        .await,
    )
    .await
}

async fn client_credentials(app: &TestApp, creds: &Credentials) -> (StatusCode, Value) {
    json(
        app.client
            .post(app.url(&format!("/v1/{}/oauth/token", creds.org)))
            .basic_auth(&creds.api_key_id, Some(&creds.api_key))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// The sessions of `key_id` in the database: (all, open ones).
async fn sessions_of(app: &TestApp, key_id: &str) -> (usize, usize) {
    use sea_orm::{ColumnTrait, Database, EntityTrait, QueryFilter};
    let db = Database::connect(&app.db.url).await.unwrap();
    let rows = entity::session::Entity::find()
        .filter(entity::session::Column::ApiKeyId.eq(key_id))
        .all(&db)
        .await
        .unwrap();
    db.close().await.ok();
    let open = rows.iter().filter(|s| s.revoked_at.is_none()).count();
    (rows.len(), open)
}

#[tokio::test]
async fn a_key_revoked_elsewhere_fails_its_next_signin_at_once_though_it_is_cached() {
    let app = spawn_app().await;
    let creds = app.create_key("default", &app.owner.user_id).await;
    app.signin(&creds).await;
    revoke_behind_the_cache(&app, &creds).await;

    let (status, body) = signin_as(&app, &creds, &creds.user_id).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_code(&body), "revoked_api_key");
    let (status, body) = client_credentials(&app, &creds).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");
    assert!(body.get("access_token").is_none());
    // The refused sessions were written ended: nothing is open.
    assert_eq!(sessions_of(&app, &creds.api_key_id).await.1, 0);
}

#[tokio::test]
async fn a_user_disabled_elsewhere_gets_no_new_session_though_it_is_cached() {
    let app = spawn_app().await;
    let member = app.create_user("default", Role::Member).await;
    app.signin(&member).await;
    app.set_user_directly(&member.user_id, None, Some(true))
        .await;

    let (status, body) = signin_as(&app, &member, &member.user_id).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_code(&body), "invalid_api_key");
    let (status, body) = client_credentials(&app, &member).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");
    // The two refused sessions were written ended; only the first sign-in's is open.
    assert_eq!(sessions_of(&app, &member.api_key_id).await, (3, 1));
}

#[tokio::test]
async fn an_actor_demoted_elsewhere_cannot_open_a_new_acting_session() {
    let app = spawn_app().await;
    let admin = app.create_user("default", Role::Admin).await;
    let member = app.create_user("default", Role::Member).await;
    app.signin_as(&admin, &member.user_id).await;
    app.set_user_directly(&admin.user_id, Some(Role::Member), None)
        .await;

    let (status, body) = signin_as(&app, &admin, &member.user_id).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(error_code(&body), "permission_denied");
    // Signing in as themself still works: only the acting is refused.
    app.signin(&admin).await;
}

#[tokio::test]
async fn an_acted_for_user_disabled_elsewhere_gets_no_acting_session() {
    let app = spawn_app().await;
    let admin = app.create_user("default", Role::Admin).await;
    let member = app.create_user("default", Role::Member).await;
    app.signin_as(&admin, &member.user_id).await;
    app.set_user_directly(&member.user_id, None, Some(true))
        .await;

    let (status, body) = signin_as(&app, &admin, &member.user_id).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_code(&body), "invalid_api_key");
}

#[tokio::test]
async fn a_key_revoked_through_this_node_is_refused_before_any_commit() {
    let app = spawn_app().await;
    let boss = app.session(&app.owner).await;
    let creds = app.create_key("default", &app.owner.user_id).await;
    app.signin(&creds).await;
    app.delete_as(
        &boss.token,
        &format!("/v1/default/api_keys/{}", creds.api_key_id),
    )
    .await
    .expect(StatusCode::NO_CONTENT);

    let (status, body) = signin_as(&app, &creds, &creds.user_id).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_code(&body), "revoked_api_key");
    // Refused by the credential check (this node dropped its cached key), not at a commit:
    // no session row was written for it.
    assert_eq!(sessions_of(&app, &creds.api_key_id).await, (1, 0));
}

/// A browser client deleted between its token request's checks and the commit of the new
/// session: the commit reads the client again and writes the session ended, as the
/// deletion ends the sessions it finds (`storage::clients::delete`). Driven at the storage
/// layer, where the window between the two is: the same opening commits while the client
/// exists and is refused once it is gone.
#[tokio::test]
async fn a_browser_clients_new_session_is_refused_at_its_commit_once_the_client_is_deleted() {
    use keygate::storage::sessions::{Opening, Refusal, open_many};
    let app = spawn_app().await;
    let client = crate::authorize::public_client(&app).await;
    let org = keygate::admin::find_org(&app.state.storage, "default")
        .await
        .unwrap();
    let opening = || {
        let now = app.now();
        let session = entity::session::Model {
            id: keygate::ids::new_id("ses"),
            org_id: org.id.clone(),
            user_id: app.owner.user_id.clone(),
            api_key_id: client.id.clone(),
            actor_user_id: None,
            dpop_jkt: None,
            scope: String::new(),
            created_at: now,
            expires_at: now + chrono::Duration::hours(1),
            revoked_at: None,
            refreshed_at: None,
            resources: None,
            parent_session_id: None,
            actor_session_id: None,
        };
        let (_, refresh) = keygate::auth::session::new_refresh_token(&app.state, &session, now);
        Opening {
            session,
            refresh: Some(refresh),
            touch_key: false,
            used_from: None,
        }
    };

    let before = opening();
    let refusals = open_many(&app.state.storage, &[&before], app.now())
        .await
        .unwrap();
    assert!(refusals.is_empty(), "{refusals:?}");

    keygate::storage::clients::delete(&app.state.storage, &org.id, &client.id, app.now())
        .await
        .unwrap();
    let after = opening();
    let refusals = open_many(&app.state.storage, &[&after], app.now())
        .await
        .unwrap();
    assert_eq!(refusals.get(&after.session.id), Some(&Refusal::ClientGone));
    for id in [&before.session.id, &after.session.id] {
        let stored = keygate::storage::sessions::get(&app.state.storage, &org.id, id)
            .await
            .unwrap()
            .unwrap();
        assert!(stored.revoked_at.is_some(), "{id} is still open");
    }
}
