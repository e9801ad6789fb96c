//! The authentication extractor every protected endpoint takes: parses `Authorization`
//! and hands the credential to [`crate::auth::access::authenticate`].

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};

use super::error::ApiError;
use super::{WantsDpopNonce, current_nonce};
use crate::auth::TokenType;
use crate::auth::access::{AccessError, Caller, Presented, authenticate};
use crate::auth::dpop::DpopError;
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

/// The scheme and token of `Authorization: Bearer …` or `Authorization: DPoP …`.
fn authorization(req: &HttpRequest) -> Result<(TokenType, String), AccessError> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let value = values.next().ok_or(AccessError::Missing)?;
    if values.next().is_some() {
        return Err(AccessError::MalformedHeader);
    }
    let value = value.to_str().map_err(|_| AccessError::MalformedHeader)?;
    let (scheme, token) = value.split_once(' ').ok_or(AccessError::MalformedHeader)?;
    let token = token.trim_start_matches(' ');
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        TokenType::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        TokenType::DPoP
    } else {
        return Err(AccessError::MalformedHeader);
    };
    if !is_b64token(token) {
        return Err(AccessError::MalformedHeader);
    }
    Ok((scheme, token.to_owned()))
}

/// The scheme the client used, so a failure is answered with a challenge in its scheme.
fn scheme_hint(req: &HttpRequest) -> TokenType {
    let dpop = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.len() > 5 && v[..5].eq_ignore_ascii_case("dpop "));
    if dpop || req.headers().contains_key("dpop") {
        TokenType::DPoP
    } else {
        TokenType::Bearer
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let org = req.match_info().get("org").unwrap_or_default().to_owned();
        let credential = authorization(req);
        let hint = scheme_hint(req);
        let proofs: Vec<Vec<u8>> = req
            .headers()
            .get_all("dpop")
            .map(|v| v.as_bytes().to_vec())
            .collect();
        let method = req.method().as_str().to_owned();
        let path = req.path().to_owned();
        let request = req.clone();
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(&AccessError::Missing))?;
            let result = async {
                let (scheme, token) = credential?;
                let proofs: Vec<&[u8]> = proofs.iter().map(Vec::as_slice).collect();
                let presented = Presented {
                    scheme,
                    token: &token,
                    dpop: &proofs,
                    method: &method,
                    path: &path,
                };
                authenticate(&state, &org, presented).await
            }
            .await;
            match result {
                Ok(caller) => {
                    if caller.dpop_policy.nonce {
                        request.extensions_mut().insert(WantsDpopNonce);
                    }
                    Ok(Authenticated(caller))
                }
                Err(err) => {
                    let nonce = matches!(err, AccessError::Dpop(DpopError::UseNonce))
                        .then(|| current_nonce(&state))
                        .flatten();
                    Err(
                        ApiError::from_access(err, hint, state.settings.dpop.required)
                            .with_nonce(nonce),
                    )
                }
            }
        })
    }
}
