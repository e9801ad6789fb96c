//! Administrative operations on organizations, users and API keys. The functions of this
//! module are the operations themselves, shared by the CLI (which the operator runs with
//! full rights) and the admin API; the submodules are the admin API's side: each checks
//! the caller with [`policy::authorize`], runs the operation and writes the audit event.
//! Validation of names, emails and lifetimes happens here, once.

pub mod agents;
pub mod clients;
pub mod consents;
pub mod events;
pub mod grants;
pub mod issuers;
pub mod key_scopes;
pub mod keys;
pub mod policy;
pub mod resources;
pub mod sessions;
pub mod users;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{api_key, organization, user};

use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::config::ApiKeySettings;
use crate::ids::new_id;
use crate::keys::api_key::PlainApiKey;
use crate::keys::client_jwks::ClientJwks;
use crate::secrets::Pepper;
use crate::state::AppState;
use crate::storage::{self, Storage, StorageError};
use crate::types::{Environment, Role, Scopes, Slug};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no organization `{0}`")]
    UnknownOrganization(String),
    #[error("no user `{0}` in this organization")]
    UnknownUser(String),
    #[error("no API key `{0}` in this organization")]
    UnknownKey(String),
    #[error("no session `{0}` in this organization")]
    UnknownSession(String),
    #[error("no cross-organization grant `{0}` in this organization")]
    UnknownGrant(String),
    #[error("no trusted identity provider `{0}` in this organization")]
    UnknownIssuer(String),
    #[error("no resource `{0}` in this organization")]
    UnknownResource(String),
    #[error("no client `{0}` in this organization")]
    UnknownClient(String),
    #[error("{0}")]
    Invalid(String),
    /// The request is valid but the resource's state refuses it (409).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Denied(#[from] policy::Denial),
    #[error(transparent)]
    Storage(StorageError),
}

fn storage_err(what: &'static str) -> impl Fn(StorageError) -> AdminError {
    move |e| match e {
        StorageError::Conflict(_) => AdminError::Conflict(format!("{what} already exists")),
        other => AdminError::Storage(other),
    }
}

impl policy::Actor {
    /// Asks [`policy::authorize`]; a refusal is written to the audit log.
    pub fn check(
        &self,
        state: &AppState,
        action: policy::Action,
        target: policy::Target<'_>,
    ) -> Result<(), AdminError> {
        policy::authorize(self, action, target)
            .map_err(|denial| self.deny(state, action, target, denial))
    }

    /// Writes a refusal to the audit log and returns it as the error.
    pub fn deny(
        &self,
        state: &AppState,
        action: policy::Action,
        target: policy::Target<'_>,
        denial: policy::Denial,
    ) -> AdminError {
        let (target_type, target_id) = target.audit();
        state.audit.record(AuditEvent {
            success: false,
            reason: Some(format!("{}:{}", denial.code(), action.name())),
            target_type,
            target_id,
            ..self.event("permission.denied")
        });
        AdminError::Denied(denial)
    }

    /// A successful event done by this caller; callers fill in the target.
    pub fn event(&self, action: &'static str) -> AuditEvent {
        AuditEvent {
            org_id: Some(self.org.id.clone()),
            action,
            success: true,
            actor_user_id: Some(self.user_id.clone()),
            actor_key_id: self.key_id.clone(),
            meta: self.meta.clone(),
            act: self.chain.clone(),
            ..AuditEvent::default()
        }
    }
}

impl From<StorageError> for AdminError {
    fn from(e: StorageError) -> Self {
        AdminError::Storage(e)
    }
}

pub async fn find_org(storage: &Storage, slug: &str) -> Result<organization::Model, AdminError> {
    storage::orgs::by_slug(storage, slug)
        .await?
        .ok_or_else(|| AdminError::UnknownOrganization(slug.to_owned()))
}

pub async fn create_org(
    storage: &Storage,
    clock: &dyn Clock,
    slug: &Slug,
    name: Option<String>,
) -> Result<organization::Model, AdminError> {
    let org = organization::Model {
        id: new_id("org"),
        slug: slug.as_str().to_owned(),
        name: name.unwrap_or_else(|| slug.as_str().to_owned()),
        created_at: clock.now(),
        dpop_required: None,
        dpop_nonce: None,
        dynamic_registration: None,
        direct_api_keys: None,
        self_registration: None,
        registration_approval: None,
    };
    storage::orgs::insert(storage, org)
        .await
        .map_err(storage_err("an organization with this slug"))
}

