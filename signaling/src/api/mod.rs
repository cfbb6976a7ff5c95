//! The REST API under `/api/v1`, described by the OpenAPI document at
//! `/api/v1/openapi.json`. Who may call what is decided in each handler from the
//! [`extract::Principal`]; `tests/tests/authz.rs` checks the whole matrix.

pub mod audit;
pub mod endpoints;
pub mod error;
pub mod extract;
pub mod login;
pub mod meeting_control;
pub mod meeting_settings;
pub mod meetings;
pub mod people;
pub mod records;
pub mod reports;
pub mod sites;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};

use crate::AppState;
use error::ApiError;
use extract::Principal;

#[derive(OpenApi)]
#[openapi(
    info(title = "cauhop API", description = "Meetings, sites, endpoints, people and attendance of a cauhop bridge. Admins authenticate with the session cookie from /api/v1/login and send X-CSRF-Token on writes; room endpoints send `Authorization: Device <key>`."),
    paths(
        login::login, login::logout, login::me,
        sites::list, sites::get, sites::create, sites::update, sites::delete,
        people::list, people::create, people::delete,
        endpoints::list, endpoints::get, endpoints::create, endpoints::rotate_key, endpoints::delete,
        endpoints::device_schedule, endpoints::device_health, endpoints::device_link_check,
        meetings::list, meetings::get, meetings::create, meetings::update, meetings::delete,
        meetings::create_link, meetings::list_links, meetings::revoke_link, meetings::my_link,
        meetings::attendance, meetings::roll_calls, meetings::live,
        meeting_settings::get, meeting_settings::put, records::list, records::download,
        meeting_control::control, reports::meeting_report, reports::site_links,
        audit::list,
        stats, server,
    ),
    modifiers(&Security),
)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let c = api.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(extract::SESSION_COOKIE))),
        );
        c.add_security_scheme(
            "device_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("Authorization"))),
        );
    }
}

/// Media counters per participant (packets, NACKs, keyframe requests, RTT, loss).
#[utoipa::path(operation_id = "mod_stats", get, path = "/api/v1/stats", tag = "media",
    responses((status = 200, body = Object), (status = 403, body = error::ErrorBody)))]
async fn stats(State(state): State<Arc<AppState>>, principal: Principal) -> Response {
    if let Err(e) = principal.admin() {
        return e.into_response();
    }
    match state.sfu.stats().await {
        Ok(s) => Json(s).into_response(),
        Err(e) => ApiError::Internal(e.to_string()).into_response(),
    }
}

/// What this bridge serves with: its HTTPS certificate, so an IT officer can read the
/// fingerprint users should see before they accept a self-signed one.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ServerInfo {
    pub version: String,
    /// `None`: the bridge serves plain HTTP (behind a proxy, or on localhost).
    pub https: Option<crate::https::CertificateInfo>,
}

#[utoipa::path(operation_id = "mod_server", get, path = "/api/v1/server", tag = "session",
    responses((status = 200, body = ServerInfo), (status = 403, body = error::ErrorBody)))]
async fn server(State(state): State<Arc<AppState>>, principal: Principal) -> Response {
    if let Err(e) = principal.admin() {
        return e.into_response();
    }
    Json(ServerInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        https: state.options.https.as_ref().map(|c| c.info()),
    })
    .into_response()
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such API route; see /api/v1/openapi.json".into())
}

pub(crate) fn routes() -> Router<Arc<AppState>> {
    let api = Router::new()
        .route("/login", post(login::login))
        .route("/logout", post(login::logout))
        .route("/me", get(login::me))
        .route("/sites", get(sites::list).post(sites::create))
        .route(
            "/sites/{id}",
            get(sites::get).put(sites::update).delete(sites::delete),
        )
        .route("/people", get(people::list).post(people::create))
        .route("/people/{id}", axum::routing::delete(people::delete))
        .route("/endpoints", get(endpoints::list).post(endpoints::create))
        .route(
            "/endpoints/{id}",
            get(endpoints::get).delete(endpoints::delete),
        )
        .route("/endpoints/{id}/key", post(endpoints::rotate_key))
        .route("/device/schedule", get(endpoints::device_schedule))
        .route("/device/health", post(endpoints::device_health))
        .route("/device/link-check", post(endpoints::device_link_check))
        .route("/meetings", get(meetings::list).post(meetings::create))
        .route(
            "/meetings/{id}",
            get(meetings::get)
                .put(meetings::update)
                .delete(meetings::delete),
        )
        .route(
            "/meetings/{id}/links",
            get(meetings::list_links).post(meetings::create_link),
        )
        .route("/meetings/{id}/join", post(meetings::my_link))
        .route("/meetings/{id}/attendance", get(meetings::attendance))
        .route("/meetings/{id}/roll-calls", get(meetings::roll_calls))
        .route("/meetings/{id}/report", get(reports::meeting_report))
        .route("/sites/{id}/links", get(reports::site_links))
        .route(
            "/meetings/{id}/settings",
            get(meeting_settings::get).put(meeting_settings::put),
        )
        .route("/meetings/{id}/records", get(records::list))
        .route("/meetings/{id}/control", post(meeting_control::control))
        .route("/meetings/{id}/records/{file}", get(records::download))
        .route("/meetings/{id}/live", get(meetings::live))
        .route("/links/{jti}/revoke", post(meetings::revoke_link))
        .route("/audit", get(audit::list))
        .route("/stats", get(stats))
        .route("/server", get(server))
        .route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
        .fallback(not_found);
    Router::new().nest("/api/v1", api)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document is what generated clients and schemathesis read: every `{param}` of a
    /// path is declared as a path parameter, and every schema reference resolves.
    #[test]
    fn openapi_document_is_self_consistent() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("serialises");
        let schemas = doc["components"]["schemas"]
            .as_object()
            .expect("schemas")
            .clone();
        let text = doc.to_string();
        for r in text.split("#/components/schemas/").skip(1) {
            let name = r.split('"').next().unwrap_or_default();
            assert!(schemas.contains_key(name), "unresolved schema {name}");
        }
        let paths = doc["paths"].as_object().expect("paths");
        assert!(paths.len() >= 20, "{} paths", paths.len());
        let mut ids = std::collections::HashSet::new();
        for (path, ops) in paths {
            for (method, op) in ops.as_object().expect("ops") {
                let id = op["operationId"].as_str().unwrap_or_default().to_owned();
                assert!(ids.insert(id.clone()), "operationId {id} is not unique");
                let declared: Vec<&str> = op["parameters"]
                    .as_array()
                    .map(|ps| {
                        ps.iter()
                            .filter(|p| p["in"] == "path")
                            .filter_map(|p| p["name"].as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                for seg in path.split('/').filter(|s| s.starts_with('{')) {
                    let name = seg.trim_matches(['{', '}']);
                    assert!(
                        declared.contains(&name),
                        "{method} {path}: {name} undeclared"
                    );
                }
                for p in op["parameters"].as_array().into_iter().flatten() {
                    if p["in"] == "path" {
                        let name = p["name"].as_str().unwrap_or_default();
                        assert!(
                            path.contains(&format!("{{{name}}}")),
                            "{method} {path}: stray path parameter {name}"
                        );
                    }
                }
            }
        }
    }
}
