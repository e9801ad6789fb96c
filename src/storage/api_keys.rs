//! API keys: created with their digest, found by digest at sign-in, revoked in place.

use chrono::{DateTime, Utc};
use entity::api_key::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::page::{self, Cursor, Page, PageRequest};
use super::{Result, Storage, StorageError};
use crate::types::Lifecycle;

pub async fn insert(storage: &Storage, key: Model) -> Result<Model> {
    Ok(ActiveModel::from(key).insert(storage.db()).await?)
}

/// The key whose secret has this digest (digests are unique). The caller still checks the
/// id and organization it was presented with.
pub async fn by_digest(storage: &Storage, digest: &str) -> Result<Option<Model>> {
    Ok(Entity::find()
        .filter(Column::Digest.eq(digest))
        .one(storage.db())
        .await?)
}

pub async fn get(storage: &Storage, org_id: &str, key_id: &str) -> Result<Option<Model>> {
    Ok(Entity::find_by_id(key_id)
        .filter(Column::OrgId.eq(org_id))
        .one(storage.db())
        .await?)
}

pub async fn list(storage: &Storage, org_id: &str) -> Result<Vec<Model>> {
    Ok(Entity::find()
        .filter(Column::OrgId.eq(org_id))
        .order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::Id)
        .all(storage.db())
        .await?)
}

/// What a key listing is narrowed to.
#[derive(Clone, Debug, Default)]
pub struct KeyFilter {
    pub user_id: Option<String>,
    /// With the instant the status is judged at.
    pub status: Option<(Lifecycle, DateTime<Utc>)>,
    /// Keys not used since this instant: last used before it, or never used.
    pub unused_since: Option<DateTime<Utc>>,
}

/// One page of an organization's keys, newest first.
pub async fn page(
    storage: &Storage,
    org_id: &str,
    filter: &KeyFilter,
    page: &PageRequest,
) -> Result<Page<Model>> {
    let mut select = Entity::find().filter(Column::OrgId.eq(org_id));
    if let Some(user_id) = &filter.user_id {
        select = select.filter(Column::UserId.eq(user_id.as_str()));
    }
    if let Some(since) = filter.unused_since {
        select = select.filter(
            Condition::any()
                .add(Column::LastUsedAt.is_null())
                .add(Column::LastUsedAt.lt(since)),
        );
    }
    if let Some((status, now)) = filter.status {
        select = select.filter(super::lifecycle(
            Column::RevokedAt,
            Column::ExpiresAt,
            status,
            now,
        ));
    }
    page::fetch(
        storage,
        select,
        (Column::CreatedAt, Column::Id),
        page,
        |k| Cursor {
            at: k.created_at,
            id: k.id.clone(),
        },
    )
    .await
}

/// Records a use of a key presented directly on a request (`last_used_at`, `last_used_ip`),
/// unless a use at or after `older_than` is already recorded: one conditional `UPDATE`, so
/// nodes that sample the same key at once write it once.
pub async fn record_use(
    storage: &Storage,
    key_id: &str,
    at: DateTime<Utc>,
    ip: Option<String>,
    older_than: DateTime<Utc>,
) -> Result<()> {
    Entity::update_many()
        .col_expr(Column::LastUsedAt, Expr::value(at))
        .col_expr(Column::LastUsedIp, Expr::value(ip))
        .filter(Column::Id.eq(key_id))
        .filter(
            Condition::any()
                .add(Column::LastUsedAt.is_null())
                .add(Column::LastUsedAt.lt(older_than)),
        )
        .exec(storage.db())
        .await?;
    Ok(())
}

/// Sets a key's own issuance limits (`None`: the server's), writing only those columns.
pub async fn set_limits(
    storage: &Storage,
    org_id: &str,
    key_id: &str,
    per_minute: Option<Option<u32>>,
    per_hour: Option<Option<u32>>,
) -> Result<Model> {
    let mut update = Entity::update_many()
        .filter(Column::OrgId.eq(org_id))
        .filter(Column::Id.eq(key_id));
    if let Some(v) = per_minute {
        update = update.col_expr(Column::LimitPerMinute, Expr::value(v.map(i64::from)));
    }
    if let Some(v) = per_hour {
        update = update.col_expr(Column::LimitPerHour, Expr::value(v.map(i64::from)));
    }
    if per_minute.is_some() || per_hour.is_some() {
        update.exec(storage.db()).await?;
    }
    get(storage, org_id, key_id)
        .await?
        .ok_or(StorageError::NotFound)
}

/// Sets `revoked_at` (keeps an earlier revocation time if one is already set) and ends
/// the sessions the key opened. One conditional `UPDATE`, so a later revocation (a
/// rotation's grace period) racing an earlier one (a `DELETE`) never pushes it back.
pub async fn revoke(
    storage: &Storage,
    org_id: &str,
    key_id: &str,
    at: DateTime<Utc>,
) -> Result<Model> {
    let written = Entity::update_many()
        .col_expr(Column::RevokedAt, Expr::value(at))
        .filter(Column::OrgId.eq(org_id))
        .filter(Column::Id.eq(key_id))
        .filter(
            Condition::any()
                .add(Column::RevokedAt.is_null())
                .add(Column::RevokedAt.gt(at)),
        )
        .exec(storage.db())
        .await?
        .rows_affected;
    let key = get(storage, org_id, key_id)
        .await?
        .ok_or(StorageError::NotFound)?;
    if written > 0 {
        super::sessions::revoke_for_key(storage, org_id, key_id, at).await?;
    }
    Ok(key)
}

/// Revokes every key of a user that is not revoked yet (or whose revocation lies later).
pub async fn revoke_for_user(
    storage: &Storage,
    org_id: &str,
    user_id: &str,
    at: DateTime<Utc>,
) -> Result<u64> {
    let res = Entity::update_many()
        .col_expr(Column::RevokedAt, Expr::value(at))
        .filter(Column::OrgId.eq(org_id))
        .filter(Column::UserId.eq(user_id))
        .filter(
            Condition::any()
                .add(Column::RevokedAt.is_null())
                .add(Column::RevokedAt.gt(at)),
        )
        .exec(storage.db())
        .await?;
    Ok(res.rows_affected)
}

/// A user's keys that someone else issued through the admin API (an issuer is recorded and
/// is not the user) and that still work at `now` or later (a rotation's grace included).
pub async fn issued_by_others(
    storage: &Storage,
    org_id: &str,
    user_id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Model>> {
    Ok(Entity::find()
        .filter(Column::OrgId.eq(org_id))
        .filter(Column::UserId.eq(user_id))
        .filter(Column::CreatedByUserId.is_not_null())
        .filter(Column::CreatedByUserId.ne(user_id))
        .filter(
            Condition::any()
                .add(Column::RevokedAt.is_null())
                .add(Column::RevokedAt.gt(now)),
        )
        .order_by_asc(Column::CreatedAt)
        .all(storage.db())
        .await?)
}
