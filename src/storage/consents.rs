//! Consents: what a person approved for a browser client, one row per (organization, user,
//! client). Consent only decides whether the consent page is shown again; the grant itself
//! is checked on every request, so a lost update (two approvals of one client racing)
//! costs at most one more consent page.

use entity::consent::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter};

use super::page::{self, Cursor, Page, PageRequest};
use super::{Result, Storage, StorageError};

/// The consent `user_id` of `org_id` gave `client_id`, if any.
pub async fn get(
    storage: &Storage,
    org_id: &str,
    user_id: &str,
    client_id: &str,
) -> Result<Option<Model>> {
    Ok(Entity::find()
        .filter(Column::OrgId.eq(org_id))
        .filter(Column::UserId.eq(user_id))
        .filter(Column::ClientId.eq(client_id))
        .one(storage.db())
        .await?)
}

/// Stores `consent` as the consent of its user for its client: a new row, or the existing
/// one's client name, `scope`, `resources` and `updated_at` replaced.
pub async fn put(storage: &Storage, consent: Model) -> Result<()> {
    let existing = get(
        storage,
        &consent.org_id,
        &consent.user_id,
        &consent.client_id,
    )
    .await?;
    if existing.is_none() {
        match ActiveModel::from(consent.clone())
            .insert(storage.db())
            .await
        {
            Ok(_) => return Ok(()),
            Err(err) => match StorageError::from(err) {
                // Stored meanwhile by a concurrent approval: update it instead.
                StorageError::Conflict(_) => {}
                other => return Err(other),
            },
        }
    }
    Entity::update_many()
        .col_expr(Column::ClientName, Expr::value(consent.client_name))
        .col_expr(Column::Scope, Expr::value(consent.scope))
        .col_expr(Column::Resources, Expr::value(consent.resources))
        .col_expr(Column::UpdatedAt, Expr::value(consent.updated_at))
        .filter(Column::OrgId.eq(consent.org_id))
        .filter(Column::UserId.eq(consent.user_id))
        .filter(Column::ClientId.eq(consent.client_id))
        .exec(storage.db())
        .await?;
    Ok(())
}

/// One page of `user_id`'s consents, newest first.
pub async fn page(
    storage: &Storage,
    org_id: &str,
    user_id: &str,
    page: &PageRequest,
) -> Result<Page<Model>> {
    let select = Entity::find()
        .filter(Column::OrgId.eq(org_id))
        .filter(Column::UserId.eq(user_id));
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

/// Deletes `user_id`'s consents (only the one of `client_id` when given); returns how many.
pub async fn delete(
    storage: &Storage,
    org_id: &str,
    user_id: &str,
    client_id: Option<&str>,
) -> Result<u64> {
    let mut delete = Entity::delete_many()
        .filter(Column::OrgId.eq(org_id))
        .filter(Column::UserId.eq(user_id));
    if let Some(client_id) = client_id {
        delete = delete.filter(Column::ClientId.eq(client_id));
    }
    Ok(delete.exec(storage.db()).await?.rows_affected)
}
