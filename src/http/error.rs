//! The one place where errors become HTTP responses.
//!
//! Policy:
//! - Every error outside the OAuth endpoints answers the keygate error body (README, "Errors")
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

use super::request_id;
use super::schema::{ErrorBody, ErrorDetail};
use crate::admin::policy::Denial;
use crate::auth::TokenType;
use crate::auth::access::AccessError;
use crate::auth::cross_org::CrossOrgError;
use crate::auth::dpop::{ALGS, DpopError, REPLAY_RETRY_AFTER_SECS};
use crate::auth::federation::FederationError;
use crate::auth::signin::SigninError;
use crate::resources::TargetError;
use crate::storage::StorageError;
use crate::tokens::TokenError;

/// An error response in keygate's error format (README, "Errors").
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    www_authenticate: Option<String>,
    /// A `DPoP-Nonce` to send with a `use_dpop_nonce` error.
    dpop_nonce: Option<Box<HeaderValue>>,
    /// The key an idempotent retry of a key creation names (see `schema::ErrorDetail`).
    api_key_id: Option<Box<str>>,
    /// `Retry-After` (seconds) of a `rate_limited` answer.
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            www_authenticate: None,
            dpop_nonce: None,
            api_key_id: None,
            retry_after: None,
        }
    }

    /// 429 `rate_limited` with `Retry-After`.
    pub fn rate_limited(message: impl Into<String>, retry_after: u64) -> Self {
        let mut err = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        err.retry_after = Some(retry_after);
        err
    }

    /// 503 `temporarily_unavailable` with `Retry-After`: the DPoP replay store cannot
    /// record the request's proof (full or unreachable), so it is refused, not accepted
    /// unrecorded. The cause is logged where it happened.
    pub fn replay_store_unavailable() -> Self {
        let mut err = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            DpopError::ReplayStoreUnavailable.to_string(),
        );
        err.retry_after = Some(u64::from(REPLAY_RETRY_AFTER_SECS));
        err
    }

    /// Names the key an idempotent retry of a key creation created.
    pub fn with_api_key_id(mut self, id: &str) -> Self {
        self.api_key_id = Some(id.into());
        self
    }

    /// A refused admin action: 403 `insufficient_scope` with the RFC 6750 §3.1 challenge
    /// naming the scope, or 403 `permission_denied`.
    pub fn denied(denial: Denial) -> Self {
        let message = denial.to_string();
        match denial {
            Denial::InsufficientScope { scope, scheme } => {
                let mut err = ApiError::new(StatusCode::FORBIDDEN, "insufficient_scope", &message)
                    .challenge(scheme.into(), "insufficient_scope", &message);
                if let Some(challenge) = &mut err.www_authenticate {
                    challenge.push_str(&format!(", scope=\"{scope}\""));
                }
                err
            }
            Denial::PermissionDenied(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "permission_denied", message)
            }
        }
    }

    pub fn with_nonce(mut self, nonce: Option<HeaderValue>) -> Self {
        self.dpop_nonce = nonce.map(Box::new);
        self
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

    /// A `WWW-Authenticate` challenge: RFC 6750 §3 for Bearer, RFC 9449 §7.1 for DPoP
    /// (which also lists the accepted proof algorithms), RFC 7617 for Basic.
    fn challenge(mut self, scheme: Challenge, error: &str, description: &str) -> Self {
        let description = description.replace(['"', '\\'], "'");
        self.www_authenticate = Some(match scheme {
            Challenge::Bearer => format!(
                "Bearer realm=\"keygate\", error=\"{error}\", error_description=\"{description}\""
            ),
            Challenge::DPoP => format!(
                "DPoP realm=\"keygate\", error=\"{error}\", algs=\"{ALGS}\", error_description=\"{description}\""
            ),
            Challenge::Basic => "Basic realm=\"keygate\"".to_owned(),
        });
        self
    }

    /// A failed authentication at a protected endpoint: 401 with a challenge in the scheme
    /// the client used (DPoP when the server requires it); 403, 404 or 429 when the
    /// credential was good but a cross-organization request may not go through.
    pub fn from_access(err: AccessError, scheme: Challenge, dpop_required: bool) -> Self {
        let message = err.to_string();
        let (code, error, scheme) = match &err {
            AccessError::Storage(_)
            | AccessError::CrossOrg(CrossOrgError::Storage(_))
            | AccessError::Federation(FederationError::Storage(_)) => {
                return ApiError::internal(&err);
            }
            AccessError::Dpop(DpopError::ReplayStoreUnavailable) => {
                return ApiError::replay_store_unavailable();
            }
            AccessError::CrossOrg(CrossOrgError::NoGrant) => {
                return ApiError::new(StatusCode::FORBIDDEN, "permission_denied", message);
            }
            AccessError::CrossOrg(CrossOrgError::RateLimited) => {
                // The limit refills every second (`cross_org.rate_per_second`).
                return ApiError::rate_limited(message, 1);
            }
            AccessError::UnknownOrganization => {
                return ApiError::new(StatusCode::NOT_FOUND, "unknown_organization", message);
            }
            AccessError::PendingApproval => {
                return ApiError::new(StatusCode::FORBIDDEN, "pending_approval", message);
            }
            AccessError::RateLimited { retry_after } => {
                return ApiError::rate_limited(message, *retry_after);
            }
            AccessError::Dpop(DpopError::UseNonce) => {
                ("use_dpop_nonce", "use_dpop_nonce", Challenge::DPoP)
            }
            AccessError::Dpop(_) => ("invalid_dpop_proof", "invalid_dpop_proof", Challenge::DPoP),
            AccessError::BoundTokenAsBearer | AccessError::DpopRequired
                if scheme != Challenge::Basic =>
            {
                ("invalid_token", "invalid_token", Challenge::DPoP)
            }
            // Whatever the scheme: the organization accepts only DPoP (RFC 9449 §7.1).
            AccessError::CrossOrgDpopRequired => {
                ("invalid_token", "invalid_token", Challenge::DPoP)
            }
            AccessError::Token(TokenError::Expired) => ("expired_token", "invalid_token", scheme),
            _ if dpop_required && scheme != Challenge::Basic => {
                ("invalid_token", "invalid_token", Challenge::DPoP)
            }
            _ => ("invalid_token", "invalid_token", scheme),
        };
        ApiError::new(StatusCode::UNAUTHORIZED, code, &message).challenge(scheme, error, &message)
    }
}

