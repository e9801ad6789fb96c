//! The JSON bodies keygate answers with, as types: handlers serialize these and the
//! OpenAPI document (`openapi.rs`) describes them, so the two cannot drift apart.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// A time as keygate writes it: RFC 3339, UTC, whole seconds.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The keygate error body: every error outside the OAuth endpoints.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"error": {"code": "invalid_api_key", "message": "the API key credential is invalid", "request_id": "6f1c2a9e-8d1b-4a53-9a0e-3f5c2b1d7e42"}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, for programs: `invalid_api_key`, `invalid_token`, `permission_denied`, …
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// Matches the `X-Request-Id` header and the server's log lines.
    pub request_id: String,
    /// Set on a 409 for an idempotent retry of a key creation: the key it created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
}

/// RFC 6749 §5.2: errors of the OAuth endpoints.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"error": "invalid_client", "error_description": "client authentication failed", "request_id": "6f1c2a9e-8d1b-4a53-9a0e-3f5c2b1d7e42"}))]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `invalid_target`, `invalid_dpop_proof`,
    /// `use_dpop_nonce`; with the device code grant (RFC 8628 §3.5) also
    /// `authorization_pending`, `slow_down`, `access_denied`, `expired_token`.
    pub error: String,
    pub error_description: String,
    pub request_id: String,
}

/// Sign-in: a successful sign-in.
#[derive(Serialize, ToSchema)]
pub struct SigninResponse {
    /// The access token (a JWT, RFC 9068).
    pub id_token: String,
    pub expires_at: String,
    /// `Bearer`, or `DPoP` when a DPoP proof bound the token.
    pub token_type: String,
    pub expires_in: i64,
    /// Opaque; shown once.
    pub refresh_token: String,
    pub session_id: String,
    pub scope: String,
}

/// Protected endpoints and cross-organization access: who the caller is.
#[derive(Serialize, ToSchema)]
pub struct Me {
    pub user_id: String,
    /// The organization of the path.
    pub org: String,
    /// The organization the user belongs to (differs for cross-organization access).
    pub home_org: String,
    pub email: String,
    /// The caller's role here: its own, or the one a grant gives.
    pub role: String,
    /// `None` for an identity provider's token.
    pub session_id: Option<String>,
    pub token_type: String,
    /// `bearer`, `dpop`, `basic`, `basic_federated`, `basic_cross_org`, `bearer_cross_org`,
    /// `api_key` (a direct API-key request).
    pub auth_method: String,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act: Option<Act>,
}

/// The user acting for the subject (RFC 8693 §4.1); in a delegation chain, the prior
/// actors nested inside, outermost the current one.
#[derive(Serialize, serde::Deserialize, ToSchema)]
pub struct Act {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub act: Option<Box<Act>>,
}

impl From<&crate::tokens::Actor> for Act {
    fn from(actor: &crate::tokens::Actor) -> Self {
        Act {
            sub: actor.sub.clone(),
            act: actor.act.as_deref().map(|prior| Box::new(Act::from(prior))),
        }
    }
}

/// An API key (never its secret).
#[derive(Serialize, ToSchema)]
pub struct ApiKey {
    pub api_key_id: String,
    pub user_id: String,
    pub name: String,
    /// The key's list: keygate's own scopes (those of its tokens for keygate itself) and the
    /// scopes of the organization's protected resources it may use (RFC 8707 `resource`).
    pub scopes: Vec<String>,
    /// `true` for a key created without a `scopes` list: it may use every scope of the
    /// organization's protected resources, whichever are registered when it asks for a
    /// token (`scopes` then shows keygate's own only).
    pub all_resource_scopes: bool,
    /// `live` or `test`.
    pub environment: String,
    /// `active`, `expired` or `revoked`.
    pub status: String,
    pub created_at: String,
    pub expires_at: String,
    /// When it stops (or stopped) working; in the future during a rotation's grace.
    pub revoked_at: Option<String>,
    /// When a token was last issued for the key (sampled: at most once a minute).
    pub last_used_at: Option<String>,
    /// The client IP of that use.
    pub last_used_ip: Option<String>,
    /// The key's own issuance limits; `null`: the server's (`limits.issuance_per_minute`,
    /// `limits.issuance_per_hour`).
    pub limits: ApiKeyLimits,
    /// How the client authenticates at the OAuth endpoints: `client_secret` (the `api_key`
    /// secret, by HTTP Basic or in the form) or `private_key_jwt` (a client assertion signed
    /// by one of `public_jwks`; such a key has no secret).
    pub client_auth: String,
    /// A key-pair client's public keys (a JWK Set), as registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub public_jwks: Option<serde_json::Value>,
    /// A self-registered key awaiting an admin's approval (`POST
    /// /v1/{org}/api_keys/{id}/approve`): until then it authenticates nothing.
    pub pending: bool,
}

