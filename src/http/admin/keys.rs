//! API keys: list, create, get, revoke, rotate.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::{idempotent, page_json, page_request, parse_time, to_value};
use crate::admin;
use crate::admin::key_scopes::{self, ScopeList};
use crate::admin::keys::{CreateKey, Lifetime, LimitsPatch};
use crate::admin::policy::Actor;
use crate::admin::{CreatedKey, parse_duration};
use crate::http::body::JsonBody;
use crate::http::error::ApiError;
use crate::http::extract::Authenticated;
use crate::http::schema::{
    self, CreateErrors, NotFound, OrgIdPath, OrgPath, ProtectedErrors, rfc3339,
};
use crate::keys::client_jwks::ClientJwks;
use crate::limits::{KeyLimits, MAX_PER_HOUR, MAX_PER_MINUTE};
use crate::state::AppState;
use crate::storage::api_keys::KeyFilter;
use crate::types::{Environment, Lifecycle};
use entity::api_key;

pub(crate) fn key_json(key: api_key::Model, now: DateTime<Utc>) -> schema::ApiKey {
    let status = admin::keys::status(&key, now);
    let scopes = key_scopes::shown(&key);
    let own = KeyLimits::of(&key);
    schema::ApiKey {
        api_key_id: key.id,
        user_id: key.user_id,
        name: key.name,
        scopes,
        all_resource_scopes: key.resource_scopes.is_none(),
        environment: key.environment,
        status: status.as_str().to_owned(),
        created_at: rfc3339(key.created_at),
        expires_at: rfc3339(key.expires_at),
        revoked_at: key.revoked_at.map(rfc3339),
        last_used_at: key.last_used_at.map(rfc3339),
        last_used_ip: key.last_used_ip.clone(),
        limits: schema::ApiKeyLimits {
            per_minute: own.per_minute,
            per_hour: own.per_hour,
        },
        client_auth: if key.public_jwks.is_some() {
            "private_key_jwt"
        } else {
            "client_secret"
        }
        .to_owned(),
        public_jwks: key
            .public_jwks
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok()),
        pending: key.pending,
    }
}

/// The field of a key response that holds the secret.
const SECRET_FIELD: &str = "api_key";

