//! A meeting's settings for its chair's controls and its record
//! (`/api/v1/meetings/{id}/settings`): read by whoever may see the meeting, changed by the
//! admins who manage it. A change reaches a meeting in progress at once: its pages, its
//! controls, and its record (started or stopped).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Json;
use cauhop_store::model::{AuditAction, MeetingSettings};
use serde_json::json;

use super::audit::Audit;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, Principal};
use super::meetings::{load_managed, load_visible};
use crate::{AppState, room_of};

/// The longest floor turn a meeting may set: two hours.
const MAX_FLOOR_LIMIT_S: u32 = 7200;

#[utoipa::path(operation_id = "meetings_settings_get", get, path = "/api/v1/meetings/{id}/settings", tag = "meetings", params(("id" = i64, Path)),
    responses((status = 200, body = MeetingSettings)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<MeetingSettings>, ApiError> {
    load_visible(&state, &principal, id).await?;
    Ok(Json(state.store.meeting_settings(id).await?))
}

#[utoipa::path(operation_id = "meetings_settings_put", put, path = "/api/v1/meetings/{id}/settings", tag = "meetings", params(("id" = i64, Path)),
    request_body = MeetingSettings, responses((status = 200, body = MeetingSettings)))]
pub async fn put(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    audit: Audit,
    ApiPath(id): ApiPath<i64>,
    ApiJson(s): ApiJson<MeetingSettings>,
) -> Result<Json<MeetingSettings>, ApiError> {
    load_managed(&state, &principal, id).await?;
    if s.floor_limit_s > MAX_FLOOR_LIMIT_S {
        return Err(ApiError::invalid(
            "floor_limit_s",
            format!("at most {MAX_FLOOR_LIMIT_S} seconds (0: no limit)"),
        ));
    }
    if s.record && state.options.records.is_none() {
        return Err(ApiError::invalid(
            "record",
            "this bridge keeps no records ([record] enabled = false in its configuration)",
        ));
    }
    let before = state.store.meeting_settings(id).await?;
    state.store.put_meeting_settings(id, &s).await?;
    let who = principal.person()?;
    audit
        .record(
            who,
            AuditAction::MeetingUpdate,
            id,
            json!({"settings": s, "before": {"settings": before}}),
        )
        .await;
    // A meeting in progress follows at once.
    let room = room_of(id);
    let fx = state
        .registry
        .control(&room, |c, _| c.configure(s.self_unmute, s.floor_limit_s));
    crate::chair::apply(&state, &room, fx).await;
    if s.record {
        crate::record::start_if_wanted(&state, &room, Some(id)).await;
    } else {
        crate::record::stop(&state, &room, "setting");
    }
    Ok(Json(s))
}
