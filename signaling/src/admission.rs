//! Who may enter which meeting, and as what: the seam between the WebSocket protocol and
//! the schedule.
//!
//! [`Access`] is the policy: a join carries a signed link (`token`) or a room endpoint's
//! device key (`key`); the meeting must be on the schedule and in its lobby or open; the
//! site (or person) must be on the roster. Ad-hoc rooms (any id, no credential) exist only
//! when the operator turns them on, for demos and the media tests.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use cauhop_protocol::{ErrorCode, ServerMsg};
use cauhop_store::model::{Meeting, MeetingRole, NewAttendance, SiteKind};
use cauhop_store::schedule::{Phase, ScheduleConfig};
use cauhop_store::{Instant, Store, StoreError};
use tracing::error;

use crate::auth::{JoinClaims, JoinTokens, TokenError};

/// What a `join` message presents.
#[derive(Debug, Clone, Copy)]
pub struct JoinRequest<'a> {
    pub meeting: &'a str,
    pub token: Option<&'a str>,
    pub key: Option<&'a str>,
    pub name: &'a str,
    pub site: &'a str,
}

/// A join that was let in.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The room key in the SFU and the registry (scheduled meetings: `#<id>`).
    pub room: String,
    /// The meeting id the client knows.
    pub meeting: String,
    pub meeting_id: Option<i64>,
    pub role: MeetingRole,
    pub name: String,
    pub site: String,
    /// The district the site belongs to (its own name for a district or the province);
    /// empty in ad-hoc rooms.
    pub district: String,
    /// The site's id and configured downlink (kbit/s): the SFU caps what it sends to
    /// everyone at the site together. `None` in ad-hoc rooms.
    pub site_link: Option<(String, u32)>,
    pub attendance: Option<NewAttendance>,
    /// The join link's id, when the join came in by one.
    pub jti: Option<String>,
    /// The meeting's state, sent right after `welcome`.
    pub state: Option<ServerMsg>,
    /// When this session of the meeting opened (its lobby): controls kept since then
    /// are taken up after a restart of the bridge. `None` in ad-hoc rooms.
    pub opened_at: Option<Instant>,
}

/// Why a join was refused: a protocol error code and a sentence for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
    pub at: Option<Instant>,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            at: None,
        }
    }
}

pub type AdmitFuture<'a> = Pin<Box<dyn Future<Output = Result<Admitted, Refusal>> + Send + 'a>>;

pub trait Admission: Send + Sync + 'static {
    fn admit<'a>(&'a self, req: JoinRequest<'a>, now: Instant) -> AdmitFuture<'a>;
}

pub fn valid_meeting_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The room key of a scheduled meeting; `#` cannot occur in an ad-hoc id.
pub fn room_of(meeting_id: i64) -> String {
    format!("#{meeting_id}")
}

/// The scheduled meeting a room key names (`None`: an ad-hoc room).
pub(crate) fn meeting_of_room(room: &str) -> Option<i64> {
    room.strip_prefix('#')?.parse().ok()
}

pub struct Access {
    pub store: Store,
    pub tokens: Arc<JoinTokens>,
    pub schedule: ScheduleConfig,
    /// Ad-hoc rooms: `None` = off; `Some(None)` = any id; `Some(Some(list))` = these ids.
    pub ad_hoc: Option<Option<Vec<String>>>,
}

pub fn meeting_state(m: &Meeting, cfg: &ScheduleConfig, now: Instant) -> Option<ServerMsg> {
    let occ = m.times().current(cfg, now)?;
    let phase = match occ.phase(now) {
        Phase::Scheduled => "scheduled",
        Phase::Lobby => "lobby",
        Phase::Open => "open",
        Phase::Closing => "closing",
        Phase::Closed => "closed",
    };
    Some(ServerMsg::MeetingState {
        title: m.title.clone(),
        phase: phase.into(),
        starts_at: occ.window.start.rfc3339(),
        ends_at: occ.ends_at().rfc3339(),
    })
}

fn store_failure(e: &StoreError) -> Refusal {
    error!("store failed during join: {e}");
    Refusal::new(
        ErrorCode::Internal,
        "the bridge cannot read its schedule right now; retry in a moment",
    )
}

