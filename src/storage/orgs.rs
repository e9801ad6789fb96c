//! Organizations, addressed by slug.

use entity::organization::{ActiveModel, Column, Entity, Model};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder,
};

use super::{Result, Storage};

pub async fn insert(storage: &Storage, org: Model) -> Result<Model> {
    Ok(ActiveModel::from(org).insert(storage.db()).await?)
}

pub async fn by_slug(storage: &Storage, slug: &str) -> Result<Option<Model>> {
    Ok(Entity::find()
        .filter(Column::Slug.eq(slug))
        .one(storage.db())
        .await?)
}

pub async fn by_id(storage: &Storage, id: &str) -> Result<Option<Model>> {
    Ok(Entity::find_by_id(id).one(storage.db()).await?)
}

pub async fn list(storage: &Storage) -> Result<Vec<Model>> {
    Ok(Entity::find()
        .order_by_asc(Column::Slug)
        .all(storage.db())
        .await?)
}

pub async fn count(storage: &Storage) -> Result<u64> {
    Ok(Entity::find().count(storage.db()).await?)
}

pub async fn set_dpop_policy(
    storage: &Storage,
    org: Model,
    required: Option<bool>,
    nonce: Option<bool>,
) -> Result<Model> {
    let mut active = ActiveModel::from(org);
    active.dpop_required = Set(required);
    active.dpop_nonce = Set(nonce);
    Ok(active.update(storage.db()).await?)
}
