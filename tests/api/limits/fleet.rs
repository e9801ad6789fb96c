//! A fleet shares its counters in the replay store's Redis (`dpop.replay_store = "redis"`):
//! a key's limit holds across nodes. With `KEYGATE_TEST_REDIS_URL` unset these tests use
//! memory and show what a single node does. Also: the Redis script decides exactly as the
//! in-memory store does, on the time the calling node passes (its `Clock`), so a test
//! moves time for it like for everything else.

use std::sync::Arc;

use keygate::limits::gcra::Cell;
use keygate::limits::{LimitStore, MemoryLimitStore, RedisLimitStore};
use reqwest::StatusCode;

use super::{advance, assert_limited, real_limits, signin_at};
use crate::helpers::spawn_app_with;
use crate::replay_store::{REDIS_ENV, prefix, use_redis};

#[tokio::test]
async fn two_nodes_share_a_keys_limit_through_redis() {
    let prefix = prefix();
    let app = spawn_app_with(|s| {
        real_limits(s, 4);
        use_redis(s, &prefix);
        s.server.public_url = Some(crate::helpers::FLEET_URL.into());
    })
    .await;
    let second = app.second_node().await;
    let nodes = [app.address.clone(), second];
    let shared = std::env::var(REDIS_ENV).is_ok();
    let mut admitted = 0;
    for i in 0..8 {
        let reply = signin_at(&app, &nodes[i % 2], &app.owner).await;
        if reply.status == StatusCode::OK {
            admitted += 1;
        } else {
            assert_limited(&reply);
        }
    }
    // Shared: 4 in all. In memory, each node counts its own 4.
    assert_eq!(admitted, if shared { 4 } else { 8 });
    if shared {
        let refused = signin_at(&app, &nodes[1], &app.owner).await;
        assert_eq!(assert_limited(&refused), 15);
        advance(&app, 15);
        signin_at(&app, &nodes[1], &app.owner)
            .await
            .expect(StatusCode::OK);
        assert_limited(&signin_at(&app, &nodes[0], &app.owner).await);
    }
}

/// The store under test: Redis when configured, else memory.
async fn store() -> Arc<dyn LimitStore> {
    match std::env::var(REDIS_ENV) {
        Ok(url) => Arc::new(
            RedisLimitStore::connect(&url, &prefix())
                .await
                .unwrap_or_else(|e| panic!("{REDIS_ENV}={url} is unreachable: {e}")),
        ),
        Err(_) => Arc::new(MemoryLimitStore::new()),
    }
}

const SEC: i64 = 1_000_000;

#[tokio::test]
async fn the_store_decides_on_the_callers_clock_like_the_memory_store() {
    let store = store().await;
    let reference = MemoryLimitStore::new();
    let cells = [
        ("per-minute", Cell::new(3, 60)),
        ("per-hour", Cell::new(5, 3600)),
    ];
    // A time far from the wall clock: only the time passed in counts.
    let start = 4_102_444_800 * SEC; // 2100-01-01
    let steps: [(i64, bool); 9] = [
        (0, true),
        (0, true),
        (0, true),
        (0, false), // the minute's 3
        (19 * SEC, false),
        (20 * SEC, true), // one every 20 s
        (20 * SEC, false),
        (40 * SEC, true),
        (400 * SEC, false), // the hour's 5
    ];
    for (at, expected) in steps {
        let now = start + at;
        let got = store.acquire("subject", &cells, now).await.unwrap();
        let want = reference.acquire("subject", &cells, now).await.unwrap();
        assert_eq!(got, want, "at {at}");
        assert_eq!(got.0, expected, "at {at}");
    }
}

#[tokio::test]
async fn concurrent_acquires_admit_exactly_the_quota() {
    let store = store().await;
    let cells = [("per-minute", Cell::new(7, 60))];
    let now = 4_102_444_800 * SEC;
    for round in 0..5i64 {
        let barrier = Arc::new(tokio::sync::Barrier::new(32));
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (store, barrier) = (store.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store
                        .acquire("burst", &cells, now + round * 60 * SEC)
                        .await
                        .unwrap()
                        .0
                })
            })
            .collect();
        let mut admitted = 0;
        for task in tasks {
            admitted += usize::from(task.await.unwrap());
        }
        assert_eq!(admitted, 7, "round {round}");
    }
}