/// Sets an organization's DPoP policy overrides (`None`: follow the server's settings).
pub async fn set_dpop_policy(
    storage: &Storage,
    slug: &str,
    required: Option<bool>,
    nonce: Option<bool>,
) -> Result<organization::Model, AdminError> {
    let org = find_org(storage, slug).await?;
    Ok(storage::orgs::set_dpop_policy(storage, org, required, nonce).await?)
}

/// An email address, lower-cased: a local part of visible characters and a domain of at
/// least two DNS labels. Precise enough to catch mistakes, not a full RFC 5321 parser.
pub fn parse_email(email: &str) -> Result<String, AdminError> {
    let email = email.trim().to_ascii_lowercase();
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            (1..=64).contains(&local.len())
                && local
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"@()<>[]\\,;:\"".contains(&b))
                && domain.split('.').count() >= 2
                && domain.split('.').all(label_ok)
        });
    if valid {
        Ok(email)
    } else {
        Err(AdminError::Invalid(format!(
            "`email`: `{}` is not an email address",
            email.chars().take(80).collect::<String>()
        )))
    }
}

/// A duration as clients write it: human (`"30d"`, `"12h"`, `"1h 30m"`) or ISO 8601
/// (`"P30D"`, `"P2W"`, `"PT12H"`, `"P1DT6H"`; years and months, whose length varies, are
/// refused).
pub fn parse_duration(text: &str, field: &str) -> Result<Duration, AdminError> {
    let parsed = match text.strip_prefix('P') {
        Some(iso) => iso8601_duration(iso),
        None => humantime::parse_duration(text).ok(),
    };
    parsed.ok_or_else(|| {
        AdminError::Invalid(format!(
            "`{field}`: `{}` is not a duration (for example \"30d\", \"12h\" or \"P30D\")",
            text.chars().take(40).collect::<String>()
        ))
    })
}

/// The part of an ISO 8601 duration after `P`: `[nW][nD][T[nH][nM][nS]]`.
fn iso8601_duration(rest: &str) -> Option<Duration> {
    const DATE: &[(char, u64)] = &[('W', 7 * 86_400), ('D', 86_400)];
    const TIME: &[(char, u64)] = &[('H', 3_600), ('M', 60), ('S', 1)];
    let (date, time) = match rest.split_once('T') {
        Some((_, "")) => return None,
        Some((date, time)) => (date, time),
        None => (rest, ""),
    };
    let mut seconds: u64 = 0;
    let mut seen = false;
    for (mut part, units) in [(date, DATE), (time, TIME)] {
        let mut next_unit = 0;
        while !part.is_empty() {
            let digits = part.find(|c: char| !c.is_ascii_digit())?;
            let n: u64 = part.get(..digits).filter(|d| !d.is_empty())?.parse().ok()?;
            let unit = part[digits..].chars().next()?;
            let at = next_unit
                + units
                    .get(next_unit..)?
                    .iter()
                    .position(|(u, _)| *u == unit)?;
            seconds = seconds.checked_add(n.checked_mul(units[at].1)?)?;
            next_unit = at + 1;
            part = &part[digits + 1..];
            seen = true;
        }
    }
    seen.then(|| Duration::from_secs(seconds))
}

/// A user's display name: 1 to 200 characters once trimmed.
pub fn parse_name(name: &str, what: &str) -> Result<String, AdminError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(AdminError::Invalid(format!(
            "`{what}` must be 1 to 200 characters, without control characters"
        )));
    }
    Ok(name.to_owned())
}

pub async fn create_user(
    storage: &Storage,
    clock: &dyn Clock,
    org: &organization::Model,
    email: &str,
    name: Option<String>,
    role: Role,
) -> Result<user::Model, AdminError> {
    let name = name.map(|n| parse_name(&n, "name")).transpose()?;
    let now = clock.now();
    let user = user::Model {
        id: new_id("usr"),
        org_id: org.id.clone(),
        email: parse_email(email)?,
        name,
        role: role.as_str().to_owned(),
        disabled: false,
        created_at: now,
        updated_at: now,
        deleted_at: None,
        external_subject: None,
    };
    storage::users::insert(storage, user)
        .await
        .map_err(storage_err("a user with this email"))
}

/// What a new key should be.
pub struct NewKey {
    pub user_id: String,
    pub name: String,
    pub duration: Option<Duration>,
    pub environment: Environment,
    /// keygate's own scopes; `None`: every one.
    pub scopes: Option<Scopes>,
    /// The scopes of the organization's protected resources the key may use; `None`: every
    /// one, whichever are registered when it asks (a key created without a scope list).
    pub resource_scopes: Option<BTreeSet<String>>,
    /// A key-pair client's public keys: the key has no secret and authenticates with
    /// `private_key_jwt` only.
    pub public_jwks: Option<ClientJwks>,
}

