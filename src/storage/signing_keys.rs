//! Token signing keys (the private half sealed under the KEK).

use chrono::{DateTime, Utc};
use entity::signing_key::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
};

use super::{Result, Storage};
use crate::keys::signing::SigningKeyRecord;

fn record(m: Model) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: m.id,
        alg: m.alg,
        private_key_enc: m.private_key_enc,
        public_jwk: m.public_jwk,
        created_at: m.created_at,
        activated_at: m.activated_at,
        retire_at: m.retire_at,
    }
}

pub async fn all(storage: &Storage) -> Result<Vec<SigningKeyRecord>> {
    Ok(Entity::find()
        .order_by_desc(Column::ActivatedAt)
        .all(storage.db())
        .await?
        .into_iter()
        .map(record)
        .collect())
}

pub async fn insert(storage: &Storage, key: &SigningKeyRecord) -> Result<()> {
    ActiveModel {
        id: Set(key.kid.clone()),
        alg: Set(key.alg.clone()),
        private_key_enc: Set(key.private_key_enc.clone()),
        public_jwk: Set(key.public_jwk.clone()),
        created_at: Set(key.created_at),
        activated_at: Set(key.activated_at),
        retire_at: Set(key.retire_at),
    }
    .insert(storage.db())
    .await?;
    Ok(())
}

/// Schedules the retirement of every key still without one, except `keep`.
pub async fn retire_all_but(storage: &Storage, keep: &str, at: DateTime<Utc>) -> Result<u64> {
    let res = Entity::update_many()
        .col_expr(Column::RetireAt, Expr::value(at))
        .filter(Column::Id.ne(keep))
        .filter(Column::RetireAt.is_null())
        .exec(storage.db())
        .await?;
    Ok(res.rows_affected)
}
