//! Writing clients: the one place a client row is created, for an admin (`POST
//! /v1/{org}/clients`, the CLI) and for RFC 7591 dynamic registration, and the dynamic
//! registration itself ([`register`]): open (no initial access token) but off unless the
//! organization turns it on, and throttled per client IP.

use std::num::NonZeroU32;
use std::sync::Arc;

use entity::{client, organization};
use governor::clock::Clock as _;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use serde_json::Value;

use super::metadata::{self, Metadata, MetadataError, Requested};
use super::secret::ClientSecret;
use super::{ClientAuth, ClientSource};
use crate::audit::{AuditEvent, RequestMeta};
use crate::auth::cross_org::AppClock;
use crate::clock::Clock;
use crate::config::ClientSettings;
use crate::ids::new_id;
use crate::secrets::Pepper;
use crate::state::AppState;
use crate::storage::{self, Storage, StorageError};

/// RFC 8628 §7.2: the device authorization grant type.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The grant types a browser client may register (RFC 7591 §2 `grant_types`).
pub const GRANT_TYPES: &[&str] = &["authorization_code", "refresh_token", DEVICE_CODE_GRANT];

/// Past this many tracked IPs, the limiter forgets those back to a full allowance.
const LIMITER_TRACKED: usize = 100_000;

type Limiter = RateLimiter<String, DefaultKeyedStateStore<String>, AppClock, NoOpMiddleware<Nanos>>;

/// The per-IP limit of dynamic registrations, on the application's clock.
pub struct RegistrationLimiter {
    limiter: Limiter,
    clock: AppClock,
}

impl std::fmt::Debug for RegistrationLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrationLimiter")
            .finish_non_exhaustive()
    }
}

impl RegistrationLimiter {
    pub fn new(settings: &ClientSettings, clock: Arc<dyn Clock>) -> Self {
        let per_hour =
            NonZeroU32::new(settings.registrations_per_ip_per_hour).unwrap_or(NonZeroU32::MIN);
        let clock = AppClock(clock);
        Self {
            limiter: RateLimiter::new(
                Quota::per_hour(per_hour),
                DefaultKeyedStateStore::default(),
                clock.clone(),
            ),
            clock,
        }
    }

    /// Takes one registration from `ip`'s allowance; `Err(seconds)` until the next one.
    fn admit(&self, ip: Option<&str>) -> Result<(), u64> {
        if self.limiter.len() > LIMITER_TRACKED {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&ip.unwrap_or("unknown").to_owned())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(self.clock.now());
                wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
            })
    }
}

/// A client just created: the only moment its secret exists in plain text.
#[derive(Debug)]
pub struct Created {
    pub client: client::Model,
    pub secret: Option<ClientSecret>,
}

/// Stores a client with checked `metadata` in `org`: a `client_secret_basic` client gets a
/// new secret (stored as its digest only).
pub async fn create(
    storage: &Storage,
    pepper: &Pepper,
    clock: &dyn Clock,
    org: &organization::Model,
    metadata: Metadata,
    source: ClientSource,
) -> Result<Created, StorageError> {
    let secret = (metadata.auth == ClientAuth::ClientSecretBasic).then(ClientSecret::generate);
    let model = client::Model {
        id: new_id("cli"),
        org_id: org.id.clone(),
        name: metadata.name,
        redirect_uris: serde_json::to_string(&metadata.redirect_uris)
            .unwrap_or_else(|_| "[]".into()),
        auth_method: metadata.auth.as_str().to_owned(),
        secret_digest: secret.as_ref().map(|s| s.digest(pepper).0),
        public_jwks: metadata.jwks.map(|j| j.to_json()),
        scope: metadata.scope,
        source: source.as_str().to_owned(),
        created_at: clock.now(),
    };
    let client = storage::clients::insert(storage, model).await?;
    Ok(Created { client, secret })
}

#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// The organization has not turned dynamic registration on (answered as 404).
    #[error("dynamic client registration is not enabled for this organization")]
    NotEnabled,
    /// `invalid_redirect_uri` or `invalid_client_metadata` (RFC 7591 §3.2.2).
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("too many client registrations from this address; retry after {retry_after} seconds")]
    Throttled { retry_after: u64 },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A dynamic registration done: the client, its secret when confidential, and the grant
/// and response types it registered (RFC 7591 §3.2.1 answers them).
#[derive(Debug)]
pub struct Registered {
    pub created: Created,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
}

