//! What the chair does in a meeting, and what a site asks of the chair: the WebSocket
//! messages of the floor, the queue, mute, camera, removal, lock and secretary, checked
//! for who may send them, applied to the meeting's controls (`control.rs`) and to the
//! media room, and written to the audit log.
//!
//! The chair's powers belong to a participant admitted with the chair role, and to the
//! participant holding the credential the chair named secretary. Every action a chair
//! takes is recorded with who (name, site, address) and when; a site's own hand is not.

use std::sync::Arc;

use cauhop_protocol::{ClientMsg, ErrorCode, RollCallCount, ServerMsg};
use cauhop_store::Instant;
use cauhop_store::model::{
    AuditAction, AuditActor, MeetingRole, NewAuditEntry, NewRemoval, RollCall, RollCallEntry,
    RollCallStatus,
};
use serde_json::json;
use tracing::{info, warn};

use crate::AppState;
use crate::admission::meeting_state;
use crate::control::{ControlError, Effects};
use crate::entry::Joined;
use crate::session_limits::clip;

/// Longest removal reason shown to the removed site and kept in the log.
pub(crate) const MAX_REASON_CHARS: usize = 200;

/// How an action is answered when it cannot be done.
pub(crate) type Reply<'a> = &'a (dyn Fn(ErrorCode, String) + Sync);

/// Apply what a change of the controls asks of the media room.
pub(crate) async fn apply(state: &AppState, room: &str, fx: Effects) {
    let holds: Vec<_> = fx
        .holds
        .iter()
        .filter_map(|(p, h)| crate::session::parse_participant(p).map(|id| (id, h.audio, h.video)))
        .collect();
    if !holds.is_empty()
        && let Err(e) = state.sfu.hold(holds).await
    {
        warn!(meeting = %room, "holds not passed to the media server: {e}");
    }
    if let Some(floor) = fx.floor {
        let holder = floor.as_deref().and_then(crate::session::parse_participant);
        if let Err(e) = state.sfu.floor(room, holder).await {
            warn!(meeting = %room, "floor not passed to the media server: {e}");
        }
    }
}

/// Keep what of `room`'s controls outlives a restart of the bridge, when it changed since
/// it was last kept (a failure is logged: the meeting goes on).
pub(crate) async fn persist(state: &AppState, room: &str) {
    let _order = state.keeping.lock().await;
    persist_in_order(state, room).await;
}

/// [`persist`], for a caller holding `state.keeping`. What to write is read and written
/// under it, so writes land in the order the controls changed: a join's write read
/// before the chair's lock can no longer land after it and undo it.
async fn persist_in_order(state: &AppState, room: &str) {
    let Some(meeting_id) = crate::admission::meeting_of_room(room) else {
        return;
    };
    let mut changed = None;
    state.registry.control(room, |c, _| {
        changed = c.unsaved();
        Effects::default()
    });
    if let Some(durable) = changed
        && !keep(state, meeting_id, &durable).await
    {
        state.registry.control(room, |c, _| {
            c.unkept();
            Effects::default()
        });
    }
}

/// Take `participant` out of `room` (the registry's side of a leave) and keep what that
/// changed of its controls, in order with every other write of them.
pub(crate) async fn leave(state: &AppState, room: &str, participant: &str) -> Effects {
    let _order = state.keeping.lock().await;
    let mut fx = state.registry.leave(room, participant, "left");
    match fx.closing.take() {
        Some(last) => {
            if let Some(meeting_id) = crate::admission::meeting_of_room(room) {
                keep(state, meeting_id, &last).await;
            }
        }
        None => persist_in_order(state, room).await,
    }
    fx
}

/// Write `durable` as a meeting's kept controls; false (logged) when it could not be.
async fn keep(state: &AppState, meeting_id: i64, durable: &crate::control::Durable) -> bool {
    let text = match serde_json::to_string(durable) {
        Ok(t) => t,
        Err(e) => {
            warn!(meeting = meeting_id, "controls not kept: {e}");
            return false;
        }
    };
    match state
        .store
        .put_meeting_controls(meeting_id, &text, Instant::now())
        .await
    {
        Ok(()) => true,
        Err(e) => {
            warn!(
                meeting = meeting_id,
                "controls not kept; a restart of the bridge would lose them: {e}"
            );
            false
        }
    }
}

