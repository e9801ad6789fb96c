//! An identity provider an organization trusts (README, "Trusted identity providers"): tokens it signs identify
//! the organization's users whose `external_subject` equals the token's `subject_claim`.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "trusted_issuers")]
pub struct Model {
    /// `tis_…`
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub org_id: String,
    /// The `iss` its tokens carry (unique per organization).
    pub issuer: String,
    /// Where its JWKS is fetched from (`https`, or `http` on a loopback address).
    pub jwks_uri: Option<String>,
    /// Its JWKS inline (JSON), for installs that cannot reach it.
    pub jwks: Option<String>,
    /// The `aud` its tokens must carry.
    pub audience: String,
    /// The claim that holds the user's external subject (`sub` by default).
    pub subject_claim: String,
    /// Space-separated accepted `alg`s.
    pub algorithms: String,
    /// Whether its tokens may be presented as the `assertion` of the JWT bearer grant
    /// (RFC 7523 §2.1) to get keygate access tokens.
    pub allow_jwt_bearer: bool,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
