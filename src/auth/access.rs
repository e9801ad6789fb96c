//! Authenticating a request to a protected endpoint from its access token: the token
//! verifies against the key set of the organization that issued it, its user and session
//! are still active, and, when that organization is not the path's, the path's organization
//! granted the user a role (README, "Cross-organization access"). Shared by every protected endpoint.

use entity::{organization, user};

use super::TokenType;
use super::cache::{Verified, VerifiedTokens};
use super::cross_org::CrossOrgError;
use super::dpop::{DpopError, ProofCheck};
use super::federation::{self, FederationError};
use crate::audit::{AuditEvent, RequestMeta};
use crate::state::{AppState, DpopPolicy};
use crate::storage::{self, StorageError};
use crate::tokens::{
    AccessClaims, Actor, Expectation, TokenError, check_times, verify_any_audience_with_kid,
    verify_with_kid,
};
use crate::types::{Role, Scopes};

/// What `Authorization` carried (parsed by the HTTP layer).
#[derive(Clone, Copy, Debug)]
pub enum Credential<'a> {
    /// `Bearer <token>` or `DPoP <token>`.
    Token { scheme: TokenType, token: &'a str },
    /// `Basic base64({org}_{user_id}:{token})` (README, "Cross-organization access"): a Bearer token of `org` that
    /// identifies `user_id`.
    Basic {
        org: &'a str,
        user_id: &'a str,
        token: &'a str,
    },
    /// An API key secret (`X-API-Key`, `Api-Key` or `Bearer ak_…`), where the organization
    /// accepts direct API-key requests (`auth::direct_key`).
    ApiKey { secret: &'a str },
}

/// The credential a request presented, with what DPoP and the audit trail need.
pub struct Presented<'a> {
    pub credential: Credential<'a>,
    /// `X-ORG-ID`: the organization that issued a Bearer token presented at a path of
    /// another organization.
    pub x_org_id: Option<&'a str>,
    /// Every `DPoP` header value.
    pub dpop: &'a [&'a [u8]],
    pub method: &'a str,
    pub path: &'a str,
    pub meta: RequestMeta,
}

/// How a caller authenticated, as `/user/me` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    Bearer,
    Dpop,
    Basic,
    BasicCrossOrg,
    BearerCrossOrg,
    /// Basic with a trusted identity provider's token, in the user's own organization.
    BasicFederated,
    /// One of the organization's API keys, presented directly (`auth::direct_key`).
    ApiKey,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Bearer => "bearer",
            AuthMethod::Dpop => "dpop",
            AuthMethod::Basic => "basic",
            AuthMethod::BasicCrossOrg => "basic_cross_org",
            AuthMethod::BearerCrossOrg => "bearer_cross_org",
            AuthMethod::BasicFederated => "basic_federated",
            AuthMethod::ApiKey => "api_key",
        }
    }
}

