//! Users: list, create, get, change, soft delete.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{idempotent, page_json, page_request, to_value};
use crate::admin;
use crate::admin::policy::Actor;
use crate::admin::users::UserPatch;
use crate::http::body::JsonBody;
use crate::http::error::ApiError;
use crate::http::extract::Authenticated;
use crate::http::schema::{
    self, CreateErrors, ErrorBody, NotFound, OrgIdPath, OrgPath, ProtectedErrors, rfc3339,
};
use crate::state::AppState;
use crate::storage::users::UserFilter;
use crate::types::{Role, UserStatus};
use entity::user;

fn user_json(user: user::Model, org: &str) -> schema::User {
    schema::User {
        user_id: user.id,
        org: org.to_owned(),
        email: user.email,
        name: user.name,
        role: user.role,
        disabled: user.disabled,
        created_at: rfc3339(user.created_at),
        updated_at: rfc3339(user.updated_at),
        deleted_at: user.deleted_at.map(rfc3339),
        external_subject: user.external_subject,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    role: Option<Role>,
    status: Option<UserStatus>,
}

#[utoipa::path(
    get, path = "/v1/{org}/users", tag = "Users", summary = "List users",
    description = "Newest first. Members and service accounts see themselves only.",
    params(OrgPath, UserQuery), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "A page of users", body = inline(schema::Page<schema::User>)),
        ProtectedErrors,
    )
)]
pub async fn list_users(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    query: web::Query<UserQuery>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let query = query.into_inner();
    let page = page_request(query.limit, query.cursor.as_deref())?;
    let filter = UserFilter {
        user_id: None,
        role: query.role,
        status: query.status,
    };
    let users = admin::users::list(&state, &actor, filter, &page).await?;
    Ok(page_json(users, |u| user_json(u, &actor.org.slug)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserBody {
    email: String,
    name: Option<String>,
    role: Option<Role>,
}

#[utoipa::path(
    post, path = "/v1/{org}/users", tag = "Users", summary = "Create a user",
    params(OrgPath, ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: the same key and body within 24 h answer the first result"),), request_body = CreateUserBody, security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 201, description = "The new user", body = schema::User),
        ProtectedErrors,
        CreateErrors,
    )
)]
pub async fn create_user(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
    body: JsonBody<CreateUserBody>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let JsonBody { value, json } = body;
    idempotent(&state, &actor, &req, &json, None, {
        let (state, actor) = (state.clone(), actor.clone());
        move || async move {
            let role = value.role.unwrap_or(Role::Member);
            let user = admin::users::create(&state, &actor, &value.email, value.name, role).await?;
            Ok((
                StatusCode::CREATED,
                to_value(user_json(user, &actor.org.slug)),
            ))
        }
    })
    .await
}

#[utoipa::path(
    get, path = "/v1/{org}/users/{id}", tag = "Users", summary = "Get a user",
    params(OrgIdPath), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The user", body = schema::User),
        ProtectedErrors,
        NotFound,
    )
)]
pub async fn get_user(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let user = admin::users::get(&state, &actor, &path.1).await?;
    Ok(HttpResponse::Ok().json(user_json(user, &actor.org.slug)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserBody {
    name: Option<String>,
    role: Option<Role>,
    disabled: Option<bool>,
    /// Absent: unchanged; `null`: removed.
    #[serde(default, deserialize_with = "present")]
    external_subject: Option<Option<String>>,
}

/// Tells a member that is `null` (`Some(None)`) from one that is absent (`None`).
pub(super) fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[utoipa::path(
    patch, path = "/v1/{org}/users/{id}", tag = "Users", summary = "Change a user",
    description = "Disabling ends the user's sessions. The last enabled owner cannot be demoted or disabled.",
    params(OrgIdPath), request_body = UpdateUserBody, security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The changed user", body = schema::User),
        ProtectedErrors,
        NotFound,
        CreateErrors,
    )
)]
pub async fn update_user(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    path: web::Path<(String, String)>,
    body: JsonBody<UpdateUserBody>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let patch = UserPatch {
        name: body.value.name,
        role: body.value.role,
        disabled: body.value.disabled,
        external_subject: body.value.external_subject,
    };
    let user = admin::users::update(&state, &actor, &path.1, patch).await?;
    Ok(HttpResponse::Ok().json(user_json(user, &actor.org.slug)))
}

#[utoipa::path(
    delete, path = "/v1/{org}/users/{id}", tag = "Users", summary = "Delete a user (soft)",
    description = "Disables the user, ends its sessions and revokes its keys; the row stays for the audit trail.",
    params(OrgIdPath), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Deleted"),
        ProtectedErrors,
        NotFound,
        (status = 409, description = "`conflict`", body = ErrorBody),
    )
)]
pub async fn delete_user(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    admin::users::delete(&state, &actor, &path.1).await?;
    Ok(HttpResponse::NoContent().finish())
}