/// What `room` opens with: the meeting's settings, and what was kept of its controls in
/// this session of the meeting (`since`: when the session opened), if the bridge
/// restarted during it. Read before the first participant is in, so that, as the sites
/// of a 270-site meeting rejoin together after a restart, none of them gets in unmuted
/// or past the lock while the kept controls are still being read.
pub(crate) async fn opening(
    state: &AppState,
    meeting_id: i64,
    since: Option<Instant>,
) -> crate::control::Opening {
    // After any write still on its way (the room's last participant leaving).
    let _order = state.keeping.lock().await;
    let settings = match state.store.meeting_settings(meeting_id).await {
        Ok(s) => Some((s.self_unmute, s.floor_limit_s)),
        Err(e) => {
            warn!(
                meeting = meeting_id,
                "meeting settings not read; defaults apply: {e}"
            );
            None
        }
    };
    let Some(since) = since else {
        return crate::control::Opening {
            settings,
            kept: None,
        };
    };
    let kept = match state.store.meeting_controls(meeting_id, since).await {
        Ok(k) => k,
        Err(e) => {
            warn!(meeting = meeting_id, "kept controls not read: {e}");
            None
        }
    };
    let kept = kept.and_then(|text| {
        match serde_json::from_str::<crate::control::Durable>(&text) {
            Ok(d) => {
                info!(
                    meeting = meeting_id,
                    locked = d.locked,
                    all_muted = d.all_muted,
                    held = d.held.len(),
                    "the room opens with the controls kept in this session (the bridge restarted, or everyone had left)"
                );
                Some(d)
            }
            Err(e) => {
                warn!(
                    meeting = meeting_id,
                    "kept controls unreadable; fresh ones apply: {e}"
                );
                None
            }
        }
    });
    crate::control::Opening { settings, kept }
}

/// Whether `j` has the chair's powers now.
pub(crate) fn may_chair(state: &AppState, j: &Joined) -> bool {
    j.role == MeetingRole::Chair || state.registry.is_secretary(&j.meeting, &j.holder)
}

/// Whether `msg` is one of the chair's actions.
pub(crate) fn is_chair_action(msg: &ClientMsg) -> bool {
    matches!(
        msg,
        ClientMsg::MuteParticipant { .. }
            | ClientMsg::UnmuteParticipant { .. }
            | ClientMsg::MuteAll
            | ClientMsg::UnmuteAll
            | ClientMsg::StopCamera { .. }
            | ClientMsg::Remove { .. }
            | ClientMsg::Lock { .. }
            | ClientMsg::SelfUnmute { .. }
            | ClientMsg::NameSecretary { .. }
            | ClientMsg::GrantFloor { .. }
            | ClientMsg::Extend { .. }
            | ClientMsg::EndMeeting
            | ClientMsg::RollCall { .. }
            | ClientMsg::LowerHand {
                participant: Some(_)
            }
    )
}

/// Who acts with the chair's powers: a participant in the meeting, or an admin of the
/// office that chairs it, from the admin page (when the chair's link is down).
pub(crate) struct Actor {
    pub(crate) room: String,
    pub(crate) meeting_id: Option<i64>,
    /// The acting participant; `None` for an admin.
    pub(crate) participant: Option<String>,
    /// The chair role itself (it alone names a secretary), or an admin.
    pub(crate) chair_role: bool,
    /// As the audit log names it.
    pub(crate) who: AuditActor,
}

impl Actor {
    pub(crate) fn of(j: &Joined, peer: &str) -> Self {
        Self {
            room: j.meeting.clone(),
            meeting_id: j.meeting_id,
            participant: Some(j.id.to_string()),
            chair_role: j.role == MeetingRole::Chair,
            who: AuditActor {
                person_id: j.holder.person_id,
                name: if j.site.is_empty() {
                    j.name.clone()
                } else {
                    format!("{} ({})", j.name, j.site)
                },
                // The address as the API's entries give it: without the port.
                client: Some(
                    peer.parse::<std::net::SocketAddr>()
                        .map_or_else(|_| peer.to_owned(), |a| a.ip().to_string()),
                ),
            },
        }
    }
}

