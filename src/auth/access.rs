//! Authenticating a request to a protected endpoint from its access token: the token
//! verifies against the key set for the organization in the path, and its user and
//! session are still active. Shared by every protected endpoint.

use entity::{organization, user};

use super::TokenType;
use super::dpop::{DpopError, ProofCheck};
use crate::state::{AppState, DpopPolicy};
use crate::storage::{self, StorageError};
use crate::tokens::{AccessClaims, Expectation, TokenError, verify};

/// The credential a request presented (parsed from `Authorization` by the HTTP layer).
pub struct Presented<'a> {
    pub scheme: TokenType,
    pub token: &'a str,
    /// Every `DPoP` header value.
    pub dpop: &'a [&'a [u8]],
    pub method: &'a str,
    pub path: &'a str,
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    pub claims: AccessClaims,
    pub org: organization::Model,
    pub user: user::Model,
    pub token_type: TokenType,
    /// The organization's DPoP policy (nonces are handed out on its responses).
    pub dpop_policy: DpopPolicy,
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
    #[error("the access token is not DPoP-bound; present it with the Bearer scheme")]
    UnboundTokenAsDpop,
    #[error("this server requires DPoP-bound access tokens")]
    DpopRequired,
    #[error(transparent)]
    Dpop(#[from] DpopError),
    #[error("the session, user or organization of this token is no longer active")]
    Inactive,
    #[error("the access token has been revoked")]
    Revoked,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Verifies one of keygate's access tokens as issued for `org_slug` (signature, `typ`,
/// `iss`, `aud`, `exp` and `iat` with the configured leeway, `org`). Shared by protected
/// endpoints, revocation and introspection.
pub async fn verify_for_org(
    state: &AppState,
    org_slug: &str,
    token: &str,
) -> Result<AccessClaims, TokenError> {
    let issuer = state.issuer(org_slug);
    let audience = state.audience(&issuer);
    let expect = Expectation {
        issuer: &issuer,
        audience: &audience,
        now: state.clock.now(),
        leeway: state.settings.tokens.leeway,
    };
    let claims = verify(&*state.signing_keys.current().await, token, &expect)?;
    if claims.org != org_slug {
        return Err(TokenError::WrongIssuer);
    }
    Ok(claims)
}

pub async fn authenticate(
    state: &AppState,
    org_slug: &str,
    presented: Presented<'_>,
) -> Result<Caller, AccessError> {
    let token = presented.token;
    let claims = verify_for_org(state, org_slug, token).await?;
    let org = storage::orgs::by_slug(&state.storage, org_slug)
        .await?
        .ok_or(AccessError::Inactive)?;

    let policy = state.dpop_policy(&org);
    match (presented.scheme, &claims.cnf) {
        (TokenType::Bearer, Some(_)) => return Err(AccessError::BoundTokenAsBearer),
        (TokenType::Bearer, None) if policy.required => return Err(AccessError::DpopRequired),
        (TokenType::Bearer, None) => {}
        (TokenType::DPoP, None) => return Err(AccessError::UnboundTokenAsDpop),
        (TokenType::DPoP, Some(cnf)) => {
            state
                .dpop
                .verify(&ProofCheck {
                    headers: presented.dpop,
                    method: presented.method,
                    path: presented.path,
                    access_token: Some(token),
                    bound_jkt: Some(&cnf.jkt),
                    require_nonce: policy.nonce,
                    now: state.clock.now(),
                })
                .await?;
        }
    }

    let user = storage::users::get(&state.storage, &org.id, &claims.sub)
        .await?
        .filter(|u| !u.disabled)
        .ok_or(AccessError::Inactive)?;
    let now = state.clock.now();
    state
        .revocations
        .session(&state.storage, &org.id, &claims.sid)
        .await?
        .filter(|s| s.revoked_at.is_none_or(|t| t > now) && s.expires_at > now)
        .ok_or(AccessError::Inactive)?;
    if state
        .revocations
        .is_revoked(&state.storage, &claims.jti)
        .await?
    {
        return Err(AccessError::Revoked);
    }
    Ok(Caller {
        claims,
        org,
        user,
        token_type: presented.scheme,
        dpop_policy: policy,
    })
}
