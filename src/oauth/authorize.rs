//! The authorization endpoint (RFC 6749 §4.1.1–§4.1.2 as OAuth 2.1 profiles it): a person
//! signed in to keygate's pages approves a browser client, which gets an authorization code
//! bound to its PKCE challenge (RFC 7636, S256 only), its redirect URI and, when asked, a
//! DPoP key (RFC 9449 §10). Responses carry `iss` (RFC 9207). No HTTP types: the pages
//! module passes the parameters, the person and the step in, and renders the [`Outcome`].
//!
//! One public entry point, [`respond`]. Its checks, in RFC 6749 §4.1.2.1's order:
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

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use entity::{authorization_code, organization};
use subtle::ConstantTimeEq;

use super::pkce;
use crate::admin::policy;
use crate::audit::{AuditEvent, RequestMeta};
use crate::clients::{self, Client, ClientError, ClientSource};
use crate::ids::{is_base62, new_id, random_base62};
use crate::people::Person;
use crate::resources::{self, Target, TargetError};
use crate::state::AppState;
use crate::storage::{self, StorageError};
use crate::types::{KNOWN_SCOPES, Role};

/// How long a code may be exchanged (OAuth 2.1 §4.1.2: short; RFC 6749 §4.1.2: at most ten
/// minutes).
pub const CODE_TTL: Duration = Duration::from_secs(60);
const CODE_PREFIX: &str = "ac_";
/// 43 base62 characters: 256 bits.
const CODE_RANDOM_LEN: usize = 43;
const CODE_DIGEST_DOMAIN: &str = "authorization_code";
/// Most scope names one request may carry.
const MAX_SCOPES: usize = 100;

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

/// What the consent page shows and posts back.
#[derive(Debug)]
pub struct ConsentView {
    pub client_name: String,
    /// For a Client ID Metadata Document client: the host its document is served from.
    pub client_host: Option<String>,
    pub email: String,
    /// `(scope, what it lets the client do)`: a description for keygate's scopes, `None` for
    /// a resource's (shown by name).
    pub scopes: Vec<(String, Option<&'static str>)>,
    /// `(URI, name)` of the protected resources.
    pub resources: Vec<(String, String)>,
    /// The request's parameters, posted back as hidden fields.
    pub hidden: Vec<(String, String)>,
    pub csrf: String,
    /// Where the form posts.
    pub action: String,
    /// The client's redirect URI as a CSP source (its origin, or `scheme:` for a native
    /// app's private-use scheme): browsers check `form-action` against the redirect that
    /// answers the form too, so the page must allow it.
    pub redirect_source: Option<String>,
}

/// An error for the client's redirect URI (RFC 6749 §4.1.2.1).
struct Denied {
    code: &'static str,
    description: String,
}

impl Denied {
    fn new(code: &'static str, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    fn server(err: &StorageError) -> Self {
        tracing::error!(error = %err, "internal error at the authorization endpoint");
        Self::new("server_error", "an internal error occurred")
    }
}

/// The decoded parameters: each name's values, empty values dropped (RFC 6749 §3.1).
struct Params(BTreeMap<String, Vec<String>>);

/// Parameters that may repeat (RFC 8707's `resource`).
const REPEATABLE: &[&str] = &["resource"];
/// The consent form's own fields, not the request's.
const FORM_FIELDS: &[&str] = &["csrf", "decision"];

impl Params {
    fn new(pairs: &[(String, String)]) -> Self {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
            map.entry(name.clone()).or_default().push(value.clone());
        }
        Self(map)
    }

    /// The value of `name`; `Err` when it appears more than once.
    fn one(&self, name: &str) -> Result<Option<&str>, ()> {
        match self.0.get(name).map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([one]) => Ok(Some(one)),
            Some(_) => Err(()),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.one(name).ok().flatten()
    }

    fn all(&self, name: &str) -> &[String] {
        self.0.get(name).map_or(&[], Vec::as_slice)
    }

    /// A non-repeatable parameter that appears more than once.
    fn repeated(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, values)| values.len() > 1 && !REPEATABLE.contains(&name.as_str()))
            .map(|(name, _)| name.as_str())
    }

    /// The request's own parameters (the consent form's fields left out), in a stable order.
    fn request(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter(|(name, _)| !FORM_FIELDS.contains(&name.as_str()))
            .flat_map(|(name, values)| values.iter().map(move |v| (name.clone(), v.clone())))
            .collect()
    }
}

