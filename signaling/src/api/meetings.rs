use std::collections::HashSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cauhop_protocol::{ErrorCode, ParticipantInfo};
use cauhop_store::model::{
    Attendance, AuditAction, JoinLink, Meeting, MeetingRole, NewMeeting, Paged, RollCall,
};
use cauhop_store::schedule::overlap::HORIZON_SECS;
use cauhop_store::{Instant, MeetingFilter, random_secret};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::audit::{Audit, meeting_detail, roster_change};
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, PageQuery, Principal, Scope};
use crate::AppState;
use crate::admission::room_of;
use crate::auth::JoinClaims;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MeetingQuery {
    /// Meetings ending after this time (RFC 3339).
    pub from: Option<String>,
    /// Meetings starting before this time (RFC 3339).
    pub to: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

fn time_param(field: &str, v: Option<&str>) -> Result<Option<Instant>, ApiError> {
    v.map(|t| Instant::parse(t).map_err(|e| ApiError::invalid(field, e)))
        .transpose()
}

/// May this principal see the meeting? Admins within scope; officials if invited.
async fn can_see(state: &AppState, principal: &Principal, m: &Meeting) -> Result<bool, ApiError> {
    let person = principal.person()?;
    match principal.admin() {
        Ok(scope) => in_scope(state, scope, m).await,
        Err(_) => Ok(person.site_id.is_some_and(|s| {
            m.roster
                .iter()
                .any(|i| i.site_id == s || i.person_id == Some(person.id))
        })),
    }
}

/// How an administrator stands to a meeting.
///
/// A meeting belongs to the district that chairs it. A district one of whose sites is
/// merely invited (a commune in a province meeting) is involved: it reads its own sites'
/// links, attendance and presence, and issues and revokes links for them, but does not
/// change the meeting, set roles, or see the other districts' rows.
pub(super) enum Standing {
    /// The province admin, or the admin of the chairing site's district. `scope` is the
    /// admin's own sites (`None`: every site), the only ones it may issue links for.
    Manages { scope: Option<HashSet<i64>> },
    /// A district with an invited site; `own` is the district's sites.
    Involved { own: HashSet<i64> },
}

impl Standing {
    /// May this admin read or act on a row of `site`?
    pub(super) fn covers(&self, site: Option<i64>) -> bool {
        match self {
            Standing::Manages { .. } => true,
            Standing::Involved { own } => site.is_some_and(|s| own.contains(&s)),
        }
    }
}

async fn standing(
    state: &AppState,
    scope: Scope,
    m: &Meeting,
) -> Result<Option<Standing>, ApiError> {
    let Some(own) = scope.site_ids(&state.store).await? else {
        return Ok(Some(Standing::Manages { scope: None }));
    };
    if own.contains(&m.chair_site_id) {
        return Ok(Some(Standing::Manages { scope: Some(own) }));
    }
    if m.roster.iter().any(|i| own.contains(&i.site_id)) {
        return Ok(Some(Standing::Involved { own }));
    }
    Ok(None)
}

/// A district admin's meeting to see: chaired by or inviting a site of the district.
async fn in_scope(state: &AppState, scope: Scope, m: &Meeting) -> Result<bool, ApiError> {
    Ok(standing(state, scope, m).await?.is_some())
}

/// A district admin may schedule only among the district's own sites.
async fn check_new(state: &AppState, scope: Scope, m: &NewMeeting) -> Result<(), ApiError> {
    let Some(own) = scope.site_ids(&state.store).await? else {
        return Ok(());
    };
    let mut sites = vec![m.chair_site_id];
    sites.extend(m.roster.iter().map(|i| i.site_id));
    for s in sites.into_iter().filter(|s| !own.contains(s)) {
        // A site that does not exist is left to validation (422), not refused here.
        if state.store.site(s).await.is_ok() {
            return Err(ApiError::forbidden(
                "a district administrator schedules meetings among their own district's sites",
            ));
        }
    }
    Ok(())
}

pub(crate) async fn load_visible(
    state: &AppState,
    principal: &Principal,
    id: i64,
) -> Result<Meeting, ApiError> {
    principal.person()?;
    let mut m = state.store.meeting(id).await?;
    if !can_see(state, principal, &m).await? {
        return Err(ApiError::forbidden("this meeting is not yours to see"));
    }
    m.phase = Some(m.times().phase(&state.schedule, Instant::now()));
    Ok(m)
}

/// A meeting this admin may change: its own district chairs it (or it is the province's
/// admin).
pub(crate) async fn load_managed(
    state: &AppState,
    principal: &Principal,
    id: i64,
) -> Result<Meeting, ApiError> {
    let (m, standing) = load_involved(state, principal, id).await?;
    match standing {
        Standing::Manages { .. } => Ok(m),
        Standing::Involved { .. } => Err(ApiError::forbidden(
            "another district chairs this meeting: you can read and issue links for your \
             own sites, not change it",
        )),
    }
}

/// A meeting this admin manages or is involved in, and which of the two.
pub(super) async fn load_involved(
    state: &AppState,
    principal: &Principal,
    id: i64,
) -> Result<(Meeting, Standing), ApiError> {
    let scope = principal.admin()?;
    let m = state.store.meeting(id).await?;
    match standing(state, scope, &m).await? {
        Some(s) => Ok((m, s)),
        None => Err(ApiError::forbidden(
            "this meeting belongs to another district",
        )),
    }
}

#[utoipa::path(operation_id = "meetings_list", get, path = "/api/v1/meetings", tag = "meetings", params(MeetingQuery),
    responses((status = 200, body = Paged<Meeting>), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiQuery(q): ApiQuery<MeetingQuery>,
) -> Result<Json<Paged<Meeting>>, ApiError> {
    let person = principal.person()?;
    let page = PageQuery {
        limit: q.limit,
        offset: q.offset,
    }
    .page()?;
    let mut filter = MeetingFilter {
        from: time_param("from", q.from.as_deref())?,
        to: time_param("to", q.to.as_deref())?,
        ..Default::default()
    };
    match principal.admin() {
        Ok(scope) => filter.district = scope.district(),
        Err(_) => filter.site = Some(person.site_id.unwrap_or(-1)),
    }
    let mut out = state.store.meetings(filter, page).await?;
    let now = Instant::now();
    for m in &mut out.items {
        m.phase = Some(m.times().phase(&state.schedule, now));
    }
    Ok(Json(out))
}

#[utoipa::path(operation_id = "meetings_create", post, path = "/api/v1/meetings", tag = "meetings", request_body = NewMeeting,
    responses((status = 201, body = Meeting),
              (status = 409, body = ErrorBody, description = "A site's room is booked elsewhere; `conflict` names the meeting"),
              (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    audit: Audit,
    ApiJson(m): ApiJson<NewMeeting>,
) -> Result<(StatusCode, Json<Meeting>), ApiError> {
    let scope = principal.admin()?;
    check_new(&state, scope, &m).await?;
    let who = principal.person()?;
    let by = who.id;
    let mut out = state.store.create_meeting(&m, Some(by)).await?;
    let detail = meeting_detail(&out);
    audit
        .record(who, AuditAction::MeetingCreate, out.id, detail)
        .await;
    if let Some(change) = roster_change(&[], &out.roster) {
        audit
            .record(who, AuditAction::RosterChange, out.id, change)
            .await;
    }
    out.phase = Some(out.times().phase(&state.schedule, Instant::now()));
    tracing::info!(meeting = out.id, title = %out.title, by, "meeting scheduled");
    Ok((StatusCode::CREATED, Json(out)))
}

#[utoipa::path(operation_id = "meetings_get", get, path = "/api/v1/meetings/{id}", params(("id" = i64, Path)), tag = "meetings",
    responses((status = 200, body = Meeting), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Meeting>, ApiError> {
    Ok(Json(load_visible(&state, &principal, id).await?))
}

#[utoipa::path(operation_id = "meetings_update", put, path = "/api/v1/meetings/{id}", params(("id" = i64, Path)), tag = "meetings", request_body = NewMeeting,
    responses((status = 200, body = Meeting), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    audit: Audit,
    ApiPath(id): ApiPath<i64>,
    ApiJson(m): ApiJson<NewMeeting>,
) -> Result<Json<Meeting>, ApiError> {
    let scope = principal.admin()?;
    let before = load_managed(&state, &principal, id).await?;
    check_new(&state, scope, &m).await?;
    let mut out = state.store.update_meeting(id, &m).await?;
    let who = principal.person()?;
    let mut detail = meeting_detail(&out);
    detail["before"] = meeting_detail(&before);
    audit
        .record(who, AuditAction::MeetingUpdate, id, detail)
        .await;
    if let Some(change) = roster_change(&before.roster, &out.roster) {
        audit
            .record(who, AuditAction::RosterChange, id, change)
            .await;
    }
    // Whoever the new roster no longer invites leaves now, not at the next join.
    let ended = state.registry.eject(
        Some(&room_of(id)),
        |h| {
            h.site_id
                .is_some_and(|s| out.role_of(s, h.person_id).is_none())
        },
        ErrorCode::NotInvited,
        "your site was taken off this meeting's invitation list",
    );
    if ended > 0 {
        tracing::info!(meeting = id, ended, "sessions ended: taken off the roster");
    }
    out.phase = Some(out.times().phase(&state.schedule, Instant::now()));
    Ok(Json(out))
}

#[utoipa::path(operation_id = "meetings_delete", delete, path = "/api/v1/meetings/{id}", params(("id" = i64, Path)), tag = "meetings",
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    audit: Audit,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    let gone = load_managed(&state, &principal, id).await?;
    state.store.delete_meeting(id).await?;
    audit
        .record(
            principal.person()?,
            AuditAction::MeetingDelete,
            id,
            meeting_detail(&gone),
        )
        .await;
    state.registry.broadcast(
        &room_of(id),
        None,
        cauhop_protocol::ServerMsg::MeetingEnded {
            reason: "cancelled".into(),
        },
    );
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLink {
    pub site_id: i64,
    #[serde(default)]
    pub person_id: Option<i64>,
    /// Defaults to the site's role on the roster; may narrow it (a viewer link for a
    /// participant), never widen it: change the roster to make a site chair.
    #[serde(default)]
    pub role: Option<MeetingRole>,
    /// Defaults to the end of the meeting's last session plus the grace period.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Instant>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedLink {
    pub link: JoinLink,
    /// The signed token (JWT).
    pub token: String,
    /// Path of the join page with the token in the fragment (`/m/12#t=…`); prefix the
    /// bridge's address.
    pub url: String,
}

/// What the log keeps of a link (never its token).
fn link_detail(l: &JoinLink) -> serde_json::Value {
    serde_json::json!({
        "meeting_id": l.meeting_id,
        "site_id": l.site_id,
        "person_id": l.person_id,
        "role": l.role.as_str(),
        "expires_at": l.expires_at,
    })
}

fn last_end(state: &AppState, m: &Meeting) -> Instant {
    let t = m.times();
    let end = match &t.rule {
        None => m.ends_at,
        Some(r) => match (r.until, r.count) {
            (Some(u), _) => u.plus(m.ends_at.0 - m.starts_at.0),
            (None, Some(_)) => t
                .first_windows(HORIZON_SECS)
                .last()
                .map_or(m.ends_at, |w| w.end),
            (None, None) => m.starts_at.plus(366 * 86_400),
        },
    };
    end.plus(state.schedule.grace_secs + 3600)
}

async fn issue(state: &AppState, m: &Meeting, req: NewLink) -> Result<IssuedLink, ApiError> {
    let Some(role) = m.role_of(req.site_id, req.person_id) else {
        return Err(ApiError::invalid(
            "site_id",
            "this site (or person) is not on the meeting's roster",
        ));
    };
    if let Some(asked) = req.role
        && asked.narrower(role) != asked
    {
        return Err(ApiError::invalid(
            "role",
            format!(
                "the roster makes this site {}; a link cannot give more (change the roster)",
                role.as_str()
            ),
        ));
    }
    let now = Instant::now();
    let expires_at = req.expires_at.unwrap_or_else(|| last_end(state, m));
    if expires_at <= now {
        return Err(ApiError::invalid("expires_at", "must be in the future"));
    }
    let link = JoinLink {
        jti: random_secret(12),
        meeting_id: m.id,
        site_id: req.site_id,
        person_id: req.person_id,
        role: req.role.unwrap_or(role),
        expires_at,
        revoked_at: None,
    };
    let link = state.store.create_link(&link).await?;
    let token = state
        .tokens
        .issue(&JoinClaims {
            jti: link.jti.clone(),
            mid: m.id,
            site: link.site_id,
            pid: link.person_id,
            role: link.role,
            exp: link.expires_at.0,
            iat: now.0,
        })
        .map_err(ApiError::Internal)?;
    // In the fragment: browsers never send it, so the token stays out of proxy logs and
    // `Referer`; the page takes it out of the address bar.
    let url = format!("/m/{}#t={token}", m.id);
    Ok(IssuedLink { link, token, url })
}

#[utoipa::path(operation_id = "meetings_create_link", post, path = "/api/v1/meetings/{id}/links", params(("id" = i64, Path)), tag = "links", request_body = NewLink,
    responses((status = 201, body = IssuedLink), (status = 422, body = ErrorBody)))]
pub async fn create_link(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    audit: Audit,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<NewLink>,
) -> Result<(StatusCode, Json<IssuedLink>), ApiError> {
    let (m, standing) = load_involved(&state, &principal, id).await?;
    match &standing {
        Standing::Manages { scope: Some(own) } if !own.contains(&req.site_id) => {
            return Err(ApiError::forbidden(
                "links only for your own district's sites; the province issues the others",
            ));
        }
        Standing::Involved { own } => {
            if !own.contains(&req.site_id) {
                return Err(ApiError::forbidden(
                    "links only for your own district's sites",
                ));
            }
            let roster = m.role_of(req.site_id, req.person_id);
            if req.role.is_some() && req.role != roster {
                return Err(ApiError::forbidden(
                    "only the chairing district or the province sets roles in this meeting",
                ));
            }
        }
        Standing::Manages { .. } => {}
    }
    let issued = issue(&state, &m, req).await?;
    audit
        .record(
            principal.person()?,
            AuditAction::LinkCreate,
            &issued.link.jti,
            link_detail(&issued.link),
        )
        .await;
    Ok((StatusCode::CREATED, Json(issued)))
}

#[utoipa::path(operation_id = "meetings_list_links", get, path = "/api/v1/meetings/{id}/links", params(("id" = i64, Path)), tag = "links",
    responses((status = 200, body = Vec<JoinLink>)))]
