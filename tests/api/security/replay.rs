//! Replay protection fails closed: a flood of distinct proofs larger than
//! `dpop.replay_capacity` never lets a used proof through again; a store that cannot record
//! a proof (full, or Redis unreachable) refuses the request with 503
//! `temporarily_unavailable` and `Retry-After` at resources, at sign-in and at the token
//! endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keygate::auth::dpop::{ReplayError, ReplayStore};
use keygate::config::ReplayStoreKind;
use reqwest::StatusCode;

use crate::dpop_flow::bound_token;
use crate::dpop_key::DpopKey;
use crate::helpers::{TestApp, error_code, json, spawn_app_with, spawn_app_with_store};
use crate::replay_store::REDIS_ENV;

const SIGNIN: &str = "/v1/default/user/signin_with_api_key";
const ME: &str = "/v1/default/user/me";
const TOKEN: &str = "/v1/default/oauth/token";

async fn me(app: &TestApp, token: &str, proof: &str) -> reqwest::Response {
    app.client
        .get(app.url(ME))
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .send()
        .await
        .unwrap()
}

async fn client_credentials(app: &TestApp, proof: &str) -> reqwest::Response {
    let o = &app.owner;
    app.client
        .post(app.url(TOKEN))
        .basic_auth(&o.api_key_id, Some(&o.api_key))
        .header("dpop", proof)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
}

/// A 503 `temporarily_unavailable` with `Retry-After`, in the §6 body (`oauth`: the
/// RFC 6749 body).
async fn assert_unavailable(res: reqwest::Response, oauth: bool) {
    let retry_after = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    if oauth {
        assert_eq!(body["error"], "temporarily_unavailable", "{body}");
        assert!(body["error_description"].as_str().is_some(), "{body}");
    } else {
        assert_eq!(error_code(&body), "temporarily_unavailable", "{body}");
    }
    let seconds: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&seconds), "Retry-After: {seconds}");
}

/// A replay after the flood: never served. Remembered (401 `invalid_dpop_proof`, "used
/// before") when its first use was served; refused as long as the store is full otherwise.
async fn assert_replay_refused(res: reqwest::Response, first: StatusCode) {
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = json(res).await;
    if first == StatusCode::OK {
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "a used proof is served again: {body}"
        );
        assert_eq!(error_code(&body), "invalid_dpop_proof", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("used before")
        );
        assert!(challenge.unwrap().contains("error=\"invalid_dpop_proof\""));
    } else {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(error_code(&body), "temporarily_unavailable", "{body}");
    }
}

#[tokio::test]
async fn a_flood_of_proofs_beyond_the_capacity_never_lets_a_used_proof_through() {
    const CAPACITY: u64 = 50;
    let app = spawn_app_with(|s| s.dpop.replay_capacity = CAPACITY).await;
    let key = DpopKey::es256();
    let token = bound_token(&app, &key).await; // one entry
    // Three times the capacity in distinct, valid proofs.
    let mut sent: Vec<(String, StatusCode)> = Vec::new();
    let mut refusals = Vec::new();
    for _ in 0..3 * CAPACITY {
        let proof = key.proof(&app, "GET", ME, Some(&token));
        let res = me(&app, &token, &proof).await;
        let status = res.status();
        if status != StatusCode::OK {
            refusals.push(res);
        }
        sent.push((proof, status));
    }
    // Every proof again, early ones first: none is served a second time.
    for (proof, first) in &sent {
        assert_replay_refused(me(&app, &token, proof).await, *first).await;
    }
    // The store took exactly what it can remember, and refused the rest.
    let served = sent.iter().filter(|(_, s)| *s == StatusCode::OK).count();
    assert_eq!(
        served as u64,
        CAPACITY - 1,
        "one entry is the sign-in's proof"
    );
    assert!(sent[..served].iter().all(|(_, s)| *s == StatusCode::OK));
    for res in refusals {
        assert_unavailable(res, false).await;
    }
    // The sign-in and the token endpoint refuse too.
    assert_unavailable(
        app.signin_with_proof(&app.owner, Some(&key.proof(&app, "POST", SIGNIN, None)))
            .await,
        false,
    )
    .await;
    assert_unavailable(
        client_credentials(&app, &key.proof(&app, "POST", TOKEN, None)).await,
        true,
    )
    .await;

    // Once the window (max_age + leeway + clock_skew + 1 s) has passed, room is reclaimed;
    // the old proofs are now too old.
    let dpop = &app.state.settings.dpop;
    app.clock
        .advance(dpop.max_age + dpop.leeway + dpop.clock_skew + Duration::from_secs(1));
    let (status, body) =
        json(me(&app, &token, &key.proof(&app, "GET", ME, Some(&token))).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = json(me(&app, &token, &sent[0].0).await).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_dpop_proof")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too far in the past")
    );
}

