//! Entering and leaving a meeting, for every way in: the WebSocket session
//! (`session.rs`), WHIP and WHEP (`whip_whep.rs`). Admission, the caps, the media room, the
//! attendance record and the roster, in that order, and undone in reverse.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use cauhop_protocol::{ErrorCode, ParticipantInfo, ServerMsg};
use cauhop_sfu::{JoinOptions, ParticipantId, SfuEvent};
use cauhop_store::Instant;
use cauhop_store::model::MeetingRole;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::AppState;
use crate::admission::JoinRequest;
use crate::outbox::Outbox;
use crate::registry::Holder;

/// A participant in a meeting, until [`leave`].
pub(crate) struct Joined {
    pub(crate) id: ParticipantId,
    /// The room key (SFU and registry).
    pub(crate) meeting: String,
    pub(crate) meeting_id: Option<i64>,
    pub(crate) role: MeetingRole,
    /// The credential it came in with (what the chair's controls match on).
    pub(crate) holder: Holder,
    /// Its name and site as the roster shows them (the audit log's actor).
    pub(crate) name: String,
    pub(crate) site: String,
    pub(crate) attendance: Option<i64>,
    pub(crate) media: mpsc::UnboundedReceiver<SfuEvent>,
}

/// What the newcomer is told besides its id.
pub(crate) struct Entered {
    pub(crate) joined: Joined,
    /// The meeting's state (chair, floor, end), when it has one.
    pub(crate) state: Option<ServerMsg>,
    /// The chair's controls as they stand (`controls`, `floor`, `hands`, `held`).
    pub(crate) controls: Vec<ServerMsg>,
}

/// Why a join was refused, for the client (already logged).
#[derive(Debug)]
pub(crate) struct Refused {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    /// When the meeting opens or ended, for a client that waits (RFC 3339).
    pub(crate) at: Option<String>,
}

impl Refused {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            at: None,
        }
    }
}

/// How a client came in, which decides what its media session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Way {
    /// The WebSocket protocol: publishes and receives, negotiates both ways.
    Socket,
    /// WHIP: only publishes, is offered nothing.
    Whip,
    /// WHEP: only receives, on the m-lines it offered; a display, not an attendee (no
    /// attendance record).
    Whep,
}

impl Way {
    fn as_str(self) -> &'static str {
        match self {
            Self::Socket => "websocket",
            Self::Whip => "whip",
            Self::Whep => "whep",
        }
    }
}

