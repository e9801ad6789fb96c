//! keygate's own load generator: a closed loop over keep-alive HTTP/1.1 connections on
//! loopback, with every DPoP proof signed BEFORE the measured window (a unique `jti` each, so
//! the replay check is real and signing costs the generator nothing while it measures).
//! Latencies go into an HdrHistogram; the server's CPU time comes from `/proc/<pid>/stat`.
//! `benches/load/run.sh` builds and starts the servers and prints the table; run this
//! directly only to measure one scenario:
//!
//! ```text
//! cargo bench --bench load -- --scenario me-dpop --url http://127.0.0.1:18090 \
//!     --org default --server-pids 1234 [--connections 32] [--seconds 10]
//! ```
//!
//! Credentials come from the environment (`KG_API_KEY`, `KG_API_KEY_ID`, `KG_USER_ID`), never
//! from the command line. Scenarios: `me-dpop`, `me-bearer`, `me-api-key` (a direct API-key
//! request: the organization must have `direct_api_keys` on), `signin-dpop`, `cc-dpop` against
//! keygate; `peer-me-dpop`, `peer-cc-dpop` against `shared/peer-bench` (node-oidc-provider).
//! Every answer must be a 2xx: a run that measures errors stops and says so.

// A benchmark that cannot set up its inputs should stop loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::Signer;
use rand_core::{OsRng, RngCore};
use serde_json::{Value, json};
use tokio::net::TcpStream;

/// The peer's client (see `shared/peer-bench/README.md`).
const PEER_CLIENT: &str = "bench-client:bench-secret-0123456789abcdefghijklmnopqrstuv";

struct Args {
    scenario: String,
    url: String,
    org: String,
    connections: usize,
    seconds: u64,
    server_pids: Vec<u32>,
    clk_tck: f64,
}

fn args() -> Args {
    let mut args = Args {
        scenario: String::new(),
        url: "http://127.0.0.1:18090".into(),
        org: "default".into(),
        connections: 32,
        seconds: 10,
        server_pids: Vec::new(),
        clk_tck: 100.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        // `cargo bench` passes `--bench`; it takes no value.
        if flag == "--bench" {
            continue;
        }
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--scenario" => args.scenario = value,
            "--url" => args.url = value.trim_end_matches('/').to_owned(),
            "--org" => args.org = value,
            "--connections" => args.connections = value.parse().expect("--connections"),
            "--seconds" => args.seconds = value.parse().expect("--seconds"),
            "--server-pids" => {
                args.server_pids = value
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|p| p.parse().expect("--server-pids"))
                    .collect()
            }
            "--clk-tck" => args.clk_tck = value.parse().expect("--clk-tck"),
            other => panic!("unknown flag {other}"),
        }
    }
    let host = args
        .url
        .strip_prefix("http://")
        .expect("--url must be http:// on loopback");
    let addr: SocketAddr = host.parse().expect("--url host must be an IP:port");
    assert!(
        addr.ip().is_loopback(),
        "the load generator only targets loopback"
    );
    assert!(!args.scenario.is_empty(), "--scenario is required");
    args
}

fn env(name: &str) -> String {
    let value = std::env::var(name).unwrap_or_default();
    assert!(
        !value.is_empty(),
        "{name} is empty: no credentials to measure with"
    );
    value
}

/// One prepared request: method, path, headers, body.
#[derive(Clone)]
struct Prepared {
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Bytes,
}

/// A P-256 DPoP key of the load generator.
struct ProofKey {
    key: SigningKey,
    jwk: Value,
}

impl ProofKey {
    fn new() -> Self {
        let key = SigningKey::random(&mut OsRng);
        let point = key.verifying_key().to_encoded_point(false);
        let jwk = json!({
            "kty": "EC", "crv": "P-256",
            "x": B64.encode(point.x().unwrap()), "y": B64.encode(point.y().unwrap()),
        });
        Self { key, jwk }
    }

    fn thumbprint(&self) -> String {
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            self.jwk["x"].as_str().unwrap(),
            self.jwk["y"].as_str().unwrap()
        );
        B64.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            canonical.as_bytes(),
        ))
    }

    // The load generator is a client with a wall clock of its own, not keygate.
    #[allow(clippy::disallowed_methods)]
    fn proof(&self, method: &str, url: &str, token: Option<&str>) -> String {
        let mut jti = [0u8; 16];
        OsRng.fill_bytes(&mut jti);
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk});
        let mut claims = json!({
            "jti": B64.encode(jti), "htm": method, "htu": url,
            "iat": chrono::Utc::now().timestamp(),
        });
        if let Some(token) = token {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
            claims["ath"] = json!(B64.encode(digest.as_ref()));
        }
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature: p256::ecdsa::Signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", B64.encode(signature.to_bytes()))
    }
}

