//! Handlers of what other agent platforms offer (README, "Coming from another agent
//! platform"): the organization's settings, the approval of a pending key, identity proofs
//! and their JWKS, and agent self-registration. Extract, call, map: the decisions are in
//! `admin::agents`, `identity` and `registration`.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::admin::key_json;
use super::body::JsonBody;
use super::error::ApiError;
use super::extract::Authenticated;
use super::request_meta::request_meta;
use super::schema::{
    self, CreateErrors, ErrorBody, NotFound, OrgIdPath, OrgPath, ProtectedErrors, rfc3339,
};
use crate::admin;
use crate::admin::agents::OrgSettings;
use crate::admin::policy::Actor;
use crate::identity::proof::ProofError;
use crate::identity::{IdentityKeyError, IssueProofError};
use crate::registration::{self, RegisterRequest, RegistrationError};
use crate::state::AppState;
use crate::storage::agents::AgentSwitches;

/// An organization's settings of what other agent platforms offer.
#[derive(Serialize, ToSchema)]
pub struct Settings {
    /// Protected endpoints also accept the organization's API keys directly (`X-API-Key`,
    /// `Api-Key`, `Authorization: Bearer ak_…`). Off by default.
    pub direct_api_keys: bool,
    /// `POST /v1/{org}/register` is open to agents with no credential. Off by default.
    pub self_registration: bool,
    /// Self-registered keys stay `pending` until an admin approves them.
    pub registration_approval: bool,
}

impl From<OrgSettings> for Settings {
    fn from(s: OrgSettings) -> Self {
        Self {
            direct_api_keys: s.direct_api_keys,
            self_registration: s.self_registration,
            registration_approval: s.registration_approval,
        }
    }
}

/// The settings to change; those left out stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettingsBody {
    direct_api_keys: Option<bool>,
    self_registration: Option<bool>,
    registration_approval: Option<bool>,
}

#[utoipa::path(
    get, path = "/v1/{org}/settings", tag = "Organization", summary = "The organization's settings (owners and admins)",
    params(OrgPath), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses((status = 200, description = "The settings", body = Settings), ProtectedErrors)
)]
pub async fn get_settings(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    Ok(HttpResponse::Ok().json(Settings::from(admin::agents::read(&state, &actor)?)))
}

#[utoipa::path(
    patch, path = "/v1/{org}/settings", tag = "Organization", summary = "Change the organization's settings (owners only)",
    description = "Turns direct API-key requests, agent self-registration and its approval step on or off. Audited as `org.settings_updated`.",
    params(OrgPath), request_body = UpdateSettingsBody, security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses((status = 200, description = "The settings now", body = Settings), ProtectedErrors, CreateErrors)
)]
pub async fn update_settings(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    body: JsonBody<UpdateSettingsBody>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let body = body.value;
    let switches = AgentSwitches {
        direct_api_keys: body.direct_api_keys,
        self_registration: body.self_registration,
        registration_approval: body.registration_approval,
    };
    let settings = admin::agents::update(&state, &actor, switches).await?;
    Ok(HttpResponse::Ok().json(Settings::from(settings)))
}

#[utoipa::path(
    post, path = "/v1/{org}/api_keys/{id}/approve", tag = "API keys", summary = "Approve a self-registered key (owners and admins)",
    description = "A key created by `POST /v1/{org}/register` while the organization asks for approval is `pending`: sign-in answers 403 `pending_approval` until this call. Audited as `api_key.approved`.",
    params(OrgIdPath), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The key, approved", body = schema::ApiKey),
        (status = 409, description = "`conflict`: the key is not pending", body = ErrorBody),
        ProtectedErrors,
        NotFound,
    )
)]
pub async fn approve_key(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let key = admin::agents::approve(&state, &actor, &path.1).await?;
    Ok(HttpResponse::Ok().json(key_json(key, state.clock.now())))
}

