//! The authorization endpoint (RFC 6749 §4.1.1–§4.1.2 as OAuth 2.1 profiles it): a person
//! signed in to keygate's pages approves a browser client, which gets an authorization code
//! bound to its PKCE challenge (RFC 7636, S256 only), its redirect URI and, when asked, a
//! DPoP key (RFC 9449 §10). Responses carry `iss` (RFC 9207). No HTTP types: the pages
//! module passes the parameters, the person and the step in, and renders the [`Outcome`].
//!
//! One public entry point, [`respond`] (and [`continuation_source`], what a sign-in form
//! that continues to an authorization request must allow). Its checks, in RFC 6749 §4.1.2.1's order:
//! 1. (the consent form only) a person is signed in and the form's CSRF token is theirs,
//!    else the sign-in page or a 403 page: nothing else of a forged form is looked at;
//! 2. `client_id` names a client keygate knows, and `redirect_uri` is one of its
//!    registered URIs (exactly; a loopback `http` one with any port, RFC 8252 §7.3:
//!    [`Client::accepts_redirect_uri`]); otherwise an error page, never a redirect;
//! 3. then every error goes to that redirect URI (`error`, `error_description`, `state`,
//!    `iss`): parameters twice, `response_type`, PKCE, `dpop_jkt`, `prompt`, the scope
//!    syntax; a person not signed in is sent to sign in and back; the scopes and resources
//!    the person may approve; the decision.
//!
//! Which scopes (README, "Authorization code + PKCE"): without `resource`, keygate's own
//! scopes the person's role can use ([`policy::grantable`]); no `scope`: none, a token that
//! only says who the person is. With `resource` (RFC 8707), scopes of those resources; no
//! `scope`: all of theirs. Both capped by the client's registered `scope`, if any. A
//! consent is remembered per person and client; a request within it skips the page unless
//! `prompt=consent`.

mod code;
mod consent;
mod request;

use std::collections::BTreeSet;

use entity::organization;

pub use code::CODE_TTL;
use code::issue;
pub(super) use code::{digest_matches, digest_of};
pub use consent::ConsentView;
use consent::{covers, remember, view};
use request::{Back, Denied, Params, check, truncate};

use crate::admin::policy;
use crate::audit::{AuditEvent, RequestMeta};
use crate::clients::{self, Client, ClientError};
use crate::people::Person;
use crate::resources::{self, Target, TargetError};
use crate::state::AppState;
use crate::storage;
use crate::types::{KNOWN_SCOPES, Role};

/// Which request this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `GET /v1/{org}/oauth/authorize`: the client's request.
    Show,
    /// `POST /v1/{org}/oauth/authorize`: the consent form (`decision`, `csrf`, and the
    /// request's parameters again, all checked again).
    Decide,
}

/// A request to the authorization endpoint.
pub struct AuthorizeRequest<'a> {
    /// The query (`Show`) or form (`Decide`) parameters, decoded, in order.
    pub params: Vec<(String, String)>,
    /// Who is signed in to the organization's pages in this browser.
    pub person: Option<&'a Person>,
    pub step: Step,
    pub meta: RequestMeta,
}

/// What the browser gets.
#[derive(Debug)]
pub enum Outcome {
    /// An error page (400): the request cannot be answered at a redirect URI.
    Refused {
        title: &'static str,
        message: String,
    },
    /// A 403 page: the consent form's CSRF token is missing or wrong.
    Forbidden,
    /// A 500 page (the cause is logged).
    Failed,
    /// Sign in first, then come back to `return_to` (this request as a `GET`).
    SignIn { return_to: String },
    /// `303` to the client's redirect URI, with a code or an error.
    Redirect(String),
    /// The consent page.
    Consent(Box<ConsentView>),
}

