//! Refresh tokens, by digest. A Bearer token is used once: [`super::sessions::rotate`]
//! marks it used and stores its successor in one transaction.

use chrono::{DateTime, Utc};
use entity::refresh_token::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::Condition;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter};

use super::{Result, Storage};

pub async fn by_digest(storage: &Storage, digest: &str) -> Result<Option<Model>> {
    Ok(Entity::find()
        .filter(Column::Digest.eq(digest))
        .one(storage.db())
        .await?)
}

pub async fn get(storage: &Storage, id: &str) -> Result<Option<Model>> {
    Ok(Entity::find_by_id(id).one(storage.db()).await?)
}

pub async fn insert(storage: &Storage, token: Model) -> Result<()> {
    ActiveModel::from(token).insert(storage.db()).await?;
    Ok(())
}

/// Deletes up to `limit` refresh tokens that expired before `cutoff` (a refresh token
/// expires with its session).
pub async fn purge_expired(storage: &Storage, cutoff: DateTime<Utc>, limit: u64) -> Result<u64> {
    super::purge::batch::<Entity>(
        storage,
        Column::Id,
        Condition::all().add(Column::ExpiresAt.lt(cutoff)),
        limit,
    )
    .await
}
