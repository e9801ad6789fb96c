//! The `RateLimit-Policy` and `RateLimit` response headers (IETF httpapi
//! ratelimit-headers draft, structured-field lists: `"issuance-per-minute";q=600;w=60` and
//! `"issuance-per-minute";r=599;t=1`) on every response of an endpoint whose request was
//! counted against a rate limit, admitted or refused. The limits themselves are
//! `crate::limits`; this only opens the request's report and writes what it holds.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;

use crate::limits::report;

pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

pub async fn ratelimit_headers_middleware<B>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error>
where
    B: MessageBody,
{
    let (res, report) = report::scope(next.call(req)).await;
    let mut res = res?;
    if let Some(report) = report.filter(|r| !r.states.is_empty()) {
        let headers = res.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&report.policy_header()) {
            headers.insert(RATELIMIT_POLICY, value);
        }
        if let Ok(value) = HeaderValue::from_str(&report.limit_header()) {
            headers.insert(RATELIMIT, value);
        }
    }
    Ok(res)
}
