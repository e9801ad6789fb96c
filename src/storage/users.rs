//! Users, always looked up within their organization.

use entity::user::{ActiveModel, Column, Entity, Model};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
};

use super::{Result, Storage};

pub async fn insert(storage: &Storage, user: Model) -> Result<Model> {
    Ok(ActiveModel::from(user).insert(storage.db()).await?)
}

pub async fn get(storage: &Storage, org_id: &str, user_id: &str) -> Result<Option<Model>> {
    Ok(Entity::find_by_id(user_id)
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

/// Disables or re-enables a user.
pub async fn set_disabled(
    storage: &Storage,
    org_id: &str,
    user_id: &str,
    disabled: bool,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Model> {
    let user = get(storage, org_id, user_id)
        .await?
        .ok_or(super::StorageError::NotFound)?;
    let mut active = ActiveModel::from(user);
    active.disabled = Set(disabled);
    active.updated_at = Set(at);
    Ok(active.update(storage.db()).await?)
}
