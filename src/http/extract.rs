//! The authentication extractor every protected endpoint takes: parses `Authorization`
//! (Bearer, DPoP or Basic) and `X-ORG-ID`, and hands the credential to
//! [`crate::auth::access::authenticate`]. There is no other way into a protected endpoint.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::error::{ApiError, Challenge};
use super::request_meta::request_meta;
use super::{WantsDpopNonce, current_nonce};
use crate::auth::TokenType;
use crate::auth::access::{AccessError, Caller, Credential, Presented, authenticate};
use crate::auth::dpop::DpopError;
use crate::state::AppState;
use crate::types::Slug;

/// A caller whose credential verified for the organization in the path.
pub struct Authenticated(pub Caller);

/// The longest `Authorization` header keygate reads (a Basic credential holding a large
/// identity-provider token fits several times over).
const MAX_AUTHORIZATION: usize = 8 * 1024;

/// RFC 6750 §2.1 `b64token`.
fn is_b64token(s: &str) -> bool {
    !s.is_empty()
        && s.trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// An `Authorization` header, owned (the extractor's future outlives the request borrow).
enum Parsed {
    Token {
        scheme: TokenType,
        token: String,
    },
    Basic {
        org: String,
        user_id: String,
        token: String,
    },
}

/// Cross-organization access: `base64("{org}_{user_id}:{token}")`, decoded strictly (canonical padding,
/// UTF-8), split at the first `:` and the username at the first `_`; every part non-empty.
fn basic(encoded: &str) -> Result<Parsed, AccessError> {
    let decoded = STANDARD
        .decode(encoded)
        .map_err(|_| AccessError::MalformedBasic)?;
    let decoded = String::from_utf8(decoded).map_err(|_| AccessError::MalformedBasic)?;
    let (username, token) = decoded.split_once(':').ok_or(AccessError::MalformedBasic)?;
    let (org, user_id) = username
        .split_once('_')
        .ok_or(AccessError::MalformedBasic)?;
    if Slug::parse(org).is_err() || user_id.is_empty() || !is_b64token(token) {
        return Err(AccessError::MalformedBasic);
    }
    Ok(Parsed::Basic {
        org: org.to_owned(),
        user_id: user_id.to_owned(),
        token: token.to_owned(),
    })
}

fn authorization(req: &HttpRequest) -> Result<Parsed, AccessError> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let value = values.next().ok_or(AccessError::Missing)?;
    if values.next().is_some() || value.len() > MAX_AUTHORIZATION {
        return Err(AccessError::MalformedHeader);
    }
    let value = value.to_str().map_err(|_| AccessError::MalformedHeader)?;
    let (scheme, token) = value.split_once(' ').ok_or(AccessError::MalformedHeader)?;
    let token = token.trim_start_matches(' ');
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        TokenType::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        TokenType::DPoP
    } else if scheme.eq_ignore_ascii_case("basic") {
        return basic(token);
    } else {
        return Err(AccessError::MalformedHeader);
    };
    if !is_b64token(token) {
        return Err(AccessError::MalformedHeader);
    }
    Ok(Parsed::Token {
        scheme,
        token: token.to_owned(),
    })
}

/// `X-ORG-ID`: at most one, an organization slug.
fn x_org_id(req: &HttpRequest) -> Result<Option<String>, AccessError> {
    let mut values = req.headers().get_all("x-org-id");
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AccessError::MalformedHeader);
    }
    let slug = value
        .to_str()
        .ok()
        .and_then(|v| Slug::parse(v.trim()).ok())
        .ok_or(AccessError::MalformedHeader)?;
    Ok(Some(slug.as_str().to_owned()))
}

/// The scheme the client used, so a failure is answered with a challenge in its scheme.
fn scheme_hint(req: &HttpRequest) -> Challenge {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let scheme = value.split(|b| *b == b' ').next().unwrap_or_default();
    if scheme.eq_ignore_ascii_case(b"basic") {
        Challenge::Basic
    } else if scheme.eq_ignore_ascii_case(b"dpop") || req.headers().contains_key("dpop") {
        Challenge::DPoP
    } else {
        Challenge::Bearer
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let org = req.match_info().get("org").unwrap_or_default().to_owned();
        let credential = authorization(req);
        let x_org = x_org_id(req);
        let hint = scheme_hint(req);
        let proofs: Vec<Vec<u8>> = req
            .headers()
            .get_all("dpop")
            .map(|v| v.as_bytes().to_vec())
            .collect();
        let method = req.method().as_str().to_owned();
        let path = req.path().to_owned();
        let meta = request_meta(req);
        let request = req.clone();
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(&AccessError::Missing))?;
            let result = async {
                let parsed = credential?;
                let x_org = x_org?;
                let proofs: Vec<&[u8]> = proofs.iter().map(Vec::as_slice).collect();
                let credential = match &parsed {
                    Parsed::Token { scheme, token } => Credential::Token {
                        scheme: *scheme,
                        token,
                    },
                    Parsed::Basic {
                        org,
                        user_id,
                        token,
                    } => Credential::Basic {
                        org,
                        user_id,
                        token,
                    },
                };
                let presented = Presented {
                    credential,
                    x_org_id: x_org.as_deref(),
                    dpop: &proofs,
                    method: &method,
                    path: &path,
                    meta,
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
