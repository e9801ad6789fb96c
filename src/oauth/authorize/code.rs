//! Authorization codes: 256 random bits, handed out once, stored only as their HMAC digest
//! (the exchange is `oauth::authorization_code`).

use std::time::Duration;

use entity::{authorization_code, organization};
use subtle::ConstantTimeEq;

use super::Grant;
use super::request::Params;
use crate::clients::Client;
use crate::ids::{is_base62, new_id, random_base62};
use crate::people::Person;
use crate::resources::Target;
use crate::state::AppState;
use crate::storage::{self, StorageError};

/// How long a code may be exchanged (OAuth 2.1 §4.1.2: short; RFC 6749 §4.1.2: at most ten
/// minutes).
pub const CODE_TTL: Duration = Duration::from_secs(60);

pub(super) const CODE_PREFIX: &str = "ac_";

/// 43 base62 characters: 256 bits.
pub(super) const CODE_RANDOM_LEN: usize = 43;

const CODE_DIGEST_DOMAIN: &str = "authorization_code";

/// Stores a new code for this approval and returns its only plain copy.
pub(super) async fn issue(
    state: &AppState,
    org: &organization::Model,
    client: &Client,
    person: &Person,
    params: &Params,
    grant: &Grant,
) -> Result<String, StorageError> {
    let now = state.clock.now();
    let code = format!("{CODE_PREFIX}{}", random_base62(CODE_RANDOM_LEN));
    storage::authorization_codes::insert(
        &state.storage,
        authorization_code::Model {
            id: new_id("acd"),
            org_id: org.id.clone(),
            digest: code_digest(state, &code),
            client_id: client.client_id.clone(),
            redirect_uri: params.get("redirect_uri").unwrap_or_default().to_owned(),
            code_challenge: params.get("code_challenge").unwrap_or_default().to_owned(),
            user_id: person.user_id.clone(),
            scope: grant.scope.clone(),
            resources: grant.target.as_ref().map(Target::stored),
            dpop_jkt: params.get("dpop_jkt").map(str::to_owned),
            created_at: now,
            expires_at: now + chrono::Duration::from_std(CODE_TTL).unwrap_or_default(),
            used_at: None,
            session_id: None,
            reused_at: None,
        },
    )
    .await?;
    Ok(code)
}

/// The stored digest of a code, or `None` when `code` cannot be one (no look-up needed).
pub(in crate::oauth) fn digest_of(state: &AppState, code: &str) -> Option<String> {
    is_code(code).then(|| code_digest(state, code))
}

/// Whether `code` has the shape of the codes [`issue`] makes.
pub(super) fn is_code(code: &str) -> bool {
    code.strip_prefix(CODE_PREFIX)
        .is_some_and(|rest| rest.len() == CODE_RANDOM_LEN && is_base62(rest))
}

pub(super) fn code_digest(state: &AppState, code: &str) -> String {
    state.pepper.digest(CODE_DIGEST_DOMAIN, code.as_bytes())
}

/// Whether a stored digest is `digest` (constant time).
pub(in crate::oauth) fn digest_matches(stored: &str, digest: &str) -> bool {
    bool::from(stored.as_bytes().ct_eq(digest.as_bytes()))
}