/// Let `request` in from `peer`: `out` carries what the roster tells this participant
/// (and, closed, ends it).
pub(crate) async fn enter(
    state: &Arc<AppState>,
    peer: &str,
    out: &Outbox,
    request: JoinRequest<'_>,
    way: Way,
) -> Result<Entered, Refused> {
    // Metrics: who comes in how, and why anyone is turned away.
    let kind = match (way, request.key.is_some(), request.token.is_some()) {
        (Way::Whip, ..) => "whip",
        (Way::Whep, ..) => "whep",
        (_, true, _) => "room_device",
        (_, _, true) => "link",
        _ => "ad_hoc",
    };
    let result = enter_as(state, peer, out, request, way).await;
    let m = &state.metrics;
    match &result {
        Ok(_) => crate::metrics::Metrics::inc(&m.joins, "kind", kind),
        Err(r) => {
            let code = serde_json::to_value(r.code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            crate::metrics::Metrics::inc(&m.joins_refused, "reason", &code);
        }
    }
    result
}

async fn enter_as(
    state: &Arc<AppState>,
    peer: &str,
    out: &Outbox,
    request: JoinRequest<'_>,
    way: Way,
) -> Result<Entered, Refused> {
    if let Err(wait) = state.check_join_rate(peer) {
        return Err(Refused::new(
            ErrorCode::RateLimited,
            format!("too many join attempts; retry in {} s", wait.as_secs() + 1),
        ));
    }
    let now = Instant::now();
    let admitted = match state.admission.admit(request, now).await {
        Ok(a) => a,
        Err(refusal) => {
            warn!(%peer, code = ?refusal.code, "join refused: {}", refusal.message);
            return Err(Refused {
                code: refusal.code,
                message: refusal.message,
                at: refusal.at.map(|t| t.rfc3339()),
            });
        }
    };
    // One live session per link: the newest wins (a reloaded tab, a second PC),
    // the one it replaces is told so and does not come back by itself.
    let replaced = admitted.jti.as_deref().map_or(0, |jti| {
        state.registry.eject(
            Some(&admitted.room),
            |h| h.jti.as_deref() == Some(jti),
            ErrorCode::Replaced,
            "this join link was opened again elsewhere; this session gave way",
        )
    });
    if replaced == 0 {
        let (here, all) = (
            state.registry.count_in(&admitted.room),
            state.registry.count(),
        );
        if here >= state.options.max_per_meeting || all >= state.options.max_participants {
            warn!(%peer, here, all, "join refused: participant cap reached");
            return Err(Refused::new(
                ErrorCode::Full,
                "the meeting (or the bridge) has as many participants as it admits",
            ));
        }
    }
    let holder = Holder {
        site_id: admitted.attendance.as_ref().and_then(|a| a.site_id),
        person_id: admitted.attendance.as_ref().and_then(|a| a.person_id),
        endpoint_id: admitted.attendance.as_ref().and_then(|a| a.endpoint_id),
        jti: admitted.jti.clone(),
    };
    // A room not open yet opens with the meeting's settings and kept controls: read now,
    // so that its lock applies to this join already.
    let opening = match admitted.meeting_id {
        Some(mid) if !state.registry.is_open(&admitted.room) => {
            Some(crate::chair::opening(state, mid, admitted.opened_at).await)
        }
        _ => None,
    };
    let may_enter = match &opening {
        Some(o) => crate::control::Control::opened(o.clone()).may_enter(&holder),
        None => state
            .registry
            .read_control(&admitted.room, |c| c.may_enter(&holder)),
    };
    // A locked meeting lets back the sites that were in it, and its chairs.
    if admitted.role != MeetingRole::Chair && !may_enter {
        warn!(%peer, meeting = %admitted.meeting, site = %admitted.site, "join refused: meeting locked");
        return Err(Refused::new(
            ErrorCode::Locked,
            "the chair has locked this meeting against late joins; ask the chair's office to unlock it",
        ));
    }
    if way == Way::Whep && admitted.role != MeetingRole::Viewer {
        return Err(Refused::new(
            ErrorCode::Forbidden,
            "WHEP receives with a join link issued with the viewer role",
        ));
    }
    let id = ParticipantId(state.next_participant.fetch_add(1, Ordering::Relaxed));
    // The connection's span (`serve_socket`) names who it is from now on.
    tracing::Span::current()
        .record("participant", tracing::field::display(id))
        .record("meeting", admitted.meeting.as_str())
        .record("site", site_or_name(&admitted.site, &admitted.name));
    let options = JoinOptions {
        name: site_or_name(&admitted.site, &admitted.name).to_owned(),
        chair: admitted.role == MeetingRole::Chair,
        site: admitted.site_link.clone(),
        video_slots: None,
        publish_only: way == Way::Whip,
        slots_from_offer: way == Way::Whep,
    };
    let media = state
        .sfu
        .join_with(&admitted.room, id, options)
        .await
        .map_err(|e| Refused::new(crate::session::sfu_error(&e), e.to_string()))?;
    let attendance = match admitted.attendance.as_ref().filter(|_| way != Way::Whep) {
        Some(a) => match state.store.start_attendance(a, now).await {
            Ok(row) => Some(row),
            Err(e) => {
                warn!(participant = %id, "attendance not recorded: {e}");
                None
            }
        },
        None => None,
    };
    // Its link is sampled for the meeting's report while it is in.
    if let (Some(att), Some(meeting_id)) = (attendance, admitted.meeting_id) {
        let site_id = admitted.attendance.as_ref().and_then(|a| a.site_id);
        state.links.track(
            &id.to_string(),
            crate::link_history::Tracked {
                attendance_id: att,
                meeting_id,
                site_id,
                site: site_id.map(|_| admitted.site.clone()),
            },
        );
    }
    let info = ParticipantInfo {
        id: id.to_string(),
        name: admitted.name.clone(),
        site: admitted.site.clone(),
        district: admitted.district.clone(),
        audio_muted: false,
        video_muted: false,
    };
    info!(participant = %id, meeting = %admitted.meeting, role = admitted.role.as_str(), name = %info.name, site = %info.site, %peer, ?way, "joined meeting");
    // A WebSocket client's welcome is its first message, whatever else happens in the
    // room meanwhile (the steps below wait on the store and the media server).
    let welcome = |present: &[ParticipantInfo]| {
        (way == Way::Socket).then(|| {
            let ice_servers = state
                .options
                .turn
                .as_ref()
                .map(|t| vec![t.ice_server_now(&id.to_string())])
                .unwrap_or_default();
            ServerMsg::Welcome {
                v: cauhop_protocol::PROTOCOL_VERSION,
                meeting: admitted.meeting.clone(),
                participant: id.to_string(),
                participants: present.to_vec(),
                role: admitted.role.as_str().to_owned(),
                ice_servers,
            }
        })
    };
    let present = state.registry.join_first(
        &admitted.room,
        info,
        holder.clone(),
        admitted.role == MeetingRole::Chair,
        out.clone(),
        welcome,
        opening,
    );
    if let (Some(meeting_id), true) = (admitted.meeting_id, present.is_empty()) {
        state.webhooks.send(
            "meeting.started",
            serde_json::json!({"meeting_id": meeting_id, "first": site_or_name(&admitted.site, &admitted.name)}),
        );
    }
    // An attendee (a WHEP display is not one).
    if let (Some(meeting_id), Some(_)) = (admitted.meeting_id, attendance) {
        state.webhooks.send(
            "site.joined",
            serde_json::json!({
                "meeting_id": meeting_id,
                "participant": id.to_string(),
                "site_id": holder.site_id,
                "site": admitted.site,
                "name": admitted.name,
                "role": admitted.role.as_str(),
                "via": way.as_str(),
            }),
        );
    }
    // Joining while everyone is muted: muted too (the chairs are not).
    let me = id.to_string();
    let fx = state.registry.control(&admitted.room, |c, _| {
        c.joined(&me, &holder, admitted.role == MeetingRole::Chair, now)
    });
    crate::chair::apply(state, &admitted.room, fx).await;
    crate::chair::persist(state, &admitted.room).await;
    let mut controls = state.registry.control_snapshot(&admitted.room);
    controls.extend(state.recorders.snapshot(&admitted.room));
    Ok(Entered {
        joined: Joined {
            id,
            meeting: admitted.room,
            meeting_id: admitted.meeting_id,
            role: admitted.role,
            holder,
            name: admitted.name,
            site: admitted.site,
            attendance,
            media,
        },
        state: admitted.state,
        controls,
    })
}

/// Undo [`enter`]: the attendance record closed, the media room and the roster left.
pub(crate) async fn leave(state: &AppState, j: Joined) {
    if let Some(a) = j.attendance
        && let Err(e) = state.store.end_attendance(a, Instant::now()).await
    {
        warn!(participant = %j.id, "cannot close attendance record: {e}");
    }
    state.links.untrack(&j.id.to_string());
    state.sfu.leave(j.id).await;
    let fx = crate::chair::leave(state, &j.meeting, &j.id.to_string()).await;
    crate::chair::apply(state, &j.meeting, fx).await;
    let last = state.registry.count_in(&j.meeting) == 0;
    if last {
        crate::record::stop(state, &j.meeting, "ended");
    }
    if let (Some(meeting_id), Some(_)) = (j.meeting_id, j.attendance) {
        state.webhooks.send(
            "site.left",
            serde_json::json!({
                "meeting_id": meeting_id,
                "participant": j.id.to_string(),
                "site_id": j.holder.site_id,
                "site": j.site,
                "name": j.name,
            }),
        );
    }
    if let (Some(meeting_id), true) = (j.meeting_id, last) {
        state.webhooks.send(
            "meeting.ended",
            serde_json::json!({"meeting_id": meeting_id}),
        );
    }
    info!(participant = %j.id, meeting = %j.meeting, "left meeting");
}

/// What the logs name a participant by: its site, or its own name when it has none.
fn site_or_name<'a>(site: &'a str, name: &'a str) -> &'a str {
    if site.is_empty() { name } else { site }
}
