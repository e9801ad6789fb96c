//! Client authentication at the OAuth endpoints: `client_id` = API key id and
//! `client_secret` = API key (RFC 6749 §2.3.1), by HTTP Basic (each part form-urlencoded
//! before the base64) or in the form; or, for a key-pair client, a signed JWT in
//! `client_assertion` (`private_key_jwt`, RFC 7523 §2.2, checked by
//! [`crate::auth::client_assertion`]). Exactly one method per request (RFC 6749 §2.3):
//! two together are `invalid_request`. Failed authentications that could be a guess (a
//! well-formed secret that matched nothing, a refused assertion) count toward the
//! brute-force throttle of the client id and the client IP, which is checked before the
//! database.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use entity::organization;

use super::form::Params;
use super::{ErrorCode, OAuthError};
use crate::auth::client_assertion::{self, ASSERTION_TYPE, Asserted, AssertionError};
use crate::auth::credential::{self, CredentialError, KeyHolder};
use crate::ids::is_id;
use crate::keys::api_key::PlainApiKey;
use crate::state::AppState;

/// The credentials a request presented.
pub struct Presented {
    /// The client id sent with them (for an assertion, the form's `client_id`, optional).
    client_id: Option<String>,
    proof: Proof,
    /// Sent by HTTP Basic (`client_secret_basic`).
    pub basic: bool,
}

enum Proof {
    Secret(String),
    /// A `client_assertion` (its type checked already).
    Assertion(String),
}

impl Presented {
    /// The client id sent with the credentials (Basic's user name, or the form's).
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// The client secret, when the client presented one.
    pub fn secret(&self) -> Option<&str> {
        match &self.proof {
            Proof::Secret(s) => Some(s),
            Proof::Assertion(_) => None,
        }
    }

    /// The `client_assertion` JWT, when the client presented one.
    pub fn assertion(&self) -> Option<&str> {
        match &self.proof {
            Proof::Assertion(jwt) => Some(jwt),
            Proof::Secret(_) => None,
        }
    }
}

fn form_decode(part: &str) -> String {
    url::form_urlencoded::parse(format!("x={part}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Reads the credentials from `Authorization: Basic`, the form's `client_secret`, or the
/// form's `client_assertion`; `None` when none.
pub fn presented(
    authorization: Option<&str>,
    params: &Params,
) -> Result<Option<Presented>, OAuthError> {
    let basic = authorization
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"));
    let in_form = params.get("client_secret").is_some();
    let assertion = (
        params.get("client_assertion_type"),
        params.get("client_assertion"),
    );
    if assertion != (None, None) {
        if basic.is_some() || in_form {
            return Err(OAuthError::invalid_request(
                "use one client authentication method: a client_assertion, or a client secret",
            ));
        }
        return match assertion {
            (Some(ASSERTION_TYPE), Some(jwt)) => Ok(Some(Presented {
                client_id: params.get("client_id").map(str::to_owned),
                proof: Proof::Assertion(jwt.to_owned()),
                basic: false,
            })),
            (Some(_), Some(_)) => Err(OAuthError::new(
                ErrorCode::InvalidClient,
                format!("client_assertion_type must be {ASSERTION_TYPE}"),
            )),
            _ => Err(OAuthError::invalid_request(
                "client_assertion_type and client_assertion go together",
            )),
        };
    }
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
                client_id: Some(form_decode(id)),
                proof: Proof::Secret(form_decode(secret)),
                basic: true,
            }))
        }
        None => match (params.get("client_id"), params.get("client_secret")) {
            (Some(id), Some(secret)) => Ok(Some(Presented {
                client_id: Some(id.to_owned()),
                proof: Proof::Secret(secret.to_owned()),
                basic: false,
            })),
            (None, None) => Ok(None),
            // A public browser client names itself with `client_id` alone (RFC 6749 §2.3,
            // §3.2.1); an API key client always authenticates.
            (Some(id), None) if !is_id(id, "key") => Ok(None),
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
    let secret = match &presented.proof {
        Proof::Assertion(jwt) => {
            let client_id = presented.client_id.as_deref();
            return match client_assertion::authenticate(state, org, jwt, client_id, ip).await {
                Ok(Asserted::Key(holder)) => Ok(*holder),
                // A browser client's assertion: not a client of these endpoints.
                Ok(Asserted::Client(_)) => Err(assertion_error(AssertionError::UnknownClient)),
                Err(e) => Err(assertion_error(e)),
            };
        }
        Proof::Secret(secret) => secret,
    };
    let client_id = presented.client_id.as_deref().unwrap_or_default();
    let secret = PlainApiKey::parse(secret).map_err(|_| fail("client authentication failed"))?;
    let key_id = Some(client_id).filter(|id| is_id(id, "key"));
    state
        .throttle
        .check(key_id, ip)
        .map_err(|t| OAuthError::rate_limited(t.retry_after))?;
    credential::check_key(state, org, client_id, &secret)
        .await
        .map_err(|e| match e {
            CredentialError::Storage(e) => e.into(),
            CredentialError::Expired => fail("the client's API key has expired"),
            CredentialError::Revoked => fail("the client's API key has been revoked"),
            CredentialError::Pending => {
                fail("the client's API key is pending an administrator's approval")
            }
            CredentialError::Invalid => {
                state.throttle.fail(key_id, ip);
                fail("client authentication failed")
            }
            CredentialError::PermissionDenied => fail("client authentication failed"),
        })
}

