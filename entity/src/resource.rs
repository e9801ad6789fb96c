//! A protected resource an organization issues tokens for (RFC 8707): an API or an MCP
//! server, named by its URI. A token requested with `resource` carries that URI as `aud`.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "resources")]
pub struct Model {
    /// `res_…`
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub org_id: String,
    /// The resource's URI, normalized (scheme and host lower case, default port dropped);
    /// unique per organization.
    pub uri: String,
    pub name: String,
    /// Space-separated scopes the resource defines (RFC 6749 §3.3 syntax).
    pub scopes: String,
    /// Caps the lifetime of its access tokens (seconds); `None`: the server's.
    pub access_ttl_secs: Option<i64>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
