//! Organizations' identity keys (Ed25519, the private half sealed under the KEK): they sign
//! identity proofs, never access tokens, so they live apart from `signing_keys`.

use chrono::{DateTime, Utc};
use entity::identity_key::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
};

use super::{Result, Storage};
use crate::keys::signing::SigningKeyRecord;

fn record(m: Model) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: m.id,
        alg: "EdDSA".into(),
        private_key_enc: m.private_key_enc,
        public_jwk: m.public_jwk,
        created_at: m.created_at,
        activated_at: m.activated_at,
        retire_at: m.retire_at,
    }
}

/// Every identity key of `org_id`, newest activation first.
pub async fn all(storage: &Storage, org_id: &str) -> Result<Vec<SigningKeyRecord>> {
    Ok(Entity::find()
        .filter(Column::OrgId.eq(org_id))
        .order_by_desc(Column::ActivatedAt)
        .all(storage.db())
        .await?
        .into_iter()
        .map(record)
        .collect())
}

pub async fn insert(storage: &Storage, org_id: &str, key: &SigningKeyRecord) -> Result<()> {
    ActiveModel {
        id: Set(key.kid.clone()),
        org_id: Set(org_id.to_owned()),
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

/// Schedules the retirement of every key of `org_id` still without one, except `keep`.
pub async fn retire_all_but(
    storage: &Storage,
    org_id: &str,
    keep: &str,
    at: DateTime<Utc>,
) -> Result<u64> {
    let res = Entity::update_many()
        .col_expr(Column::RetireAt, Expr::value(at))
        .filter(Column::OrgId.eq(org_id))
        .filter(Column::Id.ne(keep))
        .filter(Column::RetireAt.is_null())
        .exec(storage.db())
        .await?;
    Ok(res.rows_affected)
}
