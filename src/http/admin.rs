//! The admin API (DESIGN §5.6, docs/admin-api.md): request and response shapes and the
//! `Idempotency-Key` handling of creating `POST`s. Every decision is made in
//! [`crate::admin`]; handlers parse, call and render.

use std::future::Future;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, SecondsFormat, Utc};
use entity::{api_key, audit_event, session, user};
use serde::Deserialize;
use serde::Serialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::body::JsonBody;
use super::error::ApiError;
use super::extract::Authenticated;
use super::handlers::request_meta;
use super::schema::{
    self, CreateErrors, ErrorBody, NotFound, OrgIdPath, OrgPath, ProtectedErrors, rfc3339,
};
use crate::admin::grants::{Grant, NewGrant};
use crate::admin::issuers::NewIssuer;
use crate::admin::keys::{CreateKey, Lifetime};
use crate::admin::policy::Actor;
use crate::admin::users::UserPatch;
use crate::admin::{self, AdminError, CreatedKey, parse_duration};
use crate::idempotency::{self, Begin};
use crate::state::AppState;
use crate::storage::api_keys::KeyFilter;
use crate::storage::audit::EventFilter;
use crate::storage::page::{Page, PageRequest};
use crate::storage::sessions::SessionFilter;
use crate::storage::users::UserFilter;
use crate::types::{Environment, Lifecycle, Role, Scopes, UserStatus};

fn parse_time(text: &str, field: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::invalid_request(format!(
                "`{field}` must be an RFC 3339 time, e.g. 2026-12-01T00:00:00Z"
            ))
        })
}

fn actor(caller: crate::auth::access::Caller, req: &HttpRequest) -> Actor {
    Actor::new(caller, request_meta(req))
}

fn page_request(limit: Option<u64>, cursor: Option<&str>) -> Result<PageRequest, ApiError> {
    PageRequest::parse(limit, cursor).map_err(|e| ApiError::invalid_request(e.0))
}

fn page_json<T, S: ToSchema + Serialize>(page: Page<T>, render: impl Fn(T) -> S) -> HttpResponse {
    HttpResponse::Ok().json(schema::Page {
        data: page.items.into_iter().map(render).collect(),
        next_cursor: page.next.map(|c| c.encode()),
    })
}

fn to_value(body: impl Serialize) -> Value {
    serde_json::to_value(body).unwrap_or(Value::Null)
}

fn key_json(key: api_key::Model, now: DateTime<Utc>) -> schema::ApiKey {
    let status = admin::keys::status(&key, now);
    schema::ApiKey {
        api_key_id: key.id,
        user_id: key.user_id,
        name: key.name,
        scopes: key
            .scopes
            .split_ascii_whitespace()
            .map(str::to_owned)
            .collect(),
        environment: key.environment,
        status: status.as_str().to_owned(),
        created_at: rfc3339(key.created_at),
        expires_at: rfc3339(key.expires_at),
        revoked_at: key.revoked_at.map(rfc3339),
        last_used_at: key.last_used_at.map(rfc3339),
    }
}

/// The field of a key response that holds the secret.
const SECRET_FIELD: &str = "api_key";

fn created_key_json(created: CreatedKey, now: DateTime<Utc>) -> Value {
    to_value(schema::CreatedApiKey {
        api_key: created.secret.expose().to_owned(),
        key: key_json(created.key, now),
    })
}

fn user_json(user: user::Model, org: &str) -> schema::User {
    schema::User {
        user_id: user.id,
        org: org.to_owned(),
        email: user.email,
        name: user.name,
        role: user.role,
        disabled: user.disabled,
        created_at: rfc3339(user.created_at),
        updated_at: rfc3339(user.updated_at),
        deleted_at: user.deleted_at.map(rfc3339),
        external_subject: user.external_subject,
    }
}

