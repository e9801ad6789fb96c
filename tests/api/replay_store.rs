//! The DPoP replay store a fleet shares (`dpop.replay_store = "redis"`): a proof used at
//! one node is refused at every other. With `KEYGATE_TEST_REDIS_URL` set (CI sets it) these
//! tests run against that real Redis; without it, the store tests run against the
//! in-memory store and the two-node test shows that separate memory stores do not share.
//! Also: what each store is asked to remember, and for how long (a recording wrapper around
//! the real store), and concurrent replays on a multi-worker server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use keygate::auth::dpop::{
    Dpop, MemoryReplayStore, RedisReplayStore, ReplayError, ReplayStore, replay_key,
};
use keygate::clock::{ManualClock, SystemClock};
use keygate::config::{ReplayStoreKind, Settings};
use keygate::startup::Application;
use reqwest::StatusCode;

use crate::dpop_flow::bound_token;
use crate::dpop_key::DpopKey;
use crate::helpers::{TestApp, error_code, json, spawn_app_with, spawn_app_with_store};

pub const REDIS_ENV: &str = "KEYGATE_TEST_REDIS_URL";

/// A key prefix of the test's own, so tests never see each other's proofs.
pub fn prefix() -> String {
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
        Err(_) => Arc::new(MemoryReplayStore::new(10_000, Arc::new(SystemClock))),
    }
}

/// Points `settings` at the shared Redis (when configured) under `prefix`.
pub fn use_redis(settings: &mut Settings, prefix: &str) {
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

/// A replay store that records every TTL it is handed, then asks the real store.
#[derive(Debug)]
pub struct Recording {
    inner: Arc<dyn ReplayStore>,
    pub calls: Mutex<Vec<([u8; 32], Duration)>>,
}

impl Recording {
    pub fn new(inner: Arc<dyn ReplayStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            calls: Mutex::default(),
        })
    }

    pub fn calls(&self) -> Vec<([u8; 32], Duration)> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl ReplayStore for Recording {
    async fn insert_if_absent(&self, key: [u8; 32], ttl: Duration) -> Result<bool, ReplayError> {
        self.calls.lock().unwrap().push((key, ttl));
        self.inner.insert_if_absent(key, ttl).await
    }
}

/// Every store kind this run can test: memory always, Redis when configured.
fn kinds() -> Vec<ReplayStoreKind> {
    let mut kinds = vec![ReplayStoreKind::Memory];
    if std::env::var(REDIS_ENV).is_ok() {
        kinds.push(ReplayStoreKind::Redis);
    }
    kinds
}

fn use_kind(settings: &mut Settings, kind: ReplayStoreKind, prefix: &str) {
    if kind == ReplayStoreKind::Redis {
        use_redis(settings, prefix);
    }
}

const SIGNIN: &str = "/v1/default/user/signin_with_api_key";
const ME: &str = "/v1/default/user/me";

