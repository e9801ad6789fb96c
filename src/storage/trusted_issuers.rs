//! Trusted identity providers, always looked up within their organization.

use entity::trusted_issuer::{ActiveModel, Column, Entity, Model};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::page::{self, Cursor, Page, PageRequest};
use super::{Result, Storage};

pub async fn insert(storage: &Storage, issuer: Model) -> Result<Model> {
    Ok(ActiveModel::from(issuer).insert(storage.db()).await?)
}

pub async fn get(storage: &Storage, org_id: &str, id: &str) -> Result<Option<Model>> {
    Ok(Entity::find_by_id(id)
        .filter(Column::OrgId.eq(org_id))
        .one(storage.db())
        .await?)
}

/// The provider of `org_id` whose tokens carry `iss`.
pub async fn by_issuer(storage: &Storage, org_id: &str, iss: &str) -> Result<Option<Model>> {
    Ok(Entity::find()
        .filter(Column::OrgId.eq(org_id))
        .filter(Column::Issuer.eq(iss))
        .one(storage.db())
        .await?)
}

pub async fn page(storage: &Storage, org_id: &str, page: &PageRequest) -> Result<Page<Model>> {
    let select = Entity::find().filter(Column::OrgId.eq(org_id));
    page::fetch(
        storage,
        select,
        (Column::CreatedAt, Column::Id),
        page,
        |t| Cursor {
            at: t.created_at,
            id: t.id.clone(),
        },
    )
    .await
}

pub async fn delete(storage: &Storage, org_id: &str, id: &str) -> Result<bool> {
    let res = Entity::delete_many()
        .filter(Column::OrgId.eq(org_id))
        .filter(Column::Id.eq(id))
        .exec(storage.db())
        .await?;
    Ok(res.rows_affected == 1)
}

/// Every provider of `org_id`, oldest first (the CLI's listing).
pub async fn list(storage: &Storage, org_id: &str) -> Result<Vec<Model>> {
    Ok(Entity::find()
        .filter(Column::OrgId.eq(org_id))
        .order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::Id)
        .all(storage.db())
        .await?)
}