/// A key just created: the only moment its secret exists in plain text (`None` for a
/// key-pair client, which has none).
pub struct CreatedKey {
    pub key: api_key::Model,
    pub secret: Option<PlainApiKey>,
}

fn lifetime(
    settings: &ApiKeySettings,
    now: DateTime<Utc>,
    duration: Option<Duration>,
) -> Result<DateTime<Utc>, AdminError> {
    let duration = duration.unwrap_or(settings.default_duration);
    if duration.is_zero() || duration > settings.max_duration {
        return Err(AdminError::Invalid(format!(
            "a key's duration must be more than 0s and at most {}",
            humantime::format_duration(settings.max_duration)
        )));
    }
    chrono::Duration::from_std(duration)
        .map(|d| now + d)
        .map_err(|_| AdminError::Invalid("the duration is too long".into()))
}

/// Who issues a key through the admin API, as `api_keys.created_by_user_id` and
/// `created_by_role` record it (the CLI and the bootstrap issue as the operator: `None`).
#[derive(Clone, Debug)]
pub struct Issuer {
    pub user_id: String,
    /// The role the issuer holds in the key's organization now.
    pub role: Role,
}

/// Creates a key as the operator (no issuer recorded). Each listed resource scope must be a
/// scope of a registered resource of `org`.
pub async fn create_key(
    storage: &Storage,
    pepper: &Pepper,
    clock: &dyn Clock,
    settings: &ApiKeySettings,
    org: &organization::Model,
    new: NewKey,
) -> Result<CreatedKey, AdminError> {
    if let Some(listed) = &new.resource_scopes {
        key_scopes::check_resources(storage, org, listed).await?;
    }
    issue_key(storage, pepper, clock, settings, org, new, None).await
}

/// Creates a key and records who issued it. An issuer other than the owner must still rank
/// at least as high as the owner once the key is stored: a promotion that committed after
/// the caller's check shows here, and one that commits later finds the key and revokes it
/// (`keys::revoke_outranked`), so one of the two always sees the other. If the owner now
/// outranks the issuer, the new key is revoked and the answer is 403 `permission_denied`,
/// as if the promotion had come first.
pub async fn issue_key(
    storage: &Storage,
    pepper: &Pepper,
    clock: &dyn Clock,
    settings: &ApiKeySettings,
    org: &organization::Model,
    new: NewKey,
    issuer: Option<&Issuer>,
) -> Result<CreatedKey, AdminError> {
    let owner = storage::users::get(storage, &org.id, &new.user_id)
        .await?
        .ok_or_else(|| AdminError::UnknownUser(new.user_id.clone()))?;
    if owner.disabled {
        return Err(AdminError::Conflict(format!(
            "user `{}` is disabled and cannot be given a key",
            owner.id
        )));
    }
    let name = parse_name(&new.name, "name")?;
    let now = clock.now();
    let id = new_id("key");
    let secret = match new.public_jwks {
        None => Some(PlainApiKey::generate(new.environment)),
        Some(_) => None,
    };
    let key = api_key::Model {
        digest: match &secret {
            Some(secret) => secret.digest(pepper).0,
            // Never lower-case hex: no presented secret's digest can equal it.
            None => format!("none:{id}"),
        },
        id,
        org_id: org.id.clone(),
        user_id: owner.id,
        name,
        environment: new.environment.as_str().to_owned(),
        scopes: new.scopes.unwrap_or_else(Scopes::all).to_string(),
        resource_scopes: new
            .resource_scopes
            .as_ref()
            .map(crate::resources::scopes::render),
        created_at: now,
        expires_at: lifetime(settings, now, new.duration)?,
        revoked_at: None,
        last_used_at: None,
        created_by_user_id: issuer.map(|i| i.user_id.clone()),
        created_by_role: issuer.map(|i| i.role.as_str().to_owned()),
        public_jwks: new.public_jwks.map(|jwks| jwks.to_json()),
        limit_per_minute: None,
        limit_per_hour: None,
        last_used_ip: None,
        pending: false,
    };
    let key = storage::api_keys::insert(storage, key).await?;
    if let Some(issuer) = issuer.filter(|i| i.user_id != key.user_id) {
        let role_now = storage::users::get(storage, &org.id, &key.user_id)
            .await?
            .and_then(|u| u.role.parse::<Role>().ok());
        if !role_now.is_some_and(|r| issuer.role.ranks_at_least(r)) {
            storage::api_keys::revoke(storage, &org.id, &key.id, now).await?;
            return Err(AdminError::Denied(policy::Denial::PermissionDenied(
                "the key's owner was promoted above you while the key was being issued; \
                 the new key was revoked"
                    .into(),
            )));
        }
    }
    Ok(CreatedKey { key, secret })
}