/// What the presented token says about the caller's session and rights.
#[derive(Clone, Debug)]
pub struct TokenInfo {
    /// The session (`sid`); `None` for an identity provider's token.
    pub session_id: Option<String>,
    /// The API key that opened the session (`client_id`); `None` for an identity provider's
    /// token.
    pub client_id: Option<String>,
    /// Space-separated scopes.
    pub scope: String,
    /// The user acting for the subject (`act`), with the prior actors of a delegation chain
    /// nested inside (RFC 8693 §4.1).
    pub act: Option<Actor>,
    /// The DPoP key the token is bound to (`cnf.jkt`), for a DPoP-bound token.
    pub jkt: Option<String>,
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    pub token: TokenInfo,
    /// The organization of the path: where the caller is working.
    pub org: organization::Model,
    /// The organization the caller's user belongs to (`org` unless cross-organization).
    pub home_org: organization::Model,
    pub user: user::Model,
    /// The caller's role in `org`: its own, or the one a cross-organization grant gives.
    pub role: Role,
    pub token_type: TokenType,
    pub auth_method: AuthMethod,
    /// The organization's DPoP policy (nonces are handed out on its responses).
    pub dpop_policy: DpopPolicy,
    /// Where the request came from, for the audit trail.
    pub meta: RequestMeta,
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
    #[error("the Basic credential is malformed: expected base64 of {{org}}_{{user_id}}:{{token}}")]
    MalformedBasic,
    #[error("the token does not identify the user named in the Basic username")]
    BasicUserMismatch,
    #[error("a DPoP-bound token cannot be used at another organization; use Bearer or Basic")]
    CrossOrgNeedsBearer,
    #[error(
        "this organization requires DPoP-bound access tokens, which cannot be used across organizations; sign in to it"
    )]
    CrossOrgDpopRequired,
    #[error("no such organization")]
    UnknownOrganization,
    #[error("X-ORG-ID names another organization than the Basic username")]
    OrgHeaderMismatch,
    #[error(transparent)]
    CrossOrg(#[from] CrossOrgError),
    #[error(transparent)]
    Federation(#[from] FederationError),
    #[error("the access token has been revoked")]
    Revoked,
    #[error(
        "this organization does not accept API keys on requests; exchange the key for an access token at POST /v1/{org}/user/signin_with_api_key"
    )]
    DirectKeysOff { org: String },
    #[error(transparent)]
    ApiKey(#[from] super::direct_key::KeyRefusal),
    #[error("the API key is pending an administrator's approval")]
    PendingApproval,
    #[error(
        "an API key is a bearer secret and takes no DPoP proof; sign in with the proof for a DPoP-bound token"
    )]
    ApiKeyWithDpop,
    #[error("an API key works only at its own organization")]
    ApiKeyCrossOrg,
    #[error("too many failed authentications; retry after {retry_after} seconds")]
    RateLimited { retry_after: u64 },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Verifies one of keygate's access tokens as issued for `org_slug` (signature, `typ`,
/// `iss`, `aud`, `exp` and `iat` with the configured leeway, `org`). `aud` must be keygate's
/// own: a token for a protected resource (RFC 8707) is `WrongAudience` here. Shared by
/// protected endpoints.
pub async fn verify_for_org(
    state: &AppState,
    org_slug: &str,
    token: &str,
) -> Result<AccessClaims, TokenError> {
    verify_issued(state, org_slug, token, true).await
}

/// [`verify_for_org`] whatever the token's audience, so a token for a protected resource
/// verifies too: for introspection and revocation only, never to authenticate a request.
pub async fn verify_issued_for_org(
    state: &AppState,
    org_slug: &str,
    token: &str,
) -> Result<AccessClaims, TokenError> {
    verify_issued(state, org_slug, token, false).await
}

async fn verify_issued(
    state: &AppState,
    org_slug: &str,
    token: &str,
    own_audience: bool,
) -> Result<AccessClaims, TokenError> {
    let issuer = state.issuer(org_slug);
    let audience = state.audience(&issuer);
    let expect = Expectation {
        issuer: &issuer,
        audience: &audience,
        now: state.clock.now(),
        leeway: state.settings.tokens.leeway,
    };
    let keys = state.signing_keys.current().await;
    // A token this node verified before skips the signature (auth::cache): the key that
    // signed it must still be one this node accepts, and its times (and, for a request,
    // its audience) are checked again.
    let digest = VerifiedTokens::digest(token);
    if let Some(hit) = state.verified_tokens.get(&digest)
        && keys.verifier(&hit.kid).is_some()
    {
        check_times(&hit.claims, &expect)?;
        if hit.claims.org != org_slug {
            return Err(TokenError::WrongIssuer);
        }
        if own_audience && !hit.claims.aud.contains(&audience) {
            return Err(TokenError::WrongAudience);
        }
        return Ok(hit.claims.clone());
    }
    let (kid, claims) = if own_audience {
        verify_with_kid(&keys, token, &expect)?
    } else {
        verify_any_audience_with_kid(&keys, token, &expect)?
    };
    if claims.org != org_slug {
        return Err(TokenError::WrongIssuer);
    }
    state.verified_tokens.insert(
        digest,
        Verified {
            kid,
            claims: claims.clone(),
        },
    );
    Ok(claims)
}