/// Record in the audit log that `a` did `action` in its meeting.
async fn audit(state: &AppState, a: &Actor, action: AuditAction, detail: serde_json::Value) {
    let entry = NewAuditEntry {
        actor: a.who.clone(),
        action,
        target_id: a
            .meeting_id
            .map_or_else(|| a.room.clone(), |id| id.to_string()),
        detail,
    };
    crate::api::audit::write(&state.store, &entry).await;
}

/// A present participant's name and site for the log, or an error to the chair.
fn present(
    state: &AppState,
    a: &Actor,
    participant: &str,
    reply: Reply<'_>,
) -> Option<serde_json::Value> {
    let who = state
        .registry
        .members(&a.room)
        .into_iter()
        .find(|m| m.id == participant);
    match who {
        Some(m) => Some(json!({"participant": m.id, "name": m.name, "site": m.site})),
        None => {
            reply(
                ErrorCode::BadMessage,
                format!("no participant {} here", clip(participant)),
            );
            None
        }
    }
}

/// One of the chair's actions; the caller checked [`may_chair`].
pub(crate) async fn act(state: &Arc<AppState>, a: &Actor, msg: ClientMsg, reply: Reply<'_>) {
    let kind = serde_json::to_value(&msg)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_default();
    crate::metrics::Metrics::inc(&state.metrics.chair_actions, "action", &kind);
    act_on(state, a, msg, reply).await;
    persist(state, &a.room).await;
}

