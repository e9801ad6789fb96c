//! A cross-organization grant: organization `org_id` lets users of `source_org_id` (one
//! user, or every user when `user_id` is absent) work in it with `role`.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "cross_org_grants")]
pub struct Model {
    /// `cog_…`
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The organization that grants (the target of cross-organization requests).
    pub org_id: String,
    /// The organization whose users are granted.
    pub source_org_id: String,
    /// One user of the source organization; absent: all of them.
    pub user_id: Option<String>,
    /// `admin`, `member` or `service`.
    pub role: String,
    /// The user who made the grant.
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub expires_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
