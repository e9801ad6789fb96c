//! Users, always looked up within their organization.

use chrono::{DateTime, Utc};
use entity::organization;
use entity::user::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, LockType, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};

use super::page::{self, Cursor, Page, PageRequest};
use super::{Result, Storage};
use crate::types::{Role, UserStatus};

pub async fn insert(storage: &Storage, user: Model) -> Result<Model> {
    Ok(ActiveModel::from(user).insert(storage.db()).await?)
}

pub async fn get(storage: &Storage, org_id: &str, user_id: &str) -> Result<Option<Model>> {
    Ok(Entity::find_by_id(user_id)
        .filter(Column::OrgId.eq(org_id))
        .one(storage.db())
        .await?)
}

pub async fn list(storage: &Storage, org_id: &str) -> Result<Vec<Model>> {
    Ok(Entity::find()
        .filter(Column::OrgId.eq(org_id))
        .order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::Id)
        .all(storage.db())
        .await?)
}

/// Disables or re-enables a user (operator tools): writes `disabled` and `updated_at` only.
/// Disabling the organization's last enabled owner is refused
/// ([`super::StorageError::Conflict`]).
pub async fn set_disabled(
    storage: &Storage,
    org_id: &str,
    user_id: &str,
    disabled: bool,
    at: DateTime<Utc>,
) -> Result<Model> {
    let user = get(storage, org_id, user_id)
        .await?
        .ok_or(super::StorageError::NotFound)?;
    let role = user
        .role
        .parse::<Role>()
        .map_err(|e| super::StorageError::Conflict(e.0))?;
    let change = UserChange {
        disabled: Some(disabled),
        ..UserChange::default()
    };
    match update(storage, org_id, user_id, role, change, at).await? {
        Ok(user) => Ok(user),
        Err(Refusal::Gone) => Err(super::StorageError::NotFound),
        Err(refusal) => Err(super::StorageError::Conflict(format!("{refusal:?}"))),
    }
}

/// What a user listing is narrowed to.
#[derive(Clone, Debug, Default)]
pub struct UserFilter {
    /// Only this user (how members list users: they see themselves).
    pub user_id: Option<String>,
    pub role: Option<Role>,
    pub status: Option<UserStatus>,
}

/// One page of an organization's users, newest first.
pub async fn page(
    storage: &Storage,
    org_id: &str,
    filter: &UserFilter,
    page: &PageRequest,
) -> Result<Page<Model>> {
    let mut select = Entity::find().filter(Column::OrgId.eq(org_id));
    if let Some(user_id) = &filter.user_id {
        select = select.filter(Column::Id.eq(user_id.as_str()));
    }
    if let Some(role) = filter.role {
        select = select.filter(Column::Role.eq(role.as_str()));
    }
    select = match filter.status {
        None => select,
        Some(UserStatus::Deleted) => select.filter(Column::DeletedAt.is_not_null()),
        Some(UserStatus::Disabled) => select
            .filter(Column::DeletedAt.is_null())
            .filter(Column::Disabled.eq(true)),
        Some(UserStatus::Active) => select.filter(Column::Disabled.eq(false)),
    };
    page::fetch(
        storage,
        select,
        (Column::CreatedAt, Column::Id),
        page,
        |u| Cursor {
            at: u.created_at,
            id: u.id.clone(),
        },
    )
    .await
}

/// The columns an update writes; `None` leaves a column as it is. Only these (and
/// `updated_at`) are written, so a concurrent change of another column (a disable while the
/// user renames itself) is never undone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserChange {
    pub name: Option<String>,
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    /// `Some(None)` removes the subject.
    pub external_subject: Option<Option<String>>,
    /// A soft delete (set together with `disabled: Some(true)`).
    pub deleted_at: Option<DateTime<Utc>>,
}

impl UserChange {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Whether applied to an enabled owner, it leaves one owner fewer.
    fn may_remove_an_owner(&self) -> bool {
        self.role.is_some_and(|r| r != Role::Owner)
            || self.disabled == Some(true)
            || self.deleted_at.is_some()
    }
}

/// Why [`update`] wrote nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No such user in the organization, or it was deleted.
    Gone,
    /// Its role is no longer the one the caller's decision was based on.
    RoleChanged,
    /// It is the organization's last enabled owner.
    LastOwner,
}

