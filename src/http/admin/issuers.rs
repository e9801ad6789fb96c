//! Trusted identity providers.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{PageQuery, idempotent, page_json, page_request, to_value};
use crate::admin;
use crate::admin::issuers::NewIssuer;
use crate::admin::policy::Actor;
use crate::http::body::JsonBody;
use crate::http::error::ApiError;
use crate::http::extract::Authenticated;
use crate::http::schema::{
    self, CreateErrors, NotFound, OrgIdPath, OrgPath, ProtectedErrors, rfc3339,
};
use crate::state::AppState;

fn issuer_json(issuer: entity::trusted_issuer::Model) -> schema::TrustedIssuer {
    schema::TrustedIssuer {
        id: issuer.id,
        issuer: issuer.issuer,
        jwks_uri: issuer.jwks_uri,
        jwks: issuer.jwks.and_then(|j| serde_json::from_str(&j).ok()),
        audience: issuer.audience,
        subject_claim: issuer.subject_claim,
        algorithms: issuer
            .algorithms
            .split_ascii_whitespace()
            .map(str::to_owned)
            .collect(),
        allow_jwt_bearer: issuer.allow_jwt_bearer,
        created_at: rfc3339(issuer.created_at),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIssuerBody {
    issuer: String,
    jwks_uri: Option<String>,
    #[schema(value_type = Option<Object>)]
    jwks: Option<Value>,
    audience: String,
    subject_claim: Option<String>,
    algorithms: Vec<String>,
    /// Accept its tokens as the `assertion` of the JWT bearer grant (RFC 7523 §2.1) at the
    /// token endpoint (default false).
    allow_jwt_bearer: Option<bool>,
}

#[utoipa::path(
    get, path = "/v1/{org}/trusted_issuers", tag = "Trusted identity providers", summary = "List trusted identity providers",
    params(OrgPath, PageQuery), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "A page of providers", body = inline(schema::Page<schema::TrustedIssuer>)),
        ProtectedErrors,
    )
)]
pub async fn list_issuers(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let page = page_request(query.limit, query.cursor.as_deref())?;
    let issuers = admin::issuers::list(&state, &actor, &page).await?;
    Ok(page_json(issuers, issuer_json))
}

#[utoipa::path(
    post, path = "/v1/{org}/trusted_issuers", tag = "Trusted identity providers", summary = "Trust an identity provider (owner only)",
    params(OrgPath, ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: the same key and body within 24 h answer the first result"),), request_body = CreateIssuerBody, security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 201, description = "The provider", body = schema::TrustedIssuer),
        ProtectedErrors,
        CreateErrors,
    )
)]
pub async fn create_issuer(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
    body: JsonBody<CreateIssuerBody>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let JsonBody { value, json } = body;
    let new = NewIssuer {
        issuer: value.issuer,
        jwks_uri: value.jwks_uri,
        jwks: value.jwks.map(|j| j.to_string()),
        audience: value.audience,
        subject_claim: value.subject_claim.unwrap_or_else(|| "sub".into()),
        algorithms: value.algorithms,
        allow_jwt_bearer: value.allow_jwt_bearer.unwrap_or(false),
    };
    idempotent(&state, &actor, &req, &json, None, {
        let (state, actor) = (state.clone(), actor.clone());
        move || async move {
            let issuer = admin::issuers::create(&state, &actor, new).await?;
            Ok((StatusCode::CREATED, to_value(issuer_json(issuer))))
        }
    })
    .await
}

#[utoipa::path(
    get, path = "/v1/{org}/trusted_issuers/{id}", tag = "Trusted identity providers", summary = "Get a trusted identity provider",
    params(OrgIdPath), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The provider", body = schema::TrustedIssuer),
        ProtectedErrors,
        NotFound,
    )
)]
pub async fn get_issuer(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let issuer = admin::issuers::get(&state, &actor, &path.1).await?;
    Ok(HttpResponse::Ok().json(issuer_json(issuer)))
}

#[utoipa::path(
    delete, path = "/v1/{org}/trusted_issuers/{id}", tag = "Trusted identity providers", summary = "Stop trusting an identity provider (owner only)",
    params(OrgIdPath), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Removed"),
        ProtectedErrors,
        NotFound,
    )
)]
pub async fn delete_issuer(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    admin::issuers::delete(&state, &actor, &path.1).await?;
    Ok(HttpResponse::NoContent().finish())
}