/// Where the answers go: the client's redirect URI, with `state` and `iss` (RFC 9207 §2).
struct Back<'a> {
    redirect_uri: &'a str,
    state: Option<&'a str>,
    iss: String,
}

impl Back<'_> {
    fn with(&self, pairs: &[(&str, &str)]) -> Outcome {
        let mut pairs = pairs.to_vec();
        if let Some(state) = self.state {
            pairs.push(("state", state));
        }
        pairs.push(("iss", &self.iss));
        Outcome::Redirect(append_query(self.redirect_uri, &pairs))
    }

    fn error(&self, denied: Denied) -> Outcome {
        self.with(&[
            ("error", denied.code),
            ("error_description", &denied.description),
        ])
    }
}

/// `uri` with `pairs` added to its query (a registered URI's own query is kept).
fn append_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(uri) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(pairs);
            url.into()
        }
        Err(_) => {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish();
            let sep = if uri.contains('?') { '&' } else { '?' };
            format!("{uri}{sep}{query}")
        }
    }
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

/// The checks that need nobody signed in.
fn check(params: &Params) -> Result<(), Denied> {
    if let Some(name) = params.repeated() {
        return Err(Denied::new(
            "invalid_request",
            format!("the parameter `{}` appears more than once", truncate(name)),
        ));
    }
    match params.get("response_type") {
        None => return Err(Denied::new("invalid_request", "response_type is required")),
        Some("code") => {}
        Some(_) => {
            return Err(Denied::new(
                "unsupported_response_type",
                "response_type must be code",
            ));
        }
    }
    pkce::check_challenge(
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    )
    .map_err(|why| Denied::new("invalid_request", why))?;
    if let Some(jkt) = params.get("dpop_jkt") {
        // RFC 9449 §10: a base64url SHA-256 JWK thumbprint, 43 characters.
        let shaped = jkt.len() == 43
            && jkt
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !shaped {
            return Err(Denied::new(
                "invalid_request",
                "dpop_jkt must be the base64url SHA-256 thumbprint of a JWK (RFC 9449 §10)",
            ));
        }
    }
    match params.get("prompt") {
        None | Some("consent") => {}
        Some(_) => {
            return Err(Denied::new(
                "invalid_request",
                "prompt must be consent when given",
            ));
        }
    }
    if let Some(scope) = params.get("scope") {
        let names: Vec<&str> = scope.split_ascii_whitespace().collect();
        if names.len() > MAX_SCOPES {
            return Err(Denied::new(
                "invalid_scope",
                format!("at most {MAX_SCOPES} scopes may be requested"),
            ));
        }
        for name in names {
            resources::scopes::check(name).map_err(|why| Denied::new("invalid_scope", why))?;
        }
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
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

/// Whether `consent` already covers everything `grant` asks for.
fn covers(consent: &entity::consent::Model, grant: &Grant) -> bool {
    let scopes: BTreeSet<&str> = consent.scope.split_ascii_whitespace().collect();
    let uris: BTreeSet<&str> = consent.resources.split_ascii_whitespace().collect();
    grant
        .scope
        .split_ascii_whitespace()
        .all(|s| scopes.contains(s))
        && grant.resources().iter().all(|u| uris.contains(u.as_str()))
}

/// Records the approval: what the person approved before for this client, and this.
async fn remember(
    state: &AppState,
    org: &organization::Model,
    client: &Client,
    person: &Person,
    existing: Option<entity::consent::Model>,
    grant: &Grant,
) -> Result<(), StorageError> {
    let now = state.clock.now();
    let scope = union(
        existing.as_ref().map_or("", |c| c.scope.as_str()),
        grant.scope.split_ascii_whitespace(),
    );
    let resources = union(
        existing.as_ref().map_or("", |c| c.resources.as_str()),
        grant.resources().iter().map(String::as_str),
    );
    storage::consents::put(
        &state.storage,
        entity::consent::Model {
            id: existing
                .as_ref()
                .map_or_else(|| new_id("cns"), |c| c.id.clone()),
            org_id: org.id.clone(),
            user_id: person.user_id.clone(),
            client_id: client.client_id.clone(),
            client_name: client.name.clone(),
            scope,
            resources,
            created_at: existing.as_ref().map_or(now, |c| c.created_at),
            updated_at: now,
        },
    )
    .await
}

/// The names of space-separated `old` and of `new`, sorted, each once.
fn union<'a>(old: &'a str, new: impl Iterator<Item = &'a str>) -> String {
    let all: BTreeSet<&str> = old.split_ascii_whitespace().chain(new).collect();
    all.into_iter().collect::<Vec<_>>().join(" ")
}

/// Stores a new code for this approval and returns its only plain copy.
async fn issue(
    state: &AppState,
    org: &organization::Model,
    client: &Client,
    person: &Person,
    params: &Params,
    grant: &Grant,
) -> Result<String, StorageError> {
    let now = state.clock.now();
    let code = format!("{CODE_PREFIX}{}", random_base62(CODE_RANDOM_LEN));
    storage::authorization_codes::insert(
        &state.storage,
        authorization_code::Model {
            id: new_id("acd"),
            org_id: org.id.clone(),
            digest: code_digest(state, &code),
            client_id: client.client_id.clone(),
            redirect_uri: params.get("redirect_uri").unwrap_or_default().to_owned(),
            code_challenge: params.get("code_challenge").unwrap_or_default().to_owned(),
            user_id: person.user_id.clone(),
            scope: grant.scope.clone(),
            resources: grant.target.as_ref().map(Target::stored),
            dpop_jkt: params.get("dpop_jkt").map(str::to_owned),
            created_at: now,
            expires_at: now + chrono::Duration::from_std(CODE_TTL).unwrap_or_default(),
            used_at: None,
            session_id: None,
            reused_at: None,
        },
    )
    .await?;
    Ok(code)
}

/// The stored digest of a code, or `None` when `code` cannot be one (no look-up needed).
pub(super) fn digest_of(state: &AppState, code: &str) -> Option<String> {
    is_code(code).then(|| code_digest(state, code))
}

/// Whether `code` has the shape of the codes [`issue`] makes.
fn is_code(code: &str) -> bool {
    code.strip_prefix(CODE_PREFIX)
        .is_some_and(|rest| rest.len() == CODE_RANDOM_LEN && is_base62(rest))
}

fn code_digest(state: &AppState, code: &str) -> String {
    state.pepper.digest(CODE_DIGEST_DOMAIN, code.as_bytes())
}

/// Whether a stored digest is `digest` (constant time).
pub(super) fn digest_matches(stored: &str, digest: &str) -> bool {
    bool::from(stored.as_bytes().ct_eq(digest.as_bytes()))
}

/// What the consent page shows.
async fn view(
    state: &AppState,
    org: &organization::Model,
    client: &Client,
    person: &Person,
    params: &Params,
    grant: &Grant,
) -> Result<ConsentView, StorageError> {
    let resources = storage::resources::by_uris(&state.storage, &org.id, grant.resources())
        .await?
        .into_iter()
        .map(|r| (r.uri, r.name))
        .collect();
    Ok(ConsentView {
        client_name: client.name.clone(),
        client_host: (client.source == ClientSource::MetadataDocument)
            .then(|| url::Url::parse(&client.client_id).ok())
            .flatten()
            .and_then(|u| u.host_str().map(str::to_owned)),
        email: person.email.clone(),
        scopes: grant
            .scope
            .split_ascii_whitespace()
            .map(|s| {
                let own = grant.target.is_none();
                (s.to_owned(), own.then(|| describe(s)).flatten())
            })
            .collect(),
        resources,
        hidden: params.request(),
        csrf: person.csrf_token().to_owned(),
        action: format!("/v1/{}/oauth/authorize", org.slug),
        redirect_source: params.get("redirect_uri").and_then(csp_source),
    })
}

/// `uri` as a CSP source expression: its origin (`https://app.example:8443`), or its scheme
/// (`com.example.app:`) when it has no host.
fn csp_source(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    Some(match url.origin() {
        origin @ url::Origin::Tuple(..) => origin.ascii_serialization(),
        url::Origin::Opaque(_) => format!("{}:", url.scheme()),
    })
}

/// What one of keygate's scopes lets a token do, in words for the consent page.
fn describe(scope: &str) -> Option<&'static str> {
    Some(match scope {
        "keys:read" => "See API keys",
        "keys:write" => "Create, rotate and revoke API keys",
        "users:read" => "See users and their sessions",
        "users:write" => "Change users",
        "sessions:write" => "End sessions",
        "audit:read" => "Read the audit log",
        "resources:read" => "See the protected resources",
        "resources:write" => "Register, change and remove protected resources",
        "clients:read" => "See the applications registered here",
        "clients:write" => "Register and delete applications",
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