fn created_key_json(created: CreatedKey, now: DateTime<Utc>) -> Value {
    to_value(schema::CreatedApiKey {
        api_key: created.secret.map(|s| s.expose().to_owned()),
        key: key_json(created.key, now),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct KeyQuery {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    user_id: Option<String>,
    status: Option<Lifecycle>,
    /// RFC 3339 time: only keys not used since then (last used before it, or never used).
    unused_since: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/{org}/api_keys", tag = "API keys",
    summary = "List API keys", description = "Newest first. Members and service accounts see their own keys only.",
    params(OrgPath, KeyQuery), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "A page of keys", body = inline(schema::Page<schema::ApiKey>)),
        ProtectedErrors,
    )
)]
pub async fn list_keys(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    query: web::Query<KeyQuery>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let query = query.into_inner();
    let page = page_request(query.limit, query.cursor.as_deref())?;
    let now = state.clock.now();
    let unused_since = query
        .unused_since
        .as_deref()
        .map(|t| parse_time(t, "unused_since"))
        .transpose()?;
    let filter = KeyFilter {
        user_id: query.user_id,
        status: query.status.map(|s| (s, now)),
        unused_since,
    };
    let keys = admin::keys::list(&state, &actor, filter, &page).await?;
    Ok(page_json(keys, |k| key_json(k, now)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyBody {
    name: String,
    user_id: Option<String>,
    duration: Option<String>,
    expires_at: Option<String>,
    /// What the key may use: keygate's own scopes (`keys:read`, `keys:write`, `users:read`,
    /// `users:write`, `sessions:write`, `audit:read`, `resources:read`, `resources:write`;
    /// none beyond the caller's token's) and scopes of the organization's registered
    /// protected resources (e.g. `mcp:tools`), which tokens requested with `resource` carry.
    /// A name that is neither is 400 `invalid_request`. Absent: the caller's token's
    /// keygate scopes and every scope of the organization's resources.
    scopes: Option<Vec<String>>,
    environment: Option<Environment>,
    /// A JWK Set (`{"keys": [...]}`) of 1 to 10 public keys (EC P-256/P-384/P-521, Ed25519,
    /// RSA ≥ 2048 bits; a `kid` on each when several): the key is a secretless key-pair
    /// client that authenticates with `private_key_jwt` (RFC 7523 §2.2).
    #[schema(value_type = Option<Object>)]
    public_jwks: Option<Value>,
    /// The key's own issuance limits (owners and admins only; a member setting them gets
    /// 403 `permission_denied`). Absent: the server's.
    limits: Option<LimitsBody>,
}

/// A key's own issuance limits: tokens per minute (1 to 1,000,000) and per hour (1 to
/// 60,000,000). In a `PATCH`, an absent field is kept and `null` returns it to the
/// server's default.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsBody {
    #[serde(default, deserialize_with = "super::users::present")]
    #[schema(value_type = Option<u32>)]
    per_minute: Option<Option<i64>>,
    #[serde(default, deserialize_with = "super::users::present")]
    #[schema(value_type = Option<u32>)]
    per_hour: Option<Option<i64>>,
}

impl LimitsBody {
    fn parse(&self) -> Result<LimitsPatch, ApiError> {
        let check = |v: Option<Option<i64>>, field, max| {
            v.map(|v| v.map(|n| KeyLimits::check(n, field, max)).transpose())
                .transpose()
                .map_err(|e| ApiError::invalid_request(e.0))
        };
        Ok(LimitsPatch {
            per_minute: check(self.per_minute, "per_minute", MAX_PER_MINUTE)?,
            per_hour: check(self.per_hour, "per_hour", MAX_PER_HOUR)?,
        })
    }
}

impl CreateKeyBody {
    fn parse(self) -> Result<CreateKey, ApiError> {
        let lifetime = match (self.duration, self.expires_at) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid_request(
                    "give either `duration` or `expires_at`, not both",
                ));
            }
            (Some(d), None) => Lifetime::For(parse_duration(&d, "duration")?),
            (None, Some(at)) => Lifetime::Until(parse_time(&at, "expires_at")?),
            (None, None) => Lifetime::Default,
        };
        let scopes = self
            .scopes
            .map(|names| ScopeList::parse(names.iter().map(String::as_str)))
            .transpose()
            .map_err(|e| ApiError::invalid_request(format!("`scopes`: {e}")))?;
        let public_jwks = self
            .public_jwks
            .as_ref()
            .map(ClientJwks::parse)
            .transpose()
            .map_err(|e| ApiError::invalid_request(e.to_string()))?;
        let limits = self
            .limits
            .as_ref()
            .map(LimitsBody::parse)
            .transpose()?
            .unwrap_or_default();
        Ok(CreateKey {
            limits: KeyLimits {
                per_minute: limits.per_minute.flatten(),
                per_hour: limits.per_hour.flatten(),
            },
            public_jwks,
            name: self.name,
            user_id: self.user_id,
            lifetime,
            scopes,
            environment: self.environment.unwrap_or(Environment::Live),
        })
    }
}

#[utoipa::path(
    post, path = "/v1/{org}/api_keys", tag = "API keys",
    summary = "Create an API key", description = "The response is the only time the secret (`api_key`) is shown. `scopes` may list keygate's own scopes and scopes of the organization's registered protected resources (RFC 8707); a key with a list uses only those, one without may use every scope of the organization's resources (`all_resource_scopes`). With `public_jwks` the key is a secretless key-pair client (`client_auth: private_key_jwt`, no `api_key`): it authenticates at the OAuth endpoints with a client assertion signed by one of its keys.",
    params(OrgPath, ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: the same key and body within 24 h answer the first result"),), request_body = CreateKeyBody, security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 201, description = "The new key, with its secret (none for a key-pair client)", body = schema::CreatedApiKey),
        ProtectedErrors,
        NotFound,
        CreateErrors,
    )
)]
pub async fn create_key(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
    body: JsonBody<CreateKeyBody>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let input = body.value.parse()?;
    idempotent(&state, &actor, &req, &body.json, Some(SECRET_FIELD), {
        let (state, actor) = (state.clone(), actor.clone());
        move || async move {
            let created = admin::keys::create(&state, &actor, input).await?;
            Ok((
                StatusCode::CREATED,
                created_key_json(created, state.clock.now()),
            ))
        }
    })
    .await
}

