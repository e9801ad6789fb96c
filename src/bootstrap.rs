//! First start: on an empty database, create the configured organization, an `owner` user
//! and an API key, and hand the credentials back once. They are never logged; `main`
//! prints them to standard output, and they are not stored anywhere in plain text.

use crate::admin::{self, AdminError, NewKey};
use crate::config::Settings;
use crate::keys::api_key::PlainApiKey;
use crate::state::AppState;
use crate::types::{Environment, Role, Slug};

/// The credentials of the first API key: shown once.
pub struct BootstrapCredentials {
    pub org: String,
    pub user_id: String,
    pub email: String,
    pub api_key_id: String,
    pub api_key: PlainApiKey,
}

impl BootstrapCredentials {
    /// The banner `keygate serve` prints on first start, with a ready-to-paste curl line.
    pub fn banner(&self, public_url: &str) -> String {
        format!(
            "\n\
             ================================================================\n\
             keygate first start: created organization `{org}`, owner {email}\n\
             These credentials are shown ONCE. Store the api_key now.\n\n\
             org:         {org}\n\
             user_id:     {user}\n\
             api_key_id:  {id}\n\
             api_key:     {secret}\n\n\
             Sign in:\n\
             curl -sX POST {url}/v1/{org}/user/signin_with_api_key \\\n  \
             -H 'x-api-key: {secret}' \\\n  \
             -H 'x-api-key-id: {id}' \\\n  \
             -H 'x-user-id: {user}'\n\
             ================================================================\n",
            org = self.org,
            email = self.email,
            user = self.user_id,
            id = self.api_key_id,
            secret = self.api_key.expose(),
            url = public_url,
        )
    }
}

/// Runs the bootstrap if it is enabled and no organization exists yet.
pub async fn run(
    state: &AppState,
    settings: &Settings,
) -> Result<Option<BootstrapCredentials>, AdminError> {
    if !settings.bootstrap.enabled || !state.storage.is_empty().await? {
        return Ok(None);
    }
    let slug = Slug::parse(&settings.bootstrap.org)
        .map_err(|e| AdminError::Invalid(format!("bootstrap.org: {}", e.0)))?;
    let clock = state.clock.as_ref();
    let org = match admin::create_org(&state.storage, clock, &slug, None).await {
        Ok(org) => org,
        // Another node bootstrapped the same database a moment ago.
        Err(AdminError::Conflict(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let owner = admin::create_user(
        &state.storage,
        clock,
        &org,
        &settings.bootstrap.email,
        Some("Owner".into()),
        Role::Owner,
    )
    .await?;
    let created = admin::create_key(
        &state.storage,
        &state.pepper,
        clock,
        &settings.api_keys,
        &org,
        NewKey {
            user_id: owner.id.clone(),
            name: "bootstrap".into(),
            duration: Some(settings.bootstrap.key_duration),
            environment: Environment::Live,
            scopes: None,
            resource_scopes: None,
            public_jwks: None,
        },
    )
    .await?;
    let api_key = created.secret.ok_or_else(|| {
        AdminError::Invalid("the bootstrap key was created without a secret".into())
    })?;
    tracing::info!(org = %org.slug, user_id = %owner.id, api_key_id = %created.key.id,
        "first start: created the bootstrap organization, owner and API key");
    Ok(Some(BootstrapCredentials {
        org: org.slug,
        user_id: owner.id,
        email: owner.email,
        api_key_id: created.key.id,
        api_key,
    }))
}