/// The organization `slug`, from the cache of protected requests (`auth::cache`).
async fn org_by_slug(
    state: &AppState,
    slug: &str,
) -> Result<Option<organization::Model>, StorageError> {
    Ok(state
        .directory
        .org(&state.storage, slug)
        .await?
        .map(|o| (*o).clone()))
}

/// Authenticates a request at a path of `org_slug`: the token verifies for the organization
/// that issued it (the path's, or the Basic username's or `X-ORG-ID`'s), and when that is
/// another organization, the path's organization must have granted the user a role.
pub async fn authenticate(
    state: &AppState,
    org_slug: &str,
    presented: Presented<'_>,
) -> Result<Caller, AccessError> {
    let (home_slug, scheme, token, basic_user) = match presented.credential {
        Credential::ApiKey { secret } => {
            if presented.x_org_id.is_some_and(|x| x != org_slug) {
                return Err(AccessError::ApiKeyCrossOrg);
            }
            if !presented.dpop.is_empty() {
                return Err(AccessError::ApiKeyWithDpop);
            }
            return super::direct_key::authenticate(state, org_slug, secret, presented.meta).await;
        }
        Credential::Token { scheme, token } => {
            (presented.x_org_id.unwrap_or(org_slug), scheme, token, None)
        }
        Credential::Basic {
            org,
            user_id,
            token,
        } => (org, TokenType::Bearer, token, Some(user_id)),
    };
    if let (Credential::Basic { org, .. }, Some(x_org)) = (presented.credential, presented.x_org_id)
        && x_org != org
    {
        return Err(AccessError::OrgHeaderMismatch);
    }
    let cross = home_slug != org_slug;
    if cross && scheme == TokenType::DPoP {
        return Err(AccessError::CrossOrgNeedsBearer);
    }
    // A Basic password that keygate did not issue for that organization may be a trusted
    // identity provider's token (README, "Trusted identity providers").
    let federated = basic_user.is_some()
        && federation::unverified_issuer(token).is_none_or(|iss| iss != state.issuer(home_slug));
    let mut caller = if federated {
        authenticate_federated(state, home_slug, token).await?
    } else {
        authenticate_home(state, home_slug, scheme, token, &presented).await?
    };
    if basic_user.is_some_and(|id| id != caller.user.id) {
        return Err(AccessError::BasicUserMismatch);
    }
    caller.auth_method = match (basic_user.is_some(), cross, scheme) {
        (true, false, _) if federated => AuthMethod::BasicFederated,
        (true, false, _) => AuthMethod::Basic,
        (true, true, _) => AuthMethod::BasicCrossOrg,
        (false, true, _) => AuthMethod::BearerCrossOrg,
        (false, false, TokenType::DPoP) => AuthMethod::Dpop,
        (false, false, TokenType::Bearer) => AuthMethod::Bearer,
    };
    if !cross {
        caller.meta = presented.meta;
        return Ok(caller);
    }

    let target = org_by_slug(state, org_slug)
        .await?
        .ok_or(AccessError::UnknownOrganization)?;
    // A cross-organization credential is a Bearer token (DPoP-bound ones are refused above),
    // so an organization that requires DPoP admits none: its policy holds for every caller.
    let target_policy = state.dpop_policy(&target);
    if target_policy.required {
        return Err(AccessError::CrossOrgDpopRequired);
    }
    let admitted = state
        .cross_org
        .admit(
            &state.storage,
            state.clock.now(),
            &target,
            &caller.home_org,
            &caller.user,
        )
        .await;
    if !matches!(
        admitted,
        Err(CrossOrgError::RateLimited | CrossOrgError::Storage(_))
    ) {
        audit_cross_org(state, &caller, &target, &presented, admitted.as_ref().err());
    }
    caller.role = admitted?;
    caller.dpop_policy = target_policy;
    caller.org = target;
    caller.meta = presented.meta;
    Ok(caller)
}