async fn act_on(state: &Arc<AppState>, a: &Actor, msg: ClientMsg, reply: Reply<'_>) {
    let room = a.room.as_str();
    let me = a.participant.clone().unwrap_or_else(|| "admin".to_owned());
    match msg {
        ClientMsg::MuteParticipant { participant } => {
            let Some(who) = present(state, a, &participant, reply) else {
                return;
            };
            let fx = state
                .registry
                .control(room, |c, _| c.mute(&participant, true));
            apply(state, room, fx).await;
            // The page that follows the request mutes its own track too (no uplink spent).
            state
                .registry
                .send_to(room, &participant, ServerMsg::MuteRequest { by: me });
            audit(
                state,
                a,
                AuditAction::MeetingMute,
                json!({"muted": true, "who": who}),
            )
            .await;
        }
        ClientMsg::UnmuteParticipant { participant } => {
            let Some(who) = present(state, a, &participant, reply) else {
                return;
            };
            let fx = state
                .registry
                .control(room, |c, _| c.mute(&participant, false));
            apply(state, room, fx).await;
            audit(
                state,
                a,
                AuditAction::MeetingMute,
                json!({"muted": false, "who": who}),
            )
            .await;
        }
        ClientMsg::MuteAll => {
            // Spared: the chairs (the chair role, the secretary) and the floor holder.
            let chairs = state.registry.chairs(room);
            let fx = state.registry.control(room, |c, present| {
                let ids: Vec<String> = present.iter().map(|p| p.0.clone()).collect();
                c.mute_all(&ids, &chairs)
            });
            let n = fx.holds.len();
            apply(state, room, fx).await;
            info!(meeting = %room, muted = n, "everyone muted by the chair");
            audit(
                state,
                a,
                AuditAction::MeetingMute,
                json!({"all": true, "muted": true, "sites": n}),
            )
            .await;
        }
        ClientMsg::UnmuteAll => {
            let fx = state.registry.control(room, |c, _| c.unmute_all());
            let n = fx.holds.len();
            apply(state, room, fx).await;
            audit(
                state,
                a,
                AuditAction::MeetingMute,
                json!({"all": true, "muted": false, "sites": n}),
            )
            .await;
        }
        ClientMsg::StopCamera { participant, stop } => {
            let Some(who) = present(state, a, &participant, reply) else {
                return;
            };
            let fx = state
                .registry
                .control(room, |c, _| c.stop_camera(&participant, stop));
            apply(state, room, fx).await;
            audit(
                state,
                a,
                AuditAction::MeetingCamera,
                json!({"stopped": stop, "who": who}),
            )
            .await;
        }
        ClientMsg::Remove {
            participant,
            reason,
        } => {
            if a.participant.as_deref() == Some(participant.as_str()) {
                reply(
                    ErrorCode::BadMessage,
                    "the chair cannot remove itself; leave instead".into(),
                );
                return;
            }
            let reason: String = reason.trim().chars().take(MAX_REASON_CHARS).collect();
            let Some(who) = present(state, a, &participant, reply) else {
                return;
            };
            let Some(holder) = state.registry.holder_of(room, &participant) else {
                return;
            };
            if let Some(meeting_id) = a.meeting_id {
                let removal = NewRemoval {
                    meeting_id,
                    site_id: holder.site_id,
                    person_id: holder.person_id,
                    endpoint_id: holder.endpoint_id,
                    jti: holder.jti.clone(),
                    reason: reason.clone(),
                    by: a.who.name.clone(),
                };
                if let Err(e) = state.store.record_removal(&removal, Instant::now()).await {
                    // Not kept: the link could come back. Say so rather than pretend.
                    warn!(meeting = %room, "removal not recorded: {e}");
                    reply(ErrorCode::Internal, format!("cannot remove now: {e}"));
                    return;
                }
            }
            let why = if reason.is_empty() {
                "the chair removed you from this meeting".to_owned()
            } else {
                format!("the chair removed you from this meeting: {reason}")
            };
            state
                .registry
                .end_one(room, &participant, ErrorCode::Removed, &why);
            info!(meeting = %room, %participant, "removed by the chair");
            audit(
                state,
                a,
                AuditAction::MeetingRemove,
                json!({"who": who, "reason": reason}),
            )
            .await;
        }
        ClientMsg::Lock { locked } => {
            let fx = state.registry.control(room, |c, _| c.set_locked(locked));
            if !fx.is_empty() {
                info!(meeting = %room, locked, "meeting lock changed by the chair");
                audit(
                    state,
                    a,
                    AuditAction::MeetingLock,
                    json!({"locked": locked}),
                )
                .await;
            }
        }
        ClientMsg::SelfUnmute { allowed } => {
            let fx = state
                .registry
                .control(room, |c, _| c.set_self_unmute(allowed));
            if !fx.is_empty() {
                audit(
                    state,
                    a,
                    AuditAction::MeetingLock,
                    json!({"self_unmute": allowed}),
                )
                .await;
            }
        }
        ClientMsg::NameSecretary { participant } => {
            // Only the chair itself names a secretary: a secretary cannot name another.
            if !a.chair_role {
                reply(
                    ErrorCode::Forbidden,
                    "only the chair names a secretary".into(),
                );
                return;
            }
            let (holder, who) = match participant.as_deref() {
                None => (None, serde_json::Value::Null),
                Some(p) => {
                    let Some(who) = present(state, a, p, reply) else {
                        return;
                    };
                    match state
                        .registry
                        .holder_of(room, p)
                        .filter(|h| h.is_credential())
                    {
                        Some(h) => (Some(h), who),
                        None => {
                            reply(
                                ErrorCode::BadMessage,
                                "a secretary needs a join link or a device key of this meeting"
                                    .into(),
                            );
                            return;
                        }
                    }
                }
            };
            let shown = participant.clone();
            let fx = state
                .registry
                .control(room, |c, _| c.name_secretary(holder, shown));
            if !fx.is_empty() {
                audit(state, a, AuditAction::MeetingSecretary, json!({"who": who})).await;
            }
        }
        ClientMsg::GrantFloor { participant } => {
            let who = match participant.as_deref() {
                None => serde_json::Value::Null,
                Some(p) => match present(state, a, p, reply) {
                    Some(w) => w,
                    None => return,
                },
            };
            let fx = state.registry.control(room, |c, _| {
                c.grant_floor(participant.clone(), Instant::now())
            });
            if !fx.is_empty() {
                info!(meeting = %room, ?participant, "floor given");
                let chapter = who.get("name").and_then(|n| n.as_str()).map(|n| {
                    let site = who.get("site").and_then(|s| s.as_str()).unwrap_or_default();
                    if site.is_empty() {
                        n.to_owned()
                    } else {
                        format!("{n} — {site}")
                    }
                });
                let holder = participant
                    .as_deref()
                    .and_then(crate::session::parse_participant);
                state.recorders.note_floor(room, holder, chapter);
                apply(state, room, fx).await;
                audit(state, a, AuditAction::MeetingFloor, json!({"who": who})).await;
            }
        }
        ClientMsg::LowerHand {
            participant: Some(p),
        } => {
            let fx = state.registry.control(room, |c, _| c.lower_hand(&p));
            apply(state, room, fx).await;
        }
        ClientMsg::RollCall { open: true } => {
            state
                .registry
                .control(room, |c, _| c.open_roll_call(Instant::now()));
            info!(meeting = %room, "roll call opened");
            audit(
                state,
                a,
                AuditAction::MeetingRollCall,
                json!({"open": true}),
            )
            .await;
        }
        ClientMsg::RollCall { open: false } => close_roll_call(state, a, reply).await,
        ClientMsg::Extend { minutes } => extend(state, a, minutes, reply).await,
        ClientMsg::EndMeeting => {
            if let Some(id) = a.meeting_id
                && let Err(e) = state.store.end_meeting(id, Instant::now()).await
            {
                reply(ErrorCode::Internal, format!("cannot end the meeting: {e}"));
                return;
            }
            info!(meeting = %room, "meeting ended by the chair");
            crate::record::stop(state, room, "ended");
            audit(state, a, AuditAction::MeetingEnd, json!({"ended": true})).await;
            state.registry.broadcast(
                room,
                None,
                ServerMsg::MeetingEnded {
                    reason: "ended_by_chair".into(),
                },
            );
        }
        _ => {}
    }
}

