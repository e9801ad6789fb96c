//! keygate's SeaORM entities: one module per table, plain data only.
//!
//! Nothing here knows about HTTP, tokens or secrets in plain text: columns that hold
//! credentials hold digests (`api_keys.digest`, `refresh_tokens.digest`) or ciphertext
//! (`signing_keys.private_key_enc`). Queries live in the server's `storage` module.

pub mod api_key;
pub mod audit_event;
pub mod authorization_code;
pub mod browser_session;
pub mod client;
pub mod consent;
pub mod cross_org_grant;
pub mod device_code;
pub mod idempotency_key;
pub mod identity_key;
pub mod login_challenge;
pub mod organization;
pub mod refresh_token;
pub mod resource;
pub mod revoked_token;
pub mod session;
pub mod signing_key;
pub mod trusted_issuer;
pub mod user;
pub mod user_code_attempt;
