use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cauhop_store::model::{AuditAction, NewPerson, Paged, Person, PersonRole};

use super::audit::Audit;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, PageQuery, Principal, Scope};
use crate::AppState;
use crate::auth::hash_password;

#[utoipa::path(operation_id = "people_list", get, path = "/api/v1/people", tag = "people", params(PageQuery),
    responses((status = 200, body = Paged<Person>), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Paged<Person>>, ApiError> {
    let scope = principal.admin()?;
    Ok(Json(state.store.people(scope.district(), q.page()?).await?))
}

#[utoipa::path(operation_id = "people_create", post, path = "/api/v1/people", tag = "people", request_body = NewPerson,
    responses((status = 201, body = Person), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    audit: Audit,
    ApiJson(p): ApiJson<NewPerson>,
) -> Result<(StatusCode, Json<Person>), ApiError> {
    let scope = principal.admin()?;
    if !may_manage(&state, scope, p.role, p.site_id).await? {
        return Err(ApiError::forbidden(
            "a district administrator adds officials of their own district",
        ));
    }
    let hash = match &p.password {
        Some(pw) => Some(
            tokio::task::spawn_blocking({
                let pw = pw.clone();
                move || hash_password(&pw)
            })
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(|why| ApiError::invalid("password", why))?,
        ),
        None => None,
    };
    let person = state
        .store
        .create_person(
            &p.username,
            &p.display_name,
            p.role,
            p.site_id,
            hash.as_deref(),
        )
        .await?;
    audit
        .record(
            principal.person()?,
            AuditAction::PersonCreate,
            person.id,
            person_detail(&person, hash.is_some()),
        )
        .await;
    Ok((StatusCode::CREATED, Json(person)))
}

#[utoipa::path(operation_id = "people_delete", delete, path = "/api/v1/people/{id}", params(("id" = i64, Path)), tag = "people",
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    audit: Audit,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    let scope = principal.admin()?;
    let target = state.store.person(id).await?;
    if !may_manage(&state, scope, target.role, target.site_id).await? {
        return Err(ApiError::forbidden(
            "a district administrator removes officials of their own district",
        ));
    }
    if principal.person()?.id == id {
        return Err(ApiError::Conflict {
            field: "id".into(),
            reason: "you cannot remove yourself".into(),
        });
    }
    // Their admin sessions go with the row; their meeting sessions end here.
    state.store.delete_person(id).await?;
    audit
        .record(
            principal.person()?,
            AuditAction::PersonDelete,
            id,
            person_detail(&target, false),
        )
        .await;
    let ended = state.registry.eject(
        None,
        |h| h.person_id == Some(id),
        cauhop_protocol::ErrorCode::Unauthorized,
        "this person's account was removed",
    );
    tracing::info!(person = id, ended, "person removed");
    Ok(StatusCode::NO_CONTENT)
}

/// A province admin manages anyone; a district admin only officials of the district.
async fn may_manage(
    state: &AppState,
    scope: Scope,
    role: PersonRole,
    site_id: Option<i64>,
) -> Result<bool, ApiError> {
    match (scope, site_id) {
        (Scope::Province, _) => Ok(true),
        (Scope::District(_), Some(s)) if role == PersonRole::Official => {
            scope.covers(&state.store, s).await
        }
        (Scope::District(_), _) => Ok(false),
    }
}

/// What the log keeps of a person (never a password or its hash).
pub(crate) fn person_detail(p: &Person, with_password: bool) -> serde_json::Value {
    serde_json::json!({
        "username": p.username,
        "display_name": p.display_name,
        "role": p.role.as_str(),
        "site_id": p.site_id,
        "password": with_password,
    })
}
