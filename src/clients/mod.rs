//! Clients of the browser and device flows (authorization code + PKCE, RFC 8628): clients
//! an admin registered (`cli_…`), Client ID Metadata Documents (a `client_id` that is an
//! https URL to the client's JSON), and RFC 7591 dynamic registration when the
//! organization turns it on. API key clients (`key_…`) are not here: they are
//! authenticated by [`crate::oauth::client`].
//!
//! Public entry points: [`resolve`] (the client named by a `client_id`, for the
//! authorization and device endpoints) and [`authenticate`] (a client at the token
//! endpoint).

use entity::organization;

use crate::oauth::client::Presented;
use crate::state::AppState;
use crate::storage::StorageError;

/// How a client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// A public client (a native app, an MCP client): PKCE is its only proof.
    None,
    ClientSecretBasic,
    PrivateKeyJwt,
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
}

/// A client of the browser and device flows.
#[derive(Clone, Debug)]
pub struct Client {
    pub client_id: String,
    /// Shown to the person on the consent page.
    pub name: String,
    /// Exact redirect URIs (compared as strings).
    pub redirect_uris: Vec<String>,
    pub auth: ClientAuth,
    pub source: ClientSource,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No such client in this organization (or its metadata document cannot be had).
    #[error("unknown client")]
    Unknown,
    /// The client exists but cannot be used: the reason, for the developer.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The client `client_id` names in `org`: a registered or dynamically registered client,
/// or a Client ID Metadata Document fetched (with the outbound SSRF guards) and cached.
pub async fn resolve(
    _state: &AppState,
    _org: &organization::Model,
    _client_id: &str,
) -> Result<Client, ClientError> {
    Err(ClientError::Unknown)
}

/// Authenticates a browser-flow client at the token endpoint: a public client presents only
/// its `client_id` (`presented` is `None`), a confidential one its secret (Basic) or a
/// `private_key_jwt` assertion, as it registered.
pub async fn authenticate(
    _state: &AppState,
    _org: &organization::Model,
    _client_id: &str,
    _presented: Option<&Presented>,
    _ip: Option<&str>,
) -> Result<Client, ClientError> {
    Err(ClientError::Unknown)
}
