//! Client authentication at the OAuth endpoints (RFC 6749 §2.3.1): `client_id` = API key
//! id and `client_secret` = API key, by HTTP Basic (each part form-urlencoded before the
//! base64) or in the form, never both. Failed authentications that could be a guess (a
//! well-formed secret that matched nothing) count toward the brute-force throttle of the
//! client id and the client IP, which is checked before the database.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use entity::organization;

use super::form::Params;
use super::{ErrorCode, OAuthError};
use crate::auth::credential::{self, CredentialError, KeyHolder};
use crate::ids::is_id;
use crate::keys::api_key::PlainApiKey;
use crate::state::AppState;

/// The credentials a request presented.
pub struct Presented {
    pub client_id: String,
    secret: String,
    /// Sent by HTTP Basic (`client_secret_basic`).
    pub basic: bool,
}

fn form_decode(part: &str) -> String {
    url::form_urlencoded::parse(format!("x={part}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Reads the credentials from `Authorization: Basic` or the form; `None` when neither.
pub fn presented(
    authorization: Option<&str>,
    params: &Params,
) -> Result<Option<Presented>, OAuthError> {
    let basic = authorization
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"));
    let in_form = params.get("client_secret").is_some();
    match basic {
        Some(_) if in_form => Err(OAuthError::invalid_request(
            "use one client authentication method, not Basic and the form together",
        )),
        Some((_, encoded)) => {
            let invalid = || {
                OAuthError::new(
                    ErrorCode::InvalidClient,
                    "the Basic credentials are malformed",
                )
                .with_basic(true)
            };
            let decoded = STANDARD.decode(encoded.trim()).map_err(|_| invalid())?;
            let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
            let (id, secret) = decoded.split_once(':').ok_or_else(invalid)?;
            Ok(Some(Presented {
                client_id: form_decode(id),
                secret: form_decode(secret),
                basic: true,
            }))
        }
        None => match (params.get("client_id"), params.get("client_secret")) {
            (Some(id), Some(secret)) => Ok(Some(Presented {
                client_id: id.to_owned(),
                secret: secret.to_owned(),
                basic: false,
            })),
            (None, None) => Ok(None),
            _ => Err(OAuthError::new(
                ErrorCode::InvalidClient,
                "client_id and client_secret are both required",
            )),
        },
    }
}

/// Authenticates presented credentials against `org`'s API keys, from client IP `ip`.
pub async fn authenticate(
    state: &AppState,
    org: &organization::Model,
    presented: &Presented,
    ip: Option<&str>,
) -> Result<KeyHolder, OAuthError> {
    let fail = |description: &str| {
        OAuthError::new(ErrorCode::InvalidClient, description).with_basic(presented.basic)
    };
    let secret =
        PlainApiKey::parse(&presented.secret).map_err(|_| fail("client authentication failed"))?;
    let key_id = Some(presented.client_id.as_str()).filter(|id| is_id(id, "key"));
    state
        .throttle
        .check(key_id, ip)
        .map_err(|t| OAuthError::rate_limited(t.retry_after))?;
    credential::check_key(state, org, &presented.client_id, &secret)
        .await
        .map_err(|e| match e {
            CredentialError::Storage(e) => e.into(),
            CredentialError::Expired => fail("the client's API key has expired"),
            CredentialError::Revoked => fail("the client's API key has been revoked"),
            CredentialError::Invalid => {
                state.throttle.fail(key_id, ip);
                fail("client authentication failed")
            }
            CredentialError::PermissionDenied => fail("client authentication failed"),
        })
}

/// Authentication required: no credentials is `invalid_client` too.
pub async fn require(
    state: &AppState,
    org: &organization::Model,
    authorization: Option<&str>,
    params: &Params,
    ip: Option<&str>,
) -> Result<KeyHolder, OAuthError> {
    let presented = presented(authorization, params)?.ok_or_else(|| {
        OAuthError::new(
            ErrorCode::InvalidClient,
            "client authentication is required",
        )
        .with_basic(true)
    })?;
    authenticate(state, org, &presented, ip).await
}
