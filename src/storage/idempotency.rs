//! Remembered `Idempotency-Key`s: reserved before the request runs (the unique index makes
//! a concurrent duplicate fail), completed with the response, released when it failed, and
//! taken over (a conditional update: one winner) when a reservation's lease ran out.

use chrono::{DateTime, Utc};
use entity::idempotency_key::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter};

use super::{Result, Storage, StorageError};

/// The outcome of trying to reserve a key.
pub enum Reservation {
    /// New: the caller runs the request, then completes or releases it.
    Reserved(Model),
    /// Seen before within its lifetime.
    Existing(Model),
}

/// How often [`reserve`] tries again when the row it collided with vanished meanwhile (its
/// request failed and released it).
const RESERVE_ATTEMPTS: usize = 5;

/// Reserves `row`'s key for its caller, forgetting the organization's expired keys first.
/// Never answers "not found": a row released between the collision and the look-up makes
/// it try to reserve again.
pub async fn reserve(storage: &Storage, row: Model, now: DateTime<Utc>) -> Result<Reservation> {
    Entity::delete_many()
        .filter(Column::OrgId.eq(row.org_id.as_str()))
        .filter(Column::ExpiresAt.lte(now))
        .exec(storage.db())
        .await?;
    let mut last = StorageError::NotFound;
    for _ in 0..RESERVE_ATTEMPTS {
        match ActiveModel::from(row.clone()).insert(storage.db()).await {
            Ok(model) => return Ok(Reservation::Reserved(model)),
            Err(err) => match StorageError::from(err) {
                StorageError::Conflict(message) => {
                    let existing = Entity::find()
                        .filter(Column::OrgId.eq(row.org_id.as_str()))
                        .filter(Column::ActorUserId.eq(row.actor_user_id.as_str()))
                        .filter(Column::IdemKey.eq(row.idem_key.as_str()))
                        .one(storage.db())
                        .await?;
                    match existing {
                        Some(existing) => return Ok(Reservation::Existing(existing)),
                        None => last = StorageError::Conflict(message),
                    }
                }
                other => return Err(other),
            },
        }
    }
    Err(last)
}

/// Takes over `stale`, a reservation whose request stopped answering, for a new request:
/// its id becomes `new_id` (so the old request can no longer complete or release it) and
/// its lease starts at `now`. Only one caller wins (`true`).
pub async fn take_over(
    storage: &Storage,
    stale: &Model,
    new_id: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    let result = Entity::update_many()
        .col_expr(Column::Id, Expr::value(new_id))
        .col_expr(Column::CreatedAt, Expr::value(now))
        .filter(Column::Id.eq(stale.id.as_str()))
        .filter(Column::StatusCode.is_null())
        .filter(Column::CreatedAt.eq(stale.created_at))
        .exec(storage.db())
        .await?;
    Ok(result.rows_affected == 1)
}

/// Stores the response of a reserved key's request.
pub async fn complete(
    storage: &Storage,
    id: &str,
    status: u16,
    response: String,
    redacted: bool,
) -> Result<()> {
    Entity::update_many()
        .col_expr(Column::StatusCode, Expr::value(i32::from(status)))
        .col_expr(Column::Response, Expr::value(response))
        .col_expr(Column::Redacted, Expr::value(redacted))
        .filter(Column::Id.eq(id))
        .exec(storage.db())
        .await?;
    Ok(())
}

/// Forgets a reservation whose request failed, so a retry runs again.
pub async fn release(storage: &Storage, id: &str) -> Result<()> {
    Entity::delete_by_id(id).exec(storage.db()).await?;
    Ok(())
}

/// Deletes up to `limit` remembered keys whose lifetime ended before `now`.
pub async fn purge_expired(storage: &Storage, now: DateTime<Utc>, limit: u64) -> Result<u64> {
    super::purge::batch::<Entity>(
        storage,
        Column::Id,
        Condition::all().add(Column::ExpiresAt.lte(now)),
        limit,
    )
    .await
}
