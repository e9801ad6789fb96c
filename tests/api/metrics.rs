//! `GET /metrics` (README, "Running in production"): after real requests (sign-ins, DPoP,
//! every grant at the token endpoint, a bad proof, a refresh token reused) the metrics are
//! there, routes are templates, and no label value carries an organization, user, key,
//! session, token or IP; only loopback peers may scrape the main listener; `metrics.bind`
//! moves the endpoint to a listener of its own.
//!
//! The `metrics` recorder is one per process (like tracing), shared by every test app of
//! this binary: counters are compared before and after this test's requests (they only
//! grow), and the identifiers checked are this test's own random ones.

use std::collections::BTreeMap;

use actix_web::{App, test, web};
use reqwest::StatusCode;
use serde_json::Value;

use crate::dpop_key::DpopKey;
use crate::helpers::{Credentials, TestApp, json, spawn_app, spawn_app_with};

/// One sample of the text format: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format (comments skipped; label values unescaped).
fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let mut labels = BTreeMap::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    assert_eq!(chars.next(), Some('"'), "{line}");
                    let mut value = String::new();
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => value.push(match chars.next() {
                                Some('n') => '\n',
                                Some(other) => other,
                                None => panic!("dangling escape in {line}"),
                            }),
                            '"' => break,
                            c => value.push(c),
                        }
                    }
                    labels.insert(key.trim_start_matches(',').to_owned(), value);
                    if chars.peek() == Some(&',') {
                        chars.next();
                    }
                }
                (name.to_owned(), labels)
            }
        };
        let value = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    samples
}

async fn scrape(app: &TestApp) -> (String, Vec<Sample>) {
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = res.text().await.unwrap();
    let samples = parse(&text);
    (text, samples)
}

/// The value of the series `name` whose labels include `labels` (0 when absent).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

async fn token_form(
    app: &TestApp,
    org: &str,
    basic: Option<&Credentials>,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut req = app.client.post(app.url(&format!("/v1/{org}/oauth/token")));
    if let Some(c) = basic {
        req = req.basic_auth(&c.api_key_id, Some(&c.api_key));
    }
    json(req.form(form).send().await.unwrap()).await
}