impl Access {
    fn ad_hoc(&self, req: &JoinRequest<'_>) -> Result<Admitted, Refusal> {
        let Some(list) = &self.ad_hoc else {
            return Err(Refusal::new(
                ErrorCode::Unauthorized,
                "this meeting needs a join link; ask the organiser for one",
            ));
        };
        if !valid_meeting_id(req.meeting) {
            return Err(Refusal::new(
                ErrorCode::UnknownMeeting,
                "meeting id must be 1-64 letters, digits, '-' or '_'",
            ));
        }
        if list
            .as_ref()
            .is_some_and(|l| !l.iter().any(|m| m == req.meeting))
        {
            return Err(Refusal::new(
                ErrorCode::UnknownMeeting,
                format!("no meeting '{}' on this bridge", req.meeting),
            ));
        }
        Ok(Admitted {
            room: req.meeting.to_owned(),
            meeting: req.meeting.to_owned(),
            meeting_id: None,
            role: MeetingRole::Participant,
            name: req.name.to_owned(),
            site: req.site.to_owned(),
            site_link: None,
            district: String::new(),
            attendance: None,
            jti: None,
            state: None,
            opened_at: None,
        })
    }

    /// A join link's claims, once its signature holds, it has not expired, its record
    /// exists unrevoked with the very same claims, and it is for `meeting` (if named).
    async fn link(&self, token: &str, meeting: &str, now: Instant) -> Result<JoinClaims, Refusal> {
        let claims = self.tokens.verify(token, now).map_err(|e| match e {
            TokenError::Expired { at } => Refusal {
                code: ErrorCode::LinkExpired,
                message: format!("this join link expired at {}", at.vn_clock()),
                at: Some(at),
            },
            TokenError::Invalid(why) => Refusal::new(
                ErrorCode::Unauthorized,
                format!("this join link is not valid ({why})"),
            ),
        })?;
        let record = self
            .store
            .link(&claims.jti)
            .await
            .map_err(|e| store_failure(&e))?;
        match record {
            None => {
                return Err(Refusal::new(
                    ErrorCode::Unauthorized,
                    "this join link is unknown",
                ));
            }
            Some(l) if l.revoked_at.is_some() => {
                return Err(Refusal::new(
                    ErrorCode::Unauthorized,
                    "this join link was revoked; ask the organiser for a new one",
                ));
            }
            // A valid signature over claims the bridge never issued under this id: a
            // forged link (a leaked key) or a tampered record. Either way, no entry.
            Some(l)
                if (l.meeting_id, l.site_id, l.person_id, l.role, l.expires_at.0)
                    != (claims.mid, claims.site, claims.pid, claims.role, claims.exp) =>
            {
                tracing::warn!(jti = %claims.jti, "join link refused: its claims differ from the link issued under its id");
                return Err(Refusal::new(
                    ErrorCode::Unauthorized,
                    "this join link does not match the one the organiser issued",
                ));
            }
            Some(_) => {}
        }
        if !meeting.is_empty() && meeting != claims.mid.to_string() {
            return Err(Refusal::new(
                ErrorCode::Unauthorized,
                "this join link is for another meeting",
            ));
        }
        Ok(claims)
    }

