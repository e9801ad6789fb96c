//! An `Idempotency-Key` a caller sent with a creating `POST`, remembered for 24 hours with
//! the response it got. A row without a status is a request still running.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    /// `idk_…`
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub org_id: String,
    /// Keys are scoped to the caller: two callers may use the same key.
    pub actor_user_id: String,
    /// The header's value.
    pub idem_key: String,
    /// SHA-256 (hex) of the method, path and canonical JSON body.
    pub fingerprint: String,
    /// The response's status; `None` while the first request runs.
    pub status_code: Option<i32>,
    /// The response body (JSON), with any secret removed.
    pub response: Option<String>,
    /// Whether the response carried a secret that was removed (a replay then answers 409).
    pub redacted: bool,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
