//! `Idempotency-Key` under races and cancellation: concurrent duplicates run once and are
//! answered 409 or the stored result, never 404 or 500; a cancelled request releases its
//! reservation; a reservation nobody finished is taken over after its lease.

use std::sync::Arc;
use std::time::Duration;

use keygate::idempotency::{self, Begin, LEASE};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Barrier;

use crate::admin_helpers::Reply;
use crate::helpers::{TestApp, spawn_app, spawn_app_with};

const KEYS: &str = "/v1/default/api_keys";

/// `n` identical `POST /api_keys` with one `Idempotency-Key`, released together.
async fn race(app: &Arc<TestApp>, token: &str, idem: &str, body: &Value, n: usize) -> Vec<Reply> {
    let barrier = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let app = app.clone();
            let barrier = barrier.clone();
            let request = app
                .admin_request(reqwest::Method::POST, KEYS, token)
                .header("idempotency-key", idem)
                .json(body);
            tokio::spawn(async move {
                barrier.wait().await;
                Reply::from(request.send().await.unwrap()).await
            })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.unwrap());
    }
    replies
}

async fn key_count(app: &TestApp, token: &str) -> usize {
    app.list_all(token, KEYS, 200).await.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates_create_one_key_and_never_answer_404() {
    let app = Arc::new(spawn_app_with(|s| s.server.workers = Some(4)).await);
    let boss = app.session(&app.owner).await;
    for round in 0..10 {
        let before = key_count(&app, &boss.token).await;
        let idem = format!("race-{round}");
        let replies = race(&app, &boss.token, &idem, &json!({"name": "race"}), 4).await;
        let created: Vec<_> = replies
            .iter()
            .filter(|r| r.status == StatusCode::CREATED)
            .collect();
        assert_eq!(created.len(), 1, "round {round}: {replies:#?}");
        let id = created[0].str("api_key_id");
        for reply in replies.iter().filter(|r| r.status != StatusCode::CREATED) {
            let body = reply.expect_error(StatusCode::CONFLICT, "conflict");
            // Either still in progress, or the replay naming the one key.
            let named = &body["error"]["api_key_id"];
            assert!(named.is_null() || named == id.as_str(), "{body}");
        }
        assert_eq!(
            key_count(&app, &boss.token).await,
            before + 1,
            "round {round}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates_of_a_failing_request_never_answer_404() {
    let app = Arc::new(spawn_app_with(|s| s.server.workers = Some(4)).await);
    let boss = app.session(&app.owner).await;
    // Refused after the key is reserved (the name is checked by the operation), so each
    // attempt reserves and releases: a duplicate may find the row gone.
    let body = json!({"name": ""});
    for round in 0..40 {
        let idem = format!("failing-{round}");
        for reply in race(&app, &boss.token, &idem, &body, 4).await {
            match reply.status {
                StatusCode::BAD_REQUEST => {
                    reply.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
                }
                _ => {
                    reply.expect_error(StatusCode::CONFLICT, "conflict");
                }
            }
        }
    }
}

async fn begin(app: &TestApp, idem: &str) -> Begin {
    let org = keygate::admin::find_org(&app.state.storage, "default")
        .await
        .unwrap();
    idempotency::begin(
        &app.state,
        &org.id,
        &app.owner.user_id,
        idem.to_owned(),
        idempotency::fingerprint("POST", KEYS, &json!({"name": "x"})),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_cancelled_request_releases_its_reservation() {
    let app = spawn_app().await;
    let Begin::Run(ticket) = begin(&app, "cancelled").await else {
        panic!("a first use runs");
    };
    assert!(matches!(begin(&app, "cancelled").await, Begin::InProgress));
    // The handler's future is dropped (the client went away) while it holds the ticket.
    drop(ticket);
    let mut released = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        match begin(&app, "cancelled").await {
            Begin::Run(_) => {
                released = true;
                break;
            }
            Begin::InProgress => continue,
            _ => panic!("neither a run nor in progress"),
        }
    }
    assert!(released, "the reservation was released, not kept for 24 h");
}

#[tokio::test]
async fn a_reservation_nobody_finished_is_taken_over_after_its_lease() {
    let app = spawn_app().await;
    let Begin::Run(ticket) = begin(&app, "crashed").await else {
        panic!("a first use runs");
    };
    // The process died: neither finish, nor abandon, nor drop ran.
    std::mem::forget(ticket);
    assert!(matches!(begin(&app, "crashed").await, Begin::InProgress));
    app.clock.advance(LEASE - Duration::from_secs(1));
    assert!(matches!(begin(&app, "crashed").await, Begin::InProgress));
    app.clock.advance(Duration::from_secs(1));
    let Begin::Run(ticket) = begin(&app, "crashed").await else {
        panic!("a retry takes the reservation over once its lease ended");
    };
    // Only one retry takes it over.
    assert!(matches!(begin(&app, "crashed").await, Begin::InProgress));
    idempotency::finish(&app.state, ticket, 201, json!({"ok": true}), None)
        .await
        .unwrap();
    assert!(matches!(begin(&app, "crashed").await, Begin::Replay(_)));
}
