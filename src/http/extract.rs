//! The authentication extractor every protected endpoint takes: parses `Authorization`
//! and hands the credential to [`crate::auth::access::authenticate`].

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use super::error::ApiError;
use crate::auth::access::{AccessError, Caller, Presented, authenticate};
use crate::state::AppState;

/// A caller whose access token verified for the organization in the path.
pub struct Authenticated(pub Caller);

/// RFC 6750 §2.1 `b64token`.
fn is_b64token(s: &str) -> bool {
    !s.is_empty()
        && s.trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

fn bearer_token(req: &HttpRequest) -> Result<String, AccessError> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let value = values.next().ok_or(AccessError::Missing)?;
    if values.next().is_some() {
        return Err(AccessError::MalformedHeader);
    }
    let value = value.to_str().map_err(|_| AccessError::MalformedHeader)?;
    let (scheme, token) = value.split_once(' ').ok_or(AccessError::MalformedHeader)?;
    let token = token.trim_start_matches(' ');
    if !scheme.eq_ignore_ascii_case("bearer") || !is_b64token(token) {
        return Err(AccessError::MalformedHeader);
    }
    Ok(token.to_owned())
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let org = req.match_info().get("org").unwrap_or_default().to_owned();
        let token = bearer_token(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(&AccessError::Missing))?;
            let token = token?;
            Ok(Authenticated(
                authenticate(&state, &org, Presented::Bearer(&token)).await?,
            ))
        })
    }
}
