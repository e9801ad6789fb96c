//! Users, always looked up within their organization.

use entity::user::{ActiveModel, Column, Entity, Model};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder,
};

use super::page::{self, Cursor, Page, PageRequest};
use super::{Result, Storage};
use crate::types::{Role, UserStatus};

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

/// What a user listing is narrowed to.
#[derive(Clone, Debug, Default)]
pub struct UserFilter {
    /// Only this user (how members list users: they see themselves).
    pub user_id: Option<String>,
    pub role: Option<Role>,
    pub status: Option<UserStatus>,
}

/// One page of an organization's users, newest first.
pub async fn page(
    storage: &Storage,
    org_id: &str,
    filter: &UserFilter,
    page: &PageRequest,
) -> Result<Page<Model>> {
    let mut select = Entity::find().filter(Column::OrgId.eq(org_id));
    if let Some(user_id) = &filter.user_id {
        select = select.filter(Column::Id.eq(user_id.as_str()));
    }
    if let Some(role) = filter.role {
        select = select.filter(Column::Role.eq(role.as_str()));
    }
    select = match filter.status {
        None => select,
        Some(UserStatus::Deleted) => select.filter(Column::DeletedAt.is_not_null()),
        Some(UserStatus::Disabled) => select
            .filter(Column::DeletedAt.is_null())
            .filter(Column::Disabled.eq(true)),
        Some(UserStatus::Active) => select.filter(Column::Disabled.eq(false)),
    };
    page::fetch(
        storage,
        select,
        (Column::CreatedAt, Column::Id),
        page,
        |u| Cursor {
            at: u.created_at,
            id: u.id.clone(),
        },
    )
    .await
}

/// How many enabled owners the organization has.
pub async fn count_active_owners(storage: &Storage, org_id: &str) -> Result<u64> {
    Ok(Entity::find()
        .filter(Column::OrgId.eq(org_id))
        .filter(Column::Role.eq(Role::Owner.as_str()))
        .filter(Column::Disabled.eq(false))
        .count(storage.db())
        .await?)
}

/// Writes a changed user (name, role, disabled, deleted_at) with its `updated_at`.
pub async fn update(storage: &Storage, user: Model) -> Result<Model> {
    Ok(ActiveModel::from(user)
        .reset_all()
        .update(storage.db())
        .await?)
}

/// The user of `org_id` a trusted identity provider knows as `subject`.
pub async fn by_external_subject(
    storage: &Storage,
    org_id: &str,
    subject: &str,
) -> Result<Option<Model>> {
    Ok(Entity::find()
        .filter(Column::OrgId.eq(org_id))
        .filter(Column::ExternalSubject.eq(subject))
        .one(storage.db())
        .await?)
}
