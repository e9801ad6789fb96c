//! Sessions and their refresh tokens (stored as digests only).

use chrono::{DateTime, Utc};
use entity::{api_key, refresh_token, session};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};

use super::{Result, Storage};

/// Creates a session with its first refresh token and records the key's use, atomically.
pub async fn open(
    storage: &Storage,
    session: session::Model,
    refresh: refresh_token::Model,
) -> Result<()> {
    let txn = storage.db().begin().await?;
    api_key::Entity::update_many()
        .col_expr(api_key::Column::LastUsedAt, Expr::value(session.created_at))
        .filter(api_key::Column::Id.eq(session.api_key_id.clone()))
        .exec(&txn)
        .await?;
    session::ActiveModel::from(session).insert(&txn).await?;
    refresh_token::ActiveModel::from(refresh)
        .insert(&txn)
        .await?;
    txn.commit().await?;
    Ok(())
}

pub async fn get(
    storage: &Storage,
    org_id: &str,
    session_id: &str,
) -> Result<Option<session::Model>> {
    Ok(session::Entity::find_by_id(session_id)
        .filter(session::Column::OrgId.eq(org_id))
        .one(storage.db())
        .await?)
}

/// Ends every open session of a key.
pub async fn revoke_for_key(
    storage: &Storage,
    org_id: &str,
    key_id: &str,
    at: DateTime<Utc>,
) -> Result<u64> {
    let res = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(at))
        .filter(session::Column::OrgId.eq(org_id))
        .filter(session::Column::ApiKeyId.eq(key_id))
        .filter(session::Column::RevokedAt.is_null())
        .exec(storage.db())
        .await?;
    Ok(res.rows_affected)
}

/// Ends every open session of a user.
pub async fn revoke_for_user(
    storage: &Storage,
    org_id: &str,
    user_id: &str,
    at: DateTime<Utc>,
) -> Result<u64> {
    let res = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(at))
        .filter(session::Column::OrgId.eq(org_id))
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null())
        .exec(storage.db())
        .await?;
    Ok(res.rows_affected)
}

/// Ends one session (its refresh tokens stop working with it).
pub async fn revoke(
    storage: &Storage,
    org_id: &str,
    session_id: &str,
    at: DateTime<Utc>,
) -> Result<bool> {
    let res = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(at))
        .filter(session::Column::OrgId.eq(org_id))
        .filter(session::Column::Id.eq(session_id))
        .filter(session::Column::RevokedAt.is_null())
        .exec(storage.db())
        .await?;
    Ok(res.rows_affected == 1)
}

/// Records a refresh: the new refresh token and the session's refresh time, together.
pub async fn refreshed(
    storage: &Storage,
    session_id: &str,
    next: Option<refresh_token::Model>,
    at: DateTime<Utc>,
) -> Result<()> {
    let txn = storage.db().begin().await?;
    session::Entity::update_many()
        .col_expr(session::Column::RefreshedAt, Expr::value(at))
        .filter(session::Column::Id.eq(session_id))
        .exec(&txn)
        .await?;
    if let Some(next) = next {
        refresh_token::ActiveModel::from(next).insert(&txn).await?;
    }
    txn.commit().await?;
    Ok(())
}
