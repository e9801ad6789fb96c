//! Browser sessions of people signed in to an organization's pages.

use chrono::{DateTime, Utc};
use entity::browser_session::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter};

use super::{Result, Storage};

pub async fn insert(storage: &Storage, session: Model) -> Result<Model> {
    Ok(ActiveModel::from(session).insert(storage.db()).await?)
}

/// The live session (not ended, not expired at `now`) whose cookie has `digest`.
pub async fn live_by_digest(
    storage: &Storage,
    digest: &str,
    now: DateTime<Utc>,
) -> Result<Option<Model>> {
    Ok(Entity::find()
        .filter(Column::Digest.eq(digest))
        .filter(Column::EndedAt.is_null())
        .filter(Column::ExpiresAt.gt(now))
        .one(storage.db())
        .await?)
}

/// Ends the session `id` (signing out).
pub async fn end(storage: &Storage, id: &str, now: DateTime<Utc>) -> Result<()> {
    Entity::update_many()
        .col_expr(Column::EndedAt, Expr::value(now))
        .filter(Column::Id.eq(id))
        .filter(Column::EndedAt.is_null())
        .exec(storage.db())
        .await?;
    Ok(())
}

/// Deletes at most `limit` sessions that expired before `cutoff` (signed out or not: a
/// session's cookie is worthless past its expiry either way).
pub async fn purge_expired(storage: &Storage, cutoff: DateTime<Utc>, limit: u64) -> Result<u64> {
    super::purge::batch::<Entity>(
        storage,
        Column::Id,
        sea_orm::sea_query::Condition::all().add(Column::ExpiresAt.lte(cutoff)),
        limit,
    )
    .await
}
