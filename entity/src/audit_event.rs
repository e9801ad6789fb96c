//! One audit event: who did what, to what, from where, with what outcome.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    /// `evt_…`
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Absent when the request named no known organization.
    pub org_id: Option<String>,
    pub at: DateTimeUtc,
    /// e.g. `signin.succeeded`, `signin.failed`, `api_key.revoked`.
    pub action: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// The error code of a failure.
    pub reason: Option<String>,
    pub actor_user_id: Option<String>,
    pub actor_key_id: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// The delegation chain of the token the event is about: the JSON of its nested `act`
    /// claim (RFC 8693 §4.1).
    pub act: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
