//! Protected resources (RFC 8707) and the RFC 9728 document each should publish.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::users::present;
use super::{PageQuery, idempotent, page_json, page_request, to_value};
use crate::admin;
use crate::admin::policy::Actor;
use crate::admin::resources::{NewResource, ResourcePatch};
use crate::http::body::JsonBody;
use crate::http::error::ApiError;
use crate::http::extract::Authenticated;
use crate::http::schema::{
    self, CreateErrors, NotFound, OrgIdPath, OrgPath, ProtectedErrors, rfc3339,
};
use crate::state::AppState;

/// A protected resource: an API or MCP server the organization issues tokens for.
#[derive(Serialize, ToSchema)]
pub struct Resource {
    /// `res_…`
    pub id: String,
    /// The resource's URI, normalized: the `aud` of its tokens.
    pub uri: String,
    pub name: String,
    /// The scopes it defines.
    pub scopes: Vec<String>,
    /// Caps the lifetime of its access tokens (e.g. `5m`); absent: the server's.
    pub access_ttl: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

fn resource_json(r: entity::resource::Model) -> Resource {
    Resource {
        id: r.id,
        uri: r.uri,
        name: r.name,
        scopes: r
            .scopes
            .split_ascii_whitespace()
            .map(str::to_owned)
            .collect(),
        access_ttl: r
            .access_ttl_secs
            .and_then(|s| u64::try_from(s).ok())
            .map(|s| humantime::format_duration(std::time::Duration::from_secs(s)).to_string()),
        created_at: rfc3339(r.created_at),
        updated_at: rfc3339(r.updated_at),
    }
}

fn ttl(text: &str) -> Result<std::time::Duration, ApiError> {
    Ok(admin::parse_duration(text, "access_ttl")?)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateResourceBody {
    /// An absolute `https` URI (`http` only on a loopback host), without fragment.
    #[schema(example = "https://mcp.example.com/mcp")]
    uri: String,
    name: String,
    /// The scopes the resource defines (RFC 6749 §3.3 scope tokens).
    #[schema(example = json!(["mcp:tools", "files:read"]))]
    scopes: Option<Vec<String>>,
    /// Caps the lifetime of its access tokens, e.g. `"5m"`, 1s to 24h.
    #[schema(example = "5m")]
    access_ttl: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateResourceBody {
    uri: Option<String>,
    name: Option<String>,
    scopes: Option<Vec<String>>,
    /// Absent: unchanged; `null`: removed (the server's lifetime applies).
    #[serde(default, deserialize_with = "present")]
    access_ttl: Option<Option<String>>,
}

#[utoipa::path(
    get, path = "/v1/{org}/resources", tag = "Protected resources", summary = "List protected resources",
    params(OrgPath, PageQuery), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "A page of resources", body = inline(schema::Page<Resource>)),
        ProtectedErrors,
    )
)]
pub async fn list_resources(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let page = page_request(query.limit, query.cursor.as_deref())?;
    let resources = admin::resources::list(&state, &actor, &page).await?;
    Ok(page_json(resources, resource_json))
}

#[utoipa::path(
    post, path = "/v1/{org}/resources", tag = "Protected resources", summary = "Register a protected resource (RFC 8707)",
    description = "Owners and admins. Token requests may then name its `uri` as `resource`; their tokens carry it as `aud`.",
    params(OrgPath, ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: the same key and body within 24 h answer the first result"),), request_body = CreateResourceBody, security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 201, description = "The resource", body = Resource),
        ProtectedErrors,
        CreateErrors,
    )
)]
pub async fn create_resource(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
    body: JsonBody<CreateResourceBody>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let JsonBody { value, json } = body;
    let new = NewResource {
        uri: value.uri,
        name: value.name,
        scopes: value.scopes.unwrap_or_default(),
        access_ttl: value.access_ttl.as_deref().map(ttl).transpose()?,
    };
    idempotent(&state, &actor, &req, &json, None, {
        let (state, actor) = (state.clone(), actor.clone());
        move || async move {
            let resource = admin::resources::create(&state, &actor, new).await?;
            Ok((StatusCode::CREATED, to_value(resource_json(resource))))
        }
    })
    .await
}

#[utoipa::path(
    get, path = "/v1/{org}/resources/{id}", tag = "Protected resources", summary = "Get a protected resource",
    params(OrgIdPath), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The resource", body = Resource),
        ProtectedErrors,
        NotFound,
    )
)]
pub async fn get_resource(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let resource = admin::resources::get(&state, &actor, &path.1).await?;
    Ok(HttpResponse::Ok().json(resource_json(resource)))
}

#[utoipa::path(
    patch, path = "/v1/{org}/resources/{id}", tag = "Protected resources", summary = "Change a protected resource",
    description = "Tokens already issued keep their `aud` and scope; the next refresh of a session sees the change.",
    params(OrgIdPath), request_body = UpdateResourceBody, security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The changed resource", body = Resource),
        ProtectedErrors,
        NotFound,
        CreateErrors,
    )
)]
pub async fn update_resource(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    path: web::Path<(String, String)>,
    body: JsonBody<UpdateResourceBody>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let value = body.value;
    let patch = ResourcePatch {
        uri: value.uri,
        name: value.name,
        scopes: value.scopes,
        access_ttl: value
            .access_ttl
            .map(|t| t.as_deref().map(ttl).transpose())
            .transpose()?,
    };
    let resource = admin::resources::update(&state, &actor, &path.1, patch).await?;
    Ok(HttpResponse::Ok().json(resource_json(resource)))
}

#[utoipa::path(
    delete, path = "/v1/{org}/resources/{id}", tag = "Protected resources", summary = "Remove a protected resource",
    description = "No token is issued for it any more; tokens already issued stay valid at the resource until they expire.",
    params(OrgIdPath), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Removed"),
        ProtectedErrors,
        NotFound,
    )
)]
pub async fn delete_resource(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    admin::resources::delete(&state, &actor, &path.1).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// RFC 9728 §2 protected resource metadata (documentation only: the handler renders
/// `resources::metadata_document`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ProtectedResourceMetadata {
    /// The resource's URI.
    resource: String,
    /// keygate's issuer for this organization (RFC 8414).
    authorization_servers: Vec<String>,
    scopes_supported: Vec<String>,
    /// `["header"]`: tokens in the `Authorization` header only.
    bearer_methods_supported: Vec<String>,
    resource_name: String,
    dpop_signing_alg_values_supported: Vec<String>,
    /// Whether the organization requires DPoP-bound tokens.
    dpop_bound_access_tokens_required: bool,
}

#[utoipa::path(
    get, path = "/v1/{org}/resources/{id}/protected-resource-metadata", tag = "Protected resources",
    summary = "The RFC 9728 metadata the resource should publish",
    description = "The document the resource server should serve at its `/.well-known/oauth-protected-resource` (RFC 9728 §3.1: for `https://mcp.example.com/mcp`, at `https://mcp.example.com/.well-known/oauth-protected-resource/mcp`).",
    params(OrgIdPath), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "RFC 9728 protected resource metadata", body = ProtectedResourceMetadata),
        ProtectedErrors,
        NotFound,
    )
)]
pub async fn resource_metadata(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let document = admin::resources::metadata(&state, &actor, &path.1).await?;
    Ok(HttpResponse::Ok().json(document))
}
