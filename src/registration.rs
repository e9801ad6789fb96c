//! Agents registering themselves (README, "Coming from another agent platform",
//! "Self-registration"): `POST /v1/{org}/register` with no credential creates a `service`
//! user and an API key (shown once). Off unless the organization turns it on, and then
//! indistinguishable from an unknown endpoint while off; the request is checked before any
//! allowance is taken; each client IP and each organization has an hourly allowance; with
//! the organization's approval switch on, the key is `pending` (it authenticates nothing)
//! until an admin approves it. Audited as `registration.created`.
//! Must not: know about HTTP, or store or log the secret.

use std::num::NonZeroU32;
use std::sync::Arc;

use entity::{api_key, organization, user};
use governor::clock::Clock as _;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::admin::key_scopes::ScopeList;
use crate::admin::{parse_email, parse_name};
use crate::audit::{AuditEvent, RequestMeta};
use crate::auth::cross_org::AppClock;
use crate::clock::Clock;
use crate::config::RegistrationSettings;
use crate::ids::new_id;
use crate::keys::api_key::PlainApiKey;
use crate::state::AppState;
use crate::storage::{self, StorageError};
use crate::types::{Environment, Role};

/// Past this many tracked IPs, the limiter forgets those back to a full allowance.
const LIMITER_TRACKED: usize = 100_000;

/// The domain of the email address a registration without one gets (RFC 2606: `.invalid`
/// never resolves, so no mail can reach anyone).
pub const NO_EMAIL_DOMAIN: &str = "agents.invalid";

type Limiter = RateLimiter<String, DefaultKeyedStateStore<String>, AppClock, NoOpMiddleware<Nanos>>;

/// The hourly allowances of registrations (per client IP, per organization) and the scopes
/// a registered key gets, checked once at start.
pub struct Registrations {
    per_ip: Limiter,
    per_org: Limiter,
    clock: AppClock,
    scopes: ScopeList,
}

impl std::fmt::Debug for Registrations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrations").finish_non_exhaustive()
    }
}

impl Registrations {
    /// Fails when `registration.default_scopes` holds a name that is no scope token.
    pub fn new(settings: &RegistrationSettings, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let scopes = ScopeList::parse(settings.default_scopes.iter().map(String::as_str))
            .map_err(|e| format!("registration.default_scopes: {e}"))?;
        let quota = |n: u32| Quota::per_hour(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        let clock = AppClock(clock);
        Ok(Self {
            per_ip: RateLimiter::new(
                quota(settings.per_ip_per_hour),
                DefaultKeyedStateStore::default(),
                clock.clone(),
            ),
            per_org: RateLimiter::new(
                quota(settings.per_org_per_hour),
                DefaultKeyedStateStore::default(),
                clock.clone(),
            ),
            clock,
            scopes,
        })
    }

    /// Takes one registration from `ip`'s and `org_id`'s allowances; `Err(seconds)` until
    /// the next one. The organization's is checked first, so a flood from many addresses
    /// does not use up the allowance of addresses that have not registered yet.
    fn admit(&self, ip: Option<&str>, org_id: &str) -> Result<(), u64> {
        if self.per_ip.len() > LIMITER_TRACKED {
            self.per_ip.retain_recent();
        }
        let wait = |not_until: governor::NotUntil<Nanos>| {
            let wait = not_until.wait_time_from(self.clock.now());
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        };
        self.per_org.check_key(&org_id.to_owned()).map_err(wait)?;
        self.per_ip
            .check_key(&crate::auth::throttle::ip_bucket(ip.unwrap_or("unknown")))
            .map_err(wait)
    }
}

/// What an agent asks for.
pub struct RegisterRequest<'a> {
    pub name: &'a str,
    pub email: Option<&'a str>,
}

/// A registration done: the only moment the key's secret exists in plain text.
pub struct Registered {
    pub user: user::Model,
    pub key: api_key::Model,
    pub secret: PlainApiKey,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// No such organization, or it has not turned self-registration on (both answered as
    /// an unknown endpoint).
    #[error("no such endpoint")]
    NotEnabled,
    #[error("{0}")]
    Invalid(String),
    #[error("a user with this email already exists in this organization")]
    Conflict,
    #[error("too many registrations; retry after {retry_after} seconds")]
    Throttled { retry_after: u64 },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The organization `slug` if it takes registrations; checked before the request's body is
/// read, so an organization with registration off does not reveal the endpoint.
pub async fn open_org(
    state: &AppState,
    slug: &str,
) -> Result<Arc<organization::Model>, RegistrationError> {
    state
        .directory
        .org(&state.storage, slug)
        .await?
        .filter(|o| o.self_registration == Some(true))
        .ok_or(RegistrationError::NotEnabled)
}

/// Registers an agent in `org` (from [`open_org`]) for a request from `meta`.
pub async fn register(
    state: &AppState,
    org: &organization::Model,
    req: RegisterRequest<'_>,
    meta: &RequestMeta,
) -> Result<Registered, RegistrationError> {
    if org.self_registration != Some(true) {
        return Err(RegistrationError::NotEnabled);
    }
    let invalid = |e: crate::admin::AdminError| RegistrationError::Invalid(e.to_string());
    let name = parse_name(req.name, "name").map_err(invalid)?;
    let user_id = new_id("usr");
    let email = match req.email {
        Some(email) => parse_email(email).map_err(invalid)?,
        None => format!("{}@{NO_EMAIL_DOMAIN}", user_id.to_ascii_lowercase()),
    };
    state
        .registrations
        .admit(meta.ip.as_deref(), &org.id)
        .map_err(|retry_after| RegistrationError::Throttled { retry_after })?;

    let now = state.clock.now();
    let lifetime = chrono::Duration::from_std(state.settings.registration.key_duration)
        .map_err(|_| RegistrationError::Invalid("registration.key_duration is too long".into()))?;
    let user = user::Model {
        id: user_id,
        org_id: org.id.clone(),
        email,
        name: Some(name.clone()),
        role: Role::Service.as_str().to_owned(),
        disabled: false,
        created_at: now,
        updated_at: now,
        deleted_at: None,
        external_subject: None,
    };
    let secret = PlainApiKey::generate(Environment::Live);
    let scopes = &state.registrations.scopes;
    let key = api_key::Model {
        id: new_id("key"),
        org_id: org.id.clone(),
        user_id: user.id.clone(),
        name,
        environment: Environment::Live.as_str().to_owned(),
        scopes: scopes.own.to_string(),
        resource_scopes: Some(crate::resources::scopes::render(&scopes.resources)),
        digest: secret.digest(&state.pepper).0,
        created_at: now,
        expires_at: now + lifetime,
        revoked_at: None,
        last_used_at: None,
        created_by_user_id: None,
        created_by_role: None,
        public_jwks: None,
        pending: org.registration_approval == Some(true),
        limit_per_minute: None,
        limit_per_hour: None,
        last_used_ip: None,
    };
    let (user, key) = storage::agents::insert_registered(&state.storage, user, key)
        .await
        .map_err(|e| match e {
            StorageError::Conflict(_) => RegistrationError::Conflict,
            other => RegistrationError::Storage(other),
        })?;
    state.audit.record(AuditEvent {
        org_id: Some(org.id.clone()),
        action: "registration.created",
        success: true,
        reason: key.pending.then(|| "pending_approval".to_owned()),
        actor_user_id: Some(user.id.clone()),
        actor_key_id: Some(key.id.clone()),
        target_type: Some("api_key"),
        target_id: Some(key.id.clone()),
        act: None,
        meta: meta.clone(),
    });
    Ok(Registered { user, key, secret })
}