/// An identity proof and when it expires.
#[derive(Serialize, ToSchema)]
pub struct IdentityProof {
    /// A compact JWS, `alg: EdDSA`, `typ: identity-proof+jwt`, with `iss`, `sub`, `org`,
    /// `role`, `iat`, `exp`, `jti`, and `aud` and `cnf.jkt` when they apply.
    pub proof: String,
    pub expires_at: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProofQuery {
    /// Who the proof is for (its `aud`): up to 512 characters.
    aud: Option<String>,
}

impl From<IssueProofError> for ApiError {
    fn from(err: IssueProofError) -> Self {
        match err {
            IssueProofError::Proof(ProofError::BadAudience) => {
                ApiError::invalid_request(err.to_string())
            }
            IssueProofError::Keys(IdentityKeyError::Storage(e)) => e.into(),
            other => ApiError::internal(&other),
        }
    }
}

#[utoipa::path(
    get, path = "/v1/{org}/user/me/proof", tag = "Sign-in", summary = "An identity proof of the caller, to show a third party",
    description = "Signed with the organization's Ed25519 identity key (verify it against `/v1/{org}/.well-known/identity-jwks.json`, or with `keygate proof verify`). keygate never accepts a proof as an access token.",
    params(OrgPath, ProofQuery), security(("bearer" = []), ("dpop" = []), ("basic" = []), ("direct_api_key" = [])),
    responses((status = 200, description = "The proof", body = IdentityProof), ProtectedErrors)
)]
pub async fn proof(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    query: web::Query<ProofQuery>,
) -> Result<HttpResponse, ApiError> {
    let issued = crate::identity::proof_for(&state, &caller, query.aud.as_deref()).await?;
    Ok(HttpResponse::Ok().json(IdentityProof {
        proof: issued.proof,
        expires_at: rfc3339(issued.expires_at),
    }))
}

#[utoipa::path(
    get, path = "/v1/{org}/.well-known/identity-jwks.json", tag = "Discovery", summary = "The organization's identity proof keys",
    description = "Ed25519 keys that sign identity proofs, and nothing else: they are not in the access-token JWKS.",
    params(OrgPath),
    responses(
        (status = 200, description = "RFC 7517 JWK Set", content_type = "application/jwk-set+json", body = Object),
        (status = 404, description = "`unknown_organization`", body = ErrorBody),
    )
)]
pub async fn identity_jwks(
    state: web::Data<AppState>,
    org: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let org = state
        .directory
        .org(&state.storage, &org)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_organization",
                "no such organization",
            )
        })?;
    let keys = state
        .identity_keys
        .current(&org.id)
        .await
        .map_err(IssueProofError::from)?;
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            format!(
                "public, max-age={}",
                crate::signing_keys::JWKS_MAX_AGE.as_secs()
            ),
        ))
        .content_type("application/jwk-set+json")
        .json(keys.jwks()))
}

/// An agent registering itself.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    /// The agent's name (1 to 200 characters): the new user's and key's name.
    name: String,
    /// A contact address; without one the user gets an address under `agents.invalid`.
    email: Option<String>,
}

impl From<RegistrationError> for ApiError {
    fn from(err: RegistrationError) -> Self {
        match err {
            RegistrationError::NotEnabled => ApiError::not_found("no such endpoint"),
            RegistrationError::Invalid(message) => ApiError::invalid_request(message),
            RegistrationError::Conflict => {
                ApiError::new(StatusCode::CONFLICT, "conflict", err.to_string())
            }
            RegistrationError::Throttled { retry_after } => {
                ApiError::rate_limited(err.to_string(), retry_after)
            }
            RegistrationError::Storage(e) => e.into(),
        }
    }
}

#[utoipa::path(
    post, path = "/v1/{org}/register", tag = "Agent self-registration", summary = "Register an agent: a new service user and an API key",
    description = "No credential. Off unless the organization turns it on (then 404 `not_found`, as for an unknown endpoint). The key (`api_key`, shown once) has the server's `registration.default_scopes` and lives `registration.key_duration`; with the organization's approval switch on it is `pending` until an admin approves it. Throttled per client IP and per organization. Audited as `registration.created`.",
    params(OrgPath), request_body = RegisterBody,
    responses(
        (status = 201, description = "Registered: the key and its secret (shown once)", body = schema::CreatedApiKey),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 404, description = "`not_found`: self-registration is off (or no such organization)", body = ErrorBody),
        (status = 409, description = "`conflict`: a user with this email exists", body = ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 429, description = "`rate_limited`, with `Retry-After`", body = ErrorBody),
    )
)]
pub async fn register_agent(
    state: web::Data<AppState>,
    org: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // The organization first: while registration is off, nothing (not even a bad body)
    // tells the endpoint from an unknown one.
    let org = registration::open_org(&state, &org).await?;
    let body = JsonBody::<RegisterBody>::from_request(&req, &mut payload.into_inner())
        .await?
        .value;
    let registered = registration::register(
        &state,
        &org,
        RegisterRequest {
            name: &body.name,
            email: body.email.as_deref(),
        },
        &request_meta(&req),
    )
    .await?;
    let now = state.clock.now();
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(schema::CreatedApiKey {
            api_key: Some(registered.secret.expose().to_owned()),
            key: key_json(registered.key, now),
        }))
}
