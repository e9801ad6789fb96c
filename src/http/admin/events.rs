//! The audit log.

use actix_web::{HttpResponse, web};
use chrono::SecondsFormat;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{page_json, page_request, parse_time};
use crate::admin;
use crate::admin::policy::Actor;
use crate::http::error::ApiError;
use crate::http::extract::Authenticated;
use crate::http::schema::{self, OrgPath, ProtectedErrors};
use crate::state::AppState;
use crate::storage::audit::EventFilter;
use entity::audit_event;

fn event_json(event: audit_event::Model, org: &str) -> schema::AuditEvent {
    schema::AuditEvent {
        id: event.id,
        at: event.at.to_rfc3339_opts(SecondsFormat::Millis, true),
        org: org.to_owned(),
        action: event.action,
        outcome: event.outcome,
        reason: event.reason,
        actor_user_id: event.actor_user_id,
        actor_key_id: event.actor_key_id,
        target_type: event.target_type,
        target_id: event.target_id,
        ip: event.ip,
        user_agent: event.user_agent,
        request_id: event.request_id,
        act: event.act.and_then(|a| serde_json::from_str(&a).ok()),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    target_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/{org}/audit_events", tag = "Audit log", summary = "List audit events",
    description = "Newest first. Owners and admins only.",
    params(OrgPath, EventQuery), security(("bearer" = []), ("dpop" = []), ("basic" = [])),
    responses(
        (status = 200, description = "A page of events", body = inline(schema::Page<schema::AuditEvent>)),
        ProtectedErrors,
    )
)]
pub async fn list_events(
    state: web::Data<AppState>,
    Authenticated(caller): Authenticated,
    query: web::Query<EventQuery>,
) -> Result<HttpResponse, ApiError> {
    let actor = Actor::new(caller);
    let query = query.into_inner();
    let page = page_request(query.limit, query.cursor.as_deref())?;
    let outcome = match query.outcome.as_deref() {
        None => None,
        Some("success") => Some("success"),
        Some("failure") => Some("failure"),
        Some(_) => {
            return Err(ApiError::invalid_request(
                "`outcome` must be `success` or `failure`",
            ));
        }
    };
    let filter = EventFilter {
        actor: query.actor,
        action: query.action,
        outcome,
        target_id: query.target_id,
        since: query
            .since
            .as_deref()
            .map(|t| parse_time(t, "since"))
            .transpose()?,
        until: query
            .until
            .as_deref()
            .map(|t| parse_time(t, "until"))
            .transpose()?,
    };
    let events = admin::events::list(&state, &actor, &filter, &page).await?;
    Ok(page_json(events, |e| event_json(e, &actor.org.slug)))
}