/// The window is max_age + leeway + clock skew (+1 s for `iat`'s whole seconds), for
/// every proof, whatever its `iat`: the store is told so, the store keeps it that long
/// (Redis's own TTL; the memory store on the server's clock), and a replay at the end of
/// the proof's acceptance is refused.
#[tokio::test]
async fn each_store_is_told_to_remember_a_proof_for_its_whole_window() {
    for kind in kinds() {
        let prefix = prefix();
        let recording = Arc::new(Mutex::new(None::<Arc<Recording>>));
        let slot = recording.clone();
        let app = spawn_app_with_store(
            |s| {
                s.dpop.clock_skew = Duration::from_secs(45);
                use_kind(s, kind, &prefix);
            },
            move |real| {
                let r = Recording::new(real);
                *slot.lock().unwrap() = Some(r.clone());
                r
            },
        )
        .await;
        let recording = recording.lock().unwrap().clone().unwrap();
        let dpop = &app.state.settings.dpop;
        assert_eq!(dpop.replay_store, kind);
        let window = dpop.max_age + dpop.leeway + Duration::from_secs(45);
        assert_eq!(
            Dpop::replay_window(dpop),
            window + Duration::from_secs(1),
            "max_age + leeway + clock_skew + 1 s"
        );

        let key = DpopKey::es256();
        let url = format!("{}{SIGNIN}", app.state.public_url);
        let now = app.now().timestamp();
        // Dated at the edge of the future leeway, now, and nearly max_age old: each one
        // is remembered for the whole window.
        for iat in [now + 60, now, now - 290] {
            let (h, c) = key.parts("POST", &url, iat);
            let (status, body) = json(
                app.signin_with_proof(&app.owner, Some(&key.sign_parts(&h, &c)))
                    .await,
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{kind:?} {body}");
            let (stored_key, ttl) = *recording.calls().last().unwrap();
            assert_eq!(
                stored_key,
                replay_key(&key.thumbprint(), c["jti"].as_str().unwrap())
            );
            assert!(
                ttl > window,
                "{kind:?}: TTL {ttl:?} for iat {iat} (now {now})"
            );
            if kind == ReplayStoreKind::Redis {
                // What Redis itself will keep.
                let client = redis::Client::open(std::env::var(REDIS_ENV).unwrap()).unwrap();
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                let pttl: i64 = redis::cmd("PTTL")
                    .arg(format!("{prefix}{}", hex::encode(stored_key)))
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                assert!(
                    u128::try_from(pttl).unwrap() > window.as_millis() - 1_000,
                    "Redis keeps it {pttl} ms"
                );
            }
        }
        assert_eq!(recording.calls().len(), 3);

        // The first proof, replayed at the last second it could be accepted: refused.
        let (h, c) = key.parts("POST", &url, now + 60);
        let proof = key.sign_parts(&h, &c);
        assert_eq!(
            app.signin_with_proof(&app.owner, Some(&proof))
                .await
                .status(),
            StatusCode::OK
        );
        app.clock.advance(Duration::from_secs(360));
        let (status, body) = json(app.signin_with_proof(&app.owner, Some(&proof)).await).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_dpop_proof"),
            "{kind:?}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("used before"),
            "{kind:?} {body}"
        );
    }
}

/// A multi-worker server, one proof sent by many clients released together at a protected
/// resource: exactly one is served, every other one is a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_replays_at_a_resource_succeed_once_on_a_multi_worker_server() {
    for kind in kinds() {
        let prefix = prefix();
        let app = spawn_app_with(|s| {
            s.server.workers = Some(4);
            use_kind(s, kind, &prefix);
        })
        .await;
        let app = Arc::new(app);
        let key = Arc::new(DpopKey::es256());
        let token = Arc::new(bound_token(&app, &key).await);
        for round in 0..20 {
            const CLIENTS: usize = 8;
            let proof = Arc::new(key.proof(&app, "GET", ME, Some(&token)));
            let barrier = Arc::new(tokio::sync::Barrier::new(CLIENTS));
            let attempts: Vec<_> = (0..CLIENTS)
                .map(|_| {
                    let (app, token, proof, barrier) =
                        (app.clone(), token.clone(), proof.clone(), barrier.clone());
                    // A client of its own each: separate connections, so separate workers.
                    let client = reqwest::Client::new();
                    tokio::spawn(async move {
                        let req = client
                            .get(app.url(ME))
                            .header("authorization", format!("DPoP {token}"))
                            .header("dpop", proof.as_str());
                        barrier.wait().await;
                        let res = req.send().await.unwrap();
                        let challenge = res
                            .headers()
                            .get("www-authenticate")
                            .map(|v| v.to_str().unwrap().to_owned());
                        let (status, body) = json(res).await;
                        (status, body, challenge)
                    })
                })
                .collect();
            let mut served = 0;
            for attempt in attempts {
                let (status, body, challenge) = attempt.await.unwrap();
                if status == StatusCode::OK {
                    served += 1;
                    continue;
                }
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{kind:?} {body}");
                assert_eq!(error_code(&body), "invalid_dpop_proof", "{body}");
                let challenge = challenge.unwrap();
                assert!(
                    challenge.starts_with("DPoP ")
                        && challenge.contains("error=\"invalid_dpop_proof\""),
                    "{challenge}"
                );
            }
            assert_eq!(served, 1, "{kind:?} round {round}");
        }
    }
}
