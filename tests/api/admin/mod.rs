//! The admin API (docs/admin-api.md) over real HTTP: who may do what, scopes, the key
//! lifecycle, the last-owner and own-key rules, pagination, audit events, idempotency,
//! validation, sessions and users.

mod audit;
mod idempotency;
mod keys;
mod matrix;
mod users_sessions;
mod validation;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use keygate::types::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::admin_helpers::{Reply, ids, unique};
use crate::helpers::{Credentials, TestApp, error_code, json as json_of, spawn_app};

const KEYS: &str = "/v1/default/api_keys";
const USERS: &str = "/v1/default/users";
const SESSIONS: &str = "/v1/default/sessions";
const AUDIT: &str = "/v1/default/audit_events";

fn key_path(id: &str) -> String {
    format!("{KEYS}/{id}")
}

fn rotate_path(id: &str) -> String {
    format!("{KEYS}/{id}/rotate")
}

fn user_path(id: &str) -> String {
    format!("{USERS}/{id}")
}

fn session_path(id: &str) -> String {
    format!("{SESSIONS}/{id}")
}

fn email() -> String {
    format!(
        "{}@default.test",
        keygate::ids::random_base62(10).to_lowercase()
    )
}

fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap_or_else(|| panic!("time: {value}")))
        .unwrap_or_else(|e| panic!("{value} is not RFC 3339: {e}"))
        .with_timezone(&Utc)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Signs in with a key and expects `status` and the §6 `code`.
async fn signin_fails(app: &TestApp, creds: &Credentials, status: StatusCode, code: &str) {
    let (got, body) = json_of(
        app.signin_raw(
            &creds.org,
            Some(&creds.api_key),
            Some(&creds.api_key_id),
            Some(&creds.user_id),
        )
        .await,
    )
    .await;
    assert_eq!(got, status, "{body}");
    assert_eq!(error_code(&body), code, "{body}");
}

async fn signin_status(app: &TestApp, creds: &Credentials) -> StatusCode {
    app.signin_raw(
        &creds.org,
        Some(&creds.api_key),
        Some(&creds.api_key_id),
        Some(&creds.user_id),
    )
    .await
    .status()
}

/// `GET /user/me` with a token that must no longer work: 401 `invalid_token`.
async fn token_rejected(app: &TestApp, token: &str) {
    let (status, body) = json_of(app.me("default", token).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_code(&body), "invalid_token", "{body}");
}

async fn token_accepted(app: &TestApp, token: &str) {
    let (status, body) = json_of(app.me("default", token).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn has(items: &[Value], field: &str, id: &str) -> bool {
    items.iter().any(|i| i[field] == id)
}

async fn key_count(app: &TestApp, token: &str) -> usize {
    app.list_all(token, KEYS, 200).await.len()
}
