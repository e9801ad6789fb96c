//! Clients of the browser and device flows (authorization code + PKCE, device
//! authorization): registered by owners and admins.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{PageQuery, page_json, page_request};
use crate::admin;
use crate::admin::clients::NewClient;
use crate::admin::policy::Actor;
use crate::clients::ClientAuth;
use crate::clients::secret::ClientSecret;
use crate::http::body::JsonBody;
use crate::http::error::ApiError;
use crate::http::extract::Authenticated;
use crate::http::schema::{CreateErrors, NotFound, OrgIdPath, OrgPath, ProtectedErrors, rfc3339};
use crate::state::AppState;

/// A client of the browser and device flows.
#[derive(Serialize, ToSchema)]
pub struct ClientBody {
    /// `cli_…`
    pub client_id: String,
    /// Only in the answer to its creation, for `client_secret_basic`: shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Shown to people on the consent page.
    pub client_name: String,
    pub redirect_uris: Vec<String>,
    /// `none`, `client_secret_basic` or `private_key_jwt`.
    pub token_endpoint_auth_method: String,
    /// The public keys of a `private_key_jwt` client.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<Value>,
    /// The most this client may ask for (space-separated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `registered` (admin API, CLI) or `dynamic` (RFC 7591).
    pub source: String,
    pub created_at: String,
}

fn client_json(c: entity::client::Model, secret: Option<&ClientSecret>) -> ClientBody {
    ClientBody {
        redirect_uris: serde_json::from_str(&c.redirect_uris).unwrap_or_default(),
        jwks: c
            .public_jwks
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok()),
        client_id: c.id,
        client_secret: secret.map(|s| s.expose().to_owned()),
        client_name: c.name,
        token_endpoint_auth_method: c.auth_method,
        scope: c.scope,
        source: c.source,
        created_at: rfc3339(c.created_at),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClientBody {
    /// Shown to people on the consent page.
    #[schema(example = "Acme desktop agent")]
    client_name: String,
    /// Exact redirect URIs: `https`, `http` to a loopback host (any port matches), or a
    /// private-use scheme with a dot (`com.example.app:/cb`); no fragment.
    #[schema(example = json!(["https://agent.example.com/callback", "http://127.0.0.1/callback"]))]
    redirect_uris: Vec<String>,
    /// `none` (public: PKCE only), `client_secret_basic` (default: a secret is returned once)
    /// or `private_key_jwt` (with `jwks`).
    #[schema(example = "none")]
    token_endpoint_auth_method: Option<String>,
    /// The public JWK Set of a `private_key_jwt` client (public members only).
    #[schema(value_type = Option<Object>)]
    jwks: Option<Value>,
    /// The most the client may ask for (space-separated scope tokens).
    scope: Option<String>,
}

#[utoipa::path(
    post, path = "/v1/{org}/clients", tag = "Clients", summary = "Register a browser or device-flow client",
    description = "Owners and admins. A `client_secret_basic` client's `client_secret` is in this answer only (keygate keeps a digest).",
    params(OrgPath), request_body = CreateClientBody, security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 201, description = "The client (with `client_secret` when confidential)", body = ClientBody),
        ProtectedErrors,
        CreateErrors,
    )
)]
pub async fn create_client(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    body: JsonBody<CreateClientBody>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let value = body.value;
    let new = NewClient {
        name: value.client_name,
        redirect_uris: value.redirect_uris,
        auth: value
            .token_endpoint_auth_method
            .unwrap_or_else(|| ClientAuth::ClientSecretBasic.as_str().to_owned()),
        jwks: value.jwks,
        scope: value.scope,
    };
    let created = admin::clients::create(&state, &actor, new).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(client_json(created.client, created.secret.as_ref())))
}

#[utoipa::path(
    get, path = "/v1/{org}/clients", tag = "Clients", summary = "List browser and device-flow clients",
    params(OrgPath, PageQuery), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "A page of clients", body = inline(crate::http::schema::Page<ClientBody>)),
        ProtectedErrors,
    )
)]
pub async fn list_clients(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let page = page_request(query.limit, query.cursor.as_deref())?;
    let clients = admin::clients::list(&state, &actor, &page).await?;
    Ok(page_json(clients, |c| client_json(c, None)))
}

#[utoipa::path(
    get, path = "/v1/{org}/clients/{id}", tag = "Clients", summary = "Get a client",
    params(OrgIdPath), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The client (never its secret)", body = ClientBody),
        ProtectedErrors,
        NotFound,
    )
)]
pub async fn get_client(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let client = admin::clients::get(&state, &actor, &path.1).await?;
    Ok(HttpResponse::Ok().json(client_json(client, None)))
}

#[utoipa::path(
    delete, path = "/v1/{org}/clients/{id}", tag = "Clients", summary = "Delete a client",
    description = "The client can no longer start a flow or authenticate, and every session it holds ends (its refresh tokens with it).",
    params(OrgIdPath), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Deleted"),
        ProtectedErrors,
        NotFound,
    )
)]
pub async fn delete_client(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    admin::clients::delete(&state, &actor, &path.1).await?;
    Ok(HttpResponse::NoContent().finish())
}