fn session_json(session: session::Model, now: DateTime<Utc>) -> schema::Session {
    let status = Lifecycle::of(session.revoked_at, session.expires_at, now);
    schema::Session {
        session_id: session.id,
        user_id: session.user_id,
        api_key_id: session.api_key_id,
        actor_user_id: session.actor_user_id,
        dpop_bound: session.dpop_jkt.is_some(),
        scope: session.scope,
        status: status.as_str().to_owned(),
        created_at: rfc3339(session.created_at),
        expires_at: rfc3339(session.expires_at),
        refreshed_at: session.refreshed_at.map(rfc3339),
        revoked_at: session.revoked_at.map(rfc3339),
    }
}

fn event_json(event: audit_event::Model, org: &str) -> schema::AuditEvent {
    schema::AuditEvent {
        id: event.id,
        at: event.at.to_rfc3339_opts(SecondsFormat::Millis, true),
        org: org.to_owned(),
        action: event.action,
        outcome: event.outcome,
        reason: event.reason,
        actor_user_id: event.actor_user_id,
        actor_key_id: event.actor_key_id,
        target_type: event.target_type,
        target_id: event.target_id,
        ip: event.ip,
        user_agent: event.user_agent,
        request_id: event.request_id,
    }
}

/// Runs a creating request at most once per `Idempotency-Key` (docs/admin-api.md).
/// `run` answers the status and body of a success; `secret_field` names a field of it that
/// is never stored nor replayed.
async fn idempotent<F, Fut>(
    state: &AppState,
    actor: &Actor,
    req: &HttpRequest,
    body: &Value,
    secret_field: Option<&'static str>,
    run: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(StatusCode, Value), ApiError>>,
{
    let respond = |(status, body): (StatusCode, Value)| HttpResponse::build(status).json(body);
    let Some(header) = req.headers().get("idempotency-key") else {
        return run().await.map(respond);
    };
    let key =
        idempotency::parse_key(header.as_bytes()).map_err(|e| ApiError::invalid_request(e.0))?;
    let fingerprint = idempotency::fingerprint(req.method().as_str(), req.path(), body);
    match idempotency::begin(state, &actor.org.id, &actor.user_id, key, fingerprint).await? {
        Begin::Mismatch => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request; use a new key",
        )),
        Begin::InProgress => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "a request with this Idempotency-Key is still being processed; retry later",
        )),
        Begin::Replay(stored) if stored.redacted => {
            let id = stored
                .body
                .get("api_key_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "this request was already processed: the key it created is api_key_id; its secret was shown once and cannot be shown again (rotate the key for a new secret)",
            )
            .with_api_key_id(id))
        }
        Begin::Replay(stored) => {
            let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
            Ok(HttpResponse::build(status)
                .insert_header(("idempotent-replayed", "true"))
                .json(stored.body))
        }
        Begin::Run(ticket) => match run().await {
            Ok((status, response)) => {
                if let Err(err) = idempotency::finish(
                    state,
                    ticket,
                    status.as_u16(),
                    response.clone(),
                    secret_field,
                )
                .await
                {
                    tracing::error!(error = %err, "storing an idempotent response failed");
                }
                Ok(respond((status, response)))
            }
            Err(err) => {
                if let Err(e) = idempotency::abandon(state, ticket).await {
                    tracing::error!(error = %e, "releasing an idempotency key failed");
                }
                Err(err)
            }
        },
    }
}

