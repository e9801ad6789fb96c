//! Delegation and workload identity (README, "Delegation"): token exchange (RFC 8693) and
//! the JWT bearer grant (RFC 7523 §2.1) over real HTTP.

mod exchange;
mod jwt_bearer;
mod revocation;

use reqwest::StatusCode;
use serde_json::Value;

use crate::dpop_key::DpopKey;
use crate::helpers::{Credentials, TestApp, json};

pub const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const TOKEN_PATH: &str = "/v1/default/oauth/token";

/// A token exchange by `client` (HTTP Basic) of `subject`, with `extra` form fields and an
/// optional DPoP proof.
pub async fn exchange_with(
    app: &TestApp,
    client: &Credentials,
    subject: &str,
    extra: &[(&str, &str)],
    proof: Option<String>,
) -> (StatusCode, Value) {
    let mut form = vec![
        ("grant_type", EXCHANGE),
        ("subject_token", subject),
        ("subject_token_type", ACCESS_TOKEN),
    ];
    form.extend_from_slice(extra);
    let mut req = app
        .client
        .post(app.url(&format!("/v1/{}/oauth/token", client.org)))
        .basic_auth(&client.api_key_id, Some(&client.api_key))
        .form(&form);
    if let Some(proof) = proof {
        req = req.header("dpop", proof);
    }
    json(req.send().await.unwrap()).await
}

/// A token exchange that must succeed: returns its access token.
pub async fn exchange(
    app: &TestApp,
    client: &Credentials,
    subject: &str,
    extra: &[(&str, &str)],
) -> String {
    let (status, body) = exchange_with(app, client, subject, extra, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["issued_token_type"], ACCESS_TOKEN, "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Asserts an RFC 6749 §5.2 error.
#[track_caller]
pub fn oauth_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(
        (status, body["error"].as_str()),
        (expected, Some(code)),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{body}"
    );
}

/// A DPoP proof of `key` for the token endpoint.
pub fn token_proof(app: &TestApp, key: &DpopKey) -> String {
    key.proof(app, "POST", TOKEN_PATH, None)
}

/// `POST /v1/default/oauth/introspect` as `client`.
pub async fn introspect(app: &TestApp, client: &Credentials, token: &str) -> Value {
    let res = app
        .client
        .post(app.url("/v1/default/oauth/introspect"))
        .basic_auth(&client.api_key_id, Some(&client.api_key))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// `/user/me` with a Bearer token: status and body.
pub async fn me(app: &TestApp, token: &str) -> (StatusCode, Value) {
    json(app.me("default", token).await).await
}
