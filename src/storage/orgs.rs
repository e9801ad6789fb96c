//! Organizations, addressed by slug.

use entity::organization::{ActiveModel, Column, Entity, Model};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder,
};

use super::{Result, Storage};

pub async fn insert(storage: &Storage, org: Model) -> Result<Model> {
    let active = ActiveModel {
        id: Set(org.id),
        slug: Set(org.slug),
        name: Set(org.name),
        created_at: Set(org.created_at),
    };
    Ok(active.insert(storage.db()).await?)
}

pub async fn by_slug(storage: &Storage, slug: &str) -> Result<Option<Model>> {
    Ok(Entity::find()
        .filter(Column::Slug.eq(slug))
        .one(storage.db())
        .await?)
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
