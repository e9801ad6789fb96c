//! Deleting old rows a batch at a time: `DELETE … WHERE pk IN (SELECT pk … LIMIT n)`, the
//! form both SQLite and PostgreSQL accept. Each statement is idempotent, so two nodes
//! purging at once delete each row once between them.

use sea_orm::sea_query::{Condition, Query};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::{Result, Storage};

/// Deletes at most `limit` rows of `E` matching `condition`; returns how many went.
pub(crate) async fn batch<E: EntityTrait>(
    storage: &Storage,
    primary_key: E::Column,
    condition: Condition,
    limit: u64,
) -> Result<u64> {
    let ids = Query::select()
        .column(primary_key)
        .from(E::default())
        .cond_where(condition)
        .limit(limit)
        .to_owned();
    Ok(E::delete_many()
        .filter(primary_key.in_subquery(ids))
        .exec(storage.db())
        .await?
        .rows_affected)
}
