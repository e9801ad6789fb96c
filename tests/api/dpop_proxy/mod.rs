//! `keygate dpop proxy` against the real server: tokens bound at sign-in and refresh,
//! `Bearer` rewritten to `DPoP` with `ath`, one retry on `use_dpop_nonce` in both its forms,
//! upstream errors passed through unchanged, foreign browser origins refused. `proofs`
//! checks every proof claim against a recording upstream; `binary` runs the real binary
//! (loopback by default, banner, one log line per request).

mod binary;
mod proofs;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use keygate::clock::Clock;
use keygate::dpop_client::proxy::{Proxy, ProxyConfig};
use keygate::dpop_client::{ClientKey, DpopAlg};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, claims_of, error_code, json, spawn_app, spawn_app_with};

const SIGNIN: &str = "/v1/default/user/signin_with_api_key";
const ME: &str = "/v1/default/user/me";
const TOKEN: &str = "/v1/default/oauth/token";

/// A running proxy and the lines it logged.
pub struct RunningProxy {
    pub address: String,
    pub thumbprint: String,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl RunningProxy {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

/// Starts a proxy to `upstream` on 127.0.0.1, port 0, signing with `key` on `clock`.
pub fn start_proxy(
    key: ClientKey,
    upstream: &str,
    public_url: Option<&str>,
    clock: Arc<dyn Clock>,
) -> RunningProxy {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    let proxy = Proxy::bind(
        ProxyConfig {
            key,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream: url::Url::parse(upstream).unwrap(),
            public_url: public_url.map(|u| url::Url::parse(u).unwrap()),
        },
        clock,
        move |line| sink.lock().unwrap().push(line.to_owned()),
    )
    .unwrap();
    let running = RunningProxy {
        address: format!("http://{}", proxy.local_addr()),
        thumbprint: proxy.thumbprint().to_owned(),
        log,
    };
    tokio::spawn(proxy.run());
    running
}

fn proxy_for(app: &TestApp, key: ClientKey) -> RunningProxy {
    start_proxy(key, &app.address, None, app.clock.clone())
}

/// Signs in through the proxy as the bootstrap owner, as Postman would (no proof).
async fn signin(app: &TestApp, proxy: &RunningProxy) -> reqwest::Response {
    app.client
        .post(proxy.url(SIGNIN))
        .header("x-api-key", &app.owner.api_key)
        .header("x-api-key-id", &app.owner.api_key_id)
        .header("x-user-id", &app.owner.user_id)
        .send()
        .await
        .unwrap()
}

async fn me_bearer(app: &TestApp, base: &str, token: &str) -> reqwest::Response {
    app.client
        .get(format!("{base}{ME}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn signin_through_the_proxy_binds_the_token_and_bearer_is_sent_as_dpop() {
    let app = spawn_app().await;
    for alg in DpopAlg::ALL {
        let proxy = proxy_for(&app, ClientKey::generate(alg));
        let (status, body) = json(signin(&app, &proxy).await).await;
        assert_eq!(status, StatusCode::OK, "{alg}: {body}");
        assert_eq!(body["token_type"], "DPoP", "{alg}");
        let token = body["id_token"].as_str().unwrap();
        assert_eq!(claims_of(token)["cnf"]["jkt"], proxy.thumbprint, "{alg}");

        // Postman sends the token as Bearer; the proxy makes it DPoP with a proof.
        let (status, me) = json(me_bearer(&app, &proxy.address, token).await).await;
        assert_eq!(status, StatusCode::OK, "{alg}: {me}");
        assert_eq!(me["token_type"], "DPoP");
        assert_eq!(me["auth_method"], "dpop");
        assert_eq!(me["user_id"], app.owner.user_id.as_str());

        // The same request straight to keygate is refused: the proof was the proxy's work.
        let direct = me_bearer(&app, &app.address, token).await;
        assert_eq!(direct.status(), StatusCode::UNAUTHORIZED);

        // The bound refresh token needs a proof from the same key: the proxy adds it, and
        // it is not rotated (README, "DPoP").
        let refresh = body["refresh_token"].as_str().unwrap();
        let (status, refreshed) = json(
            app.client
                .post(proxy.url(TOKEN))
                .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{refreshed}");
        assert_eq!(refreshed["token_type"], "DPoP");
        assert_eq!(refreshed["refresh_token"], refresh);
        let access = refreshed["access_token"].as_str().unwrap();
        assert_eq!(claims_of(access)["cnf"]["jkt"], proxy.thumbprint);
        assert_eq!(
            me_bearer(&app, &proxy.address, access).await.status(),
            StatusCode::OK
        );

        // One line per request: method, path, status; never a token.
        let lines = proxy.lines();
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(
            lines[0].starts_with(&format!("POST {SIGNIN} 200 ")),
            "{lines:?}"
        );
        assert!(lines[1].starts_with(&format!("GET {ME} 200 ")), "{lines:?}");
        assert!(lines[1].contains("ath"), "{lines:?}");
        assert!(
            lines[2].starts_with(&format!("POST {TOKEN} 200 ")),
            "{lines:?}"
        );
        for line in &lines {
            assert!(!line.contains(token) && !line.contains(refresh), "{line}");
        }
    }
}

#[tokio::test]
async fn client_credentials_through_the_proxy_are_bound_and_other_keys_tokens_are_left_alone() {
    let app = spawn_app().await;
    let proxy = proxy_for(&app, ClientKey::generate(DpopAlg::ES256));
    let (status, body) = json(
        app.client
            .post(proxy.url(TOKEN))
            .basic_auth(&app.owner.api_key_id, Some(&app.owner.api_key))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let token = body["access_token"].as_str().unwrap().to_owned();

    // A second proxy with another key does not rewrite a token bound to the first key: the
    // server's refusal (a bound token sent as Bearer) comes back as it was.
    let other = proxy_for(&app, ClientKey::generate(DpopAlg::ES256));
    let response = me_bearer(&app, &other.address, &token).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response.headers().get("www-authenticate").is_some_and(|v| v
            .to_str()
            .unwrap()
            .contains("must be presented with the DPoP scheme")),
        "{:?}",
        response.headers()
    );

    // An unbound (Bearer) token passes through the proxy as Bearer and works.
    let plain: Value = app.signin(&app.owner).await;
    let (status, me) =
        json(me_bearer(&app, &proxy.address, plain["id_token"].as_str().unwrap()).await).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["token_type"], "Bearer");
}

#[tokio::test]
async fn use_dpop_nonce_is_answered_with_one_retry_at_sign_in_the_token_endpoint_and_resources() {
    let app = spawn_app_with(|s| s.dpop.nonce = true).await;
    let key = ClientKey::generate(DpopAlg::ES256);

    // Nonces are on: a proof without one is refused at sign-in.
    let bare = key
        .proof("POST", &app.url(SIGNIN), None, None, app.clock.now())
        .unwrap();
    let (status, body) = json(app.signin_with_proof(&app.owner, Some(&bare)).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "use_dpop_nonce");

    // Sign-in (keygate's error body) through a proxy that has no nonce yet.
    let proxy = proxy_for(&app, key.clone());
    let (status, body) = json(signin(&app, &proxy).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    assert!(
        proxy.lines()[0].contains("retried once"),
        "{:?}",
        proxy.lines()
    );
    let token = body["id_token"].as_str().unwrap().to_owned();

    // The token endpoint (RFC 6749 error body) through another fresh proxy, same key.
    let fresh = proxy_for(&app, key.clone());
    let (status, refreshed) = json(
        app.client
            .post(fresh.url(TOKEN))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", body["refresh_token"].as_str().unwrap()),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert!(
        fresh.lines()[0].contains("retried once"),
        "{:?}",
        fresh.lines()
    );

    // A resource (`WWW-Authenticate: DPoP error="use_dpop_nonce"`) through a third.
    let third = proxy_for(&app, key.clone());
    let (status, me) = json(me_bearer(&app, &third.address, &token).await).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert!(
        third.lines()[0].contains("retried once"),
        "{:?}",
        third.lines()
    );

    // Once it holds a nonce, the proxy sends it at once: no retry.
    let (status, _) = json(me_bearer(&app, &third.address, &token).await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!third.lines()[1].contains("retried"), "{:?}", third.lines());
}

#[tokio::test]
async fn upstream_errors_come_back_unchanged() {
    let app = spawn_app().await;
    let proxy = proxy_for(&app, ClientKey::generate(DpopAlg::ES256));

    // A wrong secret: keygate's 401, its error body and its request id.
    let response = app
        .client
        .post(proxy.url(SIGNIN))
        .header("x-api-key", "ak_live_wrong")
        .header("x-api-key-id", &app.owner.api_key_id)
        .header("x-user-id", &app.owner.user_id)
        .send()
        .await
        .unwrap();
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let (status, body) = json(response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "invalid_api_key");
    assert_eq!(body["error"]["request_id"], request_id.as_str());

    // An unknown organization, and a method keygate does not route.
    let response = app
        .client
        .get(proxy.url("/v1/no-such-org/user/me"))
        .bearer_auth("x")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error());
    let response = app
        .client
        .delete(proxy.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);

    // Nothing listening upstream: the proxy's own 502, in keygate's error shape.
    let dead = start_proxy(
        ClientKey::generate(DpopAlg::ES256),
        "http://127.0.0.1:1",
        None,
        app.clock.clone(),
    );
    let (status, body) = json(app.client.get(dead.url("/healthz")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body["error"]["code"], "bad_gateway");
    assert_eq!(
        dead.lines(),
        vec!["GET /healthz 502 (upstream unreachable)"]
    );
}

#[tokio::test]
async fn pages_of_other_origins_are_refused_and_keygate_s_own_get_cors() {
    let app = spawn_app().await;
    let proxy = proxy_for(&app, ClientKey::generate(DpopAlg::ES256));
    // A web site the user visits cannot have the proxy sign for it.
    let response = app
        .client
        .post(proxy.url(SIGNIN))
        .header("Origin", "https://evil.example")
        .header("x-api-key", &app.owner.api_key)
        .header("x-api-key-id", &app.owner.api_key_id)
        .header("x-user-id", &app.owner.user_id)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let (_, body) = json(response).await;
    assert_eq!(body["error"]["code"], "permission_denied");

    // Scalar at keygate's /docs: the preflight is answered, the request gets CORS headers.
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, proxy.url(SIGNIN))
        .header("Origin", &app.address)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "x-api-key, x-api-key-id, x-user-id",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        app.address.as_str()
    );
    assert_eq!(preflight.headers()["access-control-allow-methods"], "POST");
    let response = app
        .client
        .post(proxy.url(SIGNIN))
        .header("Origin", &app.address)
        .header("x-api-key", &app.owner.api_key)
        .header("x-api-key-id", &app.owner.api_key_id)
        .header("x-user-id", &app.owner.user_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        app.address.as_str()
    );
    let (status, body) = json(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
}