/// Close the open roll call: each invited site is present (someone of it confirmed),
/// connected (in the meeting, nobody confirmed) or absent; kept in the store for the
/// attendance export, and counted for everyone.
async fn close_roll_call(state: &Arc<AppState>, a: &Actor, reply: Reply<'_>) {
    let room = a.room.as_str();
    let mut closed = None;
    state.registry.control(room, |c, _| {
        closed = c.close_roll_call();
        Effects::default()
    });
    let Some(call) = closed else {
        reply(ErrorCode::BadMessage, "no roll call is open".into());
        return;
    };
    let connected: std::collections::HashSet<i64> = state
        .registry
        .holders(room)
        .into_iter()
        .filter_map(|(_, h)| h.site_id)
        .collect();
    let mut sites: Vec<i64> = Vec::new();
    if let Some(id) = a.meeting_id {
        match state.store.meeting(id).await {
            Ok(m) => {
                sites.push(m.chair_site_id);
                sites.extend(m.roster.iter().map(|i| i.site_id));
            }
            Err(e) => warn!(meeting = %room, "roster not read for the roll call: {e}"),
        }
    }
    sites.sort_unstable();
    sites.dedup();
    let entries: Vec<RollCallEntry> = sites
        .iter()
        .map(|&site| {
            let confirmed = call
                .confirmed
                .iter()
                .filter(|c| c.1 == Some(site))
                .map(|c| c.2)
                .min();
            let status = match (confirmed, connected.contains(&site)) {
                (Some(_), _) => RollCallStatus::Present,
                (None, true) => RollCallStatus::Connected,
                (None, false) => RollCallStatus::Absent,
            };
            RollCallEntry {
                site_id: site,
                status,
                confirmed_at: confirmed,
            }
        })
        .collect();
    let count = |s: RollCallStatus| {
        u32::try_from(entries.iter().filter(|e| e.status == s).count()).unwrap_or(u32::MAX)
    };
    // An ad-hoc room has no roster: the confirmations are all there is to count.
    let result = if sites.is_empty() {
        RollCallCount {
            present: u32::try_from(call.confirmed.len()).unwrap_or(u32::MAX),
            connected: 0,
            absent: 0,
        }
    } else {
        RollCallCount {
            present: count(RollCallStatus::Present),
            connected: count(RollCallStatus::Connected),
            absent: count(RollCallStatus::Absent),
        }
    };
    if let Some(id) = a.meeting_id
        && !entries.is_empty()
    {
        let record = RollCall {
            called_at: call.started,
            sites: entries,
        };
        if let Err(e) = state.store.record_roll_call(id, &record).await {
            warn!(meeting = %room, "roll call not kept: {e}");
            reply(
                ErrorCode::Internal,
                format!("the roll call's result was not kept: {e}"),
            );
        }
    }
    info!(meeting = %room, ?result, "roll call closed");
    state.registry.broadcast(
        room,
        None,
        ServerMsg::RollCall {
            open: false,
            started_at: call.started.rfc3339(),
            result: Some(result),
        },
    );
    audit(state, a,
        AuditAction::MeetingRollCall,
        json!({"open": false, "present": result.present, "connected": result.connected, "absent": result.absent}),
    )
    .await;
}

