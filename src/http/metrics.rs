//! `GET /metrics` and the recording of every HTTP request (`keygate_http_requests_total`,
//! `keygate_http_request_duration_seconds`). Must not: label a request with anything but its
//! method, its route template (never the path, which holds organization slugs and ids) and
//! its status; or serve metrics on the main listener to anyone but loopback peers (and no
//! request a proxy relayed) unless `metrics.public` says so.

use std::net::SocketAddr;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use metrics::{SharedString, counter, histogram};

use super::error::ApiError;
use crate::metrics::{HTTP_DURATION, HTTP_REQUESTS, Metrics, UNMATCHED_ROUTE};
use crate::state::AppState;

/// Content type of the Prometheus text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Records each request's method, route template, status and duration.
pub async fn record_middleware<B>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error>
where
    B: MessageBody,
{
    let start = Instant::now();
    let method = method_label(req.method());
    let result = next.call(req).await;
    let seconds = start.elapsed().as_secs_f64();
    let (route, status) = match &result {
        Ok(res) => (res.request().match_pattern(), res.status()),
        Err(err) => (None, err.as_response_error().status_code()),
    };
    record(method, route, status, seconds);
    result
}

/// One request's two metrics. `route` is actix's matched template (`/v1/{org}/user/me`),
/// `None` when no route matched.
pub fn record(method: &'static str, route: Option<String>, status: StatusCode, seconds: f64) {
    let route: SharedString = route.map_or(SharedString::const_str(UNMATCHED_ROUTE), Into::into);
    histogram!(HTTP_DURATION, "route" => route.clone()).record(seconds);
    counter!(HTTP_REQUESTS, "method" => method, "route" => route, "status" => status_label(status))
        .increment(1);
}

/// The method label: the standard methods, anything else `other` (a client cannot invent
/// label values).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn status_label(status: StatusCode) -> SharedString {
    let label = match status.as_u16() {
        200 => "200",
        201 => "201",
        204 => "204",
        302 => "302",
        303 => "303",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        413 => "413",
        415 => "415",
        429 => "429",
        500 => "500",
        503 => "503",
        other => return SharedString::from_owned(other.to_string()),
    };
    SharedString::const_str(label)
}

/// Whether a TCP peer is this machine (IPv4-mapped IPv6 loopback included).
fn is_loopback(peer: Option<SocketAddr>) -> bool {
    peer.is_some_and(|p| p.ip().to_canonical().is_loopback())
}

/// Whether a proxy relayed the request (`X-Forwarded-For` or `Forwarded`, RFC 7239).
fn is_relayed(req: &HttpRequest) -> bool {
    let headers = req.headers();
    headers.contains_key("x-forwarded-for") || headers.contains_key(header::FORWARDED)
}

fn exposition(metrics: &Metrics, state: &AppState) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, TEXT_FORMAT))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(metrics.render(state.dpop.replay_entries()))
}

/// `GET /metrics` on the main listener.
#[utoipa::path(
    get, path = "/metrics", tag = "Operations", summary = "Prometheus metrics",
    description = "The Prometheus text format (README, \"Running in production\"). On the main listener only for loopback peers (the TCP peer address; `X-Forwarded-For` is not believed here, and a request relayed by a proxy, with `X-Forwarded-For` or `Forwarded`, is refused) unless `metrics.public = true`; with `metrics.bind` set, served on that address instead and not here.",
    responses(
        (status = 200, description = "Every metric", content_type = "text/plain"),
        (status = 403, description = "`permission_denied`: the peer is not loopback, or a proxy relayed the request, and `metrics.public` is off", body = super::schema::ErrorBody),
        (status = 404, description = "`not_found`: metrics are off, or served on `metrics.bind`", body = super::schema::ErrorBody),
    )
)]
pub async fn main_listener(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let settings = &state.settings.metrics;
    let Some(metrics) = state.metrics.as_ref().filter(|_| settings.bind.is_none()) else {
        return Err(ApiError::not_found("no such endpoint"));
    };
    // The TCP peer, never X-Forwarded-For; and a request a proxy relayed (even one on this
    // host) is someone else's, so a proxy in front never opens this to the world.
    if !settings.public && (!is_loopback(req.peer_addr()) || is_relayed(&req)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "metrics are served to loopback peers only (set metrics.public, or metrics.bind)",
        ));
    }
    Ok(exposition(metrics, &state))
}

/// `GET /metrics` on the listener of `metrics.bind`: whoever reaches that address may scrape.
pub async fn own_listener(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let metrics = state
        .metrics
        .as_ref()
        .ok_or_else(|| ApiError::not_found("no such endpoint"))?;
    Ok(exposition(metrics, &state))
}

/// The routes of the `metrics.bind` listener: `/metrics` and nothing else.
pub fn own_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metrics").route(web::get().to(own_listener)))
        .default_service(web::to(super::handlers::not_found));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_the_peer_address_in_both_families() {
        assert!(is_loopback("127.0.0.1:5000".parse().ok()));
        assert!(is_loopback("[::1]:5000".parse().ok()));
        assert!(is_loopback("[::ffff:127.0.0.1]:5000".parse().ok()));
        assert!(!is_loopback("10.0.0.7:5000".parse().ok()));
        assert!(!is_loopback("[::ffff:10.0.0.7]:5000".parse().ok()));
        assert!(!is_loopback(None));
    }

    #[test]
    fn unusual_methods_and_statuses_are_labelled_without_client_text() {
        assert_eq!(
            method_label(&Method::from_bytes(b"KEY_abc").unwrap()),
            "other"
        );
        assert_eq!(status_label(StatusCode::IM_A_TEAPOT).as_ref(), "418");
        assert_eq!(status_label(StatusCode::OK).as_ref(), "200");
    }
}
