//! Rate limits of what succeeds (README, "Limits"): tokens issued per API key at sign-in
//! and the token endpoint, per-key overrides and who may set them, requests per user at
//! the protected endpoints, a fleet sharing its counters in Redis; and key hygiene
//! (`last_used_ip`, `?unused_since=`). Time moves on the test's `ManualClock`, never by
//! sleeping.

mod fleet;
mod hygiene;
mod issuance;
mod overrides;

use std::time::Duration;

use keygate::config::Settings;
use reqwest::StatusCode;

use crate::admin_helpers::Reply;
use crate::helpers::{Credentials, TestApp};

/// The documented defaults (the harness raises them for other tests), with a per-minute
/// issuance limit of `per_minute`.
pub fn real_limits(s: &mut Settings, per_minute: u32) {
    s.limits.issuance_per_minute = per_minute;
    s.limits.issuance_per_hour = 20_000;
    s.limits.requests_per_user_per_minute = 6_000;
}

/// A sign-in of `creds` against `base` (a node's URL), as a [`Reply`] with its headers.
pub async fn signin_at(app: &TestApp, base: &str, creds: &Credentials) -> Reply {
    let req = app
        .client
        .post(format!("{base}/v1/{}/user/signin_with_api_key", creds.org))
        .header("x-api-key", &creds.api_key)
        .header("x-api-key-id", &creds.api_key_id)
        .header("x-user-id", &creds.user_id);
    app.send(req).await
}

pub async fn signin(app: &TestApp, creds: &Credentials) -> Reply {
    signin_at(app, &app.address, creds).await
}

/// Asserts a 429 `rate_limited` in keygate's error format with `Retry-After` and both
/// RateLimit headers; returns `Retry-After`.
#[track_caller]
pub fn assert_limited(reply: &Reply) -> u64 {
    reply.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(
        reply.header("ratelimit-policy").is_some(),
        "{:?}",
        reply.headers
    );
    assert!(reply.header("ratelimit").is_some(), "{:?}", reply.headers);
    retry_after(reply)
}

#[track_caller]
pub fn retry_after(reply: &Reply) -> u64 {
    reply
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in whole seconds")
}

pub fn advance(app: &TestApp, seconds: u64) {
    app.clock.advance(Duration::from_secs(seconds));
}
