//! Refresh tokens, by digest; used once each (Bearer) with an atomic consume.

use chrono::{DateTime, Utc};
use entity::refresh_token::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter};

use super::{Result, Storage};

pub async fn by_digest(storage: &Storage, digest: &str) -> Result<Option<Model>> {
    Ok(Entity::find()
        .filter(Column::Digest.eq(digest))
        .one(storage.db())
        .await?)
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
