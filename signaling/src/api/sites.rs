use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cauhop_store::model::{AuditAction, NewSite, Paged, Site, SiteKind};
use serde::Deserialize;

use super::audit::Audit;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, PageQuery, Principal, Scope};
use crate::AppState;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SiteQuery {
    /// Only this district and its communes.
    pub under: Option<i64>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[utoipa::path(operation_id = "sites_list", get, path = "/api/v1/sites", tag = "sites", params(SiteQuery),
    responses((status = 200, body = Paged<Site>), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiQuery(q): ApiQuery<SiteQuery>,
) -> Result<Json<Paged<Site>>, ApiError> {
    principal.person()?;
    let page = PageQuery {
        limit: q.limit,
        offset: q.offset,
    }
    .page()?;
    Ok(Json(state.store.sites(q.under, page).await?))
}

#[utoipa::path(operation_id = "sites_get", get, path = "/api/v1/sites/{id}", params(("id" = i64, Path)), tag = "sites",
    responses((status = 200, body = Site), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Site>, ApiError> {
    principal.person()?;
    Ok(Json(state.store.site(id).await?))
}

/// A district admin manages the communes of their district (not the district itself).
async fn check_scope(
    state: &AppState,
    scope: Scope,
    site: &NewSite,
    existing: Option<i64>,
) -> Result<(), ApiError> {
    let Scope::District(d) = scope else {
        return Ok(());
    };
    let own_commune = site.kind == SiteKind::Commune && site.parent_id == Some(d);
    let existing_ok = match existing {
        Some(id) => id != d && scope.covers(&state.store, id).await?,
        None => true,
    };
    if own_commune && existing_ok {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "a district administrator manages the communes of their own district",
        ))
    }
}

#[utoipa::path(operation_id = "sites_create", post, path = "/api/v1/sites", tag = "sites", request_body = NewSite,
    responses((status = 201, body = Site), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    audit: Audit,
    ApiJson(site): ApiJson<NewSite>,
) -> Result<(StatusCode, Json<Site>), ApiError> {
    let scope = principal.admin()?;
    check_scope(&state, scope, &site, None).await?;
    let made = state.store.create_site(&site).await?;
    audit
        .record(
            principal.person()?,
            AuditAction::SiteCreate,
            made.id,
            site_detail(&made),
        )
        .await;
    Ok((StatusCode::CREATED, Json(made)))
}

#[utoipa::path(operation_id = "sites_update", put, path = "/api/v1/sites/{id}", params(("id" = i64, Path)), tag = "sites", request_body = NewSite,
    responses((status = 200, body = Site), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    audit: Audit,
    ApiPath(id): ApiPath<i64>,
    ApiJson(site): ApiJson<NewSite>,
) -> Result<Json<Site>, ApiError> {
    let scope = principal.admin()?;
    let before = state.store.site(id).await?;
    check_scope(&state, scope, &site, Some(id)).await?;
    let after = state.store.update_site(id, &site).await?;
    let mut detail = site_detail(&after);
    detail["before"] = site_detail(&before);
    audit
        .record(principal.person()?, AuditAction::SiteUpdate, id, detail)
        .await;
    Ok(Json(after))
}

#[utoipa::path(operation_id = "sites_delete", delete, path = "/api/v1/sites/{id}", params(("id" = i64, Path)), tag = "sites",
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    audit: Audit,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    let scope = principal.admin()?;
    let site = state.store.site(id).await?;
    let detail = site_detail(&site);
    let as_new = NewSite {
        code: site.code,
        name: site.name,
        kind: site.kind,
        parent_id: site.parent_id,
        down_kbps: site.down_kbps,
        up_kbps: site.up_kbps,
    };
    check_scope(&state, scope, &as_new, Some(id)).await?;
    state.store.delete_site(id).await?;
    audit
        .record(principal.person()?, AuditAction::SiteDelete, id, detail)
        .await;
    state.registry.eject(
        None,
        |h| h.site_id == Some(id),
        cauhop_protocol::ErrorCode::NotInvited,
        "this site was removed",
    );
    Ok(StatusCode::NO_CONTENT)
}

/// What the log keeps of a site.
fn site_detail(s: &Site) -> serde_json::Value {
    serde_json::json!({
        "code": s.code,
        "name": s.name,
        "kind": s.kind.as_str(),
        "parent_id": s.parent_id,
        "down_kbps": s.down_kbps,
        "up_kbps": s.up_kbps,
    })
}
