//! A user code a signed-in person typed on the device verification page (RFC 8628 §5.1):
//! the throttle counts the wrong ones per browser session, person and client IP.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "user_code_attempts")]
pub struct Model {
    /// `uca_…`
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub org_id: String,
    /// `bss_…`
    pub browser_session_id: String,
    pub user_id: String,
    /// The client IP (an IPv6 address counts as its /64).
    pub ip: Option<String>,
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
