//! DPoP end to end over HTTP: bound sign-ins and OAuth grants, proofs at protected
//! endpoints, one failing case per RFC 9449 §4.3 check, nonces, policy and robustness.
//! Proofs are signed with the RustCrypto curve crates, independent of keygate's verifier.

use std::time::Duration;

use keygate::types::SigningAlg;
use rand_core::OsRng;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::dpop_key::DpopKey;
use crate::helpers::{TestApp, claims_of, error_code, json, spawn_app, spawn_app_with};

const SIGNIN: &str = "/v1/default/user/signin_with_api_key";
const ME: &str = "/v1/default/user/me";

/// Signs in bound to `key`; returns the access token.
pub async fn bound_token(app: &TestApp, key: &DpopKey) -> String {
    let proof = key.proof(app, "POST", SIGNIN, None);
    let (status, body) = json(app.signin_with_proof(&app.owner, Some(&proof)).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    body["id_token"].as_str().unwrap().to_owned()
}

async fn me_with(app: &TestApp, scheme: &str, token: &str, proofs: &[&str]) -> reqwest::Response {
    let mut req = app
        .client
        .get(app.url(ME))
        .header("authorization", format!("{scheme} {token}"));
    for proof in proofs {
        req = req.header("dpop", *proof);
    }
    req.send().await.unwrap()
}

/// Asserts a 401 with the DPoP challenge for `error` and the keygate error body (README, "Errors") code.
async fn assert_dpop_rejected(res: reqwest::Response, error: &str, code: &str) -> Value {
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_code(&body), code, "{body}");
    assert!(challenge.starts_with("DPoP "), "{challenge}");
    assert!(
        challenge.contains(&format!("error=\"{error}\"")),
        "{challenge}"
    );
    assert!(
        challenge.contains("algs=\"ES256 ES384 ES512\""),
        "{challenge}"
    );
    body
}

#[tokio::test]
async fn every_curve_binds_at_signin_and_works_at_a_protected_endpoint() {
    let app = spawn_app().await;
    for key in DpopKey::all() {
        let token = bound_token(&app, &key).await;
        let claims = claims_of(&token);
        assert_eq!(
            claims["cnf"]["jkt"],
            key.thumbprint().as_str(),
            "{}",
            key.alg()
        );
        let proof = key.proof(&app, "GET", ME, Some(&token));
        let (status, me) = json(me_with(&app, "DPoP", &token, &[&proof]).await).await;
        assert_eq!(status, StatusCode::OK, "{}: {me}", key.alg());
        assert_eq!(me["token_type"], "DPoP");
        assert_eq!(me["auth_method"], "dpop");
    }
}

