//! Request ids and the request's root span. tracing-actix-web generates the id; this module
//! makes it the `X-Request-Id` response header, the `request_id` of error bodies and audit
//! events, and a field of the root span (so every log line of the request carries it). The
//! span records method and path only: never the query string, never a header value.

use std::future::Future;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled on this task, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The id tracing-actix-web gave the request.
pub fn of(req: &ServiceRequest) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// Runs `fut` with `id` available to [`current`], and sets the response header.
pub fn scope<F, B>(id: String, fut: F) -> impl Future<Output = Result<ServiceResponse<B>, Error>>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    let header = HeaderValue::from_str(&id).ok();
    REQUEST_ID.scope(id, async move {
        let mut res = fut.await?;
        if let Some(value) = header {
            res.headers_mut().insert(HEADER, value);
        }
        Ok(res)
    })
}

struct Started(Instant);

/// The root span of every request.
pub struct KeygateRootSpan;

impl RootSpanBuilder for KeygateRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = of(request);
        request.extensions_mut().insert(Started(Instant::now()));
        tracing::info_span!(
            "request",
            request_id = %request_id,
            method = %request.method(),
            path = %request.path(),
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let _enter = span.enter();
        match outcome {
            Ok(response) => {
                let micros = response
                    .request()
                    .extensions()
                    .get::<Started>()
                    .map(|s| s.0.elapsed().as_micros())
                    .unwrap_or_default();
                let status = response.status().as_u16();
                if status >= 500 {
                    tracing::warn!(status, micros, "request failed");
                } else {
                    tracing::info!(status, micros, "request finished");
                }
            }
            Err(err) => tracing::warn!(error = %err, "request failed"),
        }
    }
}
