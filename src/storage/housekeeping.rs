//! The lock that lets one node of a fleet run housekeeping at a time: on PostgreSQL a
//! transaction-level advisory lock (`pg_try_advisory_xact_lock`) held by a transaction that
//! stays open for the whole pass, so it ends with the pass, or with the node if it dies.
//! On SQLite (one node) the lock is always granted.

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement, TransactionTrait};

use super::{Result, Storage};

/// The advisory lock's key: "keygate housekeeping" in a 64-bit number.
const LOCK_KEY: i64 = 0x6b67_686b_7065_6570; // "kghkpeep"

/// A held lock; dropping it (or [`HousekeepingLock::release`]) lets another node take it.
pub struct HousekeepingLock {
    txn: Option<DatabaseTransaction>,
}

impl std::fmt::Debug for HousekeepingLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HousekeepingLock")
            .field("postgres", &self.txn.is_some())
            .finish()
    }
}

impl HousekeepingLock {
    /// Ends the holding transaction (nothing was written in it).
    pub async fn release(mut self) -> Result<()> {
        if let Some(txn) = self.txn.take() {
            txn.rollback().await?;
        }
        Ok(())
    }
}

/// Takes the lock if no other node holds it (`None`: another node is purging now).
pub async fn try_lock(storage: &Storage) -> Result<Option<HousekeepingLock>> {
    if storage.db().get_database_backend() != DbBackend::Postgres {
        return Ok(Some(HousekeepingLock { txn: None }));
    }
    let txn = storage.db().begin().await?;
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_try_advisory_xact_lock($1) AS locked",
            [LOCK_KEY.into()],
        ))
        .await?;
    let locked = match row {
        Some(row) => row.try_get::<bool>("", "locked")?,
        None => false,
    };
    if locked {
        Ok(Some(HousekeepingLock { txn: Some(txn) }))
    } else {
        txn.rollback().await?;
        Ok(None)
    }
}
