//! What other agent platforms offer (README, "Coming from another agent platform"): direct
//! API-key requests, identity proofs, agent self-registration, and the organization
//! settings that turn them on.

mod direct_keys;
mod proofs;
mod registration;
mod settings;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Credentials, TestApp, json};

/// Signs in with `creds`; the access token.
pub async fn token_of(app: &TestApp, creds: &Credentials) -> String {
    app.signin(creds).await["id_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `PATCH /v1/{org}/settings` with `body`, as the holder of `token`.
pub async fn patch_settings(
    app: &TestApp,
    org: &str,
    token: &str,
    body: Value,
) -> (StatusCode, Value) {
    json(
        app.client
            .patch(app.url(&format!("/v1/{org}/settings")))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Turns the given switches on for `creds.org` as its owner `creds` (through the API).
pub async fn turn_on(app: &TestApp, owner: &Credentials, switches: &[&str]) {
    let token = token_of(app, owner).await;
    let mut body = serde_json::Map::new();
    for name in switches {
        body.insert((*name).to_owned(), json!(true));
    }
    let (status, answer) = patch_settings(app, &owner.org, &token, Value::Object(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

/// `GET /v1/{org}/user/me` with the given headers.
pub async fn me_with(app: &TestApp, org: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app.client.get(app.url(&format!("/v1/{org}/user/me")));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}
