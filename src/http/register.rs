//! `POST /v1/{org}/oauth/register`: RFC 7591 dynamic client registration, when the
//! organization turned it on (`keygate org update <slug> --dynamic-registration true`).
//! Reads the JSON body, calls `clients::registration::register`, answers RFC 7591 §3.2.1
//! (201, the client information) or §3.2.2 (400, `{"error", "error_description"}`).

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::request_meta::request_meta;
use super::schema::{ErrorBody, OAuthErrorBody, OrgPath};
use super::{ApiError, JSON_LIMIT, request_id};
use crate::clients::metadata::MetadataError;
use crate::clients::registration::{self, Registered, RegistrationError};
use crate::state::AppState;

/// An RFC 7591 §3.2.2 error (or `rate_limited`), in the OAuth error body.
#[derive(Debug)]
pub struct RegisterError {
    status: StatusCode,
    code: &'static str,
    description: String,
    retry_after: Option<u64>,
}

impl RegisterError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
            retry_after: None,
        }
    }
}

impl std::fmt::Display for RegisterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.description)
    }
}

impl ResponseError for RegisterError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        response.json(OAuthErrorBody {
            error: self.code.to_owned(),
            error_description: self.description.clone(),
            request_id: request_id::current().unwrap_or_default(),
        })
    }
}

/// RFC 7591 §3.2.1: the client information response.
#[derive(Serialize, ToSchema)]
pub struct ClientInformation {
    /// `cli_…`
    client_id: String,
    /// For `client_secret_basic` only: shown once, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
    /// `0` (the secret does not expire), with `client_secret`.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret_expires_at: Option<i64>,
    /// When the client was registered (seconds since the epoch).
    client_id_issued_at: i64,
    client_name: String,
    redirect_uris: Vec<String>,
    token_endpoint_auth_method: String,
    grant_types: Vec<String>,
    response_types: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    jwks: Option<Value>,
}

fn information(registered: Registered) -> ClientInformation {
    let Registered {
        created,
        grant_types,
        response_types,
    } = registered;
    let client = created.client;
    ClientInformation {
        client_secret_expires_at: created.secret.as_ref().map(|_| 0),
        client_secret: created.secret.map(|s| s.expose().to_owned()),
        client_id_issued_at: client.created_at.timestamp(),
        redirect_uris: serde_json::from_str(&client.redirect_uris).unwrap_or_default(),
        jwks: client
            .public_jwks
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok()),
        client_id: client.id,
        client_name: client.name,
        token_endpoint_auth_method: client.auth_method,
        grant_types,
        response_types,
        scope: client.scope,
    }
}

/// The JSON body: `application/json` (or `+json`), at most [`JSON_LIMIT`] bytes.
async fn read_json(req: &HttpRequest, mut payload: web::Payload) -> Result<Value, RegisterError> {
    let invalid = |m: &str| RegisterError::new(StatusCode::BAD_REQUEST, "invalid_request", m);
    let json_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .is_some_and(|m| m == "application/json" || m.ends_with("+json"));
    if !json_type {
        return Err(invalid("the body must be application/json (RFC 7591 §3.1)"));
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| invalid("the body could not be read"))?;
        if body.len() + chunk.len() > JSON_LIMIT {
            return Err(invalid("the body is too large"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|_| invalid("the body is not valid JSON"))
}

/// `POST /v1/{org}/oauth/register`.
#[utoipa::path(
    post, path = "/v1/{org}/oauth/register", tag = "OAuth", summary = "Dynamic client registration (RFC 7591)",
    description = "Only when the organization turned it on (`keygate org update <slug> --dynamic-registration true`); otherwise 404. Open: no initial access token. The body is RFC 7591 §2 client metadata: `redirect_uris` (required), `client_name`, `token_endpoint_auth_method` (`none`, `client_secret_basic` (the default) or `private_key_jwt` with `jwks`), `grant_types` (`authorization_code`, `refresh_token`, `urn:ietf:params:oauth:grant-type:device_code`), `response_types` (`code`), `scope`; other members are ignored. Throttled per client IP (`clients.registrations_per_ip_per_hour`).",
    params(OrgPath),
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 201, description = "RFC 7591 §3.2.1 client information (with `client_secret` when confidential, shown once)", body = ClientInformation),
        (status = 400, description = "RFC 7591 §3.2.2: `invalid_redirect_uri`, `invalid_client_metadata` (or `invalid_request` for a body that is not JSON)", body = OAuthErrorBody),
        (status = 404, description = "`unknown_organization`, or `not_found`: registration is off", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many registrations from this address (`Retry-After`)", body = OAuthErrorBody),
    )
)]
pub async fn register(
    state: web::Data<AppState>,
    org: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let org = crate::storage::orgs::by_slug(&state.storage, &org)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_organization",
                "no such organization",
            )
        })?;
    if org.dynamic_registration != Some(true) {
        // As if the endpoint did not exist.
        return Err(ApiError::not_found("no such endpoint").into());
    }
    let body = read_json(&req, payload).await?;
    let registered = registration::register(&state, &org, &body, &request_meta(&req))
        .await
        .map_err(|e| -> actix_web::Error {
            match e {
                RegistrationError::NotEnabled => ApiError::not_found("no such endpoint").into(),
                RegistrationError::Metadata(MetadataError::RedirectUri(m)) => {
                    RegisterError::new(StatusCode::BAD_REQUEST, "invalid_redirect_uri", m).into()
                }
                RegistrationError::Metadata(MetadataError::Other(m)) => {
                    RegisterError::new(StatusCode::BAD_REQUEST, "invalid_client_metadata", m)
                        .into()
                }
                RegistrationError::Throttled { retry_after } => RegisterError {
                    retry_after: Some(retry_after),
                    ..RegisterError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limited",
                        format!(
                            "too many client registrations from this address; retry after {retry_after} seconds"
                        ),
                    )
                }
                .into(),
                RegistrationError::Storage(e) => ApiError::from(e).into(),
            }
        })?;
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(information(registered)))
}
