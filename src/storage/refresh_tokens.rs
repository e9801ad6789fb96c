//! Refresh tokens, by digest; used once each (Bearer) with an atomic consume (rotation:
//! [`super::sessions::rotate`]).

use chrono::{DateTime, Utc};
use entity::refresh_token::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::{Condition, Expr};
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

/// Marks the token used. `false` when it already was: exactly one of concurrent callers
/// gets `true`.
pub async fn consume(storage: &Storage, id: &str, at: DateTime<Utc>) -> Result<bool> {
    let res = Entity::update_many()
        .col_expr(Column::UsedAt, Expr::value(at))
        .filter(Column::Id.eq(id))
        .filter(Column::UsedAt.is_null())
        .exec(storage.db())
        .await?;
    Ok(res.rows_affected == 1)
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
