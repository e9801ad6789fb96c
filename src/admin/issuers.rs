//! Trusted identity providers through the admin API (README, "Trusted identity providers"): only an owner decides
//! which providers the organization trusts; owners and admins see them.

use entity::{organization, trusted_issuer};

use super::AdminError;
use super::policy::{Action, Actor, Target};
use crate::auth::federation::{ALGORITHMS, parse_jwks};
use crate::clock::Clock;
use crate::ids::new_id;
use crate::outbound::AddressPolicy;
use crate::state::AppState;
use crate::storage::page::{Page, PageRequest};
use crate::storage::{self, Storage, StorageError};

/// A provider to register.
#[derive(Clone, Debug)]
pub struct NewIssuer {
    pub issuer: String,
    pub jwks_uri: Option<String>,
    /// A JWKS document (JSON).
    pub jwks: Option<String>,
    pub audience: String,
    pub subject_claim: String,
    pub algorithms: Vec<String>,
    /// Its tokens may be presented as a JWT bearer grant's `assertion` (RFC 7523 §2.1).
    pub allow_jwt_bearer: bool,
}

fn invalid(message: impl Into<String>) -> AdminError {
    AdminError::Invalid(message.into())
}

/// `https` (or `http` to a loopback address, when keygate itself runs on loopback), and
/// not an IP literal of a private, link-local, loopback or other non-public network. Names
/// are checked again after resolution at every fetch (`crate::outbound`).
fn check_jwks_uri(uri: &str, policy: AddressPolicy) -> Result<(), AdminError> {
    let url = url::Url::parse(uri).map_err(|_| invalid("`jwks_uri` is not a URL"))?;
    policy
        .check_url(&url)
        .map_err(|e| invalid(format!("`jwks_uri` is refused: {e}")))
}

fn check(new: &NewIssuer, policy: AddressPolicy) -> Result<(), AdminError> {
    let bounded = |value: &str, field: &str, max: usize| {
        if value.is_empty() || value.len() > max || value.chars().any(char::is_control) {
            Err(invalid(format!("`{field}` must be 1 to {max} characters")))
        } else {
            Ok(())
        }
    };
    bounded(&new.issuer, "issuer", 2048)?;
    bounded(&new.audience, "audience", 2048)?;
    bounded(&new.subject_claim, "subject_claim", 100)?;
    match (&new.jwks_uri, &new.jwks) {
        (Some(uri), None) => check_jwks_uri(uri, policy)?,
        (None, Some(jwks)) => {
            parse_jwks(jwks).map_err(|e| invalid(format!("`jwks` is not a usable JWKS: {e}")))?;
        }
        _ => return Err(invalid("give exactly one of `jwks_uri` and `jwks`")),
    }
    if new.algorithms.is_empty() {
        return Err(invalid("`algorithms` must name at least one algorithm"));
    }
    if let Some(bad) = new
        .algorithms
        .iter()
        .find(|a| !ALGORITHMS.contains(&a.as_str()))
    {
        return Err(invalid(format!(
            "`algorithms`: `{bad}` is not one of {}",
            ALGORITHMS.join(", ")
        )));
    }
    Ok(())
}

pub async fn create(
    state: &AppState,
    actor: &Actor,
    new: NewIssuer,
) -> Result<trusted_issuer::Model, AdminError> {
    actor.check(state, Action::IssuersWrite, Target::Issuer { id: None })?;
    let issuer = register(
        &state.storage,
        state.clock.as_ref(),
        &actor.org,
        state.federation.policy(),
        new,
    )
    .await?;
    state.audit.record(crate::audit::AuditEvent {
        target_type: Some("trusted_issuer"),
        target_id: Some(issuer.id.clone()),
        ..actor.event("trusted_issuer.created")
    });
    Ok(issuer)
}

