use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cauhop_store::model::{
    AuditAction, Endpoint, EndpointWithKey, Meeting, NewEndpoint, Page, Paged,
};
use cauhop_store::{Instant, MeetingFilter};

use super::audit::Audit;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, PageQuery, Principal};
use crate::AppState;

#[utoipa::path(operation_id = "endpoints_list", get, path = "/api/v1/endpoints", tag = "endpoints", params(PageQuery),
    responses((status = 200, body = Paged<Endpoint>), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Paged<Endpoint>>, ApiError> {
    let scope = principal.admin()?;
    Ok(Json(
        state.store.endpoints(scope.district(), q.page()?).await?,
    ))
}

async fn scoped(state: &AppState, principal: &Principal, id: i64) -> Result<Endpoint, ApiError> {
    let scope = principal.admin()?;
    let e = state.store.endpoint(id).await?;
    if !scope.covers(&state.store, e.site_id).await? {
        return Err(ApiError::forbidden("this endpoint is in another district"));
    }
    Ok(e)
}

#[utoipa::path(operation_id = "endpoints_create", post, path = "/api/v1/endpoints", tag = "endpoints", request_body = NewEndpoint,
    responses((status = 201, body = EndpointWithKey, description = "The key is shown only now"),
              (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    audit: Audit,
    ApiJson(e): ApiJson<NewEndpoint>,
) -> Result<(StatusCode, Json<EndpointWithKey>), ApiError> {
    let scope = principal.admin()?;
    if !scope.covers(&state.store, e.site_id).await? {
        // A site that does not exist is a validation error, one elsewhere is forbidden.
        state
            .store
            .site(e.site_id)
            .await
            .map_err(|_| ApiError::invalid("site_id", format!("no site {}", e.site_id)))?;
        return Err(ApiError::forbidden("that site is in another district"));
    }
    let made = state.store.create_endpoint(&e).await?;
    audit
        .record(
            principal.person()?,
            AuditAction::EndpointCreate,
            made.endpoint.id,
            endpoint_detail(&made.endpoint),
        )
        .await;
    Ok((StatusCode::CREATED, Json(made)))
}

#[utoipa::path(operation_id = "endpoints_get", get, path = "/api/v1/endpoints/{id}", params(("id" = i64, Path)), tag = "endpoints",
    responses((status = 200, body = Endpoint), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Endpoint>, ApiError> {
    Ok(Json(scoped(&state, &principal, id).await?))
}

#[utoipa::path(operation_id = "endpoints_rotate_key", post, path = "/api/v1/endpoints/{id}/key", params(("id" = i64, Path)), tag = "endpoints",
    responses((status = 200, body = EndpointWithKey, description = "New key; the old one stops working")))]
pub async fn rotate_key(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    audit: Audit,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<EndpointWithKey>, ApiError> {
    let e = scoped(&state, &principal, id).await?;
    let fresh = state.store.rotate_endpoint_key(id).await?;
    audit
        .record(
            principal.person()?,
            AuditAction::EndpointKeyRotate,
            id,
            endpoint_detail(&e),
        )
        .await;
    end_device_sessions(&state, id, "this room's device key was replaced");
    Ok(Json(fresh))
}

#[utoipa::path(operation_id = "endpoints_delete", delete, path = "/api/v1/endpoints/{id}", params(("id" = i64, Path)), tag = "endpoints",
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    audit: Audit,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    let e = scoped(&state, &principal, id).await?;
    // Attendance keeps its rows; the device's key dies with it.
    state.store.delete_endpoint(id).await?;
    audit
        .record(
            principal.person()?,
            AuditAction::EndpointDelete,
            id,
            endpoint_detail(&e),
        )
        .await;
    end_device_sessions(&state, id, "this room's device was removed");
    Ok(StatusCode::NO_CONTENT)
}

/// A key that no longer admits must not keep a room in a meeting either.
fn end_device_sessions(state: &AppState, id: i64, why: &str) {
    let ended = state.registry.eject(
        None,
        |h| h.endpoint_id == Some(id),
        cauhop_protocol::ErrorCode::Unauthorized,
        why,
    );
    tracing::info!(endpoint = id, ended, "{why}");
}

/// The calling device's meetings from a day ago to a week ahead, with their phase.
#[utoipa::path(operation_id = "endpoints_device_schedule", get, path = "/api/v1/device/schedule", tag = "device",
    security(("device_key" = [])),
    responses((status = 200, body = Vec<Meeting>), (status = 401, body = ErrorBody)))]
pub async fn device_schedule(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<Vec<Meeting>>, ApiError> {
    let ep = principal.endpoint()?;
    let now = Instant::now();
    let filter = MeetingFilter {
        from: Some(now.plus(-86_400)),
        to: Some(now.plus(7 * 86_400)),
        site: Some(ep.site_id),
        district: None,
    };
    let mut list = state
        .store
        .meetings(
            filter,
            Page {
                limit: 500,
                offset: 0,
            },
        )
        .await?
        .items;
    for m in &mut list {
        m.phase = Some(m.times().phase(&state.schedule, now));
    }
    Ok(Json(list))
}

#[utoipa::path(operation_id = "endpoints_device_health", post, path = "/api/v1/device/health", tag = "device",
    security(("device_key" = [])), request_body = Object,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn device_health(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiJson(report): ApiJson<serde_json::Value>,
) -> Result<StatusCode, ApiError> {
    let ep = principal.endpoint()?;
    if !report.is_object() || report.to_string().len() > 4096 {
        return Err(ApiError::invalid("body", "a JSON object of at most 4 KiB"));
    }
    state
        .store
        .record_endpoint_health(ep.id, &report, Instant::now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A link-check ticket: the token to put in probe datagrams and where to send them.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct LinkCheckTicket {
    /// 32 hex digits.
    pub token: String,
    /// The bridge's media addresses (`ip:port`), as ICE candidates would name them.
    pub media: Vec<String>,
    pub ttl_secs: u64,
}

/// How long a link-check token is good for: a check takes about 10 s.
const LINK_CHECK_TTL: std::time::Duration = std::time::Duration::from_secs(60);

#[utoipa::path(operation_id = "endpoints_device_link_check", post, path = "/api/v1/device/link-check", tag = "device",
    security(("device_key" = [])),
    responses((status = 200, body = LinkCheckTicket), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 429, body = ErrorBody, description = "More than 6 checks in an hour from this device")))]
pub async fn device_link_check(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<LinkCheckTicket>, ApiError> {
    let ep = principal.endpoint()?;
    state
        .check_link_check_rate(ep.id)
        .map_err(|wait| ApiError::RateLimited(wait.as_secs() + 1))?;
    let token: [u8; 16] = rand::random();
    state
        .sfu
        .allow_probe(token, LINK_CHECK_TTL)
        .await
        .map_err(|e| ApiError::Internal(format!("media server: {e}")))?;
    tracing::info!(endpoint = ep.id, "link check ticket issued");
    Ok(Json(LinkCheckTicket {
        token: token.iter().map(|b| format!("{b:02x}")).collect(),
        media: state
            .sfu
            .media_addrs()
            .iter()
            .map(ToString::to_string)
            .collect(),
        ttl_secs: LINK_CHECK_TTL.as_secs(),
    }))
}

/// What the log keeps of a room endpoint (never its key).
fn endpoint_detail(e: &Endpoint) -> serde_json::Value {
    serde_json::json!({"site_id": e.site_id, "name": e.name})
}
