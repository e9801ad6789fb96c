//! Who made a request: the client IP (the peer, or the right-most untrusted
//! `X-Forwarded-For` address behind `server.trusted_proxies`), the user agent and the request
//! id, as the audit log and the throttles take them. Extractors and handlers both read it, so
//! it lives apart from either.

use actix_web::http::header::HeaderMap;
use actix_web::{HttpRequest, web};

use super::request_id;
use crate::audit::RequestMeta;
use crate::state::AppState;

/// A header's value as received; a value that is not visible ASCII is passed on as
/// something no check accepts, rather than as absent.
pub(super) fn header_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"))
}

/// The client's IP: the peer, or behind a trusted proxy the right-most untrusted
/// `X-Forwarded-For` address (`server.trusted_proxies`).
pub fn client_ip(req: &HttpRequest) -> Option<String> {
    let peer = req.peer_addr()?.ip();
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return Some(peer.to_string());
    };
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok());
    Some(
        state
            .throttle
            .proxies()
            .client_ip(peer, forwarded)
            .to_string(),
    )
}

/// Who made the request (client IP, truncated user agent, request id), for audit and
/// throttling.
pub fn request_meta(req: &HttpRequest) -> RequestMeta {
    RequestMeta {
        ip: client_ip(req),
        user_agent: header_value(req.headers(), "user-agent")
            .map(|ua| ua.chars().take(256).collect()),
        request_id: request_id::current(),
    }
}
