//! The rows of what other agent platforms offer (README, "Coming from another agent
//! platform"): an organization's switches for direct API-key requests and
//! self-registration, a self-registered agent (its `service` user and key, written in one
//! transaction), and the approval of a pending key (one conditional `UPDATE`).

use entity::{api_key, organization, user};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};

use super::{Result, Storage};

/// The organization switches a settings change sets (`None`: left as it is).
#[derive(Clone, Copy, Debug, Default)]
pub struct AgentSwitches {
    pub direct_api_keys: Option<bool>,
    pub self_registration: Option<bool>,
    pub registration_approval: Option<bool>,
}

/// Writes the switches that are set (only those columns); `None` when the organization is
/// gone.
pub async fn set_switches(
    storage: &Storage,
    org_id: &str,
    switches: AgentSwitches,
) -> Result<Option<organization::Model>> {
    let mut update =
        organization::Entity::update_many().filter(organization::Column::Id.eq(org_id));
    let columns = [
        (
            organization::Column::DirectApiKeys,
            switches.direct_api_keys,
        ),
        (
            organization::Column::SelfRegistration,
            switches.self_registration,
        ),
        (
            organization::Column::RegistrationApproval,
            switches.registration_approval,
        ),
    ];
    let mut any = false;
    for (column, value) in columns {
        if let Some(on) = value {
            update = update.col_expr(column, Expr::value(Some(on)));
            any = true;
        }
    }
    if any && update.exec(storage.db()).await?.rows_affected == 0 {
        return Ok(None);
    }
    Ok(organization::Entity::find_by_id(org_id)
        .one(storage.db())
        .await?)
}

/// Stores a self-registered agent: its user and its key, both or neither.
pub async fn insert_registered(
    storage: &Storage,
    user: user::Model,
    key: api_key::Model,
) -> Result<(user::Model, api_key::Model)> {
    let txn = storage.db().begin().await?;
    let user = user::ActiveModel::from(user).insert(&txn).await?;
    let key = api_key::ActiveModel::from(key).insert(&txn).await?;
    txn.commit().await?;
    Ok((user, key))
}

/// Clears `pending` on a key of `org_id` that still has it; `false` when there was no such
/// pending key (unknown, of another organization, or already approved).
pub async fn approve(storage: &Storage, org_id: &str, key_id: &str) -> Result<bool> {
    let res = api_key::Entity::update_many()
        .col_expr(api_key::Column::Pending, Expr::value(false))
        .filter(api_key::Column::OrgId.eq(org_id))
        .filter(api_key::Column::Id.eq(key_id))
        .filter(api_key::Column::Pending.eq(true))
        .exec(storage.db())
        .await?;
    Ok(res.rows_affected > 0)
}
