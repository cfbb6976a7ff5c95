//! API errors: one JSON shape for every failure, with the status the issue table names.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cauhop_store::StoreError;
use serde::Serialize;
use tracing::{error, warn};
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// `unauthorized`, `forbidden`, `not_found`, `validation`, `conflict`, `overlap`,
    /// `bad_request`, `rate_limited`, `internal`.
    pub error: &'static str,
    pub message: String,
    /// The offending field (`roster[2].site_id`), for `validation` and `conflict`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `overlap`: the meeting the new one collides with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflict: Option<serde_json::Value>,
}

#[derive(Debug)]
pub enum ApiError {
    Unauthorized(String),
    Forbidden(String),
    NotFound(String),
    BadRequest(String),
    Validation {
        field: String,
        reason: String,
    },
    Conflict {
        field: String,
        reason: String,
    },
    Overlap {
        message: String,
        conflict: serde_json::Value,
    },
    RateLimited(u64),
    Internal(String),
}

impl ApiError {
    pub fn forbidden(why: impl Into<String>) -> Self {
        Self::Forbidden(why.into())
    }

    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Validation {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => Self::NotFound(e.to_string()),
            StoreError::Invalid { field, reason } => Self::Validation { field, reason },
            StoreError::Conflict { field, reason } => Self::Conflict { field, reason },
            StoreError::Overlap {
                meeting_id,
                ref title,
                site_id,
                ref site_name,
                ref starts_at,
            } => Self::Overlap {
                message: e.to_string(),
                conflict: serde_json::json!({
                    "meeting_id": meeting_id, "title": title, "site_id": site_id,
                    "site_name": site_name, "starts_at": starts_at,
                }),
            },
            StoreError::Db(_) | StoreError::Migrate(_) => Self::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            Self::Unauthorized(m) => (StatusCode::UNAUTHORIZED, ("unauthorized", m, None, None)),
            Self::Forbidden(m) => (StatusCode::FORBIDDEN, ("forbidden", m, None, None)),
            Self::NotFound(m) => (StatusCode::NOT_FOUND, ("not_found", m, None, None)),
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, ("bad_request", m, None, None)),
            Self::Validation { field, reason } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                (
                    "validation",
                    format!("{field}: {reason}"),
                    Some(field),
                    None,
                ),
            ),
            Self::Conflict { field, reason } => (
                StatusCode::CONFLICT,
                ("conflict", format!("{field}: {reason}"), Some(field), None),
            ),
            Self::Overlap { message, conflict } => (
                StatusCode::CONFLICT,
                ("overlap", message, Some("roster".into()), Some(conflict)),
            ),
            Self::RateLimited(secs) => (
                StatusCode::TOO_MANY_REQUESTS,
                (
                    "rate_limited",
                    format!("too many attempts; retry in {secs} s"),
                    None,
                    None,
                ),
            ),
            Self::Internal(m) => {
                error!("API internal error: {m}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    (
                        "internal",
                        "internal error; see the server log".into(),
                        None,
                        None,
                    ),
                )
            }
        };
        if status.is_client_error() && status != StatusCode::UNAUTHORIZED {
            warn!(status = status.as_u16(), "API request refused: {}", body.1);
        }
        let (error, message, field, conflict) = body;
        (
            status,
            Json(ErrorBody {
                error,
                message,
                field,
                conflict,
            }),
        )
            .into_response()
    }
}
