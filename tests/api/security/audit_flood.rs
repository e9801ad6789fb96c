//! The audit log cannot be flooded or forged by the unauthenticated: failures with no valid
//! organization or no credential shape are counted, not stored; ids written to an
//! organization's log come from verified records; security events are never dropped in
//! favour of noise.

use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use keygate::audit::AuditEvent;
use keygate::keys::api_key::PlainApiKey;
use keygate::types::Environment;
use reqwest::StatusCode;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

/// Attacker-chosen ids, well-formed so that only their lack of a record stops them.
const FAKE_KEY: &str = "key_ATTACKERchosen0000000000";
const FAKE_USER: &str = "usr_ATTACKERchosen0000000000";

/// One unauthenticated sign-in of kind `i % 6`.
async fn unauthenticated_signin(app: &TestApp, i: usize) -> StatusCode {
    let secret = PlainApiKey::generate(Environment::Live).expose().to_owned();
    let (org, secret, key_id, user_id) = match i % 6 {
        // An organization that does not exist.
        0 => ("nosuchorg", Some(secret), Some(FAKE_KEY), Some(FAKE_USER)),
        // No headers at all.
        1 => ("default", None, None, None),
        // No credential shape.
        2 => (
            "default",
            Some("hunter2".to_owned()),
            Some(FAKE_KEY),
            Some(FAKE_USER),
        ),
        3 => ("default", Some(secret), Some("key_short"), Some(FAKE_USER)),
        // A well-formed credential that matches no record.
        4 => ("default", Some(secret), Some(FAKE_KEY), Some(FAKE_USER)),
        // A real user id with a key id that does not exist.
        _ => (
            "default",
            Some(secret),
            Some(FAKE_KEY),
            Some(app.owner.user_id.as_str()),
        ),
    };
    app.signin_raw(org, secret.as_deref(), key_id, user_id)
        .await
        .status()
}

#[tokio::test]
async fn unauthenticated_failures_write_nothing_and_no_attacker_chosen_id() {
    let app = spawn_app().await;
    let o = app.owner.clone();
    const N: usize = 1200;
    let statuses: Vec<StatusCode> = futures_util::stream::iter(0..N)
        .map(|i| unauthenticated_signin(&app, i))
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| s.is_client_error()), "{statuses:?}");
    // Client authentication at the token endpoint, with an id that matches nothing.
    for _ in 0..20 {
        let res = app
            .client
            .post(app.url("/v1/default/oauth/token"))
            .basic_auth(
                FAKE_KEY,
                Some(PlainApiKey::generate(Environment::Live).expose()),
            )
            .form(&[("grant_type", "client_credentials"), ("user_id", FAKE_USER)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }

    // A real security event after the flood.
    let victim = app.create_key("default", &o.user_id).await;
    let boss = app.session(&o).await;
    let res = app
        .client
        .delete(app.url(&format!("/v1/default/api_keys/{}", victim.api_key_id)))
        .bearer_auth(&boss.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    let events = app.audit_events("default").await;
    assert!(
        events.iter().any(|e| e.action == "api_key.revoked"
            && e.target_id.as_deref() == Some(victim.api_key_id.as_str())),
        "the revocation is in the log"
    );
    assert!(
        !events.iter().any(|e| e.outcome == "failure"),
        "no failure without a verified record is stored: {events:#?}"
    );
    // Nothing anywhere in the database names what the attacker chose.
    let dump = app.db.dump().await;
    assert!(!dump.contains(FAKE_KEY));
    assert!(!dump.contains(FAKE_USER));
    assert!(!dump.contains("nosuchorg"));
    // They were counted instead.
    let counters = app.state.audit.counters();
    assert!(counters.unrecorded_failures.load(Ordering::Relaxed) >= N as u64);
}

#[tokio::test]
async fn a_wrong_secret_for_a_real_key_is_logged_with_that_key_only() {
    let app = spawn_app().await;
    let o = app.owner.clone();
    let wrong = PlainApiKey::generate(Environment::Live).expose().to_owned();
    let res = app
        .signin_raw(
            "default",
            Some(&wrong),
            Some(&o.api_key_id),
            Some(FAKE_USER),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let events = app.audit_events("default").await;
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e.action == "signin.failed")
        .collect();
    assert_eq!(failed.len(), 1, "{events:#?}");
    assert_eq!(
        failed[0].actor_key_id.as_deref(),
        Some(o.api_key_id.as_str())
    );
    assert_eq!(failed[0].actor_user_id.as_deref(), Some(o.user_id.as_str()));
    assert_eq!(
        failed[0].target_id, None,
        "the presented user id is not verified"
    );
    assert_eq!(failed[0].reason.as_deref(), Some("invalid_api_key"));
}

#[tokio::test]
async fn security_events_survive_a_full_failure_queue() {
    let app = spawn_app_with(|s| s.audit.queue_capacity = 16).await;
    let org = keygate::admin::find_org(&app.state.storage, "default")
        .await
        .unwrap();
    let failure = |i: usize| AuditEvent {
        org_id: Some(org.id.clone()),
        action: "signin.failed",
        reason: Some(format!("flood-{i}")),
        actor_key_id: Some(app.owner.api_key_id.clone()),
        ..AuditEvent::default()
    };
    // The writer runs on this test's (single-threaded) runtime: nothing is written until
    // the test awaits, so the failure queue overflows.
    const N: usize = 10_000;
    for i in 0..N {
        app.state.audit.record_failure(failure(i));
    }
    app.state.audit.record(AuditEvent {
        org_id: Some(org.id.clone()),
        action: "api_key.revoked",
        success: true,
        target_type: Some("api_key"),
        target_id: Some("key_the_real_event".into()),
        ..AuditEvent::default()
    });
    for i in 0..N {
        app.state.audit.record_failure(failure(i));
    }
    let events = app.audit_events("default").await;
    assert!(
        events.iter().any(|e| e.action == "api_key.revoked"
            && e.target_id.as_deref() == Some("key_the_real_event")),
        "the security event was kept"
    );
    let counters = app.state.audit.counters();
    assert_eq!(counters.security_dropped.load(Ordering::Relaxed), 0);
    let dropped = counters.failures_dropped.load(Ordering::Relaxed);
    let stored = events
        .iter()
        .filter(|e| e.action == "signin.failed")
        .count();
    assert!(dropped > 0);
    assert_eq!(
        dropped as usize + stored,
        2 * N,
        "every failure is stored or counted"
    );
}

#[tokio::test]
async fn failures_at_an_unknown_organization_write_nothing() {
    let app = spawn_app().await;
    let o = app.owner.clone();
    // The owner's real credentials, at an organization that does not exist.
    for _ in 0..50 {
        let res = app
            .signin_raw(
                "ghost",
                Some(&o.api_key),
                Some(&o.api_key_id),
                Some(&o.user_id),
            )
            .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
    app.state.audit.flush().await;
    let all = keygate::storage::audit::list(
        &app.state.storage,
        &keygate::admin::find_org(&app.state.storage, "default")
            .await
            .unwrap()
            .id,
    )
    .await
    .unwrap();
    assert!(all.iter().all(|e| e.action != "signin.failed"), "{all:#?}");
    assert!(!app.db.dump().await.contains("ghost"));
}