/// Tokens a key may be issued (sign-in and token endpoint) per minute and per hour.
#[derive(Serialize, ToSchema)]
pub struct ApiKeyLimits {
    pub per_minute: Option<u32>,
    pub per_hour: Option<u32>,
}

/// A key just created or rotated: the only response that holds its secret.
#[derive(Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// The secret, `ak_live_…` or `ak_test_…`: shown this once. Absent for a key-pair client
    /// (`client_auth: private_key_jwt`), which has no secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct User {
    pub user_id: String,
    pub org: String,
    pub email: String,
    pub name: Option<String>,
    /// `owner`, `admin`, `member` or `service`.
    pub role: String,
    pub disabled: bool,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
    /// The subject a trusted identity provider knows the user by.
    pub external_subject: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Session {
    pub session_id: String,
    pub user_id: String,
    pub api_key_id: String,
    pub actor_user_id: Option<String>,
    pub dpop_bound: bool,
    pub scope: String,
    /// `active`, `revoked` or `expired`.
    pub status: String,
    pub created_at: String,
    pub expires_at: String,
    pub refreshed_at: Option<String>,
    pub revoked_at: Option<String>,
    /// A session of a token exchange (RFC 8693): the session of the subject token it was
    /// exchanged from (its tokens end when that session does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_session_id: Option<String>,
    /// A token exchange with an `actor_token`: that token's session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor_session_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEvent {
    pub id: String,
    /// RFC 3339 with milliseconds.
    pub at: String,
    pub org: String,
    /// e.g. `signin.succeeded`, `signin.failed`, `api_key.revoked`.
    pub action: String,
    /// `success` or `failure`.
    pub outcome: String,
    pub reason: Option<String>,
    pub actor_user_id: Option<String>,
    pub actor_key_id: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// The delegation chain of the token the event is about (RFC 8693 §4.1 `act`, nested;
    /// outermost the current actor): token exchanges.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act: Option<Act>,
}

#[derive(Serialize, ToSchema)]
pub struct CrossOrgGrant {
    pub id: String,
    /// The granting organization.
    pub org: String,
    /// The organization whose users are let in.
    pub source_org: String,
    /// One user of it; absent: all of them.
    pub user_id: Option<String>,
    pub role: String,
    pub created_by: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TrustedIssuer {
    pub id: String,
    pub issuer: String,
    pub jwks_uri: Option<String>,
    /// The inline JWKS, when registered with one.
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    pub audience: String,
    pub subject_claim: String,
    pub algorithms: Vec<String>,
    /// Its tokens are accepted as a JWT bearer grant's `assertion` (RFC 7523 §2.1).
    pub allow_jwt_bearer: bool,
    pub created_at: String,
}

/// One page of a listing; pass `next_cursor` back as `cursor` for the next.
#[derive(Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

/// `/healthz` and `/readyz`.
#[derive(Serialize, ToSchema)]
pub struct Status {
    pub status: String,
}

/// The organization in the path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct OrgPath {
    /// The organization's slug (`[a-z0-9][a-z0-9-]{1,62}`), e.g. `default`.
    pub org: String,
}

/// The organization and an item's id in the path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct OrgIdPath {
    /// The organization's slug, e.g. `default`.
    pub org: String,
    /// The item's id (`key_…`, `usr_…`, `ses_…`, `cog_…`, `tis_…`).
    pub id: String,
}

/// The errors every protected endpoint may answer (for the OpenAPI document).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum ProtectedErrors {
    /// Invalid request (a bad body, query or header).
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// Missing, invalid or expired credential (`invalid_token`, `expired_token`,
    /// `invalid_dpop_proof`, `use_dpop_nonce`), with `WWW-Authenticate`.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// `insufficient_scope` or `permission_denied`.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// `temporarily_unavailable`, with `Retry-After`: the DPoP replay cache cannot record
    /// the proof (full, or Redis unreachable).
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// `not_found` (no such item in the organization) or `unknown_organization`.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum NotFound {
    #[response(status = 404)]
    NotFound(ErrorBody),
}

/// The errors a creating `POST` may also answer.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum CreateErrors {
    /// `conflict`.
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// The body is larger than 64 KiB.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body is not `application/json`.
    #[response(status = 415)]
    NotJson(ErrorBody),
    /// `idempotency_key_reused`.
    #[response(status = 422)]
    IdempotencyKeyReused(ErrorBody),
}