/// The authentication scheme a challenge is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Challenge {
    Bearer,
    DPoP,
    Basic,
}

impl From<TokenType> for Challenge {
    fn from(t: TokenType) -> Self {
        match t {
            TokenType::Bearer => Challenge::Bearer,
            TokenType::DPoP => Challenge::DPoP,
        }
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
        if let Some(nonce) = &self.dpop_nonce {
            response.insert_header((super::DPOP_NONCE, HeaderValue::clone(nonce)));
        }
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message.clone(),
                request_id: request_id::current().unwrap_or_default(),
                api_key_id: self.api_key_id.as_deref().map(str::to_owned),
            },
        })
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
            SigninError::PermissionDenied | SigninError::PendingApproval => StatusCode::FORBIDDEN,
            SigninError::RateLimited { retry_after }
            | SigninError::IssuanceLimited { retry_after } => {
                return ApiError::rate_limited(err.to_string(), retry_after);
            }
            SigninError::Dpop(DpopError::ReplayStoreUnavailable) => {
                return ApiError::replay_store_unavailable();
            }
            SigninError::Storage(_)
            | SigninError::Session(_)
            | SigninError::Target(TargetError::Storage(_)) => return ApiError::internal(&err),
            SigninError::Target(_) => StatusCode::BAD_REQUEST,
            // RFC 9449 §5, §8: a bad proof at a token-issuing endpoint is a 400.
            SigninError::Dpop(_) => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, err.code(), err.to_string())
    }
}
