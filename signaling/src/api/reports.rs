//! The meeting report (`/api/v1/meetings/{id}/report`, JSON or CSV) and a site's links
//! over its last weeks (`/api/v1/sites/{id}/links`). Who reads them is who reads the
//! attendance: the chairing office's admins see every site, a district whose communes
//! were invited sees its own sites only, and a site's page needs the site in the admin's
//! district.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Json, Response};
use cauhop_store::Instant;
use cauhop_store::model::Page;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery, Principal};
use super::meetings::{csv_field, load_involved};
use crate::AppState;
use crate::report::{MeetingHead, MeetingReport, SiteMeeting};

/// Every site's name, in one query.
pub(crate) async fn site_names(state: &AppState) -> Result<HashMap<i64, String>, ApiError> {
    Ok(state
        .store
        .sites(
            None,
            Page {
                limit: i64::MAX,
                offset: 0,
            },
        )
        .await?
        .items
        .into_iter()
        .map(|s| (s.id, s.name))
        .collect())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

/// A time as Vietnamese offices write it: dd/mm/yyyy hh:mm, in +07:00.
fn local(t: Instant) -> String {
    let s = t.rfc3339();
    // 2026-12-07T08:00:00+07:00
    match (s.get(0..4), s.get(5..7), s.get(8..10), s.get(11..16)) {
        (Some(y), Some(m), Some(d), Some(hm)) => format!("{d}/{m}/{y} {hm}"),
        _ => s,
    }
}

fn csv(r: &MeetingReport) -> String {
    // A BOM so that Excel opens Vietnamese names as UTF-8.
    let mut out = String::from(
        "\u{feff}site,devices,first_joined,last_left,minutes,rejoins,down_kbps,up_kbps,\
         loss_down_pct,loss_up_pct,rtt_ms,cut_off_s,unheard_s,audio_only_s,not_heard_or_seen\r\n",
    );
    let opt = |v: Option<String>| v.unwrap_or_default();
    for s in &r.sites {
        let troubles: Vec<String> = s
            .stretches
            .iter()
            .map(|x| {
                format!(
                    "{} {} {} s ({})",
                    x.trouble.as_str(),
                    local(x.from),
                    x.seconds,
                    x.device
                )
            })
            .collect();
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\r\n",
            csv_field(&s.site),
            csv_field(&s.devices.join("; ")),
            opt(s.first_joined.map(local)),
            opt(s.last_left.map(local)),
            s.minutes,
            s.rejoins,
            opt(s.link.down_kbps.map(|v| v.to_string())),
            opt(s.link.up_kbps.map(|v| v.to_string())),
            opt(s.link.loss_down_pct.map(|v| v.to_string())),
            opt(s.link.loss_up_pct.map(|v| v.to_string())),
            opt(s.link.rtt_ms.map(|v| v.to_string())),
            s.cut_off_s,
            s.unheard_s,
            s.audio_only_s,
            csv_field(&troubles.join("; ")),
        ));
    }
    out
}

#[utoipa::path(operation_id = "meetings_report", get, path = "/api/v1/meetings/{id}/report", tag = "meetings", params(("id" = i64, Path), ReportQuery),
    responses((status = 200, body = MeetingReport, description = "Attendance and each site's link over the meeting; CSV with ?format=csv")))]
pub async fn meeting_report(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    let format = q.format.as_deref().unwrap_or("json");
    if !matches!(format, "json" | "csv") {
        return Err(ApiError::invalid(
            "format",
            format!("'{}': use json or csv", crate::session_limits::clip(format)),
        ));
    }
    let (m, standing) = load_involved(&state, &principal, id).await?;
    let mut attendance = state.store.attendance(id).await?;
    attendance.retain(|r| standing.covers(r.site_id));
    let mut chunks = state.store.meeting_links(id).await?;
    // With what was sampled since the last write: a report opened during the meeting
    // reaches up to now.
    chunks.extend(state.links.pending(id));
    chunks.retain(|c| standing.covers(c.site_id));
    let names: BTreeMap<i64, String> = site_names(&state).await?.into_iter().collect();
    let report = crate::report::build(
        MeetingHead {
            id,
            title: &m.title,
            starts_at: m.starts_at,
        },
        &attendance,
        &chunks,
        &names,
        &state.options.report,
    );
    if format == "csv" {
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"report-{id}.csv\""),
                ),
            ],
            csv(&report),
        )
            .into_response());
    }
    Ok(Json(report).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SiteLinksQuery {
    /// How many days back (1 to 366; default 30).
    pub days: Option<u32>,
}

#[utoipa::path(operation_id = "sites_links", get, path = "/api/v1/sites/{id}/links", tag = "sites", params(("id" = i64, Path), SiteLinksQuery),
    responses((status = 200, body = Vec<SiteMeeting>, description = "The site's link in each meeting of its last days, newest first")))]
pub async fn site_links(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<SiteLinksQuery>,
) -> Result<Json<Vec<SiteMeeting>>, ApiError> {
    let days = q.days.unwrap_or(30);
    if !(1..=366).contains(&days) {
        return Err(ApiError::invalid("days", "between 1 and 366"));
    }
    let scope = principal.admin()?;
    // A missing site reads as 404 to whoever may see it.
    state.store.site(id).await?;
    if !scope.covers(&state.store, id).await? {
        return Err(ApiError::forbidden("this site belongs to another district"));
    }
    let since = Instant(Instant::now().0 - i64::from(days) * 86_400);
    let chunks = state.store.site_links(id, since).await?;
    let mut titles = HashMap::new();
    for c in &chunks {
        if let std::collections::hash_map::Entry::Vacant(e) = titles.entry(c.meeting_id) {
            let title = match state.store.meeting(c.meeting_id).await {
                Ok(m) => m.title,
                // A deleted meeting's samples stay until they are pruned.
                Err(_) => format!("#{}", c.meeting_id),
            };
            e.insert(title);
        }
    }
    Ok(Json(crate::report::site_meetings(&chunks, |id| {
        titles.get(&id).cloned().unwrap_or_default()
    })))
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_written_as_vietnamese_offices_write_them() {
        // 2026-12-07 01:00 UTC is 08:00 in Hà Nội.
        let t = cauhop_store::Instant(1_796_605_200);
        assert_eq!(super::local(t), "07/12/2026 08:00");
    }
}