// ---- API keys ----

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
    req: HttpRequest,
    query: web::Query<KeyQuery>,
) -> Result<HttpResponse, ApiError> {
    let actor = actor(caller, &req);
    let query = query.into_inner();
    let page = page_request(query.limit, query.cursor.as_deref())?;
    let now = state.clock.now();
    let filter = KeyFilter {
        user_id: query.user_id,
        status: query.status.map(|s| (s, now)),
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
    scopes: Option<Vec<String>>,
    environment: Option<Environment>,
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
            .map(|names| Scopes::parse(names.iter().map(String::as_str)))
            .transpose()
            .map_err(|e| ApiError::invalid_request(format!("`scopes`: {}", e.0)))?;
        Ok(CreateKey {
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
    summary = "Create an API key", description = "The response is the only time the secret (`api_key`) is shown.",
    params(OrgPath, ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: the same key and body within 24 h answer the first result"),), request_body = CreateKeyBody, security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 201, description = "The new key, with its secret", body = schema::CreatedApiKey),
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
    let actor = actor(caller, &req);
    let input = body.value.parse()?;
    idempotent(
        &state,
        &actor,
        &req,
        &body.json,
        Some(SECRET_FIELD),
        || async {
            let created = admin::keys::create(&state, &actor, input).await?;
            Ok((
                StatusCode::CREATED,
                created_key_json(created, state.clock.now()),
            ))
        },
    )
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
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = actor(caller, &req);
    let key = admin::keys::get(&state, &actor, &path.1).await?;
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
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = actor(caller, &req);
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
    description = "Issues a replacement (same owner, name, scopes, environment, lifetime); the old key works until the grace period ends.",
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
    let actor = actor(caller, &req);
    let grace = match &body.value.grace_period {
        Some(text) if text.trim() == "0" => std::time::Duration::ZERO,
        Some(text) => parse_duration(text, "grace_period")?,
        None => std::time::Duration::ZERO,
    };
    idempotent(
        &state,
        &actor,
        &req,
        &body.json,
        Some(SECRET_FIELD),
        || async {
            let created = admin::keys::rotate(&state, &actor, &path.1, grace).await?;
            Ok((
                StatusCode::CREATED,
                created_key_json(created, state.clock.now()),
            ))
        },
    )
    .await
}

// ---- Users ----

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    role: Option<Role>,
    status: Option<UserStatus>,
}

#[utoipa::path(
    get, path = "/v1/{org}/users", tag = "Users", summary = "List users",
    description = "Newest first. Members and service accounts see themselves only.",
    params(OrgPath, UserQuery), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "A page of users", body = inline(schema::Page<schema::User>)),
        ProtectedErrors,
    )
)]
pub async fn list_users(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
    query: web::Query<UserQuery>,
) -> Result<HttpResponse, ApiError> {
    let actor = actor(caller, &req);
    let query = query.into_inner();
    let page = page_request(query.limit, query.cursor.as_deref())?;
    let filter = UserFilter {
        user_id: None,
        role: query.role,
        status: query.status,
    };
    let users = admin::users::list(&state, &actor, filter, &page).await?;
    Ok(page_json(users, |u| user_json(u, &actor.org.slug)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserBody {
    email: String,
    name: Option<String>,
    role: Option<Role>,
}

#[utoipa::path(
    post, path = "/v1/{org}/users", tag = "Users", summary = "Create a user",
    params(OrgPath, ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: the same key and body within 24 h answer the first result"),), request_body = CreateUserBody, security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 201, description = "The new user", body = schema::User),
        ProtectedErrors,
        CreateErrors,
    )
)]
pub async fn create_user(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
    body: JsonBody<CreateUserBody>,
) -> Result<HttpResponse, ApiError> {
    let actor = actor(caller, &req);
    let JsonBody { value, json } = body;
    idempotent(&state, &actor, &req, &json, None, || async {
        let role = value.role.unwrap_or(Role::Member);
        let user = admin::users::create(&state, &actor, &value.email, value.name, role).await?;
        Ok((
            StatusCode::CREATED,
            to_value(user_json(user, &actor.org.slug)),
        ))
    })
    .await
}

#[utoipa::path(
    get, path = "/v1/{org}/users/{id}", tag = "Users", summary = "Get a user",
    params(OrgIdPath), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The user", body = schema::User),
        ProtectedErrors,
        NotFound,
    )
)]
pub async fn get_user(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = actor(caller, &req);
    let user = admin::users::get(&state, &actor, &path.1).await?;
    Ok(HttpResponse::Ok().json(user_json(user, &actor.org.slug)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserBody {
    name: Option<String>,
    role: Option<Role>,
    disabled: Option<bool>,
    /// Absent: unchanged; `null`: removed.
    #[serde(default, deserialize_with = "present")]
    external_subject: Option<Option<String>>,
}

/// Tells a member that is `null` (`Some(None)`) from one that is absent (`None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[utoipa::path(
    patch, path = "/v1/{org}/users/{id}", tag = "Users", summary = "Change a user",
    description = "Disabling ends the user's sessions. The last enabled owner cannot be demoted or disabled.",
    params(OrgIdPath), request_body = UpdateUserBody, security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The changed user", body = schema::User),
        ProtectedErrors,
        NotFound,
        CreateErrors,
    )
)]
pub async fn update_user(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: JsonBody<UpdateUserBody>,
) -> Result<HttpResponse, ApiError> {
    let actor = actor(caller, &req);
    let patch = UserPatch {
        name: body.value.name,
        role: body.value.role,
        disabled: body.value.disabled,
        external_subject: body.value.external_subject,
    };
    let user = admin::users::update(&state, &actor, &path.1, patch).await?;
    Ok(HttpResponse::Ok().json(user_json(user, &actor.org.slug)))
}

