//! Audit events: appended in batches, never updated, deleted only past `audit.retention`.

use chrono::{DateTime, Utc};
use entity::audit_event::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::Condition;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::page::{self, Cursor, Page, PageRequest};
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

/// What an event listing is narrowed to.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    /// The actor's user id or key id.
    pub actor: Option<String>,
    pub action: Option<String>,
    /// `success` or `failure`.
    pub outcome: Option<&'static str>,
    pub target_id: Option<String>,
    /// Inclusive.
    pub since: Option<DateTime<Utc>>,
    /// Exclusive.
    pub until: Option<DateTime<Utc>>,
}

/// One page of an organization's events, newest first.
pub async fn page(
    storage: &Storage,
    org_id: &str,
    filter: &EventFilter,
    page: &PageRequest,
) -> Result<Page<Model>> {
    let mut select = Entity::find().filter(Column::OrgId.eq(org_id));
    if let Some(actor) = &filter.actor {
        select = select.filter(
            Condition::any()
                .add(Column::ActorUserId.eq(actor.as_str()))
                .add(Column::ActorKeyId.eq(actor.as_str())),
        );
    }
    if let Some(action) = &filter.action {
        select = select.filter(Column::Action.eq(action.as_str()));
    }
    if let Some(outcome) = filter.outcome {
        select = select.filter(Column::Outcome.eq(outcome));
    }
    if let Some(target) = &filter.target_id {
        select = select.filter(Column::TargetId.eq(target.as_str()));
    }
    if let Some(since) = filter.since {
        select = select.filter(Column::At.gte(since));
    }
    if let Some(until) = filter.until {
        select = select.filter(Column::At.lt(until));
    }
    page::fetch(storage, select, (Column::At, Column::Id), page, |e| {
        Cursor {
            at: e.at,
            id: e.id.clone(),
        }
    })
    .await
}

/// Deletes up to `limit` events recorded before `cutoff` (the retention).
pub async fn purge_before(storage: &Storage, cutoff: DateTime<Utc>, limit: u64) -> Result<u64> {
    super::purge::batch::<Entity>(
        storage,
        Column::Id,
        Condition::all().add(Column::At.lt(cutoff)),
        limit,
    )
    .await
}
