//! HTTP: routes, extractors and the mapping of domain errors to responses. Handlers are
//! thin; everything they do is a call into `auth`, `storage` or `tokens`.

pub mod error;
mod extract;
mod handlers;
pub mod request_id;

use actix_web::dev::ServiceRequest;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, web};

pub use error::ApiError;
pub use extract::Authenticated;

use crate::state::AppState;

/// RFC 9449 §8: the header that carries a server nonce.
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// The `DPoP-Nonce` every response carries while server nonces are on (RFC 9449 §8.2).
pub fn dpop_nonce(req: &ServiceRequest) -> Option<HeaderValue> {
    let state = req.app_data::<web::Data<AppState>>()?;
    if !state.settings.dpop.nonce {
        return None;
    }
    HeaderValue::from_str(&state.dpop.nonce(state.clock.now())).ok()
}

/// Largest JSON body accepted anywhere.
const JSON_LIMIT: usize = 64 * 1024;

fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(handlers::method_not_allowed))
}

/// Every route of the API.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(json_config())
        .app_data(query_config())
        .app_data(path_config())
        .service(resource("/healthz").route(web::get().to(handlers::healthz)))
        .service(resource("/readyz").route(web::get().to(handlers::readyz)))
        .service(resource("/.well-known/jwks.json").route(web::get().to(handlers::jwks)))
        .service(
            web::scope("/v1/{org}")
                .service(
                    resource("/user/signin_with_api_key")
                        .route(web::post().to(handlers::signin_with_api_key)),
                )
                .service(resource("/user/me").route(web::get().to(handlers::me)))
                .service(
                    resource("/.well-known/jwks.json").route(web::get().to(handlers::org_jwks)),
                ),
        )
        .default_service(web::to(handlers::not_found));
}

fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(JSON_LIMIT)
        .error_handler(|err, _req: &HttpRequest| {
            let api = match &err {
                JsonPayloadError::OverflowKnownLength { .. }
                | JsonPayloadError::Overflow { .. } => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "invalid_request",
                    "the request body is too large",
                ),
                JsonPayloadError::ContentType => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "invalid_request",
                    "the request body must be application/json",
                ),
                other => {
                    ApiError::invalid_request(format!("the request body is not valid: {other}"))
                }
            };
            api.into()
        })
}

fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, _req: &HttpRequest| {
        ApiError::invalid_request(format!("the query string is not valid: {err}")).into()
    })
}

fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _req: &HttpRequest| {
        ApiError::invalid_request(format!("the path is not valid: {err}")).into()
    })
}