/// The RFC 7591 §2 metadata of a registration request, checked: unknown members are
/// ignored (§2), known ones of the wrong type refused.
fn read_request(body: &Value) -> Result<(Metadata, Vec<String>, Vec<String>), MetadataError> {
    let bad = |m: String| MetadataError::Other(m);
    let object = body
        .as_object()
        .ok_or_else(|| bad("the request body must be a JSON object (RFC 7591 §3.1)".into()))?;
    let string = |name: &str| match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(format!("`{name}` must be a string"))),
    };
    let strings = |name: &str| match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| bad(format!("`{name}` must be an array of strings"))),
        Some(_) => Err(bad(format!("`{name}` must be an array of strings"))),
    };
    // RFC 7591 §2: the default grant type is authorization_code, the default response type
    // `code` when that grant is registered.
    let grant_types = strings("grant_types")?.unwrap_or_else(|| vec!["authorization_code".into()]);
    if let Some(other) = grant_types
        .iter()
        .find(|g| !GRANT_TYPES.contains(&g.as_str()))
    {
        return Err(bad(format!(
            "`grant_types`: `{}` is not supported (supported: {})",
            other.chars().take(60).collect::<String>(),
            GRANT_TYPES.join(", ")
        )));
    }
    let code = grant_types.iter().any(|g| g == "authorization_code");
    let response_types = strings("response_types")?
        .unwrap_or_else(|| if code { vec!["code".into()] } else { vec![] });
    if response_types.iter().any(|r| r != "code") {
        return Err(bad("`response_types`: only `code` is supported".into()));
    }
    // RFC 7591 §2.1: the authorization code grant and the `code` response type go together.
    if code != response_types.iter().any(|r| r == "code") {
        return Err(bad(
            "`grant_types` authorization_code and `response_types` code go together (RFC 7591 §2.1)"
                .into(),
        ));
    }
    let metadata = metadata::check(Requested {
        name: string("client_name")?,
        redirect_uris: match object.get("redirect_uris") {
            None | Some(Value::Null) => Vec::new(),
            _ => strings("redirect_uris")
                .map_err(|e| MetadataError::RedirectUri(e.to_string()))?
                .unwrap_or_default(),
        },
        // RFC 7591 §2: the default is client_secret_basic.
        auth: string("token_endpoint_auth_method")?
            .unwrap_or_else(|| ClientAuth::ClientSecretBasic.as_str().to_owned()),
        jwks: object.get("jwks").filter(|v| !v.is_null()).cloned(),
        jwks_uri: object.get("jwks_uri").is_some_and(|v| !v.is_null()),
        scope: string("scope")?,
    })?;
    Ok((metadata, grant_types, response_types))
}

/// RFC 7591 §3: registers the client `body` describes in `org`, for a request from `ip`.
/// Off unless the organization turned it on; the metadata is checked before the per-IP
/// allowance is taken (a refused request costs none); audited as `client.registered`.
pub async fn register(
    state: &AppState,
    org: &organization::Model,
    body: &Value,
    meta: &RequestMeta,
) -> Result<Registered, RegistrationError> {
    if org.dynamic_registration != Some(true) {
        return Err(RegistrationError::NotEnabled);
    }
    let (metadata, grant_types, response_types) = read_request(body)?;
    state
        .clients
        .registrations
        .admit(meta.ip.as_deref())
        .map_err(|retry_after| RegistrationError::Throttled {
            retry_after: retry_after.max(1),
        })?;
    let created = create(
        &state.storage,
        &state.pepper,
        state.clock.as_ref(),
        org,
        metadata,
        ClientSource::Dynamic,
    )
    .await?;
    state.audit.record(AuditEvent {
        org_id: Some(org.id.clone()),
        action: "client.registered",
        success: true,
        target_type: Some("client"),
        target_id: Some(created.client.id.clone()),
        meta: meta.clone(),
        ..AuditEvent::default()
    });
    Ok(Registered {
        created,
        grant_types,
        response_types,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(body: Value) -> Result<(Metadata, Vec<String>, Vec<String>), MetadataError> {
        read_request(&body)
    }

    #[test]
    fn defaults_follow_rfc_7591() {
        let (m, grants, responses) =
            read(json!({"redirect_uris": ["https://a.example/cb"], "unknown": {"x": 1}})).unwrap();
        assert_eq!(m.auth, ClientAuth::ClientSecretBasic);
        assert_eq!(grants, ["authorization_code"]);
        assert_eq!(responses, ["code"]);
        let (m, grants, responses) = read(json!({
            "redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none",
            "grant_types": [DEVICE_CODE_GRANT],
        }))
        .unwrap();
        assert_eq!(m.auth, ClientAuth::None);
        assert_eq!(grants, [DEVICE_CODE_GRANT]);
        assert!(responses.is_empty());
    }

    #[test]
    fn bad_requests_name_the_rfc_7591_error() {
        let redirect = |b: Value| matches!(read(b), Err(MetadataError::RedirectUri(_)));
        let other = |b: Value| matches!(read(b), Err(MetadataError::Other(_)));
        assert!(redirect(json!({})));
        assert!(redirect(json!({"redirect_uris": []})));
        assert!(redirect(json!({"redirect_uris": "https://a.example/cb"})));
        assert!(redirect(json!({"redirect_uris": ["http://a.example/cb"]})));
        let ok = json!(["https://a.example/cb"]);
        assert!(other(json!([])));
        assert!(other(
            json!({"redirect_uris": ok, "grant_types": ["implicit"]})
        ));
        assert!(other(
            json!({"redirect_uris": ok, "grant_types": ["client_credentials"]})
        ));
        assert!(other(
            json!({"redirect_uris": ok, "response_types": ["token"]})
        ));
        assert!(other(
            json!({"redirect_uris": ok, "grant_types": ["refresh_token"], "response_types": ["code"]})
        ));
        assert!(other(json!({"redirect_uris": ok, "client_name": 7})));
        assert!(other(
            json!({"redirect_uris": ok, "token_endpoint_auth_method": "client_secret_jwt"})
        ));
        assert!(other(
            json!({"redirect_uris": ok, "token_endpoint_auth_method": "private_key_jwt"})
        ));
        assert!(other(
            json!({"redirect_uris": ok, "jwks_uri": "https://a.example/jwks"})
        ));
        assert!(other(json!({"redirect_uris": ok, "scope": ["a"]})));
    }
}