#[tokio::test]
async fn metrics_after_real_requests_are_templated_and_carry_no_identifier() {
    let app = spawn_app().await;
    let slug = format!("m{}", keygate::ids::random_base62(10).to_lowercase());
    let creds = app.create_org(&slug).await;
    let (_, before) = scrape(&app).await;

    // Sign-ins: a Bearer one, a DPoP-bound one, a wrong secret.
    let signin = app.signin(&creds).await;
    let bearer = signin["id_token"].as_str().unwrap().to_owned();
    let refresh = signin["refresh_token"].as_str().unwrap().to_owned();
    let session = signin["session_id"].as_str().unwrap().to_owned();
    assert_eq!(app.me(&slug, &bearer).await.status(), StatusCode::OK);
    let key = DpopKey::es256();
    let signin_path = format!("/v1/{slug}/user/signin_with_api_key");
    let proof = key.proof(&app, "POST", &signin_path, None);
    let (status, body) = json(app.signin_with_proof(&creds, Some(&proof)).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let bound = body["id_token"].as_str().unwrap().to_owned();
    let me = format!("/v1/{slug}/user/me");
    let good = key.proof(&app, "GET", &me, Some(&bound));
    let res = app
        .client
        .get(app.url(&me))
        .header("authorization", format!("DPoP {bound}"))
        .header("dpop", &good)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // A bad proof: made for another token (wrong `ath`).
    let bad = key.proof(&app, "GET", &me, Some(&bearer));
    let res = app
        .client
        .get(app.url(&me))
        .header("authorization", format!("DPoP {bound}"))
        .header("dpop", &bad)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let wrong = Credentials {
        api_key: format!("{}x", &creds.api_key[..creds.api_key.len() - 1]),
        ..creds.clone()
    };
    assert_ne!(app.signin_outcome(&wrong).await.0, StatusCode::OK);

    // The token endpoint: every grant, both secret methods, an assertion, a reused refresh token.
    let (status, body) = token_form(
        &app,
        &slug,
        Some(&creds),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cc_token = body["access_token"].as_str().unwrap().to_owned();
    let cc_refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, _) = token_form(
        &app,
        &slug,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &creds.api_key_id),
            ("client_secret", &creds.api_key),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = token_form(
        &app,
        &slug,
        None,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rotated = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = token_form(
        &app,
        &slug,
        None,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (status, _) = token_form(
        &app,
        &slug,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &creds.api_key_id),
            ("code", "ac_notacode"),
            ("redirect_uri", "http://127.0.0.1:1/cb"),
            ("code_verifier", &"v".repeat(43)),
        ],
    )
    .await;
    assert!(status.is_client_error());
    let (status, _) = token_form(
        &app,
        &slug,
        Some(&creds),
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", "dc_notacode"),
        ],
    )
    .await;
    assert!(status.is_client_error());
    let (status, _) = token_form(
        &app,
        &slug,
        None,
        &[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", "e30.e30.c2ln"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A grant type of the client's own invention (here: an id) must not become a label.
    let (status, _) = token_form(
        &app,
        &slug,
        Some(&creds),
        &[("grant_type", &creds.api_key_id)],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A path no route matches, full of identifiers.
    let lost = format!(
        "/v1/{slug}/users/{}/keys/{}",
        creds.user_id, creds.api_key_id
    );
    assert_eq!(
        app.client
            .get(app.url(&lost))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );

    let (text, after) = scrape(&app).await;
    let grew = |name: &str, labels: &[(&str, &str)]| {
        let (b, a) = (value(&before, name, labels), value(&after, name, labels));
        assert!(a > b, "{name} {labels:?} did not grow ({b} → {a}):\n{text}");
    };
    grew(
        "keygate_http_requests_total",
        &[
            ("method", "GET"),
            ("route", "/v1/{org}/user/me"),
            ("status", "200"),
        ],
    );
    grew(
        "keygate_http_requests_total",
        &[
            ("method", "GET"),
            ("route", "/v1/{org}/user/me"),
            ("status", "401"),
        ],
    );
    grew(
        "keygate_http_requests_total",
        &[
            ("method", "POST"),
            ("route", "/v1/{org}/oauth/token"),
            ("status", "200"),
        ],
    );
    grew(
        "keygate_http_requests_total",
        &[("method", "GET"), ("route", "unmatched"), ("status", "404")],
    );
    grew(
        "keygate_http_request_duration_seconds_count",
        &[("route", "/v1/{org}/user/signin_with_api_key")],
    );
    grew(
        "keygate_http_request_duration_seconds_bucket",
        &[("route", "/v1/{org}/user/me"), ("le", "+Inf")],
    );
    grew("keygate_signins_total", &[("outcome", "success")]);
    grew("keygate_signins_total", &[("outcome", "invalid_api_key")]);
    for (grant, auth, outcome) in [
        ("client_credentials", "client_secret_basic", "success"),
        ("client_credentials", "client_secret_post", "success"),
        ("client_credentials", "private_key_jwt", "invalid_client"),
        ("refresh_token", "none", "success"),
        ("refresh_token", "none", "invalid_grant"),
        ("other", "client_secret_basic", "unsupported_grant_type"),
    ] {
        grew(
            "keygate_token_requests_total",
            &[
                ("grant_type", grant),
                ("client_auth", auth),
                ("outcome", outcome),
            ],
        );
    }
    grew(
        "keygate_token_requests_total",
        &[("grant_type", "authorization_code")],
    );
    grew(
        "keygate_token_requests_total",
        &[
            ("grant_type", "device_code"),
            ("client_auth", "client_secret_basic"),
        ],
    );
    grew(
        "keygate_dpop_rejections_total",
        &[("reason", "ath_mismatch")],
    );
    grew("keygate_refresh_reuse_detected_total", &[]);
    for present in [
        "keygate_replay_cache_entries",
        "keygate_audit_events_dropped_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ] {
        assert!(
            after.iter().any(|s| s.name == present),
            "{present} missing:\n{text}"
        );
    }
    // This node's replay cache holds the two proofs it accepted.
    assert_eq!(app.state.dpop.replay_entries(), Some(2));

    // Routes are templates; no label value holds anything this test identified itself with.
    let secrets = [
        slug.as_str(),
        &creds.user_id,
        &creds.api_key_id,
        &creds.api_key,
        &bearer,
        &bound,
        &refresh,
        &rotated,
        &session,
        &cc_token,
        &cc_refresh,
        &key.thumbprint(),
        "127.0.0.1",
        "ac_notacode",
        "dc_notacode",
    ];
    for sample in &after {
        for (label, value) in &sample.labels {
            assert!(!value.is_empty() || label == "le", "{sample:?}");
            for secret in secrets {
                assert!(
                    !value.contains(secret),
                    "{label}={value:?} of {} carries {secret:?}",
                    sample.name
                );
            }
            if label == "route" {
                assert!(value == "unmatched" || value.starts_with('/'), "{value}");
                assert!(
                    !value.contains("/v1/")
                        || value.starts_with("/v1/{org}")
                        || value.starts_with("/.well-known/"),
                    "{value}"
                );
            }
        }
    }
}

/// The app's routes under actix's test harness, with the peer address a test chooses.
async fn call_as(app: &TestApp, peer: &str, forwarded_for: Option<&str>) -> u16 {
    let service = test::init_service(
        App::new()
            .app_data(web::Data::new(app.state.clone()))
            .configure(keygate::http::routes),
    )
    .await;
    let mut req = test::TestRequest::get()
        .uri("/metrics")
        .peer_addr(peer.parse().unwrap());
    if let Some(xff) = forwarded_for {
        req = req.insert_header(("x-forwarded-for", xff));
    }
    test::call_service(&service, req.to_request())
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn metrics_on_the_main_listener_are_for_loopback_peers_only() {
    // A proxy in 192.0.2.0/24 is trusted for client IPs; it still cannot vouch for loopback.
    let app = spawn_app_with(|s| s.server.trusted_proxies = vec!["192.0.2.0/24".into()]).await;
    assert_eq!(call_as(&app, "127.0.0.1:40000", None).await, 200);
    assert_eq!(call_as(&app, "[::1]:40000", None).await, 200);
    assert_eq!(call_as(&app, "192.0.2.7:40000", None).await, 403);
    assert_eq!(
        call_as(&app, "192.0.2.7:40000", Some("127.0.0.1")).await,
        403
    );
    assert_eq!(
        call_as(&app, "[::ffff:203.0.113.9]:40000", Some("::1")).await,
        403
    );
    // A proxy on this host relaying someone else's request: loopback peer, still refused.
    assert_eq!(
        call_as(&app, "127.0.0.1:40000", Some("203.0.113.9")).await,
        403
    );
    // And over a real socket from loopback.
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let (status, body) = {
        let service = test::init_service(
            App::new()
                .app_data(web::Data::new(app.state.clone()))
                .configure(keygate::http::routes),
        )
        .await;
        let req = test::TestRequest::get()
            .uri("/metrics")
            .peer_addr("198.51.100.4:5000".parse().unwrap())
            .to_request();
        let res = test::call_service(&service, req).await;
        let status = res.status().as_u16();
        let body: Value = serde_json::from_slice(&test::read_body(res).await).unwrap();
        (status, body)
    };
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "permission_denied");

    let public = spawn_app_with(|s| s.metrics.public = true).await;
    assert_eq!(call_as(&public, "192.0.2.7:40000", None).await, 200);
}

#[tokio::test]
async fn metrics_bind_moves_metrics_to_a_listener_of_their_own() {
    let app = spawn_app_with(|s| s.metrics.bind = Some("127.0.0.1:0".into())).await;
    let own = app.metrics_address.clone().expect("a metrics listener");
    assert_ne!(own, app.address);
    let res = app
        .client
        .get(format!("{own}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("# TYPE keygate_http_requests_total counter")
    );
    // Nothing else there, and no metrics on the main listener.
    let res = app
        .client
        .get(format!("{own}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn metrics_turned_off_serve_nothing() {
    let app = spawn_app_with(|s| s.metrics.enabled = false).await;
    assert!(app.state.metrics.is_none());
    let (status, body) = json(app.client.get(app.url("/metrics")).send().await.unwrap()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}
