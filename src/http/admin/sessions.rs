//! Sessions: list and end.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{page_json, page_request};
use crate::admin;
use crate::admin::policy::Actor;
use crate::http::error::ApiError;
use crate::http::extract::Authenticated;
use crate::http::schema::{self, NotFound, OrgIdPath, OrgPath, ProtectedErrors, rfc3339};
use crate::state::AppState;
use crate::storage::sessions::SessionFilter;
use crate::types::Lifecycle;
use entity::session;

fn session_json(session: session::Model, now: DateTime<Utc>) -> schema::Session {
    let status = Lifecycle::of(session.revoked_at, session.expires_at, now);
    schema::Session {
        session_id: session.id,
        user_id: session.user_id,
        api_key_id: session.api_key_id,
        actor_user_id: session.actor_user_id,
        dpop_bound: session.dpop_jkt.is_some(),
        scope: session.scope,
        status: status.as_str().to_owned(),
        created_at: rfc3339(session.created_at),
        expires_at: rfc3339(session.expires_at),
        refreshed_at: session.refreshed_at.map(rfc3339),
        revoked_at: session.revoked_at.map(rfc3339),
        parent_session_id: session.parent_session_id,
        actor_session_id: session.actor_session_id,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SessionQuery {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    user_id: Option<String>,
    api_key_id: Option<String>,
    status: Option<Lifecycle>,
}

#[utoipa::path(
    get, path = "/v1/{org}/sessions", tag = "Sessions", summary = "List sessions",
    params(OrgPath, SessionQuery), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "A page of sessions", body = inline(schema::Page<schema::Session>)),
        ProtectedErrors,
    )
)]
pub async fn list_sessions(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    query: web::Query<SessionQuery>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let query = query.into_inner();
    let page = page_request(query.limit, query.cursor.as_deref())?;
    let now = state.clock.now();
    let filter = SessionFilter {
        user_id: query.user_id,
        api_key_id: query.api_key_id,
        status: query.status.map(|s| (s, now)),
    };
    let sessions = admin::sessions::list(&state, &actor, filter, &page).await?;
    Ok(page_json(sessions, |s| session_json(s, now)))
}

#[utoipa::path(
    delete, path = "/v1/{org}/sessions/{id}", tag = "Sessions", summary = "End a session",
    description = "Its refresh tokens stop at once, its access tokens within 5 seconds.",
    params(OrgIdPath), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Ended"),
        ProtectedErrors,
        NotFound,
    )
)]
pub async fn revoke_session(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    admin::sessions::revoke(&state, &actor, &path.1).await?;
    Ok(HttpResponse::NoContent().finish())
}