fn assertion_error(err: AssertionError) -> OAuthError {
    match err {
        AssertionError::Storage(e) => e.into(),
        AssertionError::Throttled { retry_after } => OAuthError::rate_limited(retry_after),
        AssertionError::ReplayStoreUnavailable => OAuthError {
            retry_after: Some(u64::from(crate::auth::dpop::REPLAY_RETRY_AFTER_SECS)),
            ..OAuthError::new(ErrorCode::TemporarilyUnavailable, err.to_string())
        },
        other => OAuthError::new(ErrorCode::InvalidClient, other.to_string()),
    }
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

/// Whether the client a request names (the Basic user name, the form's `client_id`) is a
/// browser client: an id that is not an API key's. Such a request is identified with
/// [`identify`]; others authenticate an API key client as before browser clients existed.
pub fn names_browser_client(
    authorization: Option<&str>,
    params: &Params,
) -> Result<bool, OAuthError> {
    let presented = presented(authorization, params)?;
    let named = presented
        .as_ref()
        .and_then(Presented::client_id)
        .or_else(|| params.get("client_id"))
        .map(str::to_owned)
        // A lone assertion names its client by its `sub`, as in `identify`.
        .or_else(|| {
            presented
                .as_ref()
                .and_then(Presented::assertion)
                .and_then(client_assertion::unverified_subject)
        });
    Ok(named.is_some_and(|id| !is_id(&id, "key")))
}

/// The client of a token or device authorization request that any kind of client may make
/// (`authorization_code`, RFC 8628): an API key client, or a client of the browser flows.
pub enum Identified {
    Key(Box<KeyHolder>),
    Client(crate::clients::Client),
}

/// Identifies the client of a request: an API key client (`key_…`) by its usual client
/// authentication; any other `client_id` by [`crate::clients::authenticate`]. A public
/// client sends only its `client_id` in the form (OAuth 2.1 §2.4.1, RFC 6749 §4.1.3); a
/// client assertion sent without `client_id` names its client by its `sub` (RFC 7521 §4.2).
pub async fn identify(
    state: &AppState,
    org: &organization::Model,
    authorization: Option<&str>,
    params: &Params,
    ip: Option<&str>,
) -> Result<Identified, OAuthError> {
    let has_basic = authorization
        .and_then(|h| h.split_once(' '))
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"));
    let bare = !has_basic
        && ["client_secret", "client_assertion", "client_assertion_type"]
            .iter()
            .all(|p| params.get(p).is_none());
    let presented = if bare {
        None
    } else {
        presented(authorization, params)?
    };
    let client_id = presented
        .as_ref()
        .and_then(Presented::client_id)
        .or_else(|| params.get("client_id"))
        .map(str::to_owned)
        .or_else(|| {
            presented
                .as_ref()
                .and_then(Presented::assertion)
                .and_then(client_assertion::unverified_subject)
        });
    let basic = presented.as_ref().is_some_and(|p| p.basic);
    match (client_id, &presented) {
        (Some(id), _) if !is_id(&id, "key") => {
            crate::clients::authenticate(state, org, &id, presented.as_ref(), ip)
                .await
                .map(Identified::Client)
                .map_err(|e| match e {
                    crate::clients::ClientError::Storage(e) => e.into(),
                    crate::clients::ClientError::Assertion(e) => assertion_error(e),
                    crate::clients::ClientError::Throttled { retry_after } => {
                        OAuthError::rate_limited(retry_after)
                    }
                    other => OAuthError::new(ErrorCode::InvalidClient, other.to_string())
                        .with_basic(basic),
                })
        }
        (_, Some(presented)) => authenticate(state, org, presented, ip)
            .await
            .map(|k| Identified::Key(Box::new(k))),
        (_, None) => Err(OAuthError::new(
            ErrorCode::InvalidClient,
            "client authentication is required",
        )
        .with_basic(true)),
    }
}
