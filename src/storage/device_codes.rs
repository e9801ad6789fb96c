//! Device authorization requests (RFC 8628) and the user codes people typed. Every change
//! of a request's state is one conditional `UPDATE` whose `WHERE` states what must still
//! hold (`rows_affected` says whether it did), so two concurrent requests never both
//! approve, both record the same poll, or both redeem one approval.

use chrono::{DateTime, Utc};
use entity::device_code::{self, ActiveModel, Column, Entity, Model};
use entity::user_code_attempt;
use sea_orm::sea_query::{Condition, Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::{Result, Storage};

/// Where a device authorization request is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Waiting for a person's decision.
    Pending,
    Approved,
    Denied,
    /// Approved, and its tokens were handed out (once).
    Issued,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Issued => "issued",
        }
    }

    /// The stored value's status; an unknown value reads as `Denied` (never as a grant).
    pub fn of(stored: &str) -> Self {
        match stored {
            "pending" => Status::Pending,
            "approved" => Status::Approved,
            "issued" => Status::Issued,
            _ => Status::Denied,
        }
    }
}

/// Stores a new request. A user code that collides with a stored one is
/// [`super::StorageError::Conflict`] (the caller draws another).
pub async fn insert(storage: &Storage, row: Model) -> Result<Model> {
    Ok(ActiveModel::from(row).insert(storage.db()).await?)
}

/// The request of `org_id` whose device code has `digest`, whatever its state.
pub async fn by_device_code(
    storage: &Storage,
    org_id: &str,
    digest: &str,
) -> Result<Option<Model>> {
    Ok(Entity::find()
        .filter(Column::DeviceCodeDigest.eq(digest))
        .filter(Column::OrgId.eq(org_id))
        .one(storage.db())
        .await?)
}

/// The pending, unexpired request of `org_id` whose user code has `digest`.
pub async fn pending_by_user_code(
    storage: &Storage,
    org_id: &str,
    digest: &str,
    now: DateTime<Utc>,
) -> Result<Option<Model>> {
    Ok(Entity::find()
        .filter(Column::UserCodeDigest.eq(digest))
        .filter(Column::OrgId.eq(org_id))
        .filter(Column::Status.eq(Status::Pending.as_str()))
        .filter(Column::ExpiresAt.gt(now))
        .one(storage.db())
        .await?)
}

/// A person's decision.
pub struct Decision<'a> {
    pub approved: bool,
    pub user_id: &'a str,
    /// With an approval: the scope the person saw and approved.
    pub granted_scope: Option<&'a str>,
}

/// Records `decision` on request `id` if it is still pending and unexpired at `now`; `false`
/// when it was not (decided meanwhile, or expired).
pub async fn decide(
    storage: &Storage,
    id: &str,
    decision: Decision<'_>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let status = if decision.approved {
        Status::Approved
    } else {
        Status::Denied
    };
    let res = Entity::update_many()
        .col_expr(Column::Status, Expr::value(status.as_str()))
        .col_expr(Column::UserId, Expr::value(decision.user_id))
        .col_expr(
            Column::GrantedScope,
            Expr::value(decision.granted_scope.map(str::to_owned)),
        )
        .col_expr(Column::DecidedAt, Expr::value(now))
        .filter(Column::Id.eq(id))
        .filter(Column::Status.eq(Status::Pending.as_str()))
        .filter(Column::ExpiresAt.gt(now))
        .exec(storage.db())
        .await?;
    Ok(res.rows_affected == 1)
}

/// Records a poll of request `id` at `now`, if no other poll was recorded since the caller
/// read `seen_polls`; with `slow_down`, the interval grows by `step` seconds (RFC 8628
/// §3.5). `false`: another poll came first.
pub async fn record_poll(
    storage: &Storage,
    id: &str,
    seen_polls: i32,
    slow_down: Option<i32>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let mut update = Entity::update_many()
        .col_expr(Column::Polls, Expr::col(Column::Polls).add(1))
        .col_expr(Column::LastPolledAt, Expr::value(now));
    if let Some(step) = slow_down {
        update = update.col_expr(
            Column::IntervalSecs,
            Expr::col(Column::IntervalSecs).add(step),
        );
    }
    let res = update
        .filter(Column::Id.eq(id))
        .filter(Column::Polls.eq(seen_polls))
        .exec(storage.db())
        .await?;
    Ok(res.rows_affected == 1)
}

