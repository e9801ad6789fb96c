//! Clients of the browser and device flows (authorization code + PKCE, RFC 8628): clients
//! an admin registered (`cli_…`), Client ID Metadata Documents (a `client_id` that is an
//! https URL to the client's JSON), and RFC 7591 dynamic registration when the
//! organization turns it on. API key clients (`key_…`) are not here: they are
//! authenticated by [`crate::oauth::client`]. No HTTP types here.
//!
//! Public entry points: [`resolve`] (the client named by a `client_id`, for the
//! authorization and device endpoints) and [`authenticate`] (a client at the token
//! endpoint); [`registration::create`] and [`registration::register`] write clients (the
//! admin API and RFC 7591). README, "Browser clients: registered, metadata documents,
//! dynamic registration", says what each accepts.

pub mod document;
pub mod metadata;
pub mod redirect_uri;
pub mod registration;
pub mod secret;

use std::sync::Arc;

use entity::{client, organization};

use crate::auth::client_assertion::{self, Asserted, AssertionError};
use crate::clock::Clock;
use crate::config::ClientSettings;
use crate::ids::is_id;
use crate::oauth::client::Presented;
use crate::outbound::AddressPolicy;
use crate::state::AppState;
use crate::storage::{self, StorageError};

/// How a client authenticates at the token endpoint (RFC 7591 §2
/// `token_endpoint_auth_method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// A public client (a native app, an MCP client): PKCE is its only proof.
    None,
    /// A client secret, by HTTP Basic (RFC 6749 §2.3.1; keygate also takes it in the form).
    ClientSecretBasic,
    /// A JWT signed with one of its registered keys (RFC 7523 §2.2).
    PrivateKeyJwt,
}

impl ClientAuth {
    pub const ALL: &[Self] = &[Self::None, Self::ClientSecretBasic, Self::PrivateKeyJwt];

    /// The RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::None => "none",
            ClientAuth::ClientSecretBasic => "client_secret_basic",
            ClientAuth::PrivateKeyJwt => "private_key_jwt",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.as_str() == name)
    }
}

/// Where a client's description comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientSource {
    /// Registered by an admin (`POST /v1/{org}/clients`).
    Registered,
    /// RFC 7591 dynamic registration (`/v1/{org}/oauth/register`).
    Dynamic,
    /// A Client ID Metadata Document: the `client_id` is the URL of its JSON.
    MetadataDocument,
    /// Known to every organization without being stored: `keygate-cli`, the public client
    /// of `keygate login` ([`crate::oauth::device::cli_client`]).
    BuiltIn,
}

