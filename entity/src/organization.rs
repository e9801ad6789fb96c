//! An organization (tenant). Addressed in URLs by its `slug`.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "organizations")]
pub struct Model {
    /// `org_…`
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `[a-z0-9][a-z0-9-]{1,62}`, unique.
    #[sea_orm(unique)]
    pub slug: String,
    pub name: String,
    pub created_at: DateTimeUtc,
    /// Overrides the server's `dpop.required` when set.
    pub dpop_required: Option<bool>,
    /// Overrides the server's `dpop.nonce` when set.
    pub dpop_nonce: Option<bool>,
    /// RFC 7591 dynamic registration at `/v1/{org}/oauth/register`: on only when `true`.
    pub dynamic_registration: Option<bool>,
    /// Protected endpoints also accept the organization's API keys directly (`X-API-Key`,
    /// `Api-Key`, `Authorization: Bearer ak_…`): on only when `true`.
    pub direct_api_keys: Option<bool>,
    /// `POST /v1/{org}/register` (agent self-registration): on only when `true`.
    pub self_registration: Option<bool>,
    /// Keys made by self-registration stay `pending` until an admin approves them: on only
    /// when `true`.
    pub registration_approval: Option<bool>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
