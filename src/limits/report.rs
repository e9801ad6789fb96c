//! The rate-limit outcome of the request being handled, for its response headers
//! (`RateLimit-Policy` and `RateLimit`, IETF httpapi ratelimit-headers draft). A task-local
//! the HTTP layer opens around each request; the limits write into it. No HTTP types here.

use std::cell::RefCell;
use std::future::Future;

use super::Policy;
use super::gcra::Level;

/// One policy's quota and its level after the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyState {
    pub policy: Policy,
    pub level: Level,
}

/// Every policy the request was counted against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub states: Vec<PolicyState>,
}

impl Report {
    /// `RateLimit-Policy`: each policy as an item with its quota `q` and window `w`.
    pub fn policy_header(&self) -> String {
        self.states
            .iter()
            .map(|s| {
                format!(
                    "\"{}\";q={};w={}",
                    s.policy.name, s.policy.quota, s.policy.window_secs
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `RateLimit`: each policy with what remains `r` and the seconds `t` until its quota
    /// is whole again.
    pub fn limit_header(&self) -> String {
        self.states
            .iter()
            .map(|s| {
                format!(
                    "\"{}\";r={};t={}",
                    s.policy.name, s.level.remaining, s.level.reset
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

tokio::task_local! {
    static REPORT: RefCell<Option<Report>>;
}

/// Runs `fut` with a place for its rate-limit report; returns its output and the report.
pub async fn scope<F: Future>(fut: F) -> (F::Output, Option<Report>) {
    REPORT
        .scope(RefCell::new(None), async move {
            let out = fut.await;
            let report = REPORT.with(|r| r.borrow_mut().take());
            (out, report)
        })
        .await
}

/// Records the request's report (the last check wins); nothing outside a [`scope`].
pub fn record(report: Report) {
    let _ = REPORT.try_with(|r| *r.borrow_mut() = Some(report));
}
