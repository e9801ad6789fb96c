//! Protected resources, always looked up within their organization.

use chrono::{DateTime, Utc};
use entity::resource::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::page::{self, Cursor, Page, PageRequest};
use super::{Result, Storage};

pub async fn insert(storage: &Storage, resource: Model) -> Result<Model> {
    Ok(ActiveModel::from(resource).insert(storage.db()).await?)
}

pub async fn get(storage: &Storage, org_id: &str, id: &str) -> Result<Option<Model>> {
    Ok(Entity::find_by_id(id)
        .filter(Column::OrgId.eq(org_id))
        .one(storage.db())
        .await?)
}

/// The resources of `org_id` whose (normalized) URI is one of `uris`.
pub async fn by_uris(storage: &Storage, org_id: &str, uris: &[String]) -> Result<Vec<Model>> {
    if uris.is_empty() {
        return Ok(Vec::new());
    }
    Ok(Entity::find()
        .filter(Column::OrgId.eq(org_id))
        .filter(Column::Uri.is_in(uris.iter().cloned()))
        .all(storage.db())
        .await?)
}

/// Every resource of `org_id`, oldest first (the CLI's listing).
pub async fn list(storage: &Storage, org_id: &str) -> Result<Vec<Model>> {
    Ok(Entity::find()
        .filter(Column::OrgId.eq(org_id))
        .order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::Id)
        .all(storage.db())
        .await?)
}

pub async fn page(storage: &Storage, org_id: &str, page: &PageRequest) -> Result<Page<Model>> {
    let select = Entity::find().filter(Column::OrgId.eq(org_id));
    page::fetch(
        storage,
        select,
        (Column::CreatedAt, Column::Id),
        page,
        |r| Cursor {
            at: r.created_at,
            id: r.id.clone(),
        },
    )
    .await
}

/// What a change sets (`None`: unchanged; `access_ttl_secs: Some(None)`: removed).
#[derive(Clone, Debug, Default)]
pub struct Change {
    pub uri: Option<String>,
    pub name: Option<String>,
    pub scopes: Option<String>,
    pub access_ttl_secs: Option<Option<i64>>,
}

/// Writes only the columns `change` sets; `None` when no such resource.
pub async fn update(
    storage: &Storage,
    org_id: &str,
    id: &str,
    change: Change,
    at: DateTime<Utc>,
) -> Result<Option<Model>> {
    let mut query = Entity::update_many()
        .col_expr(Column::UpdatedAt, Expr::value(at))
        .filter(Column::OrgId.eq(org_id))
        .filter(Column::Id.eq(id));
    if let Some(uri) = change.uri {
        query = query.col_expr(Column::Uri, Expr::value(uri));
    }
    if let Some(name) = change.name {
        query = query.col_expr(Column::Name, Expr::value(name));
    }
    if let Some(scopes) = change.scopes {
        query = query.col_expr(Column::Scopes, Expr::value(scopes));
    }
    if let Some(ttl) = change.access_ttl_secs {
        query = query.col_expr(Column::AccessTtlSecs, Expr::value(ttl));
    }
    if query.exec(storage.db()).await?.rows_affected == 0 {
        return Ok(None);
    }
    get(storage, org_id, id).await
}

pub async fn delete(storage: &Storage, org_id: &str, id: &str) -> Result<bool> {
    let res = Entity::delete_many()
        .filter(Column::OrgId.eq(org_id))
        .filter(Column::Id.eq(id))
        .exec(storage.db())
        .await?;
    Ok(res.rows_affected == 1)
}
