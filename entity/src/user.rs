//! A user of one organization: a person or a service account (`role = "service"`).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    /// `usr_…`
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub org_id: String,
    /// Unique per organization.
    pub email: String,
    pub name: Option<String>,
    /// `owner`, `admin`, `member` or `service`.
    pub role: String,
    pub disabled: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Set by a soft delete: the row stays for the audit trail, the user stays disabled.
    pub deleted_at: Option<DateTimeUtc>,
    /// The subject a trusted identity provider knows this user by (unique per organization).
    pub external_subject: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
