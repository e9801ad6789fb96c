//! The one place where errors become HTTP responses.
//!
//! Policy:
//! - Every error outside the OAuth endpoints answers the DESIGN §6 body
//!   `{"error": {"code", "message", "request_id"}}`; the code is stable and documented, the
//!   message is a human sentence that never contains a secret or an internal detail.
//! - Authentication failures at protected endpoints add `WWW-Authenticate` (RFC 6750 §3).
//! - Internal failures (database, signing) answer an opaque 500 `internal_error` with the
//!   request id and are logged at `error` with their full cause chain. Client errors are
//!   logged at `info` by the request span (status only), never with header values.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use super::request_id;
use crate::auth::access::AccessError;
use crate::auth::signin::SigninError;
use crate::storage::StorageError;
use crate::tokens::TokenError;

/// An error response in the DESIGN §6 format.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    www_authenticate: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            www_authenticate: None,
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// Logs `cause` in full and answers an opaque 500.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(error = %chain, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "an internal error occurred; quote the request id when reporting it",
        )
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// RFC 6750 §3: a Bearer challenge with an error code and description.
    fn bearer_challenge(mut self, description: &str) -> Self {
        self.www_authenticate = Some(format!(
            "Bearer realm=\"keygate\", error=\"invalid_token\", error_description=\"{}\"",
            description.replace(['"', '\\'], "'")
        ));
        self
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if let Some(value) = self
            .www_authenticate
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
        {
            response.insert_header((header::WWW_AUTHENTICATE, value));
        }
        response.json(json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "request_id": request_id::current(),
            }
        }))
    }
}

impl From<StorageError> for ApiError {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::NotFound => ApiError::not_found("no such resource"),
            StorageError::Conflict(_) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "the resource already exists",
            ),
            StorageError::Database(_) => ApiError::internal(&err),
        }
    }
}

impl From<SigninError> for ApiError {
    fn from(err: SigninError) -> Self {
        let status = match err {
            SigninError::MissingApiKey | SigninError::MissingUserId => StatusCode::BAD_REQUEST,
            SigninError::UnknownOrganization => StatusCode::NOT_FOUND,
            SigninError::InvalidApiKey
            | SigninError::ExpiredApiKey
            | SigninError::RevokedApiKey => StatusCode::UNAUTHORIZED,
            SigninError::PermissionDenied => StatusCode::FORBIDDEN,
            SigninError::Storage(_) | SigninError::Issue(_) => return ApiError::internal(&err),
        };
        ApiError::new(status, err.code(), err.to_string())
    }
}

impl From<AccessError> for ApiError {
    fn from(err: AccessError) -> Self {
        let code = match &err {
            AccessError::Storage(_) => return ApiError::internal(&err),
            AccessError::Token(TokenError::Expired) => "expired_token",
            _ => "invalid_token",
        };
        let message = err.to_string();
        ApiError::new(StatusCode::UNAUTHORIZED, code, &message).bearer_challenge(&message)
    }
}