#[utoipa::path(
    delete, path = "/v1/{org}/users/{id}", tag = "Users", summary = "Delete a user (soft)",
    description = "Disables the user, ends its sessions and revokes its keys; the row stays for the audit trail.",
    params(OrgIdPath), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Deleted"),
        ProtectedErrors,
        NotFound,
        (status = 409, description = "`conflict`", body = ErrorBody),
    )
)]
pub async fn delete_user(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = actor(caller, &req);
    admin::users::delete(&state, &actor, &path.1).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- Sessions ----

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SessionQuery {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    user_id: Option<String>,
    api_key_id: Option<String>,
    status: Option<Lifecycle>,
}

#[utoipa::path(
    get, path = "/v1/{org}/sessions", tag = "Sessions", summary = "List sessions",
    params(OrgPath, SessionQuery), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "A page of sessions", body = inline(schema::Page<schema::Session>)),
        ProtectedErrors,
    )
)]
pub async fn list_sessions(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
    query: web::Query<SessionQuery>,
) -> Result<HttpResponse, ApiError> {
    let actor = actor(caller, &req);
    let query = query.into_inner();
    let page = page_request(query.limit, query.cursor.as_deref())?;
    let now = state.clock.now();
    let filter = SessionFilter {
        user_id: query.user_id,
        api_key_id: query.api_key_id,
        status: query.status.map(|s| (s, now)),
    };
    let sessions = admin::sessions::list(&state, &actor, filter, &page).await?;
    Ok(page_json(sessions, |s| session_json(s, now)))
}

#[utoipa::path(
    delete, path = "/v1/{org}/sessions/{id}", tag = "Sessions", summary = "End a session",
    description = "Its refresh tokens stop at once, its access tokens within 5 seconds.",
    params(OrgIdPath), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Ended"),
        ProtectedErrors,
        NotFound,
    )
)]
pub async fn revoke_session(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = actor(caller, &req);
    admin::sessions::revoke(&state, &actor, &path.1).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- Audit events ----

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    target_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/{org}/audit_events", tag = "Audit log", summary = "List audit events",
    description = "Newest first. Owners and admins only.",
    params(OrgPath, EventQuery), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "A page of events", body = inline(schema::Page<schema::AuditEvent>)),
        ProtectedErrors,
    )
)]
pub async fn list_events(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
    query: web::Query<EventQuery>,
) -> Result<HttpResponse, ApiError> {
    let actor = actor(caller, &req);
    let query = query.into_inner();
    let page = page_request(query.limit, query.cursor.as_deref())?;
    let outcome = match query.outcome.as_deref() {
        None => None,
        Some("success") => Some("success"),
        Some("failure") => Some("failure"),
        Some(_) => {
            return Err(ApiError::invalid_request(
                "`outcome` must be `success` or `failure`",
            ));
        }
    };
    let filter = EventFilter {
        actor: query.actor,
        action: query.action,
        outcome,
        target_id: query.target_id,
        since: query
            .since
            .as_deref()
            .map(|t| parse_time(t, "since"))
            .transpose()?,
        until: query
            .until
            .as_deref()
            .map(|t| parse_time(t, "until"))
            .transpose()?,
    };
    let events = admin::events::list(&state, &actor, &filter, &page).await?;
    Ok(page_json(events, |e| event_json(e, &actor.org.slug)))
}