/// Answers a request to the authorization endpoint of `org` (see the module's doc).
pub async fn respond(
    state: &AppState,
    org: &organization::Model,
    req: AuthorizeRequest<'_>,
) -> Outcome {
    let params = Params::new(&req.params);
    let return_to = || Outcome::SignIn {
        return_to: format!(
            "/v1/{}/oauth/authorize?{}",
            org.slug,
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params.request())
                .finish()
        ),
    };
    if req.step == Step::Decide {
        match req.person {
            None => return return_to(),
            Some(person) if !person.csrf_matches(params.get("csrf")) => return Outcome::Forbidden,
            Some(_) => {}
        }
    }

    // RFC 6749 §4.1.2.1: the client and its redirect URI, or an error page.
    let client_id = match params.one("client_id") {
        Ok(Some(id)) => id,
        Ok(None) => {
            return refused(
                "No client",
                "The request does not name its client (client_id).",
            );
        }
        Err(()) => return refused("Invalid request", "client_id appears more than once."),
    };
    let client = match clients::resolve(state, org, client_id).await {
        Ok(client) => client,
        Err(ClientError::Unknown) => {
            return refused(
                "Unknown client",
                format!("No application called `{client_id}` is known here."),
            );
        }
        Err(ClientError::Storage(err)) => {
            tracing::error!(error = %err, "internal error at the authorization endpoint");
            return Outcome::Failed;
        }
        Err(why) => return refused("This application cannot be used", why.to_string()),
    };
    let redirect_uri = match params.one("redirect_uri") {
        Ok(Some(uri)) if client.accepts_redirect_uri(uri) => uri,
        Ok(Some(_)) => {
            return refused(
                "Wrong redirect URI",
                "The request's redirect_uri is not one this application registered.",
            );
        }
        Ok(None) => return refused("No redirect URI", "The request has no redirect_uri."),
        Err(()) => return refused("Invalid request", "redirect_uri appears more than once."),
    };
    let back = Back {
        redirect_uri,
        state: params.one("state").ok().flatten(),
        iss: state.issuer(&org.slug),
    };

    // From here on, errors go back to the client.
    if let Err(denied) = check(&params) {
        return back.error(denied);
    }
    let Some(person) = req.person else {
        return return_to();
    };
    let decided = decide(state, org, &client, person, &params, req.step, &req.meta).await;
    match decided {
        Ok(Decision::Show(view)) => Outcome::Consent(view),
        Ok(Decision::Code(code)) => back.with(&[("code", &code)]),
        Ok(Decision::SignIn) => return_to(),
        Err(denied) => back.error(denied),
    }
}

fn refused(title: &'static str, message: impl Into<String>) -> Outcome {
    Outcome::Refused {
        title,
        message: message.into(),
    }
}

enum Decision {
    Show(Box<ConsentView>),
    Code(String),
    SignIn,
}

/// What the person may approve for this request: its scope and its resources.
struct Grant {
    scope: String,
    target: Option<Target>,
}

impl Grant {
    fn resources(&self) -> &[String] {
        self.target.as_ref().map_or(&[], |t| t.uris.as_slice())
    }
}

async fn decide(
    state: &AppState,
    org: &organization::Model,
    client: &Client,
    person: &Person,
    params: &Params,
    step: Step,
    meta: &RequestMeta,
) -> Result<Decision, Denied> {
    let user = storage::users::get(&state.storage, &org.id, &person.user_id)
        .await
        .map_err(|e| Denied::server(&e))?;
    let Some(role) = user
        .filter(|u| !u.disabled && u.deleted_at.is_none())
        .and_then(|u| u.role.parse::<Role>().ok())
    else {
        return Ok(Decision::SignIn);
    };
    let grant = grant(state, org, client, role, params).await?;
    let event = |action: &'static str| AuditEvent {
        org_id: Some(org.id.clone()),
        action,
        success: true,
        actor_user_id: Some(person.user_id.clone()),
        target_type: Some("client"),
        target_id: Some(client.client_id.clone()),
        meta: meta.clone(),
        ..AuditEvent::default()
    };
    let consent =
        storage::consents::get(&state.storage, &org.id, &person.user_id, &client.client_id)
            .await
            .map_err(|e| Denied::server(&e))?;

    match step {
        Step::Show => {
            let remembered = consent.as_ref().is_some_and(|c| covers(c, &grant));
            if remembered && params.get("prompt") != Some("consent") {
                let code = issue(state, org, client, person, params, &grant)
                    .await
                    .map_err(|e| Denied::server(&e))?;
                state.audit.record(AuditEvent {
                    reason: Some("remembered_consent".into()),
                    ..event("authorization.approved")
                });
                return Ok(Decision::Code(code));
            }
            let view = view(state, org, client, person, params, &grant)
                .await
                .map_err(|e| Denied::server(&e))?;
            Ok(Decision::Show(Box::new(view)))
        }
        Step::Decide => match params.get("decision") {
            Some("approve") => {
                remember(state, org, client, person, consent, &grant)
                    .await
                    .map_err(|e| Denied::server(&e))?;
                let code = issue(state, org, client, person, params, &grant)
                    .await
                    .map_err(|e| Denied::server(&e))?;
                state.audit.record(event("authorization.approved"));
                Ok(Decision::Code(code))
            }
            Some("deny") => {
                state.audit.record(event("authorization.denied"));
                Err(Denied::new(
                    "access_denied",
                    "the user denied the authorization request",
                ))
            }
            _ => Err(Denied::new(
                "invalid_request",
                "decision must be approve or deny",
            )),
        },
    }
}