#[tokio::test]
async fn rfc_9449_section_4_3_checks_each_fail_with_their_own_description() {
    let app = spawn_app().await;
    let key = DpopKey::es256();
    let other = DpopKey::es256();
    let p384 = DpopKey::P384(p384::ecdsa::SigningKey::random(&mut OsRng));
    let token = bound_token(&app, &key).await;
    let now = app.now().timestamp();
    let url = format!("{}{ME}", app.state.public_url);
    let valid = || {
        let (h, mut c) = key.parts("GET", &url, now);
        c["ath"] = json!(keygate::auth::dpop::ath(&token));
        (h, c)
    };
    let mutate = |f: &dyn Fn(&mut Value, &mut Value)| {
        let (mut h, mut c) = valid();
        f(&mut h, &mut c);
        key.sign_parts(&h, &c)
    };
    let mut tampered = mutate(&|_, _| {});
    let at = tampered.rfind('.').unwrap() + 1;
    let flipped = if &tampered[at..=at] == "A" { "B" } else { "A" };
    tampered.replace_range(at..=at, flipped);
    let mut private = key.jwk();
    private["d"] = json!("AAAA");

    #[rustfmt::skip]
    let cases: Vec<(&str, String, &str)> = vec![
        ("not a JWS", "not-a-jws".into(), "compact JWS"),
        ("wrong typ", mutate(&|h, _| h["typ"] = json!("JWT")), "typ"),
        ("alg none", mutate(&|h, _| h["alg"] = json!("none")), "alg"),
        ("HS256", mutate(&|h, _| h["alg"] = json!("HS256")), "alg"),
        ("RS256", mutate(&|h, _| h["alg"] = json!("RS256")), "alg"),
        ("EdDSA", mutate(&|h, _| h["alg"] = json!("EdDSA")), "alg"),
        ("jwk with d", mutate(&|h, _| h["jwk"] = private.clone()), "private key"),
        ("jwk of another curve", mutate(&|h, _| h["jwk"] = p384.jwk()), "crv"),
        ("bad signature", tampered, "signature"),
        ("missing htm", mutate(&|_, c| { c.as_object_mut().unwrap().remove("htm"); }), "htm"),
        ("wrong htm", mutate(&|_, c| c["htm"] = json!("POST")), "htm"),
        ("wrong htu host", mutate(&|_, c| c["htu"] = json!(url.replace("127.0.0.1", "evil.example"))), "htu"),
        ("wrong path", mutate(&|_, c| c["htu"] = json!(url.replace("/user/me", "/user/other"))), "htu"),
        ("iat too old", mutate(&|_, c| c["iat"] = json!(now - 301)), "past"),
        ("iat in the future", mutate(&|_, c| c["iat"] = json!(now + 61)), "future"),
        ("missing jti", mutate(&|_, c| { c.as_object_mut().unwrap().remove("jti"); }), "jti"),
        ("jti is a number", mutate(&|_, c| c["jti"] = json!(5)), "jti"),
        ("missing ath", mutate(&|_, c| { c.as_object_mut().unwrap().remove("ath"); }), "ath"),
        ("wrong ath", mutate(&|_, c| c["ath"] = json!(keygate::auth::dpop::ath("another"))), "ath"),
        ("another key", { let (h, mut c) = other.parts("GET", &url, now); c["ath"] = json!(keygate::auth::dpop::ath(&token)); let _ = h; other.sign_parts(&json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": other.jwk()}), &c) }, "bound to"),
    ];
    for (name, proof, description) in &cases {
        let body = assert_dpop_rejected(
            me_with(&app, "DPoP", &token, &[proof]).await,
            "invalid_dpop_proof",
            "invalid_dpop_proof",
        )
        .await;
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(description), "{name}: {message}");
    }

    // Header count: none, empty, two.
    assert_dpop_rejected(
        me_with(&app, "DPoP", &token, &[]).await,
        "invalid_dpop_proof",
        "invalid_dpop_proof",
    )
    .await;
    assert_dpop_rejected(
        me_with(&app, "DPoP", &token, &[""]).await,
        "invalid_dpop_proof",
        "invalid_dpop_proof",
    )
    .await;
    let (a, b) = (
        key.proof(&app, "GET", ME, Some(&token)),
        key.proof(&app, "GET", ME, Some(&token)),
    );
    assert_dpop_rejected(
        me_with(&app, "DPoP", &token, &[&a, &b]).await,
        "invalid_dpop_proof",
        "invalid_dpop_proof",
    )
    .await;

    // Replay: the same proof twice.
    let proof = key.proof(&app, "GET", ME, Some(&token));
    assert_eq!(
        me_with(&app, "DPoP", &token, &[&proof]).await.status(),
        StatusCode::OK
    );
    let body = assert_dpop_rejected(
        me_with(&app, "DPoP", &token, &[&proof]).await,
        "invalid_dpop_proof",
        "invalid_dpop_proof",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("used before")
    );

    // A bound token as Bearer; an unbound token as DPoP.
    assert_dpop_rejected(
        app.me("default", &token).await,
        "invalid_token",
        "invalid_token",
    )
    .await;
    let bearer = app.signin(&app.owner).await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let proof = key.proof(&app, "GET", ME, Some(&bearer));
    assert_dpop_rejected(
        me_with(&app, "DPoP", &bearer, &[&proof]).await,
        "invalid_token",
        "invalid_token",
    )
    .await;

    // The server still serves a valid request.
    let proof = key.proof(&app, "GET", ME, Some(&token));
    assert_eq!(
        me_with(&app, "DPoP", &token, &[&proof]).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_bad_proof_at_signin_is_a_400_and_iat_skew_of_10s_passes() {
    let app = spawn_app().await;
    let key = DpopKey::es256();
    let url = format!("{}{SIGNIN}", app.state.public_url);
    let now = app.now().timestamp();
    for (offset, ok) in [(-10, true), (10, true), (-301, false), (61, false)] {
        let (h, c) = key.parts("POST", &url, now + offset);
        let res = app
            .signin_with_proof(&app.owner, Some(&key.sign_parts(&h, &c)))
            .await;
        let (status, body) = json(res).await;
        if ok {
            assert_eq!(status, StatusCode::OK, "{offset}: {body}");
        } else {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{offset}: {body}");
            assert_eq!(error_code(&body), "invalid_dpop_proof");
        }
    }
    let (status, body) = json(app.signin_with_proof(&app.owner, Some("garbage")).await).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_dpop_proof")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replays_are_per_key_and_concurrent_replays_succeed_once() {
    let app = std::sync::Arc::new(spawn_app_with(|s| s.server.workers = Some(4)).await);
    let url = format!("{}{SIGNIN}", app.state.public_url);
    let now = app.now().timestamp();
    // The same jti under two keys is two proofs.
    for key in [DpopKey::es256(), DpopKey::es256()] {
        let (h, mut c) = key.parts("POST", &url, now);
        c["jti"] = json!("shared-jti");
        let (status, body) = json(
            app.signin_with_proof(&app.owner, Some(&key.sign_parts(&h, &c)))
                .await,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // One proof, sent at once by clients of their own (separate connections, so separate
    // workers): exactly one sign-in, every other one a replay.
    let key = DpopKey::es256();
    for round in 0..10 {
        const CLIENTS: usize = 8;
        let proof = key.proof(&app, "POST", SIGNIN, None);
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(CLIENTS));
        let attempts: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (app, proof, barrier) = (app.clone(), proof.clone(), barrier.clone());
                let client = reqwest::Client::new();
                tokio::spawn(async move {
                    let o = &app.owner;
                    let req = client
                        .post(app.url(SIGNIN))
                        .header("x-api-key", &o.api_key)
                        .header("x-api-key-id", &o.api_key_id)
                        .header("x-user-id", &o.user_id)
                        .header("dpop", proof);
                    barrier.wait().await;
                    json(req.send().await.unwrap()).await
                })
            })
            .collect();
        let mut served = 0;
        for attempt in attempts {
            let (status, body) = attempt.await.unwrap();
            if status == StatusCode::OK {
                served += 1;
                continue;
            }
            assert_eq!(
                (status, error_code(&body)),
                (StatusCode::BAD_REQUEST, "invalid_dpop_proof"),
                "round {round}"
            );
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("used before"),
                "{body}"
            );
        }
        assert_eq!(served, 1, "round {round}");
    }
}

#[tokio::test]
async fn a_replay_is_remembered_for_the_whole_acceptance_window() {
    let app = spawn_app().await;
    let key = DpopKey::es256();
    let url = format!("{}{SIGNIN}", app.state.public_url);
    // Dated at the edge of the future leeway: acceptable for leeway + max_age from now.
    let (h, c) = key.parts("POST", &url, app.now().timestamp() + 60);
    let proof = key.sign_parts(&h, &c);
    assert_eq!(
        app.signin_with_proof(&app.owner, Some(&proof))
            .await
            .status(),
        StatusCode::OK
    );
    // The in-memory store expires its entries on the server's clock, so moving the test
    // clock does test its TTL; `replay_store::each_store_is_told_to_remember_a_proof_for_
    // its_whole_window` checks the TTL each store (memory and Redis) is handed.
    app.clock.advance(Duration::from_secs(360));
    let (status, body) = json(app.signin_with_proof(&app.owner, Some(&proof)).await).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_dpop_proof")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("used before"),
        "{body}"
    );
}

#[tokio::test]
async fn behind_a_proxy_htu_is_checked_against_the_public_url() {
    let app =
        spawn_app_with(|s| s.server.public_url = Some("https://auth.example.com".into())).await;
    let key = DpopKey::es256();
    let now = app.now().timestamp();
    let (h, c) = key.parts(
        "POST",
        &format!("https://AUTH.example.com:443{SIGNIN}?x=1"),
        now,
    );
    let (status, body) = json(
        app.signin_with_proof(&app.owner, Some(&key.sign_parts(&h, &c)))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (h, c) = key.parts("POST", &format!("{}{SIGNIN}", app.address), now);
    let (status, body) = json(
        app.signin_with_proof(&app.owner, Some(&key.sign_parts(&h, &c)))
            .await,
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_dpop_proof"),
        "{body}"
    );
    assert!(
        body["error"]["message"].as_str().unwrap().contains("htu"),
        "{body}"
    );
}

#[tokio::test]
async fn server_nonces_are_demanded_handed_out_and_expire() {
    let app = spawn_app_with(|s| s.dpop.nonce = true).await;
    let key = DpopKey::es256();
    let res = app
        .signin_with_proof(&app.owner, Some(&key.proof(&app, "POST", SIGNIN, None)))
        .await;
    let nonce = res.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let (status, body) = json(res).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "use_dpop_nonce")
    );

    let url = format!("{}{SIGNIN}", app.state.public_url);
    let with_nonce = |nonce: &str| {
        let (h, mut c) = key.parts("POST", &url, app.now().timestamp());
        c["nonce"] = json!(nonce);
        key.sign_parts(&h, &c)
    };
    let res = app
        .signin_with_proof(&app.owner, Some(&with_nonce(&nonce)))
        .await;
    assert!(
        res.headers().contains_key("dpop-nonce"),
        "every response carries a nonce"
    );
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["id_token"].as_str().unwrap().to_owned();

    // At a resource: 401 with the nonce challenge, then success with the nonce.
    let res = me_with(
        &app,
        "DPoP",
        &token,
        &[&key.proof(&app, "GET", ME, Some(&token))],
    )
    .await;
    assert!(res.headers().contains_key("dpop-nonce"));
    assert_dpop_rejected(res, "use_dpop_nonce", "use_dpop_nonce").await;
    let (h, mut c) = key.parts(
        "GET",
        &format!("{}{ME}", app.state.public_url),
        app.now().timestamp(),
    );
    c["nonce"] = json!(nonce);
    c["ath"] = json!(keygate::auth::dpop::ath(&token));
    assert_eq!(
        me_with(&app, "DPoP", &token, &[&key.sign_parts(&h, &c)])
            .await
            .status(),
        StatusCode::OK
    );

    // Two windows later the old nonce is refused.
    app.clock.advance(Duration::from_secs(600));
    let (status, body) = json(
        app.signin_with_proof(&app.owner, Some(&with_nonce(&nonce)))
            .await,
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "use_dpop_nonce")
    );
}

