//! Cross-organization grants.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{PageQuery, idempotent, page_json, page_request, parse_time, to_value};
use crate::admin;
use crate::admin::grants::{Grant, NewGrant};
use crate::admin::policy::Actor;
use crate::http::body::JsonBody;
use crate::http::error::ApiError;
use crate::http::extract::Authenticated;
use crate::http::schema::{
    self, CreateErrors, NotFound, OrgIdPath, OrgPath, ProtectedErrors, rfc3339,
};
use crate::state::AppState;
use crate::types::Role;

fn grant_json(found: Grant, org: &str) -> schema::CrossOrgGrant {
    let grant = found.grant;
    schema::CrossOrgGrant {
        id: grant.id,
        org: org.to_owned(),
        source_org: found.source_org.slug,
        user_id: grant.user_id,
        role: grant.role,
        created_by: grant.created_by,
        created_at: rfc3339(grant.created_at),
        expires_at: grant.expires_at.map(rfc3339),
        revoked_at: grant.revoked_at.map(rfc3339),
    }
}

#[utoipa::path(
    get, path = "/v1/{org}/cross_org_grants", tag = "Cross-organization access", summary = "List live cross-organization grants",
    params(OrgPath, PageQuery), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "A page of grants", body = inline(schema::Page<schema::CrossOrgGrant>)),
        ProtectedErrors,
    )
)]
pub async fn list_grants(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let page = page_request(query.limit, query.cursor.as_deref())?;
    let grants = admin::grants::list(&state, &actor, &page).await?;
    Ok(page_json(grants, |g| grant_json(g, &actor.org.slug)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGrantBody {
    source_org: String,
    user_id: Option<String>,
    role: Role,
    expires_at: Option<String>,
}

#[utoipa::path(
    post, path = "/v1/{org}/cross_org_grants", tag = "Cross-organization access", summary = "Grant users of another organization a role here",
    params(OrgPath, ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: the same key and body within 24 h answer the first result"),), request_body = CreateGrantBody, security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 201, description = "The grant", body = schema::CrossOrgGrant),
        ProtectedErrors,
        NotFound,
        CreateErrors,
    )
)]
pub async fn create_grant(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
    body: JsonBody<CreateGrantBody>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let JsonBody { value, json } = body;
    let new = NewGrant {
        source_org: value.source_org,
        user_id: value.user_id,
        role: value.role,
        expires_at: value
            .expires_at
            .as_deref()
            .map(|t| parse_time(t, "expires_at"))
            .transpose()?,
    };
    idempotent(&state, &actor, &req, &json, None, {
        let (state, actor) = (state.clone(), actor.clone());
        move || async move {
            let grant = admin::grants::create(&state, &actor, new).await?;
            Ok((
                StatusCode::CREATED,
                to_value(grant_json(grant, &actor.org.slug)),
            ))
        }
    })
    .await
}

#[utoipa::path(
    get, path = "/v1/{org}/cross_org_grants/{id}", tag = "Cross-organization access", summary = "Get a grant",
    params(OrgIdPath), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The grant", body = schema::CrossOrgGrant),
        ProtectedErrors,
        NotFound,
    )
)]
pub async fn get_grant(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let grant = admin::grants::get(&state, &actor, &path.1).await?;
    Ok(HttpResponse::Ok().json(grant_json(grant, &actor.org.slug)))
}

#[utoipa::path(
    delete, path = "/v1/{org}/cross_org_grants/{id}", tag = "Cross-organization access", summary = "End a grant",
    params(OrgIdPath), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Ended"),
        ProtectedErrors,
        NotFound,
    )
)]
pub async fn revoke_grant(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    admin::grants::revoke(&state, &actor, &path.1).await?;
    Ok(HttpResponse::NoContent().finish())
}
