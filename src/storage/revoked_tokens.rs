//! Access tokens revoked by `jti` before their expiry.

use chrono::{DateTime, Utc};
use entity::revoked_token::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::{Condition, OnConflict};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait};

use super::{Result, Storage};

pub async fn insert(storage: &Storage, token: Model) -> Result<()> {
    // Revoking twice is not an error.
    Entity::insert(ActiveModel::from(token))
        .on_conflict(OnConflict::column(Column::Jti).do_nothing().to_owned())
        .try_insert()
        .exec(storage.db())
        .await?;
    Ok(())
}

pub async fn is_revoked(storage: &Storage, jti: &str) -> Result<bool> {
    Ok(Entity::find_by_id(jti).count(storage.db()).await? > 0)
}

/// Forgets up to `limit` revocations of tokens that expired before `cutoff` (the caller
/// leaves room for the leeway with which `exp` is checked).
pub async fn purge_expired(storage: &Storage, cutoff: DateTime<Utc>, limit: u64) -> Result<u64> {
    super::purge::batch::<Entity>(
        storage,
        Column::Jti,
        Condition::all().add(Column::ExpiresAt.lt(cutoff)),
        limit,
    )
    .await
}