#[utoipa::path(
    get, path = "/v1/{org}/api_keys/{id}", tag = "API keys", summary = "Get an API key",
    params(OrgIdPath), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The key (never its secret)", body = schema::ApiKey),
        ProtectedErrors,
        NotFound,
    )
)]
pub async fn get_key(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let key = admin::keys::get(&state, &actor, &path.1).await?;
    Ok(HttpResponse::Ok().json(key_json(key, state.clock.now())))
}

/// `PATCH /v1/{org}/api_keys/{id}`: what may change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyBody {
    limits: LimitsBody,
}

#[utoipa::path(
    patch, path = "/v1/{org}/api_keys/{id}", tag = "API keys", summary = "Change an API key's limits",
    description = "Sets the key's own issuance limits (tokens per minute and per hour, at sign-in and the token endpoint). Owners and admins only, for keys of users who do not outrank them: a member cannot raise its own key's limits (403 `permission_denied`). A field set to `null` returns to the server's default. Takes effect at the key's next token on this node, within 5 seconds on others.",
    params(OrgIdPath), request_body = UpdateKeyBody, security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The key (never its secret)", body = schema::ApiKey),
        ProtectedErrors,
        NotFound,
    )
)]
pub async fn update_key(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    path: web::Path<(String, String)>,
    body: JsonBody<UpdateKeyBody>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let patch = body.value.limits.parse()?;
    let key = admin::keys::set_limits(&state, &actor, &path.1, patch).await?;
    Ok(HttpResponse::Ok().json(key_json(key, state.clock.now())))
}

#[utoipa::path(
    delete, path = "/v1/{org}/api_keys/{id}", tag = "API keys", summary = "Revoke an API key",
    description = "The key stops working at once and its sessions end. Revoking a revoked key is a no-op.",
    params(OrgIdPath), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Revoked"),
        ProtectedErrors,
        NotFound,
    )
)]
pub async fn revoke_key(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    admin::keys::revoke(&state, &actor, &path.1).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    grace_period: Option<String>,
}

#[utoipa::path(
    post, path = "/v1/{org}/api_keys/{id}/rotate", tag = "API keys", summary = "Rotate an API key",
    description = "Issues a replacement (same owner, name, scopes, environment, lifetime); the old key works until the grace period ends. A key-pair client has no secret to rotate: 409 `conflict`.",
    params(OrgIdPath, ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: the same key and body within 24 h answer the first result"),), request_body(content = RotateBody, description = "Optional"), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 201, description = "The new key, with its secret", body = schema::CreatedApiKey),
        ProtectedErrors,
        NotFound,
        CreateErrors,
    )
)]
pub async fn rotate_key(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: JsonBody<RotateBody>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let grace = match &body.value.grace_period {
        Some(text) if text.trim() == "0" => std::time::Duration::ZERO,
        Some(text) => parse_duration(text, "grace_period")?,
        None => std::time::Duration::ZERO,
    };
    idempotent(&state, &actor, &req, &body.json, Some(SECRET_FIELD), {
        let (state, actor) = (state.clone(), actor.clone());
        move || async move {
            let created = admin::keys::rotate(&state, &actor, &path.1, grace).await?;
            Ok((
                StatusCode::CREATED,
                created_key_json(created, state.clock.now()),
            ))
        }
    })
    .await
}
