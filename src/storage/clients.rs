//! Clients of the browser and device flows, always looked up within their organization;
//! organizations' dynamic-registration switch.

use chrono::{DateTime, Utc};
use entity::client::{ActiveModel, Column, Entity, Model};
use entity::{organization, session};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};

use super::page::{self, Cursor, Page, PageRequest};
use super::{Result, Storage};

pub async fn insert(storage: &Storage, client: Model) -> Result<Model> {
    Ok(ActiveModel::from(client).insert(storage.db()).await?)
}

pub async fn get(storage: &Storage, org_id: &str, id: &str) -> Result<Option<Model>> {
    Ok(Entity::find_by_id(id)
        .filter(Column::OrgId.eq(org_id))
        .one(storage.db())
        .await?)
}

/// One page of an organization's clients, newest first.
pub async fn page(storage: &Storage, org_id: &str, page: &PageRequest) -> Result<Page<Model>> {
    let select = Entity::find().filter(Column::OrgId.eq(org_id));
    page::fetch(
        storage,
        select,
        (Column::CreatedAt, Column::Id),
        page,
        |c| Cursor {
            at: c.created_at,
            id: c.id.clone(),
        },
    )
    .await
}

/// Deletes a client and, in the same transaction, ends at `at` every open session it holds
/// (a browser client's sessions record its id as `api_key_id`). `None`: no such client;
/// else the number of sessions ended.
pub async fn delete(
    storage: &Storage,
    org_id: &str,
    id: &str,
    at: DateTime<Utc>,
) -> Result<Option<u64>> {
    let txn = storage.db().begin().await?;
    let deleted = Entity::delete_many()
        .filter(Column::OrgId.eq(org_id))
        .filter(Column::Id.eq(id))
        .exec(&txn)
        .await?;
    if deleted.rows_affected == 0 {
        txn.rollback().await?;
        return Ok(None);
    }
    let ended = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(at))
        .filter(session::Column::OrgId.eq(org_id))
        .filter(session::Column::ApiKeyId.eq(id))
        .filter(super::sessions::not_ended_by(at))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(Some(ended.rows_affected))
}

/// Turns RFC 7591 dynamic registration on or off for an organization (writes that column
/// only).
pub async fn set_dynamic_registration(
    storage: &Storage,
    org_id: &str,
    on: bool,
) -> Result<Option<organization::Model>> {
    let res = organization::Entity::update_many()
        .col_expr(
            organization::Column::DynamicRegistration,
            Expr::value(Some(on)),
        )
        .filter(organization::Column::Id.eq(org_id))
        .exec(storage.db())
        .await?;
    if res.rows_affected == 0 {
        return Ok(None);
    }
    Ok(organization::Entity::find_by_id(org_id)
        .one(storage.db())
        .await?)
}