/// The attack of the report: a flood of sign-ins with self-made proofs, then a replay of a
/// sign-in proof.
#[tokio::test]
async fn a_flood_of_sign_ins_never_lets_a_sign_in_proof_be_replayed() {
    const CAPACITY: u64 = 20;
    let app = spawn_app_with(|s| s.dpop.replay_capacity = CAPACITY).await;
    let mut sent = Vec::new();
    for _ in 0..2 * CAPACITY {
        let key = DpopKey::es256();
        let proof = key.proof(&app, "POST", SIGNIN, None);
        let res = app.signin_with_proof(&app.owner, Some(&proof)).await;
        sent.push((proof, res.status()));
    }
    for (proof, first) in &sent {
        let res = app.signin_with_proof(&app.owner, Some(proof)).await;
        let (status, body) = json(res).await;
        assert_ne!(
            status,
            StatusCode::OK,
            "a sign-in proof was replayed: {body}"
        );
        if *first == StatusCode::OK {
            assert_eq!(
                (status, error_code(&body)),
                (StatusCode::BAD_REQUEST, "invalid_dpop_proof")
            );
        } else {
            assert_eq!(
                (status, error_code(&body)),
                (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
            );
        }
    }
    let statuses: Vec<_> = sent.iter().map(|(_, s)| s.as_u16()).collect();
    let expected: Vec<u16> = (0..2 * CAPACITY)
        .map(|n| if n < CAPACITY { 200 } else { 503 })
        .collect();
    assert_eq!(statuses, expected);
}

/// A store that answers "unreachable" once switched off.
#[derive(Debug)]
struct Switchable {
    inner: Arc<dyn ReplayStore>,
    down: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl ReplayStore for Switchable {
    async fn insert_if_absent(&self, key: [u8; 32], ttl: Duration) -> Result<bool, ReplayError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(ReplayError::Unreachable("switched off by the test".into()));
        }
        self.inner.insert_if_absent(key, ttl).await
    }
}

async fn assert_every_dpop_endpoint_refuses(app: &TestApp, key: &DpopKey, token: &str) {
    assert_unavailable(
        me(app, token, &key.proof(app, "GET", ME, Some(token))).await,
        false,
    )
    .await;
    assert_unavailable(
        app.signin_with_proof(&app.owner, Some(&key.proof(app, "POST", SIGNIN, None)))
            .await,
        false,
    )
    .await;
    assert_unavailable(
        client_credentials(app, &key.proof(app, "POST", TOKEN, None)).await,
        true,
    )
    .await;
}

#[tokio::test]
async fn an_unreachable_replay_store_refuses_with_503_everywhere() {
    let down = Arc::new(AtomicBool::new(false));
    let switch = down.clone();
    let app = spawn_app_with_store(
        |_| {},
        move |inner| {
            Arc::new(Switchable {
                inner,
                down: switch,
            })
        },
    )
    .await;
    let key = DpopKey::es256();
    let token = bound_token(&app, &key).await;
    down.store(true, Ordering::SeqCst);
    assert_every_dpop_endpoint_refuses(&app, &key, &token).await;
    // Bearer requests do not need the store.
    let body = app.signin(&app.owner).await;
    assert_eq!(body["token_type"], "Bearer");
}

/// A TCP relay to Redis that can be cut: every connection closed, new ones refused.
async fn cuttable_relay(target: String) -> (String, Arc<AtomicBool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let cut = Arc::new(AtomicBool::new(false));
    let flag = cut.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            if flag.load(Ordering::SeqCst) {
                continue;
            }
            let (flag, target) = (flag.clone(), target.clone());
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                let watch = async {
                    while !flag.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    () = watch => {}
                }
            });
        }
    });
    (format!("redis://{address}"), cut)
}

/// The real Redis store, with Redis gone after the start: 503, never 500, never accepted.
#[tokio::test]
async fn an_unreachable_redis_refuses_with_503_everywhere() {
    let Ok(url) = std::env::var(REDIS_ENV) else {
        return; // CI sets it; the memory-store paths are covered above.
    };
    let target = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let (relay, cut) = cuttable_relay(target).await;
    let app = spawn_app_with(|s| {
        s.dpop.replay_store = ReplayStoreKind::Redis;
        s.dpop.redis_url = Some(relay);
        s.dpop.redis_prefix = format!("keygate-test:{}:", keygate::ids::random_base62(12));
    })
    .await;
    let key = DpopKey::es256();
    let token = bound_token(&app, &key).await;
    cut.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_every_dpop_endpoint_refuses(&app, &key, &token).await;
}