// ---- Cross-organization grants ----

fn grant_json(found: Grant, org: &str) -> schema::CrossOrgGrant {
    let grant = found.grant;
    schema::CrossOrgGrant {
        id: grant.id,
        org: org.to_owned(),
        source_org: found.source_org.slug,
        user_id: grant.user_id,
        role: grant.role,
        created_by: grant.created_by,
        created_at: rfc3339(grant.created_at),
        expires_at: grant.expires_at.map(rfc3339),
        revoked_at: grant.revoked_at.map(rfc3339),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/{org}/cross_org_grants", tag = "Cross-organization access", summary = "List live cross-organization grants",
    params(OrgPath, PageQuery), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "A page of grants", body = inline(schema::Page<schema::CrossOrgGrant>)),
        ProtectedErrors,
    )
)]
pub async fn list_grants(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let actor = actor(caller, &req);
    let page = page_request(query.limit, query.cursor.as_deref())?;
    let grants = admin::grants::list(&state, &actor, &page).await?;
    Ok(page_json(grants, |g| grant_json(g, &actor.org.slug)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGrantBody {
    source_org: String,
    user_id: Option<String>,
    role: Role,
    expires_at: Option<String>,
}

#[utoipa::path(
    post, path = "/v1/{org}/cross_org_grants", tag = "Cross-organization access", summary = "Grant users of another organization a role here",
    params(OrgPath, ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: the same key and body within 24 h answer the first result"),), request_body = CreateGrantBody, security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 201, description = "The grant", body = schema::CrossOrgGrant),
        ProtectedErrors,
        NotFound,
        CreateErrors,
    )
)]
pub async fn create_grant(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
    body: JsonBody<CreateGrantBody>,
) -> Result<HttpResponse, ApiError> {
    let actor = actor(caller, &req);
    let JsonBody { value, json } = body;
    let new = NewGrant {
        source_org: value.source_org,
        user_id: value.user_id,
        role: value.role,
        expires_at: value
            .expires_at
            .as_deref()
            .map(|t| parse_time(t, "expires_at"))
            .transpose()?,
    };
    idempotent(&state, &actor, &req, &json, None, || async {
        let grant = admin::grants::create(&state, &actor, new).await?;
        Ok((
            StatusCode::CREATED,
            to_value(grant_json(grant, &actor.org.slug)),
        ))
    })
    .await
}

#[utoipa::path(
    get, path = "/v1/{org}/cross_org_grants/{id}", tag = "Cross-organization access", summary = "Get a grant",
    params(OrgIdPath), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The grant", body = schema::CrossOrgGrant),
        ProtectedErrors,
        NotFound,
    )
)]
pub async fn get_grant(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = actor(caller, &req);
    let grant = admin::grants::get(&state, &actor, &path.1).await?;
    Ok(HttpResponse::Ok().json(grant_json(grant, &actor.org.slug)))
}

