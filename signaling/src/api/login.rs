//! Admin login: argon2id passwords, an HttpOnly session cookie, a CSRF token.

use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cauhop_store::model::{AuditAction, AuditActor, NewAuditEntry, Person};
use cauhop_store::{Instant, random_secret};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, Principal, SESSION_COOKIE, cookie};
use crate::AppState;
use crate::auth::verify_password;

const SESSION_SECS: i64 = 12 * 3600;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfo {
    pub person: Person,
    /// Send as `X-CSRF-Token` on every request that changes something.
    pub csrf_token: String,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Instant,
}

fn session_cookie(state: &AppState, value: &str, max_age: i64) -> String {
    let secure = if state.options.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    )
}

#[utoipa::path(operation_id = "login_login", post, path = "/api/v1/login", tag = "session", request_body = LoginRequest,
    responses((status = 200, body = SessionInfo, description = "Logged in; the cookie is set"),
              (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    connect: Option<axum::Extension<ConnectInfo<std::net::SocketAddr>>>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let ip = connect.map(|c| state.client_addr(c.0.0, &headers).ip());
    if state.options.secure_cookies
        && let Some(origin) = insecure_origin(&headers)
    {
        // The browser would drop the Secure cookie and the admin would be logged out at
        // the next click with no reason given: say it now, with what to do.
        warn!(%origin, ?ip, "login refused: the page is on plain HTTP and the session cookie is Secure");
        return Err(ApiError::BadRequest(format!(
            "Trang quản trị phải mở qua HTTPS: trình duyệt không giữ phiên đăng nhập trên {origin}. \
             Hãy bật HTTPS trong cầu ([https] trong tệp cấu hình) hoặc mở qua https://; \
             chỉ trên mạng nội bộ tin cậy mới đặt http.secure_cookies = false. / \
             The admin pages need HTTPS: the browser will not keep a login on {origin}. \
             Turn on the bridge's HTTPS ([https] in the config file) or open it over https://; \
             only on a trusted LAN set http.secure_cookies = false."
        )));
    }
    if let Some(ip) = ip {
        state
            .check_login_rate(ip, &req.username)
            .map_err(|wait| ApiError::RateLimited(wait.as_secs() + 1))?;
    }
    let found = state.store.person_for_login(req.username.trim()).await?;
    let password = req.password;
    // argon2 takes tens of milliseconds of CPU: keep it off the async workers. A dummy
    // verify for unknown users keeps their response time the same.
    let (person, hash) = match found {
        Some((p, Some(h))) => (Some(p), h),
        _ => (None, crate::auth::password::DUMMY_HASH.to_owned()),
    };
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let Some(person) = person.filter(|_| ok) else {
        warn!(username = %req.username, ?ip, "login failed");
        return Err(ApiError::Unauthorized("wrong username or password".into()));
    };
    let token = random_secret(32);
    let csrf = random_secret(24);
    let expires_at = Instant::now().plus(SESSION_SECS);
    state
        .store
        .create_session(&token, person.id, &csrf, expires_at)
        .await?;
    info!(username = %person.username, ?ip, "logged in");
    let actor = AuditActor {
        person_id: Some(person.id),
        name: person.username.clone(),
        client: ip.map(|ip| ip.to_string()),
    };
    let entry = NewAuditEntry {
        actor,
        action: AuditAction::PersonLogin,
        target_id: person.id.to_string(),
        detail: serde_json::json!({}),
    };
    super::audit::write(&state.store, &entry).await;
    Ok((
        [(
            header::SET_COOKIE,
            session_cookie(&state, &token, SESSION_SECS),
        )],
        Json(SessionInfo {
            person,
            csrf_token: csrf,
            expires_at,
        }),
    )
        .into_response())
}

/// The page's origin when a browser would drop a `Secure` cookie there: plain http://
/// to anything but this machine (browsers spare localhost and loopback addresses).
fn insecure_origin(headers: &axum::http::HeaderMap) -> Option<String> {
    let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
    let host = origin.strip_prefix("http://")?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    let local = host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!local).then(|| origin.to_owned())
}

#[utoipa::path(operation_id = "login_logout", post, path = "/api/v1/logout", tag = "session",
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    principal.person()?;
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        state.store.delete_session(token).await?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, session_cookie(&state, "", 0))],
    )
        .into_response())
}

#[utoipa::path(operation_id = "login_me", get, path = "/api/v1/me", tag = "session",
    responses((status = 200, body = SessionInfo), (status = 401, body = ErrorBody)))]
pub async fn me(principal: Principal) -> Result<Json<SessionInfo>, ApiError> {
    principal.person()?;
    let Principal::Person(s) = principal else {
        return Err(ApiError::Unauthorized("log in first".into()));
    };
    Ok(Json(SessionInfo {
        person: s.person,
        csrf_token: s.csrf,
        expires_at: s.expires_at,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(o: &str) -> Option<String> {
        let mut h = axum::http::HeaderMap::new();
        h.insert(header::ORIGIN, o.parse().expect("header"));
        insecure_origin(&h)
    }

    #[test]
    fn a_secure_cookie_is_lost_only_on_plain_http_off_this_machine() {
        assert_eq!(
            origin("http://10.0.0.5:8080"),
            Some("http://10.0.0.5:8080".into())
        );
        assert!(origin("http://cauhop.lan").is_some());
        for kept in [
            "https://10.0.0.5",
            "http://localhost:8080",
            "http://127.0.0.1:8080",
            "http://[::1]:8080",
            "http://app.localhost",
        ] {
            assert_eq!(origin(kept), None, "{kept}");
        }
        assert_eq!(insecure_origin(&axum::http::HeaderMap::new()), None);
    }
}