/// Marks approved request `id` as redeemed: `true` for exactly one caller, and only while
/// it is approved and unexpired at `now`.
pub async fn redeem(storage: &Storage, id: &str, now: DateTime<Utc>) -> Result<bool> {
    let res = Entity::update_many()
        .col_expr(Column::Status, Expr::value(Status::Issued.as_str()))
        .col_expr(Column::IssuedAt, Expr::value(now))
        .filter(Column::Id.eq(id))
        .filter(Column::Status.eq(Status::Approved.as_str()))
        .filter(Column::ExpiresAt.gt(now))
        .exec(storage.db())
        .await?;
    Ok(res.rows_affected == 1)
}

/// Forgets request `id` (refused after it was stored).
pub async fn delete(storage: &Storage, id: &str) -> Result<()> {
    Entity::delete_by_id(id).exec(storage.db()).await?;
    Ok(())
}

/// The pending, unexpired requests of `org_id` that public clients made from `ip`: how
/// many, and when the first of them expires.
pub async fn pending_from_ip(
    storage: &Storage,
    org_id: &str,
    ip: &str,
    now: DateTime<Utc>,
) -> Result<(u64, Option<DateTime<Utc>>)> {
    let query = Entity::find()
        .filter(Column::OrgId.eq(org_id))
        .filter(Column::RequestedIp.eq(ip))
        .filter(Column::Status.eq(Status::Pending.as_str()))
        .filter(Column::ExpiresAt.gt(now));
    let count = query.clone().count(storage.db()).await?;
    let first = query
        .order_by_asc(Column::ExpiresAt)
        .one(storage.db())
        .await?
        .map(|r| r.expires_at);
    Ok((count, first))
}

/// Deletes up to `limit` requests that expired before `cutoff`.
pub async fn purge_expired(storage: &Storage, cutoff: DateTime<Utc>, limit: u64) -> Result<u64> {
    super::purge::batch::<Entity>(
        storage,
        Column::Id,
        Condition::all().add(device_code::Column::ExpiresAt.lt(cutoff)),
        limit,
    )
    .await
}

/// What one throttle counts user codes by.
#[derive(Clone, Copy, Debug)]
pub enum Bucket<'a> {
    BrowserSession(&'a str),
    User(&'a str),
    Ip(&'a str),
}

impl Bucket<'_> {
    fn condition(self, org_id: &str, since: DateTime<Utc>) -> Condition {
        use user_code_attempt::Column as C;
        let by = match self {
            Bucket::BrowserSession(id) => C::BrowserSessionId.eq(id),
            Bucket::User(id) => C::UserId.eq(id),
            Bucket::Ip(ip) => C::Ip.eq(ip),
        };
        Condition::all()
            .add(C::OrgId.eq(org_id))
            .add(C::At.gt(since))
            .add(by)
    }
}

/// Records an attempt to use a user code (before it is looked up).
pub async fn add_attempt(storage: &Storage, row: user_code_attempt::Model) -> Result<()> {
    user_code_attempt::ActiveModel::from(row)
        .insert(storage.db())
        .await?;
    Ok(())
}

/// Forgets attempt `id` (it was right, or refused before it was tried).
pub async fn remove_attempt(storage: &Storage, id: &str) -> Result<()> {
    user_code_attempt::Entity::delete_by_id(id)
        .exec(storage.db())
        .await?;
    Ok(())
}

/// How many attempts of `org_id` in `bucket` were made after `since`.
pub async fn count_attempts(
    storage: &Storage,
    org_id: &str,
    bucket: Bucket<'_>,
    since: DateTime<Utc>,
) -> Result<u64> {
    Ok(user_code_attempt::Entity::find()
        .filter(bucket.condition(org_id, since))
        .count(storage.db())
        .await?)
}

/// The time of the `n`-th oldest (from 1) attempt of `org_id` in `bucket` after `since`.
pub async fn nth_attempt_at(
    storage: &Storage,
    org_id: &str,
    bucket: Bucket<'_>,
    since: DateTime<Utc>,
    n: u64,
) -> Result<Option<DateTime<Utc>>> {
    Ok(user_code_attempt::Entity::find()
        .filter(bucket.condition(org_id, since))
        .order_by_asc(user_code_attempt::Column::At)
        .order_by_asc(user_code_attempt::Column::Id)
        .offset(n.saturating_sub(1))
        .limit(1)
        .one(storage.db())
        .await?
        .map(|a| a.at))
}

/// Deletes up to `limit` attempts made before `cutoff` (they no longer count).
pub async fn purge_attempts(storage: &Storage, cutoff: DateTime<Utc>, limit: u64) -> Result<u64> {
    super::purge::batch::<user_code_attempt::Entity>(
        storage,
        user_code_attempt::Column::Id,
        Condition::all().add(user_code_attempt::Column::At.lt(cutoff)),
        limit,
    )
    .await
}