pub async fn revoke_key(
    storage: &Storage,
    clock: &dyn Clock,
    org: &organization::Model,
    key_id: &str,
) -> Result<api_key::Model, AdminError> {
    storage::api_keys::revoke(storage, &org.id, key_id, clock.now())
        .await
        .map_err(|e| match e {
            StorageError::NotFound => AdminError::UnknownKey(key_id.to_owned()),
            other => AdminError::Storage(other),
        })
}

/// Issues a replacement with the same owner, name, scopes, environment and lifetime; the
/// old key keeps working for `grace` (zero: it stops at once).
pub async fn rotate_key(
    storage: &Storage,
    pepper: &Pepper,
    clock: &dyn Clock,
    settings: &ApiKeySettings,
    org: &organization::Model,
    key_id: &str,
    grace: Duration,
) -> Result<CreatedKey, AdminError> {
    rotate_key_as(storage, pepper, clock, settings, org, key_id, grace, None).await
}

/// [`rotate_key`], recording `issuer` as the replacement's issuer ([`issue_key`]); the old
/// key is left as it was when the replacement is refused.
#[allow(clippy::too_many_arguments)]
pub async fn rotate_key_as(
    storage: &Storage,
    pepper: &Pepper,
    clock: &dyn Clock,
    settings: &ApiKeySettings,
    org: &organization::Model,
    key_id: &str,
    grace: Duration,
    issuer: Option<&Issuer>,
) -> Result<CreatedKey, AdminError> {
    if grace > Duration::from_secs(7 * 86_400) {
        return Err(AdminError::Invalid("the grace period is at most 7d".into()));
    }
    let old = storage::api_keys::get(storage, &org.id, key_id)
        .await?
        .ok_or_else(|| AdminError::UnknownKey(key_id.to_owned()))?;
    let now = clock.now();
    if old.revoked_at.is_some_and(|t| t <= now) {
        return Err(AdminError::Conflict(
            "a revoked key cannot be rotated".into(),
        ));
    }
    if old.public_jwks.is_some() {
        return Err(AdminError::Conflict(
            "a key-pair client has no secret to rotate: create a key with the new public keys \
             (or list old and new keys in one `public_jwks`), then revoke this one"
                .into(),
        ));
    }
    let lifetime = (old.expires_at - old.created_at)
        .to_std()
        .unwrap_or(settings.default_duration)
        .min(settings.max_duration);
    let created = issue_key(
        storage,
        pepper,
        clock,
        settings,
        org,
        NewKey {
            user_id: old.user_id.clone(),
            name: old.name.clone(),
            duration: Some(lifetime),
            environment: old.environment.parse().unwrap_or(Environment::Live),
            scopes: Some(Scopes::parse_list(&old.scopes).map_err(|e| AdminError::Invalid(e.0))?),
            // Copied as they are, even a name no resource defines any more.
            resource_scopes: key_scopes::resource_allowance(&old),
            public_jwks: None,
        },
        issuer,
    )
    .await?;
    // The replacement keeps the old key's own issuance limits.
    let mut created = created;
    if old.limit_per_minute.is_some() || old.limit_per_hour.is_some() {
        let own = crate::limits::KeyLimits::of(&old);
        created.key = storage::api_keys::set_limits(
            storage,
            &org.id,
            &created.key.id,
            Some(own.per_minute),
            Some(own.per_hour),
        )
        .await?;
    }
    let end = now + chrono::Duration::from_std(grace).unwrap_or_default();
    storage::api_keys::revoke(storage, &org.id, &old.id, end).await?;
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_human_and_iso8601() {
        let day = Duration::from_secs(86_400);
        for (text, want) in [
            ("1d", day),
            ("30d", 30 * day),
            ("12h", Duration::from_secs(12 * 3_600)),
            ("P30D", 30 * day),
            ("P2W", 14 * day),
            ("PT12H", Duration::from_secs(12 * 3_600)),
            ("P1DT6H30M", day + Duration::from_secs(6 * 3_600 + 1_800)),
        ] {
            assert_eq!(parse_duration(text, "duration").unwrap(), want, "{text}");
        }
        for bad in [
            "", "P", "PT", "P1DT", "P1Y", "P1M", "P30Dx", "PD", "P1H", "P1D2W", "30 days!", "-1d",
        ] {
            assert!(parse_duration(bad, "duration").is_err(), "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(parse_email(" Ada@Example.COM ").unwrap(), "ada@example.com");
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "ada@-x.com",
            "ada@@example.com",
        ] {
            assert!(parse_email(bad).is_err(), "{bad}");
        }
    }
}
