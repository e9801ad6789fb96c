//! HTTP: routes, extractors and the mapping of domain errors to responses. Handlers are
//! thin; everything they do is a call into `auth`, `storage` or `tokens`.

mod admin;
mod agents;
mod body;
pub mod error;
mod extract;
mod handlers;
pub mod metrics;
mod oauth;
mod openapi;
pub mod pages;
mod postman;
mod ratelimit;
mod register;
pub mod request_id;
mod request_meta;
mod schema;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, web};

pub use error::ApiError;
pub use extract::Authenticated;

use crate::state::AppState;

/// RFC 9449 §8: the header that carries a server nonce.
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// Marks a request whose organization demands DPoP nonces (set once that is known).
pub struct WantsDpopNonce;

/// The current server nonce as a header value.
pub fn current_nonce(state: &AppState) -> Option<HeaderValue> {
    HeaderValue::from_str(&state.dpop.nonce(state.clock.now())).ok()
}

/// Adds `DPoP-Nonce` (RFC 9449 §8.2) to every response while the server's nonces are on,
/// and to the responses of organizations that turned them on.
pub async fn dpop_nonce_middleware<B>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error>
where
    B: MessageBody,
{
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let mut res = next.call(req).await?;
    let wanted = res.request().extensions().contains::<WantsDpopNonce>();
    if let Some(state) = state
        && (state.settings.dpop.nonce || wanted)
        && !res.headers().contains_key(DPOP_NONCE)
        && let Some(nonce) = current_nonce(&state)
    {
        res.headers_mut().insert(DPOP_NONCE, nonce);
    }
    Ok(res)
}

/// Every response of an organization's API (`/v1/{org}/…`) that does not set its own
/// `Cache-Control` gets `Cache-Control: no-store` (with `Pragma: no-cache` for HTTP/1.0
/// caches): responses there
/// carry secrets (sign-in, the token endpoint, key creation and rotation, their idempotent
/// replays) or personal data, and one rule for the whole tree cannot miss a new endpoint.
/// Public documents there (metadata, JWKS) set their own caching.
pub async fn no_store_middleware<B>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error>
where
    B: MessageBody,
{
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    let no_store = headers
        .get(header::CACHE_CONTROL)
        .is_some_and(|v| v.as_bytes() == b"no-store");
    if no_store && !headers.contains_key(header::PRAGMA) {
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    Ok(res)
}

/// Largest JSON body accepted anywhere.
pub(crate) const JSON_LIMIT: usize = 64 * 1024;

fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(handlers::method_not_allowed))
}

