//! Audit events: appended in batches, never updated.

use entity::audit_event::{ActiveModel, Column, Entity, Model};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::{Result, Storage};

pub async fn insert_many(storage: &Storage, events: Vec<Model>) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    Entity::insert_many(events.into_iter().map(ActiveModel::from))
        .exec(storage.db())
        .await?;
    Ok(())
}

/// An organization's events, newest first.
pub async fn list(storage: &Storage, org_id: &str) -> Result<Vec<Model>> {
    Ok(Entity::find()
        .filter(Column::OrgId.eq(org_id))
        .order_by_desc(Column::At)
        .order_by_desc(Column::Id)
        .all(storage.db())
        .await?)
}
