//! Extractors that turn malformed input into the API's JSON errors, naming the field.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use cauhop_store::model::{Endpoint, Page, Person, PersonRole};
use cauhop_store::{Instant, SessionRow, Store};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::AppState;

pub const SESSION_COOKIE: &str = "cauhop_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
const MAX_BODY: usize = 256 * 1024;

/// A JSON body; a syntax error is 400, a missing or wrongly typed field 422 naming it.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json {
            return Err(ApiError::BadRequest(
                "send the body as JSON (Content-Type: application/json)".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::BadRequest(format!("cannot read the body: {e}")))?;
        if bytes.len() > MAX_BODY {
            return Err(ApiError::BadRequest(format!("body over {MAX_BODY} bytes")));
        }
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de)
            .map(ApiJson)
            .map_err(|e| {
                let inner = e.inner();
                if inner.is_syntax() || inner.is_eof() {
                    return ApiError::BadRequest(format!("body is not valid JSON: {inner}"));
                }
                let path = e.path().to_string();
                let msg = inner.to_string();
                // serde names a missing/unknown field in the message, at the parent's path.
                let named = msg.split('`').nth(1).filter(|_| {
                    msg.starts_with("missing field") || msg.starts_with("unknown field")
                });
                let field = match (path.as_str(), named) {
                    (".", Some(f)) => f.to_owned(),
                    (p, Some(f)) if !p.ends_with(f) => format!("{p}.{f}"),
                    (p, _) => p.to_owned(),
                };
                ApiError::invalid(field, msg)
            })
    }
}

/// A path parameter (an id); one that does not parse is a 404 in the API's shape.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| ApiError::NotFound(format!("no such item: {}", e.body_text())))
    }
}

/// Query parameters, with the same error shape.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::invalid("query", e.body_text()))
    }
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// 1-500, default 100.
    pub limit: Option<i64>,
    /// Default 0.
    pub offset: Option<i64>,
}

impl PageQuery {
    pub fn page(&self) -> Result<Page, ApiError> {
        let limit = self.limit.unwrap_or(100);
        let offset = self.offset.unwrap_or(0);
        if !(1..=500).contains(&limit) {
            return Err(ApiError::invalid("limit", "expected 1-500"));
        }
        if offset < 0 {
            return Err(ApiError::invalid("offset", "must not be negative"));
        }
        Ok(Page { limit, offset })
    }
}

/// Who is calling: nobody, a logged-in person (cookie), or a room endpoint (device key).
#[derive(Debug, Clone)]
pub enum Principal {
    Anonymous,
    Person(SessionRow),
    Endpoint(Endpoint),
}

/// What an admin may manage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Province,
    District(i64),
}

impl Scope {
    /// Is `site_id` (a district or one of its communes) inside this scope?
    pub async fn covers(&self, store: &Store, site_id: i64) -> Result<bool, ApiError> {
        match *self {
            Scope::Province => Ok(true),
            Scope::District(d) => match store.district_of(site_id).await {
                Ok(x) => Ok(x == Some(d)),
                Err(cauhop_store::StoreError::NotFound { .. }) => Ok(false),
                Err(e) => Err(e.into()),
            },
        }
    }

    /// The district's own sites (itself and its communes), in one query; `None` for the
    /// province, which covers every site.
    pub async fn site_ids(
        &self,
        store: &Store,
    ) -> Result<Option<std::collections::HashSet<i64>>, ApiError> {
        let Scope::District(d) = *self else {
            return Ok(None);
        };
        let all = Page {
            limit: i64::MAX,
            offset: 0,
        };
        let sites = store.sites(Some(d), all).await?.items;
        Ok(Some(sites.into_iter().map(|s| s.id).collect()))
    }

    pub fn district(&self) -> Option<i64> {
        match *self {
            Scope::Province => None,
            Scope::District(d) => Some(d),
        }
    }
}

impl Principal {
    pub fn person(&self) -> Result<&Person, ApiError> {
        match self {
            Principal::Person(s) => Ok(&s.person),
            Principal::Anonymous => Err(ApiError::Unauthorized("log in first".into())),
            Principal::Endpoint(_) => Err(ApiError::forbidden("room endpoints cannot do this")),
        }
    }

    pub fn admin(&self) -> Result<Scope, ApiError> {
        let p = self.person()?;
        match (p.role, p.site_id) {
            (PersonRole::ProvinceAdmin, _) => Ok(Scope::Province),
            (PersonRole::DistrictAdmin, Some(d)) => Ok(Scope::District(d)),
            _ => Err(ApiError::forbidden("this needs an administrator")),
        }
    }

    pub fn endpoint(&self) -> Result<&Endpoint, ApiError> {
        match self {
            Principal::Endpoint(e) => Ok(e),
            Principal::Anonymous => Err(ApiError::Unauthorized(
                "send the device key: Authorization: Device <key>".into(),
            )),
            Principal::Person(_) => Err(ApiError::forbidden("for room endpoints only")),
        }
    }
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl FromRequestParts<Arc<AppState>> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        if let Some(auth) = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            let key = auth.strip_prefix("Device ").ok_or_else(|| {
                ApiError::Unauthorized("Authorization must be `Device <key>`".into())
            })?;
            return match state.store.endpoint_by_key(key.trim()).await? {
                Some(e) => Ok(Principal::Endpoint(e)),
                None => Err(ApiError::Unauthorized(
                    "device key unknown or revoked".into(),
                )),
            };
        }
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Ok(Principal::Anonymous);
        };
        let Some(session) = state.store.session(token, Instant::now()).await? else {
            return Err(ApiError::Unauthorized(
                "session expired; log in again".into(),
            ));
        };
        // Cookies ride along on cross-site requests; the CSRF token, which only our own
        // page can read, must too for anything that changes state.
        if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
            let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if sent != Some(session.csrf.as_str()) {
                return Err(ApiError::forbidden("missing or wrong X-CSRF-Token header"));
            }
        }
        Ok(Principal::Person(session))
    }
}