#[tokio::test]
async fn dpop_required_by_the_server_or_an_organization() {
    let app = spawn_app_with(|s| s.dpop.required = true).await;
    let (status, body) = json(app.signin_with_proof(&app.owner, None).await).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_dpop_proof")
    );
    bound_token(&app, &DpopKey::es256()).await;

    // Per organization: the server does not require it, `acme` does.
    let app = spawn_app().await;
    let acme = app.create_org("acme").await;
    app.signin(&acme).await;
    keygate::admin::set_dpop_policy(&app.state.storage, "acme", Some(true), None)
        .await
        .unwrap();
    // The CLI's change reaches a running node within the revocation window; at once here.
    app.state.directory.orgs_changed();
    let (status, body) = json(
        app.signin_raw(
            "acme",
            Some(&acme.api_key),
            Some(&acme.api_key_id),
            Some(&acme.user_id),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_dpop_proof")
    );
    app.signin(&app.owner).await;
}

#[tokio::test]
async fn malformed_proofs_never_cause_a_server_error() {
    let app = spawn_app().await;
    let key = DpopKey::es256();
    let url = format!("{}{SIGNIN}", app.state.public_url);
    let (h, c) = key.parts("POST", &url, app.now().timestamp());
    let nested = format!("{}{}", "[".repeat(300), "]".repeat(300));
    let duplicated = format!(
        r#"{{"typ":"dpop+jwt","typ":"dpop+jwt","alg":"ES256","jwk":{}}}"#,
        key.jwk()
    );
    let mut bad_iat = c.clone();
    bad_iat["iat"] = json!("yesterday");
    let mut numeric_htu = c.clone();
    numeric_htu["htu"] = json!(7);
    let proofs: Vec<Vec<u8>> = vec![
        keygate::ids::random_base62(200).into_bytes(),
        "a".repeat(5000).into_bytes(),
        key.sign_raw(nested.as_bytes(), c.to_string().as_bytes())
            .into_bytes(),
        key.sign_raw(duplicated.as_bytes(), c.to_string().as_bytes())
            .into_bytes(),
        key.sign_parts(&h, &bad_iat).into_bytes(),
        key.sign_parts(&h, &numeric_htu).into_bytes(),
        key.sign_raw(&[0xff, 0xfe, 0x80], c.to_string().as_bytes())
            .into_bytes(),
        b"\xc3\x28.\xa0\xa1.\xe2\x28\xa1".to_vec(),
    ];
    for proof in &proofs {
        let o = &app.owner;
        let res = app
            .client
            .post(app.url(SIGNIN))
            .header("x-api-key", &o.api_key)
            .header("x-api-key-id", &o.api_key_id)
            .header("x-user-id", &o.user_id)
            .header(
                "dpop",
                reqwest::header::HeaderValue::from_bytes(proof).unwrap(),
            )
            .send()
            .await
            .unwrap();
        let (status, body) = json(res).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_dpop_proof"),
            "for {:?}: {body}",
            String::from_utf8_lossy(proof)
        );
    }
    bound_token(&app, &key).await;
}

