//! Prometheus metrics (README, "Running in production"): the names keygate records, their
//! label sets, and the recorder that renders them. Every label value comes from a small
//! fixed set (a method, a route template, a status, an error code); nothing here ever takes
//! an organization, user, key, token or IP. Must not: name a metric outside this module
//! (callers use the functions below), or hold per-request state.
//!
//! Recording goes through the `metrics` facade, which like `tracing` is one per process:
//! [`install`] sets the Prometheus recorder once and every later [`Application`] of the
//! process shares it. Until it is installed (`metrics.enabled = false`), recording is a no-op.
//!
//! [`Application`]: crate::startup::Application

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "keygate_http_requests_total";
pub const HTTP_DURATION: &str = "keygate_http_request_duration_seconds";
pub const SIGNINS: &str = "keygate_signins_total";
pub const TOKEN_REQUESTS: &str = "keygate_token_requests_total";
pub const DPOP_REJECTIONS: &str = "keygate_dpop_rejections_total";
pub const REFRESH_REUSE: &str = "keygate_refresh_reuse_detected_total";
pub const REPLAY_CACHE_ENTRIES: &str = "keygate_replay_cache_entries";
pub const AUDIT_DROPPED: &str = "keygate_audit_events_dropped_total";

/// The route label of a request that matched no route (a 404 of the router).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Upper bounds (seconds) of the request duration histogram: 0.5 ms to 5 s, dense where a
/// token request and a protected request fall (2 cores: 0.1–30 ms).
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// How often histogram samples are folded into their buckets when nobody scrapes.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process's Prometheus recorder: renders the text format.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
    process: Arc<metrics_process::Collector>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

static INSTALLED: OnceLock<Result<Metrics, String>> = OnceLock::new();

/// Installs the Prometheus recorder as the process's `metrics` recorder (once; later
/// calls return the same one). Fails only when another recorder was installed first.
pub fn install() -> anyhow::Result<Metrics> {
    INSTALLED
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), DURATION_BUCKETS)
                .map_err(|e| e.to_string())?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;
            describe();
            let process = metrics_process::Collector::default();
            process.describe();
            Ok(Metrics {
                handle,
                process: Arc::new(process),
            })
        })
        .clone()
        .map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        Unit::Count,
        "HTTP requests answered, by method, route template and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time from a request's arrival to its response, by route template"
    );
    describe_counter!(
        SIGNINS,
        Unit::Count,
        "Sign-ins with an API key, by outcome (success or the error code)"
    );
    describe_counter!(
        TOKEN_REQUESTS,
        Unit::Count,
        "Token endpoint requests, by grant type, client authentication method and outcome (success or the error code)"
    );
    describe_counter!(
        DPOP_REJECTIONS,
        Unit::Count,
        "DPoP proofs refused, by the check that failed"
    );
    describe_counter!(
        REFRESH_REUSE,
        Unit::Count,
        "Used refresh tokens presented again (each ends its session)"
    );
    describe_gauge!(
        REPLAY_CACHE_ENTRIES,
        Unit::Count,
        "Entries of this node's in-memory DPoP replay cache"
    );
    describe_counter!(
        AUDIT_DROPPED,
        Unit::Count,
        "Audit events dropped because their queue was full, by queue"
    );
    // Counters of rare events are exported from the start (at 0), so an alert on them
    // sees a series before the first event.
    counter!(REFRESH_REUSE).increment(0);
    for queue in ["security", "failures"] {
        counter!(AUDIT_DROPPED, "queue" => queue).increment(0);
    }
}

impl Metrics {
    /// The text format (Prometheus exposition 0.0.4) of every metric, with the process
    /// metrics and `replay_entries` (this node's in-memory replay cache) read now.
    pub fn render(&self, replay_entries: Option<u64>) -> String {
        self.process.collect();
        if let Some(entries) = replay_entries {
            // Entries are counted in u64; a gauge is an f64 (exact below 2^53).
            #[allow(clippy::cast_precision_loss)]
            gauge!(REPLAY_CACHE_ENTRIES).set(entries as f64);
        }
        self.handle.render()
    }

    /// Folds recorded histogram samples into their buckets (bounds their memory between
    /// scrapes); run every [`UPKEEP_INTERVAL`].
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}

/// A sign-in answered: `outcome` is `success` or its error code.
pub fn signin(outcome: &'static str) {
    counter!(SIGNINS, "outcome" => outcome).increment(1);
}

/// A token endpoint request answered. Each label is one of a fixed set (see
/// [`grant_type_label`], [`client_auth_label`]); `outcome` is `success` or the RFC 6749
/// error code.
pub fn token_request(grant_type: &'static str, client_auth: &'static str, outcome: &'static str) {
    counter!(TOKEN_REQUESTS, "grant_type" => grant_type, "client_auth" => client_auth, "outcome" => outcome)
        .increment(1);
}

/// The `grant_type` label: a grant keygate knows, `none` when absent, else `other` (a
/// client's free text never becomes a label).
pub fn grant_type_label(grant_type: Option<&str>) -> &'static str {
    match grant_type {
        None => "none",
        Some("client_credentials") => "client_credentials",
        Some("refresh_token") => "refresh_token",
        Some("authorization_code") => "authorization_code",
        Some("urn:ietf:params:oauth:grant-type:device_code") => "device_code",
        Some("urn:ietf:params:oauth:grant-type:token-exchange") => "token_exchange",
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => "jwt_bearer",
        Some(_) => "other",
    }
}

/// The `client_auth` label: how the request presented its client (RFC 6749 §2.3, RFC 7523
/// §2.2): `client_secret_basic`, `private_key_jwt`, `client_secret_post`, or `none`.
pub fn client_auth_label(basic: bool, assertion: bool, secret: bool) -> &'static str {
    if basic {
        "client_secret_basic"
    } else if assertion {
        "private_key_jwt"
    } else if secret {
        "client_secret_post"
    } else {
        "none"
    }
}

/// A DPoP proof refused; `reason` names the failed check (`DpopError::reason`).
pub fn dpop_rejection(reason: &'static str) {
    counter!(DPOP_REJECTIONS, "reason" => reason).increment(1);
}

/// A used refresh token presented again: its session was ended.
pub fn refresh_reuse_detected() {
    counter!(REFRESH_REUSE).increment(1);
}

/// An audit event dropped from the full `queue` (`security` or `failures`).
pub fn audit_event_dropped(queue: &'static str) {
    counter!(AUDIT_DROPPED, "queue" => queue).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_chosen_grant_types_never_become_labels() {
        assert_eq!(
            grant_type_label(Some("client_credentials")),
            "client_credentials"
        );
        assert_eq!(
            grant_type_label(Some("urn:ietf:params:oauth:grant-type:device_code")),
            "device_code"
        );
        assert_eq!(
            grant_type_label(Some("urn:ietf:params:oauth:grant-type:token-exchange")),
            "token_exchange"
        );
        assert_eq!(
            grant_type_label(Some("urn:ietf:params:oauth:grant-type:jwt-bearer")),
            "jwt_bearer"
        );
        assert_eq!(grant_type_label(Some("key_0123456789abcdef")), "other");
        assert_eq!(grant_type_label(None), "none");
    }

    #[test]
    fn client_auth_names_the_method_presented() {
        assert_eq!(client_auth_label(true, false, false), "client_secret_basic");
        assert_eq!(client_auth_label(false, true, false), "private_key_jwt");
        assert_eq!(client_auth_label(false, false, true), "client_secret_post");
        assert_eq!(client_auth_label(false, false, false), "none");
    }
}
