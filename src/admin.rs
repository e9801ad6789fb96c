//! Administrative operations on organizations, users and API keys, shared by the CLI and
//! (later) the admin API. Validation of names and lifetimes happens here, once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{api_key, organization, user};

use crate::clock::Clock;
use crate::config::ApiKeySettings;
use crate::ids::new_id;
use crate::keys::api_key::PlainApiKey;
use crate::secrets::Pepper;
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
    #[error("{0}")]
    Invalid(String),
    #[error("{0} already exists")]
    Conflict(&'static str),
    #[error(transparent)]
    Storage(StorageError),
}

fn storage_err(what: &'static str) -> impl Fn(StorageError) -> AdminError {
    move |e| match e {
        StorageError::Conflict(_) => AdminError::Conflict(what),
        other => AdminError::Storage(other),
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

fn parse_email(email: &str) -> Result<String, AdminError> {
    let email = email.trim().to_ascii_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty());
    if valid {
        Ok(email)
    } else {
        Err(AdminError::Invalid(format!(
            "`{email}` is not an email address"
        )))
    }
}

pub async fn create_user(
    storage: &Storage,
    clock: &dyn Clock,
    org: &organization::Model,
    email: &str,
    name: Option<String>,
    role: Role,
) -> Result<user::Model, AdminError> {
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
    /// `None`: every scope.
    pub scopes: Option<Scopes>,
}

/// A key just created: the only moment its secret exists in plain text.
pub struct CreatedKey {
    pub key: api_key::Model,
    pub secret: PlainApiKey,
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

pub async fn create_key(
    storage: &Storage,
    pepper: &Pepper,
    clock: &dyn Clock,
    settings: &ApiKeySettings,
    org: &organization::Model,
    new: NewKey,
) -> Result<CreatedKey, AdminError> {
    let owner = storage::users::get(storage, &org.id, &new.user_id)
        .await?
        .ok_or_else(|| AdminError::UnknownUser(new.user_id.clone()))?;
    let name = new.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(AdminError::Invalid(
            "a key's name must be 1 to 200 characters".into(),
        ));
    }
    let now = clock.now();
    let secret = PlainApiKey::generate(new.environment);
    let key = api_key::Model {
        id: new_id("key"),
        org_id: org.id.clone(),
        user_id: owner.id,
        name: name.to_owned(),
        environment: new.environment.as_str().to_owned(),
        scopes: new.scopes.unwrap_or_else(Scopes::all).to_string(),
        digest: secret.digest(pepper).0,
        created_at: now,
        expires_at: lifetime(settings, now, new.duration)?,
        revoked_at: None,
        last_used_at: None,
    };
    let key = storage::api_keys::insert(storage, key).await?;
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
    if grace > Duration::from_secs(7 * 86_400) {
        return Err(AdminError::Invalid("the grace period is at most 7d".into()));
    }
    let old = storage::api_keys::get(storage, &org.id, key_id)
        .await?
        .ok_or_else(|| AdminError::UnknownKey(key_id.to_owned()))?;
    let now = clock.now();
    if old.revoked_at.is_some_and(|t| t <= now) {
        return Err(AdminError::Invalid(
            "a revoked key cannot be rotated".into(),
        ));
    }
    let lifetime = (old.expires_at - old.created_at)
        .to_std()
        .unwrap_or(settings.default_duration)
        .min(settings.max_duration);
    let created = create_key(
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
        },
    )
    .await?;
    let end = now + chrono::Duration::from_std(grace).unwrap_or_default();
    storage::api_keys::revoke(storage, &org.id, &old.id, end).await?;
    Ok(created)
}
