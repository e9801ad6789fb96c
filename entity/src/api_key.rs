//! An API key credential. The secret itself is never stored: `digest` is
//! HMAC-SHA256 of it under the server's pepper.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    /// `key_…`, public (the `api_key_id`, the token's `client_id`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub org_id: String,
    /// The owner: the user the key signs in as by default.
    pub user_id: String,
    pub name: String,
    /// `live` or `test`.
    pub environment: String,
    /// keygate's own scopes the key holds, space-separated (RFC 6749 §3.3 syntax).
    pub scopes: String,
    /// The scopes of the organization's protected resources (RFC 8707) the key may use,
    /// space-separated. `None`: the key was created without a scope list and may use every
    /// scope of the organization's resources.
    pub resource_scopes: Option<String>,
    /// Lower-case hex HMAC-SHA256 of the secret, unique. A key-pair client has no secret:
    /// its digest is `none:{id}`, which no hex digest can equal, so no secret ever matches.
    #[sea_orm(unique)]
    pub digest: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    /// When set, the key stops working at that instant (which may lie in the future
    /// during a rotation's grace period).
    pub revoked_at: Option<DateTimeUtc>,
    pub last_used_at: Option<DateTimeUtc>,
    /// Who issued the key through the admin API: the caller's user id (for a caller from
    /// another organization, its id there; for a session acting for a user, the actor).
    /// `None`: the operator, through the CLI or the bootstrap.
    pub created_by_user_id: Option<String>,
    /// The role the issuer held in the key's organization when it issued the key (for a
    /// cross-organization caller, the role its grant gave). Set with `created_by_user_id`.
    pub created_by_role: Option<String>,
    /// A key-pair client's public keys (a JWK Set, JSON): the client authenticates with
    /// `private_key_jwt` assertions signed by one of them, never with a secret. `None`: a
    /// key with a secret.
    pub public_jwks: Option<String>,
    /// Tokens the key may be issued per minute (sign-in and token endpoint); `None`: the
    /// server's `limits.issuance_per_minute`.
    pub limit_per_minute: Option<i64>,
    /// Tokens the key may be issued per hour; `None`: `limits.issuance_per_hour`.
    pub limit_per_hour: Option<i64>,
    /// The client IP of the key's last recorded use (sampled with `last_used_at`).
    pub last_used_ip: Option<String>,
    /// A self-registered key awaiting an admin's approval: it authenticates nothing until
    /// approved.
    pub pending: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
