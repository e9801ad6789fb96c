//! A browser session: a person signed in to an organization's pages (consent, device
//! approval). The cookie's value is stored only as its digest.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "browser_sessions")]
pub struct Model {
    /// `bss_…`
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub org_id: String,
    pub user_id: String,
    /// HMAC-SHA256 of the cookie's value under the pepper.
    pub digest: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    /// Signed out (or ended with the user's offboarding).
    pub ended_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
