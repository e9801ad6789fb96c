//! A session: created at sign-in (or by a grant), lives as long as its refresh tokens may.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    /// `ses_…`, the token's `sid`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub org_id: String,
    /// The user the session acts as (the token's `sub`).
    pub user_id: String,
    /// The session's client (the token's `client_id`): the API key that signed in
    /// (`key_…`), or the browser client a person approved (`cli_…`, or the URL of a Client
    /// ID Metadata Document) for the authorization code and device flows.
    pub api_key_id: String,
    /// Set when the key's owner acts for another user (the token's `act.sub`).
    pub actor_user_id: Option<String>,
    /// RFC 7638 thumbprint of the DPoP key the session is bound to.
    pub dpop_jkt: Option<String>,
    pub scope: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
    /// The last successful refresh.
    pub refreshed_at: Option<DateTimeUtc>,
    /// The protected resources (RFC 8707) the session's tokens are for: their URIs,
    /// space-separated; `None`: keygate itself. A refresh may name a subset, never more.
    pub resources: Option<String>,
    /// A session opened by a token exchange (RFC 8693): the session of the subject token it
    /// was exchanged from. Its tokens are live only while that session is.
    pub parent_session_id: Option<String>,
    /// A token exchange with an `actor_token`: the session of that token. Its tokens are
    /// live only while that session is too.
    pub actor_session_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
