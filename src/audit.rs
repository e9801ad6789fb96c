//! The audit log writer: request paths hand events to a bounded channel and never wait for
//! the database; one task writes them in batches. When the channel is full an event is
//! dropped with a warning rather than slowing sign-in down. [`AuditLog::flush`] waits
//! until everything handed over so far is written (used at shutdown and by tests).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::ids::new_id;
use crate::storage::{Storage, audit, orgs};
use crate::types::Slug;

const CHANNEL_CAPACITY: usize = 8192;
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
    /// When the request failed before its organization was looked up: the slug from the
    /// path, resolved to `org_id` by the writer, off the request path.
    pub org_slug: Option<String>,
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
}

enum Message {
    Event(Box<entity::audit_event::Model>, Option<String>),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone, Debug)]
pub struct AuditLog {
    tx: mpsc::Sender<Message>,
    clock: Arc<dyn Clock>,
}

impl AuditLog {
    /// Starts the writer task on the current runtime.
    pub fn spawn(storage: Storage, clock: Arc<dyn Clock>) -> Self {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        tokio::spawn(write_loop(storage, rx));
        Self { tx, clock }
    }

    pub fn record(&self, event: AuditEvent) {
        let row = entity::audit_event::Model {
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
        };
        let slug = event.org_slug.filter(|_| row.org_id.is_none());
        if let Err(err) = self.tx.try_send(Message::Event(Box::new(row), slug)) {
            tracing::warn!(action = event.action, "audit event dropped: {err}");
        }
    }

    /// Returns once every event recorded before the call is in the database.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write_loop(storage: Storage, mut rx: mpsc::Receiver<Message>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut waiting = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Event(row, slug) => batch.push((*row, slug)),
                Message::Flush(done) => waiting.push(done),
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        let batch = resolve_orgs(&storage, std::mem::take(&mut batch)).await;
        let count = batch.len();
        if let Err(err) = audit::insert_many(&storage, batch).await {
            tracing::error!(error = %err, count, "writing audit events failed");
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Fills `org_id` from the slug of events that failed before their organization was known.
async fn resolve_orgs(
    storage: &Storage,
    batch: Vec<(entity::audit_event::Model, Option<String>)>,
) -> Vec<entity::audit_event::Model> {
    let mut ids: HashMap<String, Option<String>> = HashMap::new();
    let mut rows = Vec::with_capacity(batch.len());
    for (mut row, slug) in batch {
        if let Some(slug) = slug.filter(|s| Slug::parse(s).is_ok()) {
            if !ids.contains_key(&slug) {
                let id = orgs::by_slug(storage, &slug)
                    .await
                    .ok()
                    .flatten()
                    .map(|o| o.id);
                ids.insert(slug.clone(), id);
            }
            row.org_id = ids.get(&slug).cloned().flatten();
        }
        rows.push(row);
    }
    rows
}