async fn extend(state: &Arc<AppState>, a: &Actor, minutes: u32, reply: Reply<'_>) {
    let Some(id) = a.meeting_id else {
        reply(
            ErrorCode::Forbidden,
            "ad-hoc meetings have no end to extend".into(),
        );
        return;
    };
    if !(1..=240).contains(&minutes) {
        reply(ErrorCode::BadMessage, "extend by 1-240 minutes".into());
        return;
    }
    let now = Instant::now();
    let result = async {
        let m = state.store.meeting(id).await?;
        let end = m
            .times()
            .current(&state.schedule, now)
            .map_or(now, |o| o.ends_at());
        state
            .store
            .extend_meeting(id, end.max(now).plus(i64::from(minutes) * 60))
            .await?;
        state.store.meeting(id).await
    }
    .await;
    match result {
        Ok(m) => {
            info!(meeting = id, minutes, "meeting extended by the chair");
            audit(
                state,
                a,
                AuditAction::MeetingEnd,
                json!({"extended_minutes": minutes}),
            )
            .await;
            if let Some(st) = meeting_state(&m, &state.schedule, now) {
                state.registry.broadcast(&a.room, None, st);
            }
        }
        Err(e) => reply(ErrorCode::Internal, format!("cannot extend: {e}")),
    }
}

/// What any participant asks of the chair's controls: its hand, its own unmute. False
/// when it was refused (an unmute the chair does not allow).
pub(crate) async fn own(state: &AppState, j: &Joined, msg: &ClientMsg, reply: Reply<'_>) -> bool {
    let room = j.meeting.as_str();
    let me = j.id.to_string();
    match msg {
        ClientMsg::RaiseHand => {
            if j.role == MeetingRole::Viewer {
                reply(
                    ErrorCode::Forbidden,
                    "a viewer link cannot ask for the floor".into(),
                );
                return false;
            }
            let fx = state.registry.control(room, |c, _| c.raise_hand(&me));
            if !fx.is_empty() {
                info!(meeting = %room, participant = %me, "hand raised");
            }
        }
        ClientMsg::Present => {
            let mut counted = false;
            state.registry.control(room, |c, _| {
                counted = c.confirm(&me, j.holder.site_id, Instant::now());
                Effects::default()
            });
            if counted {
                // The chairs see it arrive; the site gets it as its receipt.
                let msg = ServerMsg::Present {
                    participant: me.clone(),
                };
                state.registry.tell_chairs(room, &msg);
                if !may_chair(state, j) {
                    state.registry.send_to(room, &me, msg);
                }
            } else if !state.registry.read_control(room, |c| c.roll_call_open()) {
                reply(ErrorCode::BadMessage, "no roll call is open".into());
                return false;
            }
        }
        ClientMsg::LowerHand { participant: None } => {
            state.registry.control(room, |c, _| c.lower_hand(&me));
        }
        ClientMsg::Mute { audio: false, .. } => {
            let mut refused = false;
            let fx = state.registry.control(room, |c, _| {
                c.self_unmute(&me)
                    .unwrap_or_else(|ControlError::HeldByChair| {
                        refused = true;
                        Effects::default()
                    })
            });
            if refused {
                reply(ErrorCode::Forbidden, ControlError::HeldByChair.to_string());
                return false;
            }
            apply(state, room, fx).await;
        }
        _ => {}
    }
    true
}
