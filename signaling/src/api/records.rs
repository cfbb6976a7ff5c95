//! A meeting's audio records (`/api/v1/meetings/{id}/records`): listed and downloaded
//! only by the admins of the office that chairs it (the province's, or the chairing
//! district's); a district whose commune was merely invited gets 403. Each download is
//! in the audit log. Downloads answer single byte ranges, so the admin page's player
//! can jump to a floor turn.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use cauhop_store::model::AuditAction;
use serde::Serialize;
use serde_json::json;

use super::audit::Audit;
use super::error::ApiError;
use super::extract::{ApiPath, Principal};
use super::meetings::load_managed;
use crate::AppState;
use crate::record::{RecordInfo, meeting_dir};

/// One record of a meeting.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecordEntry {
    /// The audio file's name (`20261203-091500.ogg`), for `/records/{file}`.
    pub file: String,
    pub bytes: u64,
    /// Title, start, end, length, why it stopped and the floor turns.
    #[schema(value_type = Object)]
    pub info: serde_json::Value,
}

/// A record's file name as the recorder makes them (`20261203-091500[-2].ogg|json`,
/// a turn's `20261203-091500[-2]-t3.webm`): nothing else is served.
fn valid_name(name: &str) -> bool {
    let Some((stem, ext)) = name.rsplit_once('.') else {
        return false;
    };
    let digits = |s: &str, n: std::ops::RangeInclusive<usize>| {
        n.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    let parts: Vec<&str> = stem.split('-').collect();
    let (date, time, rest) = match parts.as_slice() {
        [d, t, rest @ ..] => (*d, *t, rest),
        _ => return false,
    };
    if !digits(date, 8..=8) || !digits(time, 6..=6) {
        return false;
    }
    let turn = |p: &str| p.strip_prefix('t').is_some_and(|n| digits(n, 1..=3));
    match (rest, ext) {
        ([], "ogg" | "json") => true,
        ([n], "ogg" | "json") => digits(n, 1..=1),
        ([t], "webm") => turn(t),
        ([n, t], "webm") => digits(n, 1..=1) && turn(t),
        _ => false,
    }
}

fn records_dir(state: &AppState, id: i64) -> Result<std::path::PathBuf, ApiError> {
    let opts = state
        .options
        .records
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("this bridge keeps no records".into()))?;
    Ok(meeting_dir(opts, id))
}

#[utoipa::path(operation_id = "meetings_records", get, path = "/api/v1/meetings/{id}/records", tag = "meetings", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<RecordEntry>), (status = 403, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<RecordEntry>>, ApiError> {
    load_managed(&state, &principal, id).await?;
    let mut out = Vec::new();
    // A bridge that keeps no records has none to list.
    let Ok(dir) = records_dir(&state, id) else {
        return Ok(Json(out));
    };
    let mut entries = match tokio::fs::read_dir(&dir).await {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Json(out)),
        Err(e) => return Err(ApiError::Internal(format!("records not read: {e}"))),
    };
    while let Ok(Some(e)) = entries.next_entry().await {
        let name = e.file_name().to_string_lossy().into_owned();
        if !valid_name(&name) || !name.ends_with(".ogg") {
            continue;
        }
        let bytes = e.metadata().await.map(|m| m.len()).unwrap_or(0);
        let info_path = dir.join(name.replace(".ogg", ".json"));
        // A record cut off by a crash still lists, with what its chapters say.
        let info = tokio::fs::read(&info_path)
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<RecordInfo>(&b).ok())
            .map(|i| serde_json::to_value(i).unwrap_or_default())
            .unwrap_or_default();
        out.push(RecordEntry {
            file: name,
            bytes,
            info,
        });
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(Json(out))
}

#[utoipa::path(operation_id = "meetings_record_download", get, path = "/api/v1/meetings/{id}/records/{file}", tag = "meetings",
    params(("id" = i64, Path), ("file" = String, Path)),
    responses((status = 200, description = "audio/ogg or the chapters' JSON"), (status = 206, description = "a byte range"), (status = 403, body = super::error::ErrorBody)))]
pub async fn download(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    audit: Audit,
    headers: HeaderMap,
    ApiPath((id, file)): ApiPath<(i64, String)>,
) -> Result<Response, ApiError> {
    load_managed(&state, &principal, id).await?;
    if !valid_name(&file) {
        return Err(ApiError::NotFound(format!("no record '{file}'")));
    }
    let path = records_dir(&state, id)?.join(&file);
    let bytes = match tokio::fs::read(&path).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::NotFound(format!("no record '{file}'")));
        }
        Err(e) => return Err(ApiError::Internal(format!("record not read: {e}"))),
    };
    let kind = match file.rsplit_once('.').map(|x| x.1) {
        Some("ogg") => "audio/ogg",
        Some("webm") => "video/webm",
        _ => "application/json",
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| byte_range(r, bytes.len()));
    // The whole file once per download in the log; a player's range requests are not.
    if range.is_none_or(|(start, _)| start == 0) {
        audit
            .record(
                principal.person()?,
                AuditAction::MeetingRecordDownload,
                id,
                json!({"file": file}),
            )
            .await;
    }
    let common = [
        (header::CONTENT_TYPE, kind.to_owned()),
        (header::ACCEPT_RANGES, "bytes".to_owned()),
        (header::CACHE_CONTROL, "private, no-store".to_owned()),
    ];
    Ok(match range {
        Some((start, end)) => (
            StatusCode::PARTIAL_CONTENT,
            common,
            [(
                header::CONTENT_RANGE,
                format!("bytes {start}-{end}/{}", bytes.len()),
            )],
            bytes[start..=end].to_vec(),
        )
            .into_response(),
        None => (StatusCode::OK, common, bytes).into_response(),
    })
}

/// `bytes=START-[END]` within `len`, inclusive; `None` for anything else (the whole
/// file is sent).
fn byte_range(header: &str, len: usize) -> Option<(usize, usize)> {
    let spec = header.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start: usize = a.trim().parse().ok()?;
    let end = if b.trim().is_empty() {
        len.checked_sub(1)?
    } else {
        b.trim().parse::<usize>().ok()?.min(len.checked_sub(1)?)
    };
    (start <= end).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_recorder_s_names_are_served() {
        for ok in [
            "20261203-091500.ogg",
            "20261203-091500.json",
            "20261203-091500-2.ogg",
            "20261203-091500-t3.webm",
            "20261203-091500-2-t12.webm",
        ] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "../cauhop.db",
            "20261203-091500.ogg/..",
            "x.ogg",
            "20261203-0915.ogg",
            "20261203-091500.db",
            "20261203-091500-22.ogg",
            "20261203-091500-t3.ogg",
            "20261203-091500.webm",
            "20261203-091500-t1234.webm",
            "",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn byte_ranges_stay_inside_the_file() {
        assert_eq!(byte_range("bytes=0-99", 50), Some((0, 49)));
        assert_eq!(byte_range("bytes=10-", 50), Some((10, 49)));
        assert_eq!(byte_range("bytes=60-70", 50), None);
        assert_eq!(byte_range("bytes=-5", 50), None);
        assert_eq!(byte_range("items=0-1", 50), None);
        assert_eq!(byte_range("bytes=0-", 0), None);
    }
}
