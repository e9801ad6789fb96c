//! Housekeeping purges, in batches, sessions and refresh tokens past their expiry (plus the
//! retention), revocations of expired access tokens, expired idempotency records and audit
//! events past `audit.retention`, and nothing that is still live.

use std::collections::HashSet;
use std::time::Duration;

use keygate::housekeeping::{Purged, run_once};
use reqwest::{Method, StatusCode};
use sea_orm::{Database, DatabaseConnection, EntityTrait};
use serde_json::json;

use crate::admin_helpers::Session;
use crate::helpers::{Credentials, TestApp, claims_of, json, spawn_app_with};

const DAY: Duration = Duration::from_secs(86_400);

async fn session_ids(db: &DatabaseConnection) -> HashSet<String> {
    entity::session::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect()
}

async fn refresh_token_sessions(db: &DatabaseConnection) -> Vec<String> {
    entity::refresh_token::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.session_id)
        .collect()
}

async fn revoked_jtis(db: &DatabaseConnection) -> HashSet<String> {
    entity::revoked_token::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.jti)
        .collect()
}

async fn idempotency_keys(db: &DatabaseConnection) -> HashSet<String> {
    entity::idempotency_key::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.idem_key)
        .collect()
}

async fn audit_times(db: &DatabaseConnection) -> Vec<chrono::DateTime<chrono::Utc>> {
    entity::audit_event::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.at)
        .collect()
}