/// Every route of the API.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(json_config())
        .app_data(web::PayloadConfig::new(JSON_LIMIT))
        .app_data(query_config())
        .app_data(path_config())
        .service(resource("/healthz").route(web::get().to(handlers::healthz)))
        .service(resource("/readyz").route(web::get().to(handlers::readyz)))
        .service(resource("/metrics").route(web::get().to(metrics::main_listener)))
        .service(resource("/.well-known/jwks.json").route(web::get().to(handlers::jwks)))
        .service(resource("/openapi.json").route(web::get().to(openapi::openapi_json)))
        .service(resource("/postman.json").route(web::get().to(postman::postman_json)))
        .service(resource("/docs").route(web::get().to(openapi::docs)))
        .service(resource("/docs/scalar.js").route(web::get().to(openapi::scalar_js)))
        .service(resource(crate::web::STYLESHEET_PATH).route(web::get().to(crate::web::stylesheet)))
        .service(
            resource("/.well-known/oauth-authorization-server/v1/{org}")
                .route(web::get().to(oauth::metadata)),
        )
        .service(
            web::scope("/v1/{org}")
                .wrap(actix_web::middleware::from_fn(no_store_middleware))
                .wrap(actix_web::middleware::from_fn(
                    ratelimit::ratelimit_headers_middleware,
                ))
                .service(
                    resource("/user/signin_with_api_key")
                        .route(web::post().to(handlers::signin_with_api_key)),
                )
                .service(resource("/user/me").route(web::get().to(handlers::me)))
                .service(
                    resource("/oauth/authorize")
                        .route(web::get().to(pages::authorize::show))
                        .route(web::post().to(pages::authorize::decide)),
                )
                .service(
                    resource("/login")
                        .route(web::get().to(pages::login::page_get))
                        .route(web::post().to(pages::login::request_code)),
                )
                .service(
                    resource("/login/code")
                        .route(web::post().to(pages::login::submit_code))
                        .route(web::get().to(pages::login::to_sign_in_page)),
                )
                .service(
                    resource("/logout")
                        .route(web::post().to(pages::login::logout))
                        .route(web::get().to(pages::login::to_sign_in_page)),
                )
                .service(resource("/oauth/token").route(web::post().to(oauth::token)))
                .service(resource("/oauth/revoke").route(web::post().to(oauth::revoke)))
                .service(resource("/oauth/introspect").route(web::post().to(oauth::introspect)))
                .service(
                    resource("/oauth/device_authorization")
                        .route(web::post().to(oauth::device_authorization)),
                )
                .service(
                    resource("/device")
                        .route(web::get().to(pages::device::show))
                        .route(web::post().to(pages::device::submit)),
                )
                .service(
                    resource("/.well-known/oauth-authorization-server")
                        .route(web::get().to(oauth::metadata)),
                )
                .service(
                    resource("/.well-known/jwks.json").route(web::get().to(handlers::org_jwks)),
                )
                .service(
                    resource("/api_keys")
                        .route(web::get().to(admin::list_keys))
                        .route(web::post().to(admin::create_key)),
                )
                .service(
                    resource("/api_keys/{id}")
                        .route(web::get().to(admin::get_key))
                        .route(web::patch().to(admin::update_key))
                        .route(web::delete().to(admin::revoke_key)),
                )
                .service(resource("/api_keys/{id}/rotate").route(web::post().to(admin::rotate_key)))
                .service(
                    resource("/users")
                        .route(web::get().to(admin::list_users))
                        .route(web::post().to(admin::create_user)),
                )
                .service(
                    resource("/users/{id}")
                        .route(web::get().to(admin::get_user))
                        .route(web::patch().to(admin::update_user))
                        .route(web::delete().to(admin::delete_user)),
                )
                .service(
                    resource("/users/{id}/consents")
                        .route(web::get().to(admin::list_consents))
                        .route(web::delete().to(admin::revoke_consents)),
                )
                .service(resource("/sessions").route(web::get().to(admin::list_sessions)))
                .service(resource("/sessions/{id}").route(web::delete().to(admin::revoke_session)))
                .service(resource("/audit_events").route(web::get().to(admin::list_events)))
                .service(
                    resource("/cross_org_grants")
                        .route(web::get().to(admin::list_grants))
                        .route(web::post().to(admin::create_grant)),
                )
                .service(
                    resource("/cross_org_grants/{id}")
                        .route(web::get().to(admin::get_grant))
                        .route(web::delete().to(admin::revoke_grant)),
                )
                .service(
                    resource("/trusted_issuers")
                        .route(web::get().to(admin::list_issuers))
                        .route(web::post().to(admin::create_issuer)),
                )
                .service(
                    resource("/trusted_issuers/{id}")
                        .route(web::get().to(admin::get_issuer))
                        .route(web::delete().to(admin::delete_issuer)),
                )
                .service(
                    resource("/resources")
                        .route(web::get().to(admin::list_resources))
                        .route(web::post().to(admin::create_resource)),
                )
                .service(
                    resource("/resources/{id}")
                        .route(web::get().to(admin::get_resource))
                        .route(web::patch().to(admin::update_resource))
                        .route(web::delete().to(admin::delete_resource)),
                )
                .service(
                    resource("/resources/{id}/protected-resource-metadata")
                        .route(web::get().to(admin::resource_metadata)),
                )
                .service(
                    resource("/clients")
                        .route(web::get().to(admin::list_clients))
                        .route(web::post().to(admin::create_client)),
                )
                .service(
                    resource("/clients/{id}")
                        .route(web::get().to(admin::get_client))
                        .route(web::delete().to(admin::delete_client)),
                )
                .service(resource("/oauth/register").route(web::post().to(register::register)))
                // What other agent platforms offer (README, "Coming from another agent platform").
                .service(
                    resource("/settings")
                        .route(web::get().to(agents::get_settings))
                        .route(web::patch().to(agents::update_settings)),
                )
                .service(
                    resource("/api_keys/{id}/approve").route(web::post().to(agents::approve_key)),
                )
                .service(resource("/user/me/proof").route(web::get().to(agents::proof)))
                .service(
                    resource("/.well-known/identity-jwks.json")
                        .route(web::get().to(agents::identity_jwks)),
                )
                .service(resource("/register").route(web::post().to(agents::register_agent))),
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
