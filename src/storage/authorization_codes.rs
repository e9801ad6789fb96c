//! Authorization codes (RFC 6749 §4.1.2), by digest. A code is used once: [`use_once`] is
//! a conditional update, so of concurrent token requests exactly one uses it.

use chrono::{DateTime, Utc};
use entity::authorization_code::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter};

use super::{Result, Storage};

pub async fn insert(storage: &Storage, code: Model) -> Result<()> {
    ActiveModel::from(code).insert(storage.db()).await?;
    Ok(())
}

/// The code of `org_id` whose digest is `digest` (used, expired or not: the caller decides).
pub async fn by_digest(storage: &Storage, org_id: &str, digest: &str) -> Result<Option<Model>> {
    Ok(Entity::find()
        .filter(Column::Digest.eq(digest))
        .filter(Column::OrgId.eq(org_id))
        .one(storage.db())
        .await?)
}

pub async fn get(storage: &Storage, id: &str) -> Result<Option<Model>> {
    Ok(Entity::find_by_id(id).one(storage.db()).await?)
}

/// Uses the code `id` for the session `session_id`: `true` for exactly one caller, `false`
/// when it was used already (before, or just now by a concurrent request).
pub async fn use_once(
    storage: &Storage,
    id: &str,
    session_id: &str,
    at: DateTime<Utc>,
) -> Result<bool> {
    let res = Entity::update_many()
        .col_expr(Column::UsedAt, Expr::value(at))
        .col_expr(Column::SessionId, Expr::value(session_id))
        .filter(Column::Id.eq(id))
        .filter(Column::UsedAt.is_null())
        .exec(storage.db())
        .await?;
    Ok(res.rows_affected == 1)
}

/// Records that the used code `id` was presented again (the first such time is kept) and
/// returns the session its use opened, which the caller revokes.
pub async fn mark_reused(storage: &Storage, id: &str, at: DateTime<Utc>) -> Result<Option<String>> {
    Entity::update_many()
        .col_expr(Column::ReusedAt, Expr::value(at))
        .filter(Column::Id.eq(id))
        .filter(Column::ReusedAt.is_null())
        .exec(storage.db())
        .await?;
    Ok(get(storage, id).await?.and_then(|code| code.session_id))
}

/// Whether the code `id` was presented again after its use.
pub async fn was_reused(storage: &Storage, id: &str) -> Result<bool> {
    Ok(get(storage, id)
        .await?
        .is_some_and(|code| code.reused_at.is_some()))
}

/// Deletes up to `limit` codes that expired before `cutoff`.
pub async fn purge_expired(storage: &Storage, cutoff: DateTime<Utc>, limit: u64) -> Result<u64> {
    super::purge::batch::<Entity>(
        storage,
        Column::Id,
        Condition::all().add(Column::ExpiresAt.lt(cutoff)),
        limit,
    )
    .await
}