impl ClientSource {
    /// As stored and shown (`registered`, `dynamic`, `metadata_document`).
    pub fn as_str(self) -> &'static str {
        match self {
            ClientSource::Registered => "registered",
            ClientSource::Dynamic => "dynamic",
            ClientSource::MetadataDocument => "metadata_document",
            ClientSource::BuiltIn => "built_in",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [Self::Registered, Self::Dynamic, Self::MetadataDocument]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// A client of the browser and device flows.
#[derive(Clone, Debug)]
pub struct Client {
    pub client_id: String,
    /// Shown to the person on the consent page.
    pub name: String,
    /// Exact redirect URIs (compared as strings: [`Client::accepts_redirect_uri`]).
    pub redirect_uris: Vec<String>,
    pub auth: ClientAuth,
    pub source: ClientSource,
    /// The most this client may ask for (space-separated scope tokens); `None`: no limit of
    /// its own.
    pub scope: Option<String>,
}

impl Client {
    /// Whether a request's `redirect_uri` is one of this client's: exactly equal, or an
    /// `http` loopback one equal but for the port (RFC 8252 §7.3).
    pub fn accepts_redirect_uri(&self, redirect_uri: &str) -> bool {
        redirect_uri::matches(&self.redirect_uris, redirect_uri)
    }

    /// The client a stored row describes.
    pub fn from_model(model: &client::Model) -> Result<Self, ClientError> {
        let corrupt = |what: &str| {
            tracing::error!(client_id = %model.id, "a stored client's {what} does not parse");
            ClientError::Invalid("this client's registration is damaged; register it again".into())
        };
        Ok(Self {
            client_id: model.id.clone(),
            name: model.name.clone(),
            redirect_uris: serde_json::from_str(&model.redirect_uris)
                .map_err(|_| corrupt("redirect_uris"))?,
            auth: ClientAuth::parse(&model.auth_method).ok_or_else(|| corrupt("auth_method"))?,
            source: ClientSource::parse(&model.source).ok_or_else(|| corrupt("source"))?,
            scope: model.scope.clone(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No such client in this organization.
    #[error("unknown client")]
    Unknown,
    /// The client exists but cannot be used, or did not prove itself: the reason, for the
    /// developer (never a secret).
    #[error("{0}")]
    Invalid(String),
    /// Too many failed client authentications (the brute-force throttle).
    #[error("too many failed client authentications; retry after {retry_after} seconds")]
    Throttled { retry_after: u64 },
    /// A refused `private_key_jwt` assertion (its own checks and answers).
    #[error(transparent)]
    Assertion(AssertionError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What the clients of an application share: fetched metadata documents and the dynamic
/// registration allowance of each client IP.
#[derive(Debug)]
pub struct Clients {
    pub documents: document::Documents,
    pub registrations: registration::RegistrationLimiter,
}

impl Clients {
    pub fn new(
        settings: &ClientSettings,
        policy: AddressPolicy,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, reqwest::Error> {
        Ok(Arc::new(Self {
            documents: document::Documents::new(settings, policy, clock.clone())?,
            registrations: registration::RegistrationLimiter::new(settings, clock),
        }))
    }
}

/// The client `client_id` names in `org`: the built-in `keygate-cli`, a registered or
/// dynamically registered client (`cli_…`, with its stored row), or a Client ID Metadata
/// Document fetched (with the outbound SSRF guards) and cached ([`document`]).
async fn lookup(
    state: &AppState,
    org: &organization::Model,
    client_id: &str,
) -> Result<(Client, Option<client::Model>), ClientError> {
    if client_id == crate::oauth::device::cli_client::CLIENT_ID {
        return Ok((crate::oauth::device::cli_client::client(), None));
    }
    if is_id(client_id, "cli") {
        let model = storage::clients::get(&state.storage, &org.id, client_id)
            .await?
            .ok_or(ClientError::Unknown)?;
        return Ok((Client::from_model(&model)?, Some(model)));
    }
    if document::is_document_url(client_id) {
        return Ok((state.clients.documents.client(client_id).await?, None));
    }
    Err(ClientError::Unknown)
}

/// The client `client_id` names in `org`: a registered or dynamically registered client,
/// or a Client ID Metadata Document fetched (with the outbound SSRF guards) and cached.
/// `Unknown` for anything else; `Invalid` (with the reason) for a metadata document that
/// cannot be fetched or used.
pub async fn resolve(
    state: &AppState,
    org: &organization::Model,
    client_id: &str,
) -> Result<Client, ClientError> {
    lookup(state, org, client_id)
        .await
        .map(|(client, _)| client)
}

/// Authenticates a browser-flow client at the token endpoint, from client IP `ip`, as it
/// registered:
///
/// - `none` (public): `presented` must be `None`: a secret or an assertion sent by a public
///   client is refused;
/// - `client_secret_basic`: its secret (by HTTP Basic, or in the form), checked against the
///   stored digest in constant time. The brute-force throttle of the client id and of `ip`
///   is checked before the database; a well-formed secret that matches nothing counts
///   toward it (a malformed one does not: it cannot be a guess);
/// - `private_key_jwt`: a client assertion with `iss` = `sub` = its client id, checked by
///   [`client_assertion::authenticate`] like a key-pair API key's (one checker for both).
pub async fn authenticate(
    state: &AppState,
    org: &organization::Model,
    client_id: &str,
    presented: Option<&Presented>,
    ip: Option<&str>,
) -> Result<Client, ClientError> {
    let secret = presented.and_then(Presented::secret);
    let throttle_id = Some(client_id).filter(|id| is_id(id, "cli"));
    if secret.is_some() {
        state
            .throttle
            .check(throttle_id, ip)
            .map_err(|t| ClientError::Throttled {
                retry_after: t.retry_after,
            })?;
    }
    let well_formed = secret.and_then(|s| secret::ClientSecret::parse(s).ok());
    let (client, model) = match lookup(state, org, client_id).await {
        Err(ClientError::Unknown) if well_formed.is_some() => {
            state.throttle.fail(throttle_id, ip);
            return Err(ClientError::Unknown);
        }
        other => other?,
    };
    let refused = |m: &str| Err(ClientError::Invalid(m.to_owned()));
    match client.auth {
        ClientAuth::None if presented.is_none() => Ok(client),
        ClientAuth::None => refused(
            "this is a public client (token_endpoint_auth_method none): it sends its client_id \
             only, no client secret or assertion",
        ),
        ClientAuth::ClientSecretBasic => {
            let Some(secret) = secret else {
                return refused(
                    "this client authenticates with its client secret (client_secret_basic)",
                );
            };
            let Some(secret) = secret::ClientSecret::parse(secret).ok() else {
                return refused("client authentication failed");
            };
            let stored = model.and_then(|m| m.secret_digest).unwrap_or_default();
            if secret.digest(&state.pepper).matches(&stored) && !stored.is_empty() {
                Ok(client)
            } else {
                state.throttle.fail(throttle_id, ip);
                refused("client authentication failed")
            }
        }
        ClientAuth::PrivateKeyJwt => {
            let Some(jwt) = presented.and_then(Presented::assertion) else {
                return refused(
                    "this client authenticates with a client assertion (private_key_jwt)",
                );
            };
            match client_assertion::authenticate(state, org, jwt, Some(client_id), ip).await {
                Ok(Asserted::Client(m)) if m.id == client.client_id => Ok(client),
                Ok(_) => refused("the client assertion does not name this client"),
                Err(AssertionError::Storage(e)) => Err(ClientError::Storage(e)),
                Err(e) => Err(ClientError::Assertion(e)),
            }
        }
    }
}
