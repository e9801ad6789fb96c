//! Authenticating a request to a protected endpoint from its access token: the token
//! verifies against the key set for the organization in the path, and its user and
//! session are still active. Shared by every protected endpoint.

use entity::{organization, user};

use super::TokenType;
use crate::state::AppState;
use crate::storage::{self, StorageError};
use crate::tokens::{AccessClaims, Expectation, TokenError, verify};

/// The credential a request presented (parsed from `Authorization` by the HTTP layer).
pub enum Presented<'a> {
    Bearer(&'a str),
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    pub claims: AccessClaims,
    pub org: organization::Model,
    pub user: user::Model,
    pub token_type: TokenType,
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("an access token is required")]
    Missing,
    #[error("the Authorization header is malformed")]
    MalformedHeader,
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("a DPoP-bound token must be presented with the DPoP scheme and a proof")]
    BoundTokenAsBearer,
    #[error("the session, user or organization of this token is no longer active")]
    Inactive,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub async fn authenticate(
    state: &AppState,
    org_slug: &str,
    presented: Presented<'_>,
) -> Result<Caller, AccessError> {
    let Presented::Bearer(token) = presented;
    let issuer = state.issuer(org_slug);
    let audience = state.audience(&issuer);
    let expect = Expectation {
        issuer: &issuer,
        audience: &audience,
        now: state.clock.now(),
        leeway: state.settings.tokens.leeway,
    };
    let claims = verify(&*state.signing_keys.current().await, token, &expect)?;
    if claims.cnf.is_some() {
        return Err(AccessError::BoundTokenAsBearer);
    }
    if claims.org != org_slug {
        return Err(TokenError::WrongIssuer.into());
    }

    let org = storage::orgs::by_slug(&state.storage, org_slug)
        .await?
        .ok_or(AccessError::Inactive)?;
    let user = storage::users::get(&state.storage, &org.id, &claims.sub)
        .await?
        .filter(|u| !u.disabled)
        .ok_or(AccessError::Inactive)?;
    let now = state.clock.now();
    storage::sessions::get(&state.storage, &org.id, &claims.sid)
        .await?
        .filter(|s| s.revoked_at.is_none_or(|t| t > now) && s.expires_at > now)
        .ok_or(AccessError::Inactive)?;
    Ok(Caller {
        claims,
        org,
        user,
        token_type: TokenType::Bearer,
    })
}
