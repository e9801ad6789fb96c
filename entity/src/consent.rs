//! What a person approved for a browser client: scopes and protected resources. A new
//! authorization request within them skips the consent page (unless `prompt=consent`).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "consents")]
pub struct Model {
    /// `cns_…`
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub org_id: String,
    pub user_id: String,
    /// `cli_…` or a Client ID Metadata Document URL.
    pub client_id: String,
    /// The client's name when the person approved it (listings need no client look-up).
    pub client_name: String,
    /// Space-separated, sorted, distinct.
    pub scope: String,
    /// Resource URIs (RFC 8707), space-separated, sorted, distinct; empty: none.
    pub resources: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