pub async fn list_links(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<JoinLink>>, ApiError> {
    let (_, standing) = load_involved(&state, &principal, id).await?;
    let mut links = state.store.links(id).await?;
    links.retain(|l| standing.covers(Some(l.site_id)));
    Ok(Json(links))
}

#[utoipa::path(operation_id = "meetings_revoke_link", post, path = "/api/v1/links/{jti}/revoke", params(("jti" = String, Path)), tag = "links",
    responses((status = 200, body = JoinLink), (status = 404, body = ErrorBody)))]
pub async fn revoke_link(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    audit: Audit,
    ApiPath(jti): ApiPath<String>,
) -> Result<Json<JoinLink>, ApiError> {
    principal.admin()?;
    let link = state
        .store
        .link(&jti)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("join link {jti} does not exist")))?;
    let (_, standing) = load_involved(&state, &principal, link.meeting_id).await?;
    if !standing.covers(Some(link.site_id)) {
        return Err(ApiError::forbidden(
            "this link is another district's; its chair or the province revokes it",
        ));
    }
    let revoked = state.store.revoke_link(&jti, Instant::now()).await?;
    audit
        .record(
            principal.person()?,
            AuditAction::LinkRevoke,
            &jti,
            link_detail(&revoked),
        )
        .await;
    let ended = state.registry.eject(
        Some(&room_of(link.meeting_id)),
        |h| h.jti.as_deref() == Some(jti.as_str()),
        ErrorCode::Unauthorized,
        "this join link was revoked by the organiser",
    );
    tracing::info!(%jti, meeting = link.meeting_id, ended, "join link revoked");
    Ok(Json(revoked))
}