/// A connection of its own, for set-up requests.
async fn send_once(addr: &str, prepared: &Prepared) -> (u16, Bytes) {
    let mut connection = Connection::open(addr).await;
    connection.send(prepared).await
}

struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl Connection {
    async fn open(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let io = hyper_util::rt::TokioIo::new(stream);
        let (sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .expect("handshake");
        tokio::spawn(connection);
        Self {
            sender,
            host: addr.to_owned(),
        }
    }

    async fn send(&mut self, prepared: &Prepared) -> (u16, Bytes) {
        let mut request = Request::builder()
            .method(prepared.method)
            .uri(&prepared.path)
            .header("host", &self.host);
        for (name, value) in &prepared.headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(prepared.body.clone()))
            .expect("request");
        self.sender.ready().await.expect("connection ready");
        let response = self.sender.send_request(request).await.expect("response");
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, body)
    }
}

/// The requests of one scenario, every proof already signed.
async fn prepare(args: &Args, count: usize) -> Vec<Prepared> {
    let addr = args.url.trim_start_matches("http://").to_owned();
    let org = &args.org;
    let key = Arc::new(ProofKey::new());
    let signin_path = format!("/v1/{org}/user/signin_with_api_key");
    let credential_headers = || {
        vec![
            ("x-api-key", env("KG_API_KEY")),
            ("x-api-key-id", env("KG_API_KEY_ID")),
            ("x-user-id", env("KG_USER_ID")),
        ]
    };
    let form = |headers: Vec<(&'static str, String)>, path: String, body: &str| Prepared {
        method: "POST",
        path,
        headers: [
            vec![(
                "content-type",
                "application/x-www-form-urlencoded".to_owned(),
            )],
            headers,
        ]
        .concat(),
        body: Bytes::from(body.to_owned()),
    };
    // Sets up a token, then makes `count` requests from `make` on both cores.
    let (template, proof_for): (Prepared, Option<(String, String, Option<String>)>) =
        match args.scenario.as_str() {
            "me-bearer" => {
                let signin = Prepared {
                    method: "POST",
                    path: signin_path,
                    headers: credential_headers(),
                    body: Bytes::new(),
                };
                let token = token_of(send_once(&addr, &signin).await, "id_token");
                let me = Prepared {
                    method: "GET",
                    path: format!("/v1/{org}/user/me"),
                    headers: vec![("authorization", format!("Bearer {token}"))],
                    body: Bytes::new(),
                };
                (me, None)
            }
            "me-api-key" => {
                let me = Prepared {
                    method: "GET",
                    path: format!("/v1/{org}/user/me"),
                    headers: vec![("x-api-key", env("KG_API_KEY"))],
                    body: Bytes::new(),
                };
                (me, None)
            }
            "me-dpop" => {
                let mut signin = Prepared {
                    method: "POST",
                    path: signin_path.clone(),
                    headers: credential_headers(),
                    body: Bytes::new(),
                };
                let url = format!("{}{signin_path}", args.url);
                signin.headers.push(("dpop", key.proof("POST", &url, None)));
                let token = token_of(send_once(&addr, &signin).await, "id_token");
                let path = format!("/v1/{org}/user/me");
                let me = Prepared {
                    method: "GET",
                    path: path.clone(),
                    headers: vec![("authorization", format!("DPoP {token}"))],
                    body: Bytes::new(),
                };
                (
                    me,
                    Some(("GET".into(), format!("{}{path}", args.url), Some(token))),
                )
            }
            "signin-dpop" => {
                let signin = Prepared {
                    method: "POST",
                    path: signin_path.clone(),
                    headers: credential_headers(),
                    body: Bytes::new(),
                };
                let url = format!("{}{signin_path}", args.url);
                (signin, Some(("POST".into(), url, None)))
            }
            "cc-dpop" => {
                let path = format!("/v1/{org}/oauth/token");
                let basic =
                    STANDARD.encode(format!("{}:{}", env("KG_API_KEY_ID"), env("KG_API_KEY")));
                let request = form(
                    vec![("authorization", format!("Basic {basic}"))],
                    path.clone(),
                    "grant_type=client_credentials",
                );
                (
                    request,
                    Some(("POST".into(), format!("{}{path}", args.url), None)),
                )
            }
            "peer-cc-dpop" => {
                let request = form(
                    vec![(
                        "authorization",
                        format!("Basic {}", STANDARD.encode(PEER_CLIENT)),
                    )],
                    "/token".into(),
                    "grant_type=client_credentials&resource=urn%3Aexample%3Aapi",
                );
                (
                    request,
                    Some(("POST".into(), format!("{}/token", args.url), None)),
                )
            }
            "peer-me-dpop" => {
                let seed = Prepared {
                    method: "POST",
                    path: format!("/_seed?jkt={}", key.thumbprint()),
                    headers: Vec::new(),
                    body: Bytes::new(),
                };
                let token = token_of(send_once(&addr, &seed).await, "access_token");
                let me = Prepared {
                    method: "GET",
                    path: "/me".into(),
                    headers: vec![("authorization", format!("DPoP {token}"))],
                    body: Bytes::new(),
                };
                (
                    me,
                    Some(("GET".into(), format!("{}/me", args.url), Some(token))),
                )
            }
            other => panic!("unknown scenario {other}"),
        };
    let Some((method, url, token)) = proof_for else {
        return vec![template; count];
    };
    // Sign on both cores before the window opens.
    let halves: Vec<_> = (0..2)
        .map(|half| {
            let key = key.clone();
            let (template, method, url, token) =
                (template.clone(), method.clone(), url.clone(), token.clone());
            std::thread::spawn(move || {
                (0..count / 2 + half)
                    .map(|_| {
                        let mut request = template.clone();
                        request
                            .headers
                            .push(("dpop", key.proof(&method, &url, token.as_deref())));
                        request
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    halves
        .into_iter()
        .flat_map(|h| h.join().expect("signing thread"))
        .collect()
}

fn token_of((status, body): (u16, Bytes), field: &str) -> String {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert_eq!(status, 200, "set-up request failed: {body}");
    body[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {body}"))
        .to_owned()
}

/// utime + stime of the server's processes, in seconds.
fn server_cpu(pids: &[u32], clk_tck: f64) -> f64 {
    pids.iter()
        .map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The command name may hold spaces: fields count from after its ')'.
            let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |i: usize| {
                fields
                    .get(i)
                    .and_then(|f| f.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            // After ')': state is field 3 (index 0); utime is field 14, stime 15.
            (ticks(11) + ticks(12)) / clk_tck
        })
        .sum()
}

/// One ES256 verification with aws-lc-rs, in µs: the bare cost keygate's figures are
/// compared with.
fn bare_es256_verify_us() -> f64 {
    let key = SigningKey::random(&mut OsRng);
    let message = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c3IifQ";
    let signature: p256::ecdsa::Signature = key.sign(message);
    let point = key.verifying_key().to_encoded_point(false);
    let public = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
        point.as_bytes().to_vec(),
    );
    let rounds = 2000;
    let start = Instant::now();
    for _ in 0..rounds {
        public
            .verify(message, &signature.to_bytes())
            .expect("verifies");
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args = args();
    let bare = bare_es256_verify_us();
    // Enough proofs for 25,000 req/s over the window (`KG_PROOFS_PER_SECOND` to change:
    // a debug build signs them slowly); the run stops early if they run out.
    let per_second: usize = std::env::var("KG_PROOFS_PER_SECOND")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25_000);
    let count = per_second * args.seconds as usize;
    let requests = Arc::new(prepare(&args, count).await);
    let next = Arc::new(AtomicUsize::new(0));
    let addr = args.url.trim_start_matches("http://").to_owned();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let cpu_before = server_cpu(&args.server_pids, args.clk_tck);
    let start = Instant::now();
    let workers: Vec<_> = (0..args.connections)
        .map(|_| {
            let (requests, next, addr) = (requests.clone(), next.clone(), addr.clone());
            tokio::spawn(async move {
                let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
                let mut errors = Vec::new();
                let mut connection = Connection::open(&addr).await;
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(request) = requests.get(i) else {
                        break;
                    };
                    let sent = Instant::now();
                    let (status, body) = connection.send(request).await;
                    histogram.saturating_record(sent.elapsed().as_micros() as u64);
                    if !(200..300).contains(&status) && errors.len() < 3 {
                        errors.push(format!("{status} {}", String::from_utf8_lossy(&body)));
                    }
                }
                (histogram, errors)
            })
        })
        .collect();
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut errors = Vec::new();
    for worker in workers {
        let (h, e) = worker.await.expect("worker");
        histogram.add(h).expect("histogram");
        errors.extend(e);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = server_cpu(&args.server_pids, args.clk_tck) - cpu_before;
    let done = next.load(Ordering::Relaxed).min(requests.len());
    if !errors.is_empty() {
        eprintln!("{}: non-2xx answers, first ones: {errors:?}", args.scenario);
        std::process::exit(1);
    }
    if done >= requests.len() {
        eprintln!(
            "{}: the {} pre-signed requests ran out before the window ended",
            args.scenario,
            requests.len()
        );
    }
    let rate = done as f64 / elapsed;
    let cpu_us = if args.server_pids.is_empty() {
        f64::NAN
    } else {
        cpu * 1e6 / done as f64
    };
    // scenario  req/s  p50 ms  p99 ms  server CPU µs/request  bare ES256 verify µs
    println!(
        "{}\t{:.0}\t{:.2}\t{:.2}\t{:.0}\t{:.1}",
        args.scenario,
        rate,
        histogram.value_at_quantile(0.50) as f64 / 1000.0,
        histogram.value_at_quantile(0.99) as f64 / 1000.0,
        cpu_us,
        bare
    );
}