#[utoipa::path(
    delete, path = "/v1/{org}/cross_org_grants/{id}", tag = "Cross-organization access", summary = "End a grant",
    params(OrgIdPath), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Ended"),
        ProtectedErrors,
        NotFound,
    )
)]
pub async fn revoke_grant(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = actor(caller, &req);
    admin::grants::revoke(&state, &actor, &path.1).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- Trusted identity providers ----

fn issuer_json(issuer: entity::trusted_issuer::Model) -> schema::TrustedIssuer {
    schema::TrustedIssuer {
        id: issuer.id,
        issuer: issuer.issuer,
        jwks_uri: issuer.jwks_uri,
        jwks: issuer.jwks.and_then(|j| serde_json::from_str(&j).ok()),
        audience: issuer.audience,
        subject_claim: issuer.subject_claim,
        algorithms: issuer
            .algorithms
            .split_ascii_whitespace()
            .map(str::to_owned)
            .collect(),
        created_at: rfc3339(issuer.created_at),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIssuerBody {
    issuer: String,
    jwks_uri: Option<String>,
    #[schema(value_type = Option<Object>)]
    jwks: Option<Value>,
    audience: String,
    subject_claim: Option<String>,
    algorithms: Vec<String>,
}

#[utoipa::path(
    get, path = "/v1/{org}/trusted_issuers", tag = "Trusted identity providers", summary = "List trusted identity providers",
    params(OrgPath, PageQuery), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "A page of providers", body = inline(schema::Page<schema::TrustedIssuer>)),
        ProtectedErrors,
    )
)]
pub async fn list_issuers(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let actor = actor(caller, &req);
    let page = page_request(query.limit, query.cursor.as_deref())?;
    let issuers = admin::issuers::list(&state, &actor, &page).await?;
    Ok(page_json(issuers, issuer_json))
}

#[utoipa::path(
    post, path = "/v1/{org}/trusted_issuers", tag = "Trusted identity providers", summary = "Trust an identity provider (owner only)",
    params(OrgPath, ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: the same key and body within 24 h answer the first result"),), request_body = CreateIssuerBody, security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 201, description = "The provider", body = schema::TrustedIssuer),
        ProtectedErrors,
        CreateErrors,
    )
)]
pub async fn create_issuer(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
    body: JsonBody<CreateIssuerBody>,
) -> Result<HttpResponse, ApiError> {
    let actor = actor(caller, &req);
    let JsonBody { value, json } = body;
    let new = NewIssuer {
        issuer: value.issuer,
        jwks_uri: value.jwks_uri,
        jwks: value.jwks.map(|j| j.to_string()),
        audience: value.audience,
        subject_claim: value.subject_claim.unwrap_or_else(|| "sub".into()),
        algorithms: value.algorithms,
    };
    idempotent(&state, &actor, &req, &json, None, || async {
        let issuer = admin::issuers::create(&state, &actor, new).await?;
        Ok((StatusCode::CREATED, to_value(issuer_json(issuer))))
    })
    .await
}

#[utoipa::path(
    get, path = "/v1/{org}/trusted_issuers/{id}", tag = "Trusted identity providers", summary = "Get a trusted identity provider",
    params(OrgIdPath), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The provider", body = schema::TrustedIssuer),
        ProtectedErrors,
        NotFound,
    )
)]
pub async fn get_issuer(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = actor(caller, &req);
    let issuer = admin::issuers::get(&state, &actor, &path.1).await?;
    Ok(HttpResponse::Ok().json(issuer_json(issuer)))
}

#[utoipa::path(
    delete, path = "/v1/{org}/trusted_issuers/{id}", tag = "Trusted identity providers", summary = "Stop trusting an identity provider (owner only)",
    params(OrgIdPath), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Removed"),
        ProtectedErrors,
        NotFound,
    )
)]
pub async fn delete_issuer(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = actor(caller, &req);
    admin::issuers::delete(&state, &actor, &path.1).await?;
    Ok(HttpResponse::NoContent().finish())
}

impl From<AdminError> for ApiError {
    fn from(err: AdminError) -> Self {
        match err {
            AdminError::UnknownOrganization(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_organization",
                err.to_string(),
            ),
            AdminError::UnknownUser(_)
            | AdminError::UnknownKey(_)
            | AdminError::UnknownSession(_)
            | AdminError::UnknownGrant(_)
            | AdminError::UnknownIssuer(_) => ApiError::not_found(err.to_string()),
            AdminError::Invalid(message) => ApiError::invalid_request(message),
            AdminError::Conflict(message) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            AdminError::Denied(denial) => ApiError::denied(denial),
            AdminError::Storage(e) => e.into(),
        }
    }
}