/// An official's own link to a meeting their site is invited to.
#[utoipa::path(operation_id = "meetings_my_link", post, path = "/api/v1/meetings/{id}/join", params(("id" = i64, Path)), tag = "links",
    responses((status = 201, body = IssuedLink), (status = 403, body = ErrorBody)))]
pub async fn my_link(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    audit: Audit,
    ApiPath(id): ApiPath<i64>,
) -> Result<(StatusCode, Json<IssuedLink>), ApiError> {
    let person = principal.person()?.clone();
    let m = state.store.meeting(id).await?;
    let site = person
        .site_id
        .filter(|s| m.role_of(*s, Some(person.id)).is_some());
    let Some(site_id) = site else {
        return Err(ApiError::forbidden(
            "your site is not invited to this meeting",
        ));
    };
    let personal = m.roster.iter().any(|i| i.person_id == Some(person.id));
    let req = NewLink {
        site_id,
        person_id: personal.then_some(person.id),
        role: None,
        expires_at: None,
    };
    let issued = issue(&state, &m, req).await?;
    let detail = link_detail(&issued.link);
    audit
        .record(&person, AuditAction::LinkCreate, &issued.link.jti, detail)
        .await;
    Ok((StatusCode::CREATED, Json(issued)))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AttendanceQuery {
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

pub(super) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[utoipa::path(operation_id = "meetings_attendance", get, path = "/api/v1/meetings/{id}/attendance", tag = "meetings", params(("id" = i64, Path), AttendanceQuery),
    responses((status = 200, body = Vec<Attendance>, description = "JSON, or CSV with ?format=csv")))]
pub async fn attendance(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<AttendanceQuery>,
) -> Result<Response, ApiError> {
    let (m, standing) = load_involved(&state, &principal, id).await?;
    let mut rows = state.store.attendance(id).await?;
    rows.retain(|r| standing.covers(r.site_id));
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(rows).into_response()),
        Some("csv") => {
            // One query for every site name rather than one per row.
            let sites = super::reports::site_names(&state).await?;
            // The last roll call's answer per site: present, connected (did not
            // confirm), absent; a site absent from it has a row of its own.
            let roll: std::collections::HashMap<i64, &'static str> = state
                .store
                .roll_calls(id)
                .await?
                .pop()
                .map(|c| {
                    c.sites
                        .into_iter()
                        .filter(|e| standing.covers(Some(e.site_id)))
                        .map(|e| (e.site_id, e.status.as_str()))
                        .collect()
                })
                .unwrap_or_default();
            // A BOM so that Excel opens Vietnamese names as UTF-8.
            let mut out =
                String::from("\u{feff}meeting,site,name,joined_at,left_at,minutes,roll_call\r\n");
            let mut listed = std::collections::HashSet::new();
            for r in rows {
                let site = r
                    .site_id
                    .and_then(|s| sites.get(&s).cloned())
                    .unwrap_or_default();
                let answer = r.site_id.and_then(|s| roll.get(&s)).copied().unwrap_or("");
                listed.extend(r.site_id);
                out.push_str(&format!(
                    "{},{},{},{},{},{},{}\r\n",
                    csv_field(&m.title),
                    csv_field(&site),
                    csv_field(&r.display_name),
                    r.joined_at,
                    r.left_at.map(|t| t.to_string()).unwrap_or_default(),
                    (r.seconds + 30) / 60,
                    answer
                ));
            }
            let mut unlisted: Vec<(&i64, &&str)> =
                roll.iter().filter(|(s, _)| !listed.contains(*s)).collect();
            unlisted.sort();
            for (site, answer) in unlisted {
                let name = sites.get(site).cloned().unwrap_or_default();
                out.push_str(&format!(
                    "{},{},,,,0,{answer}\r\n",
                    csv_field(&m.title),
                    csv_field(&name),
                ));
            }
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"attendance-{id}.csv\""),
                    ),
                ],
                out,
            )
                .into_response())
        }
        Some(other) => Err(ApiError::invalid(
            "format",
            format!("'{other}': use json or csv"),
        )),
    }
}

#[utoipa::path(operation_id = "meetings_roll_calls", get, path = "/api/v1/meetings/{id}/roll-calls", tag = "meetings", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<RollCall>, description = "Each roll call's answer per invited site, oldest first")))]
pub async fn roll_calls(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<RollCall>>, ApiError> {
    let (_, standing) = load_involved(&state, &principal, id).await?;
    let mut calls = state.store.roll_calls(id).await?;
    for c in &mut calls {
        c.sites.retain(|e| standing.covers(Some(e.site_id)));
    }
    Ok(Json(calls))
}

#[utoipa::path(operation_id = "meetings_live", get, path = "/api/v1/meetings/{id}/live", params(("id" = i64, Path)), tag = "meetings",
    responses((status = 200, body = Vec<Object>, description = "Participants connected now")))]
pub async fn live(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<ParticipantInfo>>, ApiError> {
    let (_, standing) = load_involved(&state, &principal, id).await?;
    Ok(Json(state.registry.members_where(&room_of(id), |h| {
        standing.covers(h.site_id)
    })))
}
