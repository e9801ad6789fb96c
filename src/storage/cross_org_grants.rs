//! Cross-organization grants, always looked up within the granting organization.

use chrono::{DateTime, Utc};
use entity::cross_org_grant::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter};

use super::page::{self, Cursor, Page, PageRequest};
use super::{Result, Storage};

pub async fn insert(storage: &Storage, grant: Model) -> Result<Model> {
    Ok(ActiveModel::from(grant).insert(storage.db()).await?)
}

pub async fn get(storage: &Storage, org_id: &str, id: &str) -> Result<Option<Model>> {
    Ok(Entity::find_by_id(id)
        .filter(Column::OrgId.eq(org_id))
        .one(storage.db())
        .await?)
}

fn live(now: DateTime<Utc>) -> Condition {
    Condition::all().add(Column::RevokedAt.is_null()).add(
        Condition::any()
            .add(Column::ExpiresAt.is_null())
            .add(Column::ExpiresAt.gt(now)),
    )
}

/// The grant that lets `user_id` of `source_org_id` into `org_id` at `now`: one naming the
/// user wins over one for the whole source organization.
pub async fn find_live(
    storage: &Storage,
    org_id: &str,
    source_org_id: &str,
    user_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<Model>> {
    let grants = Entity::find()
        .filter(Column::OrgId.eq(org_id))
        .filter(Column::SourceOrgId.eq(source_org_id))
        .filter(
            Condition::any()
                .add(Column::UserId.eq(user_id))
                .add(Column::UserId.is_null()),
        )
        .filter(live(now))
        .all(storage.db())
        .await?;
    let (named, everyone): (Vec<_>, Vec<_>) = grants.into_iter().partition(|g| g.user_id.is_some());
    Ok(named
        .into_iter()
        .next()
        .or_else(|| everyone.into_iter().next()))
}

/// One page of the organization's grants that are still live, newest first.
pub async fn page(
    storage: &Storage,
    org_id: &str,
    now: DateTime<Utc>,
    page: &PageRequest,
) -> Result<Page<Model>> {
    let select = Entity::find()
        .filter(Column::OrgId.eq(org_id))
        .filter(live(now));
    page::fetch(
        storage,
        select,
        (Column::CreatedAt, Column::Id),
        page,
        |g| Cursor {
            at: g.created_at,
            id: g.id.clone(),
        },
    )
    .await
}

/// Ends a grant; ending an ended grant changes nothing.
pub async fn revoke(storage: &Storage, org_id: &str, id: &str, at: DateTime<Utc>) -> Result<bool> {
    let res = Entity::update_many()
        .col_expr(Column::RevokedAt, Expr::value(at))
        .filter(Column::OrgId.eq(org_id))
        .filter(Column::Id.eq(id))
        .filter(Column::RevokedAt.is_null())
        .exec(storage.db())
        .await?;
    Ok(res.rows_affected == 1)
}
