//! Login challenges (one-time codes people sign in with). Every use of a challenge is a
//! conditional `UPDATE … WHERE` whose `rows_affected` decides: an attempt is counted before
//! its code is compared, and only one submission consumes it.

use chrono::{DateTime, Utc};
use entity::login_challenge::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::{Condition, Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::{Result, Storage};

pub async fn insert(storage: &Storage, challenge: Model) -> Result<Model> {
    Ok(ActiveModel::from(challenge).insert(storage.db()).await?)
}

/// Removes a challenge that was refused by a throttle (it is not counted against anyone).
pub async fn delete(storage: &Storage, id: &str) -> Result<()> {
    Entity::delete_by_id(id).exec(storage.db()).await?;
    Ok(())
}

/// The challenges a throttle counts: how many, and when the oldest of them was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recent {
    pub count: u64,
    pub oldest: Option<DateTime<Utc>>,
}

async fn recent(storage: &Storage, condition: Condition) -> Result<Recent> {
    let count = Entity::find()
        .filter(condition.clone())
        .count(storage.db())
        .await?;
    let oldest = if count == 0 {
        None
    } else {
        Entity::find()
            .select_only()
            .column(Column::CreatedAt)
            .filter(condition)
            .order_by_asc(Column::CreatedAt)
            .into_tuple::<DateTime<Utc>>()
            .one(storage.db())
            .await?
    };
    Ok(Recent { count, oldest })
}

/// Challenges of `org_id` for the email with `email_digest` made after `since`.
pub async fn recent_for_email(
    storage: &Storage,
    org_id: &str,
    email_digest: &str,
    since: DateTime<Utc>,
) -> Result<Recent> {
    recent(
        storage,
        Condition::all()
            .add(Column::OrgId.eq(org_id))
            .add(Column::EmailDigest.eq(email_digest))
            .add(Column::CreatedAt.gt(since)),
    )
    .await
}

/// Challenges of any organization asked for from `ip` after `since`.
pub async fn recent_from_ip(storage: &Storage, ip: &str, since: DateTime<Utc>) -> Result<Recent> {
    recent(
        storage,
        Condition::all()
            .add(Column::Ip.eq(ip))
            .add(Column::CreatedAt.gt(since)),
    )
    .await
}

/// The challenge `id` of `org_id`, in whatever state.
pub async fn get(storage: &Storage, org_id: &str, id: &str) -> Result<Option<Model>> {
    Ok(Entity::find_by_id(id)
        .filter(Column::OrgId.eq(org_id))
        .one(storage.db())
        .await?)
}

/// Counts one attempt at challenge `id`, if it may still be attempted at `now` (not
/// consumed, not expired, fewer than `max_attempts` so far). `true`: this attempt is one of
/// the allowed ones and its code may be compared.
pub async fn take_attempt(
    storage: &Storage,
    id: &str,
    max_attempts: i32,
    now: DateTime<Utc>,
) -> Result<bool> {
    let result = Entity::update_many()
        .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
        .filter(Column::Id.eq(id))
        .filter(Column::ConsumedAt.is_null())
        .filter(Column::Attempts.lt(max_attempts))
        .filter(Column::ExpiresAt.gt(now))
        .exec(storage.db())
        .await?;
    Ok(result.rows_affected == 1)
}

/// Consumes challenge `id` at `now`: `true` for exactly one caller, the first.
pub async fn consume(storage: &Storage, id: &str, now: DateTime<Utc>) -> Result<bool> {
    let result = Entity::update_many()
        .col_expr(Column::ConsumedAt, Expr::value(now))
        .filter(Column::Id.eq(id))
        .filter(Column::ConsumedAt.is_null())
        .filter(Column::ExpiresAt.gt(now))
        .exec(storage.db())
        .await?;
    Ok(result.rows_affected == 1)
}

/// Deletes at most `limit` challenges that expired before `cutoff`.
pub async fn purge_expired(storage: &Storage, cutoff: DateTime<Utc>, limit: u64) -> Result<u64> {
    super::purge::batch::<Entity>(
        storage,
        Column::Id,
        Condition::all().add(Column::ExpiresAt.lte(cutoff)),
        limit,
    )
    .await
}