    async fn scheduled(&self, req: JoinRequest<'_>, now: Instant) -> Result<Admitted, Refusal> {
        // Who is asking: (meeting, site, person, endpoint, role from the link).
        let (meeting_id, site_id, person_id, endpoint, link_role, jti) =
            if let Some(token) = req.token {
                let c = self.link(token, req.meeting, now).await?;
                (c.mid, c.site, c.pid, None, Some(c.role), Some(c.jti))
            } else if let Some(key) = req.key {
                let ep = self
                    .store
                    .endpoint_by_key(key)
                    .await
                    .map_err(|e| store_failure(&e))?
                    .ok_or_else(|| {
                        Refusal::new(ErrorCode::Unauthorized, "device key unknown or revoked")
                    })?;
                let id: i64 = req.meeting.parse().map_err(|_| {
                    Refusal::new(
                        ErrorCode::UnknownMeeting,
                        "a device joins a meeting by its number",
                    )
                })?;
                (id, ep.site_id, None, Some(ep), None, None)
            } else {
                return self.ad_hoc(&req);
            };

        let meeting = match self.store.meeting(meeting_id).await {
            Ok(m) => m,
            Err(StoreError::NotFound { .. }) => {
                return Err(Refusal::new(
                    ErrorCode::UnknownMeeting,
                    "this meeting was cancelled",
                ));
            }
            Err(e) => return Err(store_failure(&e)),
        };
        let site = self
            .store
            .site(site_id)
            .await
            .map_err(|e| store_failure(&e))?;
        let Some(roster_role) = meeting.role_of(site_id, person_id) else {
            return Err(Refusal::new(
                ErrorCode::NotInvited,
                format!("{} is not invited to \"{}\"", site.name, meeting.title),
            ));
        };
        let Some(occ) = meeting.times().current(&self.schedule, now) else {
            return Err(Refusal::new(
                ErrorCode::MeetingClosed,
                "this meeting has no more sessions",
            ));
        };
        match occ.phase(now) {
            Phase::Scheduled => {
                return Err(Refusal {
                    code: ErrorCode::NotOpen,
                    message: format!(
                        "the meeting starts at {}; you can join from {}",
                        occ.window.start.vn_clock(),
                        occ.lobby_at.vn_clock()
                    ),
                    at: Some(occ.window.start),
                });
            }
            Phase::Closed => {
                let at = occ.ended_at.unwrap_or(occ.close_at);
                return Err(Refusal {
                    code: ErrorCode::MeetingClosed,
                    message: format!("the meeting ended at {}", at.vn_clock()),
                    at: Some(at),
                });
            }
            Phase::Lobby | Phase::Open | Phase::Closing => {}
        }
        // Removed by the chair in this session of the meeting: the same link, device or
        // person stays out until the next session.
        let removed = self
            .store
            .removal(
                meeting_id,
                occ.lobby_at,
                person_id,
                endpoint.as_ref().map(|e| e.id),
                jti.as_deref(),
            )
            .await
            .map_err(|e| store_failure(&e))?;
        if let Some(reason) = removed {
            let why = if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            };
            return Err(Refusal::new(
                ErrorCode::Removed,
                format!("the chair removed you from this meeting{why}"),
            ));
        }
        // A room device is its name; a link naming a person is that person (the roster
        // and the minutes show who was there, not what someone typed).
        let name = match (&endpoint, person_id) {
            (Some(ep), _) => ep.name.clone(),
            (None, Some(pid)) => match self.store.person(pid).await {
                Ok(p) => p.display_name,
                Err(StoreError::NotFound { .. }) => {
                    return Err(Refusal::new(
                        ErrorCode::Unauthorized,
                        "the person this join link names no longer has an account",
                    ));
                }
                Err(e) => return Err(store_failure(&e)),
            },
            (None, None) => req.name.to_owned(),
        };
        // A commune is listed under its district; a district or the province under its
        // own name. A parent that cannot be read costs the roster its grouping, not the
        // join.
        let district = match (site.kind, site.parent_id) {
            (SiteKind::Commune, Some(parent)) => match self.store.site(parent).await {
                Ok(d) => d.name,
                Err(e) => {
                    tracing::warn!(site = site.id, "district of the site not read: {e}");
                    String::new()
                }
            },
            _ => site.name.clone(),
        };
        Ok(Admitted {
            room: room_of(meeting.id),
            meeting: meeting.id.to_string(),
            meeting_id: Some(meeting.id),
            // The roster as it is now decides; a link may only narrow it.
            role: link_role.map_or(roster_role, |l| l.narrower(roster_role)),
            attendance: Some(NewAttendance {
                meeting_id: meeting.id,
                site_id: Some(site.id),
                person_id,
                endpoint_id: endpoint.as_ref().map(|e| e.id),
                display_name: name.clone(),
            }),
            name,
            // 0 or negative means "not configured": no cap beyond the estimate.
            site_link: u32::try_from(site.down_kbps)
                .ok()
                .filter(|k| *k > 0)
                .map(|k| (site.id.to_string(), k)),
            site: site.name,
            district,
            jti,
            state: meeting_state(&meeting, &self.schedule, now),
            opened_at: Some(occ.lobby_at),
        })
    }
}

impl Admission for Access {
    fn admit<'a>(&'a self, req: JoinRequest<'a>, now: Instant) -> AdmitFuture<'a> {
        Box::pin(self.scheduled(req, now))
    }
}