#[tokio::test]
async fn dpop_bound_refresh_needs_the_bound_key_and_keeps_its_token() {
    let app = spawn_app_with(|s| s.tokens.alg = SigningAlg::ES256).await;
    let key = DpopKey::es256();
    let token_path = "/v1/default/oauth/token";
    let o = &app.owner;
    let res = app
        .client
        .post(app.url(token_path))
        .basic_auth(&o.api_key_id, Some(&o.api_key))
        .header("dpop", key.proof(&app, "POST", token_path, None))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let rt = body["refresh_token"].as_str().unwrap().to_owned();

    let refresh = |proof: Option<String>| {
        let mut req = app.client.post(app.url(token_path));
        if let Some(proof) = proof {
            req = req.header("dpop", proof);
        }
        req.form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt.as_str()),
        ])
        .send()
    };
    for proof in [
        None,
        Some(DpopKey::es256().proof(&app, "POST", token_path, None)),
    ] {
        let (status, body) = json(refresh(proof).await.unwrap()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")),
            "{body}"
        );
    }
    for _ in 0..2 {
        let (status, body) = json(
            refresh(Some(key.proof(&app, "POST", token_path, None)))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["refresh_token"],
            rt.as_str(),
            "a bound refresh token does not rotate"
        );
        assert_eq!(body["token_type"], "DPoP");
        assert_eq!(
            claims_of(body["access_token"].as_str().unwrap())["cnf"]["jkt"],
            key.thumbprint().as_str()
        );
    }
}
