//! An organization's Ed25519 identity key, which signs identity proofs (never access
//! tokens). The private key is AES-256-GCM ciphertext under the key-encryption key; the
//! public half is kept as a JWK for the organization's identity JWKS.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "identity_keys")]
pub struct Model {
    /// The JWS `kid`: the RFC 7638 thumbprint of the public key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub org_id: String,
    /// 12-byte nonce followed by the AES-256-GCM ciphertext of the PKCS#8 document.
    pub private_key_enc: Vec<u8>,
    /// The public JWK (JSON text).
    pub public_jwk: String,
    pub created_at: DateTimeUtc,
    /// From this instant the key signs new proofs (the organization's newest such key wins).
    pub activated_at: DateTimeUtc,
    /// After this instant the key is no longer published.
    pub retire_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
