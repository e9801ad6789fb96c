//! An authorization code (RFC 6749 §4.1.2), stored only as its digest: single-use, short
//! lived, and bound to everything the token request must match.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "authorization_codes")]
pub struct Model {
    /// `acd_…`, internal.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub org_id: String,
    /// Lower-case hex HMAC-SHA256 of the code, unique.
    #[sea_orm(unique)]
    pub digest: String,
    /// The browser client the code was issued to (`cli_…` or a metadata document URL).
    pub client_id: String,
    /// The authorization request's `redirect_uri`: the token request must send it again.
    pub redirect_uri: String,
    /// RFC 7636 `code_challenge` (method S256).
    pub code_challenge: String,
    /// The person who approved: the tokens' `sub`.
    pub user_id: String,
    /// Space-separated scopes the person approved.
    pub scope: String,
    /// The protected resources (RFC 8707), space-separated; `None`: keygate itself.
    pub resources: Option<String>,
    /// RFC 9449 §10 `dpop_jkt`: the token request's proof must be signed by this key.
    pub dpop_jkt: Option<String>,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    /// Set, once, by the token request that used the code.
    pub used_at: Option<DateTimeUtc>,
    /// The session that use opened (its id is chosen when the code is used).
    pub session_id: Option<String>,
    /// Set when the code was presented again after its use: its session is revoked.
    pub reused_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
