//! API keys: created with their digest, found by digest at sign-in, revoked in place.

use chrono::{DateTime, Utc};
use entity::api_key::{ActiveModel, Column, Entity, Model};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
};

use super::{Result, Storage, StorageError};

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

/// Sets `revoked_at` (keeps an earlier revocation time if one is already set) and ends
/// the sessions the key opened.
pub async fn revoke(
    storage: &Storage,
    org_id: &str,
    key_id: &str,
    at: DateTime<Utc>,
) -> Result<Model> {
    let key = get(storage, org_id, key_id)
        .await?
        .ok_or(StorageError::NotFound)?;
    if key.revoked_at.is_some_and(|t| t <= at) {
        return Ok(key);
    }
    let mut active = ActiveModel::from(key);
    active.revoked_at = Set(Some(at));
    let key = active.update(storage.db()).await?;
    super::sessions::revoke_for_key(storage, org_id, key_id, at).await?;
    Ok(key)
}
