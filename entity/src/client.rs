//! A client of the browser and device flows (authorization code + PKCE, RFC 8628),
//! registered by an admin or by RFC 7591 dynamic registration. Clients known by a Client
//! ID Metadata Document are not stored: their `client_id` is the document's URL.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "clients")]
pub struct Model {
    /// `cli_…`, the `client_id`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub org_id: String,
    /// Shown to people on the consent page (`client_name`).
    pub name: String,
    /// A JSON array of the exact redirect URIs.
    pub redirect_uris: String,
    /// `none`, `client_secret_basic` or `private_key_jwt` (RFC 7591 §2
    /// `token_endpoint_auth_method`).
    pub auth_method: String,
    /// HMAC digest of the client secret (`client_secret_basic` only); never the secret.
    pub secret_digest: Option<String>,
    /// The public JWK Set of a `private_key_jwt` client, canonical JSON.
    pub public_jwks: Option<String>,
    /// Space-separated: the most the client may ask for; `None`: no limit of its own.
    pub scope: Option<String>,
    /// `registered` (admin API or CLI) or `dynamic` (RFC 7591).
    pub source: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
