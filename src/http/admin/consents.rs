//! A user's consents to browser clients: list and withdraw.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{page_json, page_request};
use crate::admin;
use crate::admin::policy::Actor;
use crate::http::error::ApiError;
use crate::http::extract::Authenticated;
use crate::http::schema::{self, NotFound, OrgIdPath, ProtectedErrors, rfc3339};
use crate::state::AppState;
use entity::consent;

/// What a user approved for a browser client (README, "Authorization code + PKCE").
#[derive(Serialize, ToSchema)]
pub struct Consent {
    /// `cli_…`, or the URL of a Client ID Metadata Document.
    pub client_id: String,
    /// The client's name when the user approved it.
    pub client_name: Option<String>,
    /// The approved scopes, space-separated.
    pub scope: String,
    /// The approved protected resources (RFC 8707).
    pub resources: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

fn consent_json(consent: consent::Model) -> Consent {
    Consent {
        client_id: consent.client_id,
        client_name: Some(consent.client_name).filter(|n| !n.is_empty()),
        scope: consent.scope,
        resources: consent
            .resources
            .split_ascii_whitespace()
            .map(str::to_owned)
            .collect(),
        created_at: rfc3339(consent.created_at),
        updated_at: rfc3339(consent.updated_at),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConsentQuery {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WithdrawQuery {
    /// Only the consent of this client (default: all of the user's).
    client_id: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/{org}/users/{id}/consents", tag = "Users", summary = "List a user's consents",
    description = "What the user approved for browser clients (authorization code + PKCE), newest first. The user themself, or an owner or admin over a user who does not outrank them (`users:read`).",
    params(OrgIdPath, ConsentQuery), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "A page of consents", body = inline(schema::Page<Consent>)),
        ProtectedErrors,
        NotFound,
    )
)]
pub async fn list_consents(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    path: web::Path<(String, String)>,
    query: web::Query<ConsentQuery>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let query = query.into_inner();
    let page = page_request(query.limit, query.cursor.as_deref())?;
    let consents = admin::consents::list(&state, &actor, &path.1, &page).await?;
    Ok(page_json(consents, consent_json))
}

#[utoipa::path(
    delete, path = "/v1/{org}/users/{id}/consents", tag = "Users", summary = "Withdraw a user's consents",
    description = "Deletes the user's consents (`?client_id=` narrows to one client) and ends the user's sessions with those browser clients: their refresh tokens stop at once, their access tokens within 5 seconds. The next authorization request shows the consent page again. The user themself, or an owner or admin over a user who does not outrank them (`sessions:write`).",
    params(OrgIdPath, WithdrawQuery), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Withdrawn (also when there was nothing to withdraw)"),
        ProtectedErrors,
        NotFound,
    )
)]
pub async fn revoke_consents(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    path: web::Path<(String, String)>,
    query: web::Query<WithdrawQuery>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    admin::consents::revoke(&state, &actor, &path.1, query.client_id.as_deref()).await?;
    Ok(HttpResponse::NoContent().finish())
}
