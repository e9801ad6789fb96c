//! The admin API (docs/admin-api.md): one file of handlers per resource, with
//! its request and response shapes; here, what they share: the caller, pagination, the
//! `Idempotency-Key` handling of creating `POST`s, and the mapping of [`AdminError`]. Every
//! decision is made in [`crate::admin`]; handlers parse, call and render.

use std::future::Future;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::Serialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::schema::{self};
use crate::admin::AdminError;
use crate::admin::policy::Actor;
use crate::idempotency::{self, Begin};
use crate::state::AppState;
use crate::storage::page::{Page, PageRequest};

mod clients;
mod consents;
mod events;
mod grants;
mod issuers;
mod keys;
mod resources;
mod sessions;
mod users;

pub use clients::*;
pub use consents::*;
pub use events::*;
pub use grants::*;
pub use issuers::*;
pub use keys::*;
pub use resources::*;
pub use sessions::*;
pub use users::*;

fn parse_time(text: &str, field: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::invalid_request(format!(
                "`{field}` must be an RFC 3339 time, e.g. 2026-12-01T00:00:00Z"
            ))
        })
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
    Fut: Future<Output = Result<(StatusCode, Value), ApiError>> + 'static,
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
        // The operation and the bookkeeping of its key run in a task of their own: a client
        // that disconnects cancels this handler, not the task, so an operation that
        // committed is always finished (and never run twice by a retry), and one that failed
        // always releases the key. Only a crash between the two leaves the key reserved
        // until its lease ends (docs/admin-api.md).
        Begin::Run(ticket) => {
            let state = state.clone();
            let operation = run();
            let task = actix_web::rt::spawn(async move {
                let result = operation.await;
                match &result {
                    Ok((status, response)) => {
                        let finished = idempotency::finish(
                            &state,
                            ticket,
                            status.as_u16(),
                            response.clone(),
                            secret_field,
                        );
                        if let Err(err) = finished.await {
                            tracing::error!(error = %err, "storing an idempotent response failed");
                        }
                    }
                    Err(_) => {
                        if let Err(e) = idempotency::abandon(&state, ticket).await {
                            tracing::error!(error = %e, "releasing an idempotency key failed");
                        }
                    }
                }
                result
            });
            match task.await {
                Ok(result) => result.map(respond),
                Err(err) => Err(ApiError::internal(&err)),
            }
        }
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
            | AdminError::UnknownIssuer(_)
            | AdminError::UnknownResource(_)
            | AdminError::UnknownClient(_) => ApiError::not_found(err.to_string()),
            AdminError::Invalid(message) => ApiError::invalid_request(message),
            AdminError::Conflict(message) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            AdminError::Denied(denial) => ApiError::denied(denial),
            AdminError::Storage(e) => e.into(),
        }
    }
}