/// The scope and resources of this request that `role` may approve for `client`.
async fn grant(
    state: &AppState,
    org: &organization::Model,
    client: &Client,
    role: Role,
    params: &Params,
) -> Result<Grant, Denied> {
    let requested = params.get("scope");
    let resources = params.all("resource");
    if !resources.is_empty() {
        let target = resources::for_approval(state, org, resources, requested, |s| {
            client_allows(client, s)
        })
        .await
        .map_err(|e| match e {
            TargetError::InvalidTarget(why) => Denied::new("invalid_target", why),
            TargetError::InvalidScope(why) => Denied::new("invalid_scope", why),
            TargetError::Storage(err) => Denied::server(&err),
        })?;
        return Ok(Grant {
            scope: target.as_ref().map(|t| t.scope.clone()).unwrap_or_default(),
            target,
        });
    }
    let mut scopes = BTreeSet::new();
    for name in requested.unwrap_or_default().split_ascii_whitespace() {
        let refuse = |why: &str| {
            Err(Denied::new(
                "invalid_scope",
                format!("`{}` {why}", truncate(name)),
            ))
        };
        if !KNOWN_SCOPES.contains(&name) {
            return refuse(
                "is not one of keygate's scopes (a protected resource's scope needs its `resource`)",
            );
        }
        if !policy::grantable(role, name) {
            return refuse("is beyond what the signed-in user's role can grant");
        }
        if !client_allows(client, name) {
            return refuse("is not a scope this client may ask for");
        }
        scopes.insert(name);
    }
    Ok(Grant {
        scope: scopes.into_iter().collect::<Vec<_>>().join(" "),
        target: None,
    })
}

/// Whether `client` may ask for `scope`: any, unless it registered the most it may ask for.
fn client_allows(client: &Client, scope: &str) -> bool {
    client
        .scope
        .as_deref()
        .is_none_or(|allowed| allowed.split_ascii_whitespace().any(|s| s == scope))
}

#[cfg(test)]
mod tests;

/// The CSP `form-action` source a sign-in form needs when signing in continues to
/// `return_to` (a path and query of keygate's): when it is an authorization request of
/// `org` for a client keygate knows with one of that client's redirect URIs, that URI's
/// origin. Browsers check `form-action` against every redirect that answers a form, and
/// with a remembered consent the authorization request answers with a redirect to the
/// client at once. `None` otherwise (the form then posts and lands on keygate only).
pub async fn continuation_source(
    state: &AppState,
    org: &organization::Model,
    return_to: &str,
) -> Option<String> {
    let url = url::Url::parse(&format!("{}{return_to}", state.public_url)).ok()?;
    if url.path() != format!("/v1/{}/oauth/authorize", org.slug) {
        return None;
    }
    let param = |name: &str| {
        let mut values = url.query_pairs().filter(|(k, _)| k == name).map(|(_, v)| v);
        let first = values.next()?;
        values.next().is_none().then_some(first.into_owned())
    };
    let (client_id, redirect_uri) = (param("client_id")?, param("redirect_uri")?);
    let client = clients::resolve(state, org, &client_id).await.ok()?;
    client
        .accepts_redirect_uri(&redirect_uri)
        .then(|| consent::csp_source(&redirect_uri))
        .flatten()
}
