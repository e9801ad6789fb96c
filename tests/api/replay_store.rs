//! The DPoP replay store a fleet shares (`dpop.replay_store = "redis"`): a proof used at
//! one node is refused at every other. With `KEYGATE_TEST_REDIS_URL` set (CI sets it) these
//! tests run against that real Redis; without it, the store tests run against the
//! in-memory store and the two-node test shows that separate memory stores do not share.

use std::sync::Arc;
use std::time::Duration;

use keygate::auth::dpop::{MemoryReplayStore, RedisReplayStore, ReplayStore, replay_key};
use keygate::clock::ManualClock;
use keygate::config::{ReplayStoreKind, Settings};
use keygate::startup::Application;
use reqwest::StatusCode;

use crate::dpop_flow::DpopKey;
use crate::helpers::{TestApp, error_code, json, spawn_app_with};

pub const REDIS_ENV: &str = "KEYGATE_TEST_REDIS_URL";

/// A key prefix of the test's own, so tests never see each other's proofs.
fn prefix() -> String {
    format!("keygate-test:{}:", keygate::ids::random_base62(12))
}

/// The store under test: Redis when configured, else an in-memory one.
async fn store(prefix: &str) -> Arc<dyn ReplayStore> {
    match std::env::var(REDIS_ENV) {
        Ok(url) => Arc::new(
            RedisReplayStore::connect(&url, prefix)
                .await
                .unwrap_or_else(|e| panic!("{REDIS_ENV}={url} is unreachable: {e}")),
        ),
        Err(_) => Arc::new(MemoryReplayStore::new(10_000)),
    }
}

/// Points `settings` at the shared Redis (when configured) under `prefix`.
fn use_redis(settings: &mut Settings, prefix: &str) {
    if let Ok(url) = std::env::var(REDIS_ENV) {
        settings.dpop.replay_store = ReplayStoreKind::Redis;
        settings.dpop.redis_url = Some(url);
        settings.dpop.redis_prefix = prefix.to_owned();
    }
}

#[tokio::test]
async fn first_use_wins_once_across_concurrent_callers_and_entries_expire() {
    let store = store(&prefix()).await;
    let key = replay_key("thumbprint", "jti-1");
    let ttl = Duration::from_millis(700);
    let attempts: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.insert_if_absent(key, ttl).await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for attempt in attempts {
        wins += usize::from(attempt.await.unwrap());
    }
    assert_eq!(wins, 1, "exactly one first use");
    assert!(
        store
            .insert_if_absent(replay_key("thumbprint", "jti-2"), ttl)
            .await
            .unwrap()
    );
    // Once the proof's window is over, its entry is gone.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(store.insert_if_absent(key, ttl).await.unwrap());
}

/// A second node of `app`'s fleet: same database, secrets and public URL, its own port.
async fn second_node(app: &TestApp, configure: impl FnOnce(&mut Settings)) -> String {
    let mut settings = (*app.state.settings).clone();
    settings.server.bind = "127.0.0.1:0".into();
    configure(&mut settings);
    let node = Application::build(settings, Arc::new(ManualClock::starting_now()))
        .await
        .expect("second node builds");
    let address = format!("http://{}", node.local_addr());
    tokio::spawn(node.run_until_stopped());
    address
}

#[tokio::test]
async fn a_proof_used_at_one_node_is_refused_at_another() {
    let prefix = prefix();
    // Both nodes are reached through the same public URL (as behind a load balancer), so a
    // proof's htu is valid at either.
    let public = "https://keygate.fleet.test";
    let app = spawn_app_with(|s| {
        s.server.public_url = Some(public.into());
        use_redis(s, &prefix);
    })
    .await;
    let other = second_node(&app, |_| {}).await;
    let shared = std::env::var(REDIS_ENV).is_ok();
    let key = DpopKey::es256();
    let path = "/v1/default/user/signin_with_api_key";
    let (header, claims) = key.parts("POST", &format!("{public}{path}"), app.now().timestamp());
    let proof = key.sign_parts(&header, &claims);
    let signin = |base: String| {
        let proof = proof.clone();
        let owner = app.owner.clone();
        let client = app.client.clone();
        async move {
            client
                .post(format!("{base}{path}"))
                .header("x-api-key", &owner.api_key)
                .header("x-api-key-id", &owner.api_key_id)
                .header("x-user-id", &owner.user_id)
                .header("dpop", proof)
                .send()
                .await
                .unwrap()
        }
    };
    let (status, body) = json(signin(app.address.clone()).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let (status, body) = json(signin(other).await).await;
    if shared {
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error_code(&body), "invalid_dpop_proof");
    } else {
        // Without a shared store each node remembers only its own proofs: the replay goes
        // through at the other node. This is why a fleet needs `replay_store = "redis"`.
        assert_eq!(
            app.state.settings.dpop.replay_store,
            ReplayStoreKind::Memory
        );
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

#[tokio::test]
async fn a_redis_replay_store_that_cannot_be_reached_stops_the_start() {
    let app = spawn_app_with(|_| {}).await;
    let mut settings = (*app.state.settings).clone();
    settings.server.bind = "127.0.0.1:0".into();
    settings.dpop.replay_store = ReplayStoreKind::Redis;
    settings.dpop.redis_url = Some("redis://127.0.0.1:1/0".into());
    let err = Application::build(settings.clone(), Arc::new(ManualClock::starting_now()))
        .await
        .err()
        .expect("no node starts without its replay store");
    assert!(format!("{err:#}").contains("dpop.redis_url"), "{err:#}");

    settings.dpop.redis_url = None;
    let err = Application::build(settings, Arc::new(ManualClock::starting_now()))
        .await
        .err()
        .expect("redis without a URL is refused");
    assert!(
        format!("{err:#}").contains("needs dpop.redis_url"),
        "{err:#}"
    );
}
