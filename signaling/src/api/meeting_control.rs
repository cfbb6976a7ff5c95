//! The chair's powers from the admin page (`POST /api/v1/meetings/{id}/control`): when
//! the chair's link is down and no secretary was named, an admin of the office that
//! chairs the meeting (the province's, or the chairing district's) gives the floor,
//! mutes, removes or locks in its place. The body is the chair's own WebSocket message
//! (`{"type": "grant_floor", "participant": "p12"}`); the audit log names the admin.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::response::Json;
use cauhop_protocol::{ClientMsg, ErrorCode};
use cauhop_store::model::AuditActor;
use serde_json::{Value, json};

use super::audit::Audit;
use super::error::ApiError;
use super::extract::{ApiPath, Principal};
use super::meetings::load_managed;
use crate::chair::{Actor, act, is_chair_action};
use crate::{AppState, room_of};

#[utoipa::path(operation_id = "meetings_control", post, path = "/api/v1/meetings/{id}/control", tag = "meetings", params(("id" = i64, Path)),
    request_body(content = Object, description = "A chair action as the WebSocket protocol writes it, e.g. {\"type\": \"mute_all\"}"),
    responses((status = 200, body = Object), (status = 403, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn control(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    audit: Audit,
    ApiPath(id): ApiPath<i64>,
    body: String,
) -> Result<Json<Value>, ApiError> {
    load_managed(&state, &principal, id).await?;
    let person = principal.person()?;
    let msg = ClientMsg::parse(&body).map_err(|e| ApiError::invalid("type", e))?;
    if !is_chair_action(&msg) {
        return Err(ApiError::invalid(
            "type",
            "not one of the chair's actions (grant_floor, mute_participant, mute_all, remove, lock, ...)",
        ));
    }
    let actor = Actor {
        room: room_of(id),
        meeting_id: Some(id),
        participant: None,
        chair_role: true,
        who: AuditActor {
            person_id: Some(person.id),
            name: person.username.clone(),
            client: audit.client().map(str::to_owned),
        },
    };
    let refused: Mutex<Option<(ErrorCode, String)>> = Mutex::new(None);
    let reply = |code: ErrorCode, message: String| {
        let mut r = refused.lock().unwrap_or_else(|e| e.into_inner());
        r.get_or_insert((code, message));
    };
    act(&state, &actor, msg, &reply).await;
    match refused.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some((ErrorCode::Forbidden, m)) => Err(ApiError::forbidden(m)),
        Some((ErrorCode::Internal, m)) => Err(ApiError::Internal(m)),
        Some((_, m)) => Err(ApiError::invalid("participant", m)),
        None => Ok(Json(json!({"ok": true}))),
    }
}
