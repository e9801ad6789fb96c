//! Storage: the only module that writes queries. Repositories over the `entity` crate, one
//! file per table; every query of tenant data takes the organization. `DbErr` is classified
//! once, here, into [`StorageError`].

pub mod agents;
pub mod api_keys;
pub mod audit;
pub mod authorization_codes;
pub mod browser_sessions;
pub mod clients;
pub mod consents;
pub mod cross_org_grants;
pub mod device_codes;
pub mod housekeeping;
pub mod idempotency;
pub mod identity_keys;
pub mod login_challenges;
pub mod orgs;
pub mod page;
pub(crate) mod purge;
pub mod refresh_tokens;
pub mod resources;
pub mod revoked_tokens;
pub mod sessions;
pub mod signing_keys;
pub mod trusted_issuers;
pub mod users;
pub mod writer;

use std::time::Duration;

use chrono::{DateTime, Utc};
use migration::{Migrator, MigratorTrait};
use sea_orm::sea_query::Condition;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ColumnTrait, ConnectOptions, Database, DatabaseConnection, DbErr, SqlErr};

use crate::config::Settings;
use crate::types::Lifecycle;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A unique constraint refused the write (a slug, an email, a digest).
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    #[error("database error: {0}")]
    Database(DbErr),
}

impl From<DbErr> for StorageError {
    fn from(err: DbErr) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(what)) => StorageError::Conflict(what),
            _ => match err {
                DbErr::RecordNotFound(_) => StorageError::NotFound,
                other => StorageError::Database(other),
            },
        }
    }
}

/// Rows in `status` at `now` (see [`Lifecycle::of`]), by their `revoked_at` and
/// `expires_at` columns.
pub(crate) fn lifecycle<C: ColumnTrait>(
    revoked_at: C,
    expires_at: C,
    status: Lifecycle,
    now: DateTime<Utc>,
) -> Condition {
    let not_revoked = Condition::any()
        .add(revoked_at.is_null())
        .add(revoked_at.gt(now));
    match status {
        Lifecycle::Revoked => Condition::all()
            .add(revoked_at.is_not_null())
            .add(revoked_at.lte(now)),
        Lifecycle::Expired => Condition::all().add(not_revoked).add(expires_at.lte(now)),
        Lifecycle::Active => Condition::all().add(not_revoked).add(expires_at.gt(now)),
    }
}

/// The most connections keygate opens to a SQLite database.
const SQLITE_MAX_CONNECTIONS: u32 = 4;

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A pool of connections to the configured database.
#[derive(Clone, Debug)]
pub struct Storage {
    db: DatabaseConnection,
}

impl Storage {
    /// Connects to `settings.database_url()`. For the embedded SQLite default the data
    /// directory is created first and the file is opened in WAL mode.
    pub async fn connect(settings: &Settings) -> Result<Self> {
        let url = settings.database_url();
        if settings.is_embedded_database() && settings.database.url.is_none() {
            std::fs::create_dir_all(&settings.data_dir).map_err(|e| {
                StorageError::Database(DbErr::Custom(format!(
                    "cannot create data directory {}: {e}",
                    settings.data_dir.display()
                )))
            })?;
        }
        // SQLite has one writer at a time: more connections than a few only add busy-waiting
        // (measured: p99 of sign-in under 32 concurrent clients 495 ms with 16, 54 ms with 4).
        let max_connections = if settings.is_embedded_database() {
            settings
                .database
                .max_connections
                .min(SQLITE_MAX_CONNECTIONS)
        } else {
            settings.database.max_connections
        };
        let mut options = ConnectOptions::new(url);
        options
            .max_connections(max_connections)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(5))
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(5))
                    .foreign_keys(true)
            });
        Ok(Self {
            db: Database::connect(options).await?,
        })
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<()> {
        Ok(Migrator::up(&self.db, None).await?)
    }

    /// A round trip to the database, for `/readyz`.
    pub async fn ping(&self) -> Result<()> {
        Ok(self.db.ping().await?)
    }

    /// True when no organization exists yet (the first start).
    pub async fn is_empty(&self) -> Result<bool> {
        Ok(orgs::count(self).await? == 0)
    }

    pub async fn close(self) -> Result<()> {
        Ok(self.db.close().await?)
    }

    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.db
    }
}