/// Revokes an access token (RFC 7009) with its key's credentials; returns its `jti`.
async fn revoke_access_token(app: &TestApp, key: &Credentials, token: &str) -> String {
    let res = app
        .client
        .post(app.url("/v1/default/oauth/revoke"))
        .form(&[
            ("token", token),
            ("client_id", key.api_key_id.as_str()),
            ("client_secret", key.api_key.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    claims_of(token)["jti"].as_str().unwrap().to_owned()
}

async fn end_session(app: &TestApp, admin: &Session, session: &Session) {
    let reply = app
        .delete_as(
            &admin.token,
            &format!("/v1/default/sessions/{}", session.session_id),
        )
        .await;
    assert!(reply.status.is_success(), "{}", reply.body);
}

async fn create_user_idempotently(app: &TestApp, admin: &Session, idem_key: &str) {
    let org = &admin.creds.org;
    let reply = app
        .send(
            app.admin_request(Method::POST, &format!("/v1/{org}/users"), &admin.token)
                .header("idempotency-key", idem_key)
                .json(&json!({"email": format!("{idem_key}@{org}.test"), "role": "member"})),
        )
        .await;
    reply.expect(StatusCode::CREATED);
}

#[tokio::test]
async fn a_housekeeping_pass_purges_what_expired_and_keeps_what_lives() {
    let app = spawn_app_with(|s| {
        s.housekeeping.batch_size = 2;
        s.housekeeping.batch_pause = Duration::from_millis(1);
        s.housekeeping.interval = Duration::ZERO;
    })
    .await;
    let db = Database::connect(&app.db.url).await.unwrap();
    let key = app
        .create_key_for("default", &app.owner.user_id, Some(365 * DAY))
        .await;

    // T0: sessions that will be long gone (one refreshed, one ended early), a revoked
    // access token, an idempotency record, audit events.
    let t0 = app.now();
    let admin = app.session(&key).await;
    let refreshed = app.session(&key).await;
    let ended = app.session(&key).await;
    let (status, _) = app
        .refresh_grant("default", &refreshed.refresh_token, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let old_jti = revoke_access_token(&app, &key, &refreshed.token).await;
    end_session(&app, &admin, &ended).await;
    // In an organization with no later idempotent request (a new reservation forgets its
    // organization's expired records by itself).
    let acme = app.session(&app.create_org("acme").await).await;
    create_user_idempotently(&app, &acme, "old-idem").await;
    let old: HashSet<String> = [&admin, &refreshed, &ended, &acme]
        .iter()
        .map(|s| s.session_id.clone())
        .collect();

    // T1 = T0 + 60 days: a session that will have expired only recently.
    app.clock.advance(60 * DAY);
    let recent = app.session(&key).await;

    // T2 = T1 + 33 days: `recent` expired 3 days ago (within the 7-day retention), the T0
    // sessions 63 days ago, the T0 audit events are 93 days old (past the 90 days).
    app.clock.advance(33 * DAY);
    let admin2 = app.session(&key).await;
    let live = app.session(&key).await;
    let live_revoked = app.session(&key).await;
    let new_jti = revoke_access_token(&app, &key, &live_revoked.token).await;
    end_session(&app, &admin2, &live_revoked).await;
    create_user_idempotently(&app, &admin2, "new-idem").await;
    app.flush_audit().await;

    let now = app.now();
    let audit_cutoff = now - chrono::Duration::days(90);
    let before_audit = audit_times(&db).await;
    let old_events = before_audit.iter().filter(|t| **t < audit_cutoff).count();
    assert!(old_events > 0, "the test has old audit events to purge");
    assert!(before_audit.iter().all(|t| *t >= t0));
    let tokens_before = refresh_token_sessions(&db).await;
    let old_tokens = tokens_before.iter().filter(|s| old.contains(*s)).count();
    assert_eq!(old_tokens, 5, "four sessions, one refreshed once");
    assert!(revoked_jtis(&db).await.contains(&old_jti));
    assert!(idempotency_keys(&db).await.contains("old-idem"));

    let purged = run_once(&app.state, now).await.unwrap();
    assert_eq!(purged.sessions, 4, "{purged:?}");
    assert_eq!(purged.refresh_tokens, 5, "{purged:?}");
    assert_eq!(purged.revoked_tokens, 1, "{purged:?}");
    assert_eq!(purged.idempotency_keys, 1, "{purged:?}");
    assert_eq!(purged.audit_events, old_events as u64, "{purged:?}");

    let sessions = session_ids(&db).await;
    assert!(sessions.is_disjoint(&old), "{sessions:?}");
    for kept in [&recent, &admin2, &live, &live_revoked] {
        assert!(sessions.contains(&kept.session_id), "{sessions:?}");
    }
    let tokens = refresh_token_sessions(&db).await;
    assert!(tokens.iter().all(|s| !old.contains(s)), "{tokens:?}");
    assert_eq!(tokens.len(), tokens_before.len() - old_tokens);
    let jtis = revoked_jtis(&db).await;
    assert!(
        !jtis.contains(&old_jti) && jtis.contains(&new_jti),
        "{jtis:?}"
    );
    let idem = idempotency_keys(&db).await;
    assert!(
        !idem.contains("old-idem") && idem.contains("new-idem"),
        "{idem:?}"
    );
    let audit = audit_times(&db).await;
    assert!(audit.iter().all(|t| *t >= audit_cutoff));
    assert_eq!(audit.len(), before_audit.len() - old_events);

    // What lives still works; the revoked session still answers as revoked.
    let (status, body) = json(app.me("default", &live.token).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app
        .refresh_grant("default", &live.refresh_token, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, error) = app
        .refresh_grant("default", &live_revoked.refresh_token, None)
        .await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );

    // A second pass (another node's, say) finds nothing more to do.
    app.flush_audit().await;
    assert_eq!(run_once(&app.state, now).await.unwrap(), Purged::default());
    db.close().await.ok();
}

#[tokio::test]
async fn revocations_outlive_their_tokens_by_the_leeway() {
    let app = spawn_app_with(|s| s.housekeeping.interval = Duration::ZERO).await;
    let db = Database::connect(&app.db.url).await.unwrap();
    let session = app.session(&app.owner).await;
    let jti = revoke_access_token(&app, &app.owner, &session.token).await;
    let exp = claims_of(&session.token)["exp"].as_i64().unwrap();
    let exp = chrono::DateTime::from_timestamp(exp, 0).unwrap();
    let leeway = chrono::Duration::from_std(app.state.settings.tokens.leeway).unwrap();

    // Until exp + leeway a verifier may still accept the token: the revocation stays.
    run_once(&app.state, exp + leeway).await.unwrap();
    assert!(revoked_jtis(&db).await.contains(&jti));
    run_once(&app.state, exp + leeway + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert!(!revoked_jtis(&db).await.contains(&jti));
    db.close().await.ok();
}

/// `audit.retention = "0s"` keeps the audit log forever: it never means "older than now".
#[tokio::test]
async fn a_zero_audit_retention_keeps_every_event() {
    let app = spawn_app_with(|s| s.audit.retention = Duration::ZERO).await;
    app.signin(&app.owner).await;
    app.flush_audit().await;
    let before = app.audit_events("default").await.len();
    assert!(before > 0, "the sign-in was audited");
    app.clock.advance(Duration::from_secs(400 * 86_400));
    let purged = run_once(&app.state, app.now()).await.expect("a pass");
    assert_eq!(purged.audit_events, 0, "{purged:?}");
    assert_eq!(app.audit_events("default").await.len(), before);
}

/// One node purges at a time: on PostgreSQL a pass needs the housekeeping advisory lock,
/// and a node that finds it held (here, by a pass of "another node" in progress) skips its
/// turn and deletes nothing; once the lock is free the next pass runs. SQLite (one node)
/// always runs.
#[tokio::test]
async fn only_one_node_purges_at_a_time() {
    use keygate::housekeeping::run_exclusive;
    use keygate::storage::housekeeping::try_lock;

    let app = spawn_app_with(|_| {}).await;
    let owner = app.session(&app.owner).await;
    app.clock.advance(Duration::from_secs(400 * 86_400));
    let now = app.now();
    let held = try_lock(&app.state.storage)
        .await
        .unwrap()
        .expect("free at first");
    if app.db.is_postgres() {
        assert!(try_lock(&app.state.storage).await.unwrap().is_none());
        assert_eq!(run_exclusive(&app.state, now).await.unwrap(), None);
        let db = Database::connect(&app.db.url).await.unwrap();
        assert!(
            session_ids(&db).await.contains(&owner.session_id),
            "nothing was deleted while another node held the lock"
        );
        db.close().await.ok();
    }
    held.release().await.unwrap();
    let purged = run_exclusive(&app.state, now).await.unwrap().expect("ran");
    assert!(purged.sessions >= 1, "{purged:?}");
    // Released at the end of the pass: the next one runs too.
    assert_eq!(
        run_exclusive(&app.state, now).await.unwrap(),
        Some(Purged::default())
    );
}