/// Applies `change` to a user that is not deleted and still has the role `expected_role`
/// (what the caller's authorization was decided on), in one conditional `UPDATE`. A change
/// that would leave the organization without an enabled, undeleted owner writes nothing:
/// the condition is in the statement (SQLite runs writers one at a time), and on
/// PostgreSQL the organization's row is locked first, in the same transaction, so two
/// owners demoting each other at once are serialized and the second sees the first.
pub async fn update(
    storage: &Storage,
    org_id: &str,
    user_id: &str,
    expected_role: Role,
    change: UserChange,
    at: DateTime<Utc>,
) -> Result<std::result::Result<Model, Refusal>> {
    let guard = change.may_remove_an_owner();
    let mut query = Entity::update_many()
        .col_expr(Column::UpdatedAt, Expr::value(at))
        .filter(Column::OrgId.eq(org_id))
        .filter(Column::Id.eq(user_id))
        .filter(Column::DeletedAt.is_null())
        .filter(Column::Role.eq(expected_role.as_str()));
    if let Some(name) = change.name {
        query = query.col_expr(Column::Name, Expr::value(name));
    }
    if let Some(role) = change.role {
        query = query.col_expr(Column::Role, Expr::value(role.as_str()));
    }
    if let Some(disabled) = change.disabled {
        query = query.col_expr(Column::Disabled, Expr::value(disabled));
    }
    if let Some(subject) = change.external_subject {
        query = query.col_expr(Column::ExternalSubject, Expr::value(subject));
    }
    if let Some(deleted_at) = change.deleted_at {
        query = query.col_expr(Column::DeletedAt, Expr::value(deleted_at));
    }
    if guard {
        query = query.filter(keeps_an_owner(org_id, user_id));
    }
    let written = if guard && storage.db().get_database_backend() == DbBackend::Postgres {
        let txn = storage.db().begin().await?;
        organization::Entity::find_by_id(org_id)
            .lock(LockType::NoKeyUpdate)
            .one(&txn)
            .await?;
        let res = query.exec(&txn).await?;
        txn.commit().await?;
        res.rows_affected
    } else {
        query.exec(storage.db()).await?.rows_affected
    };
    let user = get(storage, org_id, user_id).await?;
    Ok(match user {
        Some(user) if written > 0 => Ok(user),
        Some(user) if user.deleted_at.is_none() && user.role != expected_role.as_str() => {
            Err(Refusal::RoleChanged)
        }
        Some(user) if user.deleted_at.is_none() && guard => Err(Refusal::LastOwner),
        _ => Err(Refusal::Gone),
    })
}

/// The row being updated is not an enabled owner, or another enabled, undeleted owner of
/// the organization exists.
fn keeps_an_owner(org_id: &str, user_id: &str) -> Condition {
    let other = Alias::new("other_owner");
    let others = Query::select()
        .expr(Expr::val(1))
        .from_as(Entity, other.clone())
        .and_where(Expr::col((other.clone(), Column::OrgId)).eq(org_id))
        .and_where(Expr::col((other.clone(), Column::Role)).eq(Role::Owner.as_str()))
        .and_where(Expr::col((other.clone(), Column::Disabled)).eq(false))
        .and_where(Expr::col((other.clone(), Column::DeletedAt)).is_null())
        .and_where(Expr::col((other, Column::Id)).ne(user_id))
        .to_owned();
    Condition::any()
        .add(Column::Role.ne(Role::Owner.as_str()))
        .add(Column::Disabled.eq(true))
        .add(Expr::exists(others))
}

/// The user of `org_id` a trusted identity provider knows as `subject`.
pub async fn by_external_subject(
    storage: &Storage,
    org_id: &str,
    subject: &str,
) -> Result<Option<Model>> {
    Ok(Entity::find()
        .filter(Column::OrgId.eq(org_id))
        .filter(Column::ExternalSubject.eq(subject))
        .one(storage.db())
        .await?)
}

/// The user of `org_id` with `email` (lower-cased, as stored), deleted and disabled users
/// included: the caller decides.
pub async fn by_email(storage: &Storage, org_id: &str, email: &str) -> Result<Option<Model>> {
    Ok(Entity::find()
        .filter(Column::OrgId.eq(org_id))
        .filter(Column::Email.eq(email))
        .one(storage.db())
        .await?)
}
