//! Access tokens revoked by `jti` before their expiry.

use chrono::{DateTime, Utc};
use entity::revoked_token::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

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

/// Forgets revocations of tokens that have expired anyway.
pub async fn purge_expired(storage: &Storage, now: DateTime<Utc>) -> Result<u64> {
    Ok(Entity::delete_many()
        .filter(Column::ExpiresAt.lt(now))
        .exec(storage.db())
        .await?
        .rows_affected)
}