/// Records a cross-organization request in both organizations.
fn audit_cross_org(
    state: &AppState,
    caller: &Caller,
    target: &organization::Model,
    presented: &Presented<'_>,
    failure: Option<&CrossOrgError>,
) {
    for org_id in [&target.id, &caller.home_org.id] {
        state.audit.record(AuditEvent {
            org_id: Some(org_id.clone()),
            action: "cross_org.access",
            success: failure.is_none(),
            reason: failure.map(|_| "permission_denied".to_owned()),
            actor_user_id: Some(caller.user.id.clone()),
            actor_key_id: caller.token.client_id.clone(),
            target_type: Some("organization"),
            target_id: Some(target.id.clone()),
            meta: presented.meta.clone(),
            act: caller
                .token
                .act
                .as_ref()
                .map(|a| serde_json::json!(a).to_string()),
        });
    }
}

/// Authenticates a trusted identity provider's token for a user of `org_slug`.
async fn authenticate_federated(
    state: &AppState,
    org_slug: &str,
    token: &str,
) -> Result<Caller, AccessError> {
    let org = org_by_slug(state, org_slug)
        .await?
        .ok_or(AccessError::Inactive)?;
    let policy = state.dpop_policy(&org);
    if policy.required {
        return Err(AccessError::DpopRequired);
    }
    let iss = federation::unverified_issuer(token).ok_or(FederationError::Malformed)?;
    let issuer = storage::trusted_issuers::by_issuer(&state.storage, &org.id, &iss)
        .await?
        .ok_or(FederationError::UntrustedIssuer)?;
    let user = state
        .federation
        .verify(
            &state.storage,
            &org,
            &issuer,
            token,
            state.clock.now(),
            state.settings.tokens.leeway,
        )
        .await?;
    let role = user.role.parse().map_err(|_| AccessError::Inactive)?;
    Ok(Caller {
        token: TokenInfo {
            session_id: None,
            client_id: None,
            // The provider's token carries no keygate scopes: the user's role governs.
            scope: Scopes::all().to_string(),
            act: None,
            jkt: None,
        },
        home_org: org.clone(),
        org,
        user,
        role,
        token_type: TokenType::Bearer,
        auth_method: AuthMethod::BasicFederated,
        dpop_policy: policy,
        meta: RequestMeta::default(),
    })
}

/// Authenticates a token at the organization that issued it.
async fn authenticate_home(
    state: &AppState,
    org_slug: &str,
    scheme: TokenType,
    token: &str,
    presented: &Presented<'_>,
) -> Result<Caller, AccessError> {
    let claims = verify_for_org(state, org_slug, token).await?;
    let org = org_by_slug(state, org_slug)
        .await?
        .ok_or(AccessError::Inactive)?;

    let policy = state.dpop_policy(&org);
    match (scheme, &claims.cnf) {
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

    let user = state
        .directory
        .user(&state.storage, &org.id, &claims.sub)
        .await?
        .filter(|u| !u.disabled && u.deleted_at.is_none())
        .map(|u| (*u).clone())
        .ok_or(AccessError::Inactive)?;
    let role = user.role.parse().map_err(|_| AccessError::Inactive)?;
    let now = state.clock.now();
    if !state
        .revocations
        .chain_live(&state.storage, &org.id, &claims.sid, now, true)
        .await?
    {
        return Err(AccessError::Inactive);
    }
    if state
        .revocations
        .is_revoked(&state.storage, &claims.jti)
        .await?
    {
        return Err(AccessError::Revoked);
    }
    Ok(Caller {
        token: TokenInfo {
            session_id: Some(claims.sid),
            client_id: Some(claims.client_id),
            scope: claims.scope,
            act: claims.act,
            jkt: claims.cnf.map(|c| c.jkt),
        },
        home_org: org.clone(),
        org,
        user,
        role,
        token_type: scheme,
        auth_method: AuthMethod::Bearer,
        dpop_policy: policy,
        meta: RequestMeta::default(),
    })
}
