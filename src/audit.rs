//! The audit log writer: request paths hand events to bounded queues and never wait for
//! the database; one task writes them in batches. [`AuditLog::flush`] waits until
//! everything handed over so far is written (used at shutdown and by tests).
//!
//! The unauthenticated cannot flood or forge the log (docs/security.md):
//! - Security events (everything done by an authenticated caller or about a verified
//!   record: successes, key and user changes, `permission.denied`, …) have a queue of their
//!   own, written first; failed authentications go to a second queue ([`AuditLog::record_failure`]),
//!   so a flood of failures can only ever drop failures, never a security event.
//! - A failure with no valid organization or no verified credential is not stored at all,
//!   only counted ([`AuditLog::count_unrecorded`]); callers write ids into an
//!   organization's log only from verified records.
//! - When a queue is full its event is dropped and counted ([`AuditCounters`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::ids::new_id;
use crate::storage::{Storage, audit};

const MAX_BATCH: usize = 256;

/// Where a request came from, for the audit trail.
#[derive(Clone, Debug, Default)]
pub struct RequestMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

/// One event, as the domain describes it. Never carries a secret.
#[derive(Clone, Debug, Default)]
pub struct AuditEvent {
    pub org_id: Option<String>,
    /// `signin.succeeded`, `signin.failed`, `api_key.revoked`, …
    pub action: &'static str,
    pub success: bool,
    /// For failures: the error code (`invalid_api_key`, …).
    pub reason: Option<String>,
    pub actor_user_id: Option<String>,
    pub actor_key_id: Option<String>,
    pub target_type: Option<&'static str>,
    pub target_id: Option<String>,
    pub meta: RequestMeta,
    /// The delegation chain of the token the event is about: the JSON of its nested `act`
    /// claim (RFC 8693 §4.1).
    pub act: Option<String>,
}

type Row = Box<entity::audit_event::Model>;

enum Message {
    Event(Row),
    Flush(oneshot::Sender<()>),
}

/// What the writer did not store, for metrics and tests.
#[derive(Debug, Default)]
pub struct AuditCounters {
    /// Security events dropped because their queue was full.
    pub security_dropped: AtomicU64,
    /// Failed-authentication events dropped because their queue was full.
    pub failures_dropped: AtomicU64,
    /// Failures with no organization or no verified credential: counted, never stored.
    pub unrecorded_failures: AtomicU64,
}

#[derive(Clone, Debug)]
pub struct AuditLog {
    security: mpsc::Sender<Message>,
    failures: mpsc::Sender<Row>,
    clock: Arc<dyn Clock>,
    counters: Arc<AuditCounters>,
}

impl AuditLog {
    /// Starts the writer task on the current runtime; each queue holds `capacity` events.
    pub fn spawn(storage: Storage, clock: Arc<dyn Clock>, capacity: usize) -> Self {
        let (security, security_rx) = mpsc::channel(capacity.max(1));
        let (failures, failures_rx) = mpsc::channel(capacity.max(1));
        tokio::spawn(write_loop(storage, security_rx, failures_rx));
        Self {
            security,
            failures,
            clock,
            counters: Arc::default(),
        }
    }

    fn row(&self, event: AuditEvent) -> Row {
        Box::new(entity::audit_event::Model {
            id: new_id("evt"),
            org_id: event.org_id,
            at: self.clock.now(),
            action: event.action.to_owned(),
            outcome: if event.success { "success" } else { "failure" }.to_owned(),
            reason: event.reason,
            actor_user_id: event.actor_user_id,
            actor_key_id: event.actor_key_id,
            target_type: event.target_type.map(str::to_owned),
            target_id: event.target_id,
            ip: event.meta.ip,
            user_agent: event.meta.user_agent,
            request_id: event.meta.request_id,
            act: event.act,
        })
    }

    /// Records a security event (never dropped in favour of failures).
    pub fn record(&self, event: AuditEvent) {
        let action = event.action;
        if let Err(err) = self.security.try_send(Message::Event(self.row(event))) {
            self.counters
                .security_dropped
                .fetch_add(1, Ordering::Relaxed);
            crate::metrics::audit_event_dropped("security");
            tracing::warn!(action, "audit event dropped: {err}");
        }
    }

    /// Records a failed authentication tied to verified records of its organization (a
    /// key id that exists there): dropped first when the writer falls behind.
    pub fn record_failure(&self, event: AuditEvent) {
        if self.failures.try_send(self.row(event)).is_err() {
            self.counters
                .failures_dropped
                .fetch_add(1, Ordering::Relaxed);
            crate::metrics::audit_event_dropped("failures");
        }
    }

    /// Counts a failure that is not stored (no organization, no credential shape, or a
    /// credential that matches no record).
    pub fn count_unrecorded(&self) {
        self.counters
            .unrecorded_failures
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn counters(&self) -> &AuditCounters {
        &self.counters
    }

    /// Returns once every event recorded before the call is in the database.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.security.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write(storage: &Storage, batch: &mut Vec<entity::audit_event::Model>) {
    if batch.is_empty() {
        return;
    }
    let count = batch.len();
    if let Err(err) = audit::insert_many(storage, std::mem::take(batch)).await {
        tracing::error!(error = %err, count, "writing audit events failed");
    }
}

async fn write_loop(
    storage: Storage,
    mut security: mpsc::Receiver<Message>,
    mut failures: mpsc::Receiver<Row>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut waiting = Vec::new();
    loop {
        let first = tokio::select! {
            biased;
            Some(message) = security.recv() => message,
            Some(row) = failures.recv() => Message::Event(row),
            else => break,
        };
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Event(row) => batch.push(*row),
                Message::Flush(done) => waiting.push(done),
            }
            if batch.len() < MAX_BATCH {
                next = security
                    .try_recv()
                    .ok()
                    .or_else(|| failures.try_recv().ok().map(Message::Event));
            }
        }
        write(&storage, &mut batch).await;
        if !waiting.is_empty() {
            // A flush covers the failures queued before it too (and no more, so a
            // flood cannot hold it up).
            for _ in 0..failures.len() {
                let Ok(row) = failures.try_recv() else { break };
                batch.push(*row);
                if batch.len() >= MAX_BATCH {
                    write(&storage, &mut batch).await;
                }
            }
            write(&storage, &mut batch).await;
            for done in waiting.drain(..) {
                let _ = done.send(());
            }
        }
    }
}
