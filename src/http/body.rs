//! The JSON body of admin requests, with errors in keygate's error format (README, "Errors"): a body must be
//! `application/json` (415), at most 64 KiB (413), valid JSON, and match the request type
//! exactly (unknown fields are refused with their name). An empty body reads as `{}`, so
//! requests whose fields are all optional need no body at all.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::JSON_LIMIT;
use super::error::ApiError;

/// A request body: the typed value and the JSON it came from (for idempotency).
pub struct JsonBody<T> {
    pub value: T,
    pub json: Value,
}

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .is_some_and(|m| {
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json_type = is_json(req);
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await.map_err(|err| {
                if err.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "invalid_request",
                        format!("the request body is larger than {JSON_LIMIT} bytes"),
                    )
                } else {
                    ApiError::invalid_request("the request body could not be read")
                }
            })?;
            let json = if bytes.iter().all(u8::is_ascii_whitespace) {
                Value::Object(serde_json::Map::new())
            } else if !json_type {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "invalid_request",
                    "the request body must be application/json",
                ));
            } else {
                serde_json::from_slice(&bytes).map_err(|e| {
                    ApiError::invalid_request(format!("the request body is not valid JSON: {e}"))
                })?
            };
            if !json.is_object() {
                return Err(ApiError::invalid_request(
                    "the request body must be a JSON object",
                ));
            }
            let value = serde_path_to_error::deserialize(&json).map_err(|e| {
                let path = e.path().to_string();
                let message = if path == "." {
                    format!("the request body is not valid: {}", e.inner())
                } else {
                    format!("`{path}`: {}", e.inner())
                };
                ApiError::invalid_request(message)
            })?;
            Ok(Self { value, json })
        })
    }
}
