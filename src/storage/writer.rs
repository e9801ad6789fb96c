//! The session writer: group commit of session issuance. One task owns the writes of new
//! sessions (session row, first refresh token, the key's `last_used_at`); requests hand
//! their rows over a bounded channel and await their own batch's commit, so nothing
//! acknowledged is lost and a full queue slows callers down instead of growing.
//!
//! A batch is committed in ONE transaction once it has `database.batch_max_rows` rows or
//! `database.batch_max_wait` after its first row, whichever comes first. When a batch's
//! transaction fails, its rows are written again one by one, each in its own transaction,
//! so only a row that fails on its own gets an error. Refresh rotation and revocations do
//! not go through here: they are conditional updates that stay in their own transactions.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DbErr;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};

use super::sessions::{self, Opening, Refusal};
use super::{Result, Storage, StorageError};
use crate::clock::Clock;

/// When a batch is committed.
#[derive(Clone, Copy, Debug)]
pub struct BatchLimits {
    /// Commit once the batch holds this many sessions.
    pub max_rows: usize,
    /// Commit at the latest this long after the batch's first row arrived (`0`: commit
    /// what is queued as soon as the previous commit is done).
    pub max_wait: Duration,
}

struct Job {
    opening: Opening,
    done: oneshot::Sender<Result<Option<Refusal>>>,
}

enum Message {
    Open(Box<Job>),
    Drain(oneshot::Sender<()>),
}

/// The handle of the session writer task (cheap to clone).
#[derive(Clone, Debug)]
pub struct SessionWriter {
    queue: mpsc::Sender<Message>,
}

/// The queue holds this many batches' worth of rows before callers wait (backpressure).
const QUEUED_BATCHES: usize = 4;

impl SessionWriter {
    /// Starts the writer task on the current runtime.
    pub fn spawn(storage: Storage, limits: BatchLimits, clock: Arc<dyn Clock>) -> Self {
        let max_rows = limits.max_rows.max(1);
        let (queue, rx) = mpsc::channel(max_rows.saturating_mul(QUEUED_BATCHES));
        tokio::spawn(run(storage, clock, rx, max_rows, limits.max_wait));
        Self { queue }
    }

    /// Writes `opening` with the next batch; returns once that batch is committed (or this
    /// row failed on its own), with the commit's refusal of this session if any
    /// ([`sessions::open_many`]).
    pub async fn open(&self, opening: Opening) -> Result<Option<Refusal>> {
        let (done, result) = oneshot::channel();
        self.queue
            .send(Message::Open(Box::new(Job { opening, done })))
            .await
            .map_err(|_| stopped())?;
        result.await.map_err(|_| stopped())?
    }

    /// Returns once every row handed over before the call is committed (or failed);
    /// used at shutdown.
    pub async fn drain(&self) {
        let (done, wait) = oneshot::channel();
        if self.queue.send(Message::Drain(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

fn stopped() -> StorageError {
    StorageError::Database(DbErr::Custom("the session writer has stopped".into()))
}

async fn run(
    storage: Storage,
    clock: Arc<dyn Clock>,
    mut queue: mpsc::Receiver<Message>,
    max_rows: usize,
    max_wait: Duration,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_rows);
    let mut drained: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = queue.recv().await {
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Open(job) => batch.push(*job),
                Message::Drain(done) => drained.push(done),
            }
            // A drain commits at once; otherwise fill up to the limits.
            if batch.len() >= max_rows || !drained.is_empty() {
                break;
            }
            next = match queue.try_recv() {
                Ok(message) => Some(message),
                Err(TryRecvError::Disconnected) => None,
                Err(TryRecvError::Empty) if max_wait.is_zero() => None,
                Err(TryRecvError::Empty) => tokio::time::timeout_at(deadline, queue.recv())
                    .await
                    .ok()
                    .flatten(),
            };
        }
        commit(&storage, clock.as_ref(), &mut batch).await;
        for done in drained.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Commits `batch` in one transaction and answers each row; on failure, retries each row
/// alone so that one bad row does not fail the others.
async fn commit(storage: &Storage, clock: &dyn Clock, batch: &mut Vec<Job>) {
    if batch.is_empty() {
        return;
    }
    let openings: Vec<&Opening> = batch.iter().map(|job| &job.opening).collect();
    let result = sessions::open_many(storage, &openings, clock.now()).await;
    drop(openings);
    match result {
        Ok(mut refusals) => {
            for job in batch.drain(..) {
                let _ = job.done.send(Ok(refusals.remove(&job.opening.session.id)));
            }
        }
        Err(err) if batch.len() == 1 => {
            if let Some(job) = batch.pop() {
                let _ = job.done.send(Err(err));
            }
        }
        Err(err) => {
            tracing::warn!(
                error = %err,
                rows = batch.len(),
                "a batch of new sessions failed; writing its rows one by one"
            );
            for job in batch.drain(..) {
                let result = sessions::open_many(storage, &[&job.opening], clock.now())
                    .await
                    .map(|mut refusals| refusals.remove(&job.opening.session.id));
                let _ = job.done.send(result);
            }
        }
    }
}
