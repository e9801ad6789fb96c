//! Group commit of new sessions (docs/architecture.md, "How a sign-in flows"): every
//! sign-in answered 200 has its session and refresh token committed, a row that fails does
//! not fail the rows batched with it, and a stop commits what was handed over.

use std::sync::Arc;
use std::time::Duration;

use keygate::types::Role;
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database, EntityTrait};
use serde_json::Value;
use tokio::sync::Barrier;

use crate::binary::{Server, banner_value, wait_for};
use crate::helpers::{Credentials, TestApp, TestDatabase, error_code, json, spawn_app_with};

/// `n` sign-ins with `creds`, released together; each reply's status and body.
async fn signins(app: &Arc<TestApp>, creds: &[Credentials]) -> Vec<(StatusCode, Value)> {
    let barrier = Arc::new(Barrier::new(creds.len()));
    let tasks: Vec<_> = creds
        .iter()
        .cloned()
        .map(|c| {
            let app = app.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                json(
                    app.signin_raw(
                        &c.org,
                        Some(&c.api_key),
                        Some(&c.api_key_id),
                        Some(&c.user_id),
                    )
                    .await,
                )
                .await
            })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.unwrap());
    }
    replies
}

/// The session named by an answered sign-in is in the database, and its refresh token
/// refreshes.
async fn assert_durable(app: &TestApp, body: &Value) {
    let sid = body["session_id"].as_str().unwrap().to_owned();
    let db = Database::connect(&app.db.url).await.unwrap();
    let session = entity::session::Entity::find_by_id(sid.clone())
        .one(&db)
        .await
        .unwrap();
    db.close().await.ok();
    assert!(session.is_some(), "session {sid} of an answered sign-in");
    let (status, error) = app
        .refresh_grant("default", body["refresh_token"].as_str().unwrap(), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_answered_concurrent_signin_is_committed_and_refreshes() {
    let app = Arc::new(
        spawn_app_with(|s| {
            s.server.workers = Some(4);
            // Small batches and a long window, so that many batches fill up and close.
            s.database.batch_max_rows = 8;
            s.database.batch_max_wait = Duration::from_millis(20);
        })
        .await,
    );
    for round in 0..3 {
        let creds = vec![app.owner.clone(); 48];
        let replies = signins(&app, &creds).await;
        for (status, body) in &replies {
            assert_eq!(*status, StatusCode::OK, "round {round}: {body}");
            assert_durable(&app, body).await;
        }
    }
}

/// Makes the database refuse every new session of `user_id` (a trigger): a row that fails
/// on its own, as a row whose key or user vanished would.
async fn refuse_sessions_of(app: &TestApp, user_id: &str) {
    let db = Database::connect(&app.db.url).await.unwrap();
    if app.db.is_postgres() {
        db.execute_unprepared(&format!(
            "CREATE FUNCTION refuse_session() RETURNS trigger AS $$ BEGIN \
             IF NEW.user_id = '{user_id}' THEN RAISE EXCEPTION 'refused by the test'; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql; \
             CREATE TRIGGER refuse_session BEFORE INSERT ON sessions \
             FOR EACH ROW EXECUTE FUNCTION refuse_session();"
        ))
        .await
        .unwrap();
    } else {
        db.execute_unprepared(&format!(
            "CREATE TRIGGER refuse_session BEFORE INSERT ON sessions \
             WHEN NEW.user_id = '{user_id}' \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;"
        ))
        .await
        .unwrap();
    }
    db.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_row_fails_alone_not_its_batch() {
    let app = Arc::new(
        spawn_app_with(|s| {
            s.server.workers = Some(4);
            // One batch per round: every sign-in of the round lands in the window.
            s.database.batch_max_wait = Duration::from_millis(200);
        })
        .await,
    );
    let refused = app.create_user("default", Role::Member).await;
    refuse_sessions_of(&app, &refused.user_id).await;
    for round in 0..3 {
        let mut creds = vec![app.owner.clone(); 12];
        creds.extend(vec![refused.clone(); 4]);
        let replies = signins(&app, &creds).await;
        for (c, (status, body)) in creds.iter().zip(&replies) {
            if c.user_id == refused.user_id {
                assert_eq!(
                    *status,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "round {round}: {body}"
                );
                assert_eq!(error_code(body), "internal_error");
            } else {
                assert_eq!(*status, StatusCode::OK, "round {round}: {body}");
                assert_durable(&app, body).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stop_commits_the_sessions_handed_over() {
    cargo_binary_built();
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::create(&dir.path().join("data")).await;
    // A long batch window: the stop arrives while the sign-ins wait in the writer, a second
    // after they were sent (so on a loaded machine every one has reached the server: a
    // request the server never read may fairly be refused by the stop).
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/default.toml"),
        "[database]\nbatch_max_wait = \"3s\"\n",
    )
    .unwrap();
    let server = Server::start(dir.path(), &db);
    wait_for("the bootstrap banner", &server.stdout, |s| {
        s.contains("x-user-id: usr_")
    });
    let stdout = server.stdout.lock().unwrap().clone();
    let (key, key_id, user) = (
        banner_value(&stdout, "api_key:"),
        banner_value(&stdout, "api_key_id:"),
        banner_value(&stdout, "user_id:"),
    );
    let client = reqwest::Client::new();
    let url = server.url.clone();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let request = client
                .post(format!("{url}/v1/default/user/signin_with_api_key"))
                .header("x-api-key", &key)
                .header("x-api-key-id", &key_id)
                .header("x-user-id", &user);
            tokio::spawn(async move { json(request.send().await.unwrap()).await })
        })
        .collect();
    // The sign-ins are in the writer's window when SIGTERM arrives.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopping = tokio::task::spawn_blocking(move || server.stop("TERM"));
    let mut answered = Vec::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(
            status,
            StatusCode::OK,
            "an in-flight sign-in finishes: {body}"
        );
        answered.push(body["refresh_token"].as_str().unwrap().to_owned());
    }
    stopping.await.unwrap();

    let server = Server::start(dir.path(), &db);
    for refresh_token in &answered {
        let res = client
            .post(format!("{}/v1/default/oauth/token", server.url))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "an acknowledged refresh token"
        );
    }
    server.stop("TERM");
}

/// The test runs the real binary: it must be this worktree's build (`cargo test` builds it).
fn cargo_binary_built() {
    assert!(std::path::Path::new(env!("CARGO_BIN_EXE_keygate")).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_revoked_while_its_signin_waits_for_the_batch_refuses_it_and_ends_its_session() {
    let app = Arc::new(
        spawn_app_with(|s| {
            s.server.workers = Some(2);
            // The sign-in waits in the writer while the key is revoked.
            s.database.batch_max_wait = Duration::from_millis(400);
        })
        .await,
    );
    let boss = app.session(&app.owner).await;
    let doomed = app.create_key("default", &app.owner.user_id).await;
    let signin = {
        let app = app.clone();
        let c = doomed.clone();
        tokio::spawn(async move {
            json(
                app.signin_raw(
                    &c.org,
                    Some(&c.api_key),
                    Some(&c.api_key_id),
                    Some(&c.user_id),
                )
                .await,
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    app.delete_as(
        &boss.token,
        &format!("/v1/default/api_keys/{}", doomed.api_key_id),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    // Checked before the revocation, but the commit sees it: refused, and the session it
    // wrote is ended.
    let (status, body) = signin.await.unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_code(&body), "revoked_api_key");
    let db = Database::connect(&app.db.url).await.unwrap();
    let sessions = entity::session::Entity::find().all(&db).await.unwrap();
    db.close().await.ok();
    let of_key: Vec<_> = sessions
        .iter()
        .filter(|s| s.api_key_id == doomed.api_key_id)
        .collect();
    assert_eq!(of_key.len(), 1, "the session the sign-in wrote");
    assert!(of_key[0].revoked_at.is_some(), "and it is ended");
}