/// Checks and stores a provider of `org` (the admin API after its policy check, and the
/// CLI, which the operator runs). `policy`: where its `jwks_uri` may point.
pub async fn register(
    storage: &Storage,
    clock: &dyn Clock,
    org: &organization::Model,
    policy: AddressPolicy,
    new: NewIssuer,
) -> Result<trusted_issuer::Model, AdminError> {
    check(&new, policy)?;
    let mut algorithms = new.algorithms;
    algorithms.sort();
    algorithms.dedup();
    storage::trusted_issuers::insert(
        storage,
        trusted_issuer::Model {
            id: new_id("tis"),
            org_id: org.id.clone(),
            issuer: new.issuer,
            jwks_uri: new.jwks_uri,
            jwks: new.jwks,
            audience: new.audience,
            subject_claim: new.subject_claim,
            algorithms: algorithms.join(" "),
            allow_jwt_bearer: new.allow_jwt_bearer,
            created_at: clock.now(),
        },
    )
    .await
    .map_err(|e| match e {
        StorageError::Conflict(_) => AdminError::Conflict(
            "this organization already trusts an identity provider with this issuer".into(),
        ),
        other => other.into(),
    })
}

pub async fn list(
    state: &AppState,
    actor: &Actor,
    page: &PageRequest,
) -> Result<Page<trusted_issuer::Model>, AdminError> {
    actor.check(state, Action::IssuersRead, Target::Listing)?;
    Ok(storage::trusted_issuers::page(&state.storage, &actor.org.id, page).await?)
}

pub async fn get(
    state: &AppState,
    actor: &Actor,
    id: &str,
) -> Result<trusted_issuer::Model, AdminError> {
    actor.check(state, Action::IssuersRead, Target::Issuer { id: Some(id) })?;
    storage::trusted_issuers::get(&state.storage, &actor.org.id, id)
        .await?
        .ok_or_else(|| AdminError::UnknownIssuer(id.to_owned()))
}

/// Stops trusting a provider: its tokens fail from the next request on, and the sessions
/// its tokens opened through the JWT bearer grant with no client (their client is the
/// provider) end with it.
pub async fn delete(state: &AppState, actor: &Actor, id: &str) -> Result<(), AdminError> {
    actor.check(state, Action::IssuersWrite, Target::Issuer { id: Some(id) })?;
    if !storage::trusted_issuers::delete(&state.storage, &actor.org.id, id).await? {
        return Err(AdminError::UnknownIssuer(id.to_owned()));
    }
    storage::sessions::revoke_for_key(&state.storage, &actor.org.id, id, state.clock.now()).await?;
    state.revocations.forget_sessions();
    state.audit.record(crate::audit::AuditEvent {
        target_type: Some("trusted_issuer"),
        target_id: Some(id.to_owned()),
        ..actor.event("trusted_issuer.deleted")
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_uris_are_https_or_loopback_http_on_a_loopback_server() {
        let loopback = AddressPolicy {
            allow_loopback: true,
        };
        let exposed = AddressPolicy {
            allow_loopback: false,
        };
        for ok in [
            "http://127.0.0.1:8080/jwks",
            "http://[::1]/jwks",
            "http://localhost/jwks",
        ] {
            assert!(check_jwks_uri(ok, loopback).is_ok(), "{ok}");
            assert!(check_jwks_uri(ok, exposed).is_err(), "{ok}");
        }
        assert!(check_jwks_uri("https://idp.example/jwks", exposed).is_ok());
        for bad in [
            "http://idp.example/jwks",
            "http://10.0.0.1/jwks",
            "https://10.0.0.1/jwks",
            "https://169.254.169.254/latest/meta-data/",
            "http://[::ffff:127.0.0.1]/jwks",
            "ftp://idp.example/jwks",
            "not a url",
            "file:///etc/passwd",
        ] {
            assert!(check_jwks_uri(bad, loopback).is_err(), "{bad}");
            assert!(check_jwks_uri(bad, exposed).is_err(), "{bad}");
        }
    }
}
