//! Who is in which meeting right now, and the fan-out of roster events to their sockets.
//!
//! Signaling state only (names, sites, mute flags); media state lives in the SFU. Not on
//! the packet path, so a mutex is fine here.

use std::collections::HashMap;
use std::sync::Mutex;

use cauhop_protocol::{ErrorCode, ParticipantInfo, ServerMsg};

use crate::control::{Control, Effects, Opening};
use crate::outbox::Outbox;

/// What a connection was admitted as: what an administrator's view of one district and
/// the revocation of a credential match on. All `None` in ad-hoc rooms.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Holder {
    pub site_id: Option<i64>,
    pub person_id: Option<i64>,
    pub endpoint_id: Option<i64>,
    /// The join link's id, when it came in by a link.
    pub jti: Option<String>,
}

impl Holder {
    /// Whether this admission came with a credential at all (ad-hoc rooms: none).
    pub fn is_credential(&self) -> bool {
        self.site_id.is_some()
            || self.person_id.is_some()
            || self.endpoint_id.is_some()
            || self.jti.is_some()
    }

    /// The same join link, device key or named person.
    pub fn same_credential(&self, other: &Holder) -> bool {
        let same = |a: Option<i64>, b: Option<i64>| a.is_some() && a == b;
        (self.jti.is_some() && self.jti == other.jti)
            || same(self.endpoint_id, other.endpoint_id)
            || same(self.person_id, other.person_id)
    }

    /// [`Holder::same_credential`], or the same site (its kiosk after its browser).
    pub fn same_site_or_credential(&self, other: &Holder) -> bool {
        self.same_credential(other) || (self.site_id.is_some() && self.site_id == other.site_id)
    }
}

struct Member {
    info: ParticipantInfo,
    holder: Holder,
    /// Admitted with the chair role.
    chair: bool,
    /// The connection's outgoing queue; `Outbox::end` ends its session even if the
    /// client is not reading.
    out: Outbox,
}

/// One meeting's people and the chair's controls over them.
#[derive(Default)]
struct Meeting {
    members: Vec<Member>,
    control: Control,
}

#[derive(Default)]
pub struct Registry {
    meetings: Mutex<HashMap<String, Meeting>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Meeting>> {
        // A panic while holding the lock cannot leave the map half-written (every
        // operation is a single insert or retain), so a poisoned lock is still usable.
        self.meetings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add a participant; returns those already present, and tells them.
    pub fn join(
        &self,
        meeting: &str,
        info: ParticipantInfo,
        holder: Holder,
        chair: bool,
        out: Outbox,
    ) -> Vec<ParticipantInfo> {
        self.join_first(meeting, info, holder, chair, out, |_| None, None)
    }

    /// [`Registry::join`], with the newcomer's first message (its `welcome`, made from
    /// who is present) queued before anyone else can tell it anything: a client takes
    /// the first message for the answer to its `join`. A room not open yet opens with
    /// `opening` (nobody sees it without).
    #[allow(clippy::too_many_arguments)]
    pub fn join_first(
        &self,
        meeting: &str,
        info: ParticipantInfo,
        holder: Holder,
        chair: bool,
        out: Outbox,
        first: impl FnOnce(&[ParticipantInfo]) -> Option<ServerMsg>,
        opening: Option<Opening>,
    ) -> Vec<ParticipantInfo> {
        let mut m = self.lock();
        let members = &mut m
            .entry(meeting.to_owned())
            .or_insert_with(|| Meeting {
                members: Vec::new(),
                control: Control::opened(opening.unwrap_or_default()),
            })
            .members;
        let present: Vec<ParticipantInfo> = members.iter().map(|x| x.info.clone()).collect();
        if let Some(msg) = first(&present) {
            out.send(msg);
        }
        for x in members.iter() {
            x.out.send(ServerMsg::ParticipantJoined {
                participant: info.clone(),
            });
        }
        members.push(Member {
            info,
            holder,
            chair,
            out,
        });
        present
    }

    /// Take a participant out; returns what its leaving changed of the controls (told to
    /// the others already; the caller applies the floor to the media room).
    pub fn leave(&self, meeting: &str, participant: &str, reason: &str) -> Effects {
        let mut m = self.lock();
        let Some(mt) = m.get_mut(meeting) else {
            return Effects::default();
        };
        mt.members.retain(|x| x.info.id != participant);
        for x in mt.members.iter() {
            x.out.send(ServerMsg::ParticipantLeft {
                participant: participant.to_owned(),
                reason: reason.to_owned(),
            });
        }
        // Out of the queue and off the floor; the room's controls go with its last member.
        let fx = mt.control.left(participant);
        if mt.members.is_empty() {
            let closing = mt.control.unsaved();
            m.remove(meeting);
            return Effects {
                closing,
                ..Effects::default()
            };
        }
        for msg in &fx.tell {
            for x in &mt.members {
                x.out.send(msg.clone());
            }
        }
        fx
    }

    pub fn set_mute(&self, meeting: &str, participant: &str, audio: bool, video: bool) {
        let mut m = self.lock();
        if let Some(x) = m
            .get_mut(meeting)
            .and_then(|ms| ms.members.iter_mut().find(|x| x.info.id == participant))
        {
            x.info.audio_muted = audio;
            x.info.video_muted = video;
        }
        drop(m);
        self.broadcast(
            meeting,
            Some(participant),
            ServerMsg::Mute {
                participant: participant.to_owned(),
                audio,
                video,
            },
        );
    }

    /// End the sessions of everyone admitted as `whom` says, in `meeting` or (with
    /// `None`) in every meeting: each is told why (a final error, so the page does not
    /// rejoin by itself) and its session leaves the room at once. Returns how many.
    pub fn eject(
        &self,
        meeting: Option<&str>,
        whom: impl Fn(&Holder) -> bool,
        code: ErrorCode,
        why: &str,
    ) -> usize {
        let m = self.lock();
        let mut n = 0;
        for (room, mt) in m.iter() {
            if meeting.is_some_and(|want| want != room) {
                continue;
            }
            for x in mt.members.iter().filter(|x| whom(&x.holder)) {
                x.out.send(ServerMsg::fatal(code, why.to_owned()));
                x.out.end();
                n += 1;
            }
        }
        n
    }

    /// End one participant's session: it is told why (a final error) and leaves the
    /// room at once. False if it is not in the meeting.
    pub fn end_one(&self, meeting: &str, participant: &str, code: ErrorCode, why: &str) -> bool {
        let m = self.lock();
        let Some(x) = m
            .get(meeting)
            .and_then(|mt| mt.members.iter().find(|x| x.info.id == participant))
        else {
            return false;
        };
        x.out.send(ServerMsg::fatal(code, why.to_owned()));
        x.out.end();
        true
    }

    /// Everyone's admission in `meeting`, with their participant ids.
    pub fn holders(&self, meeting: &str) -> Vec<(String, Holder)> {
        self.lock()
            .get(meeting)
            .map(|ms| {
                ms.members
                    .iter()
                    .map(|x| (x.info.id.clone(), x.holder.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Send to everyone in the meeting except `except`.
    pub fn broadcast(&self, meeting: &str, except: Option<&str>, msg: ServerMsg) {
        let m = self.lock();
        if let Some(mt) = m.get(meeting) {
            for x in mt
                .members
                .iter()
                .filter(|x| Some(x.info.id.as_str()) != except)
            {
                x.out.send(msg.clone());
            }
        }
    }

    /// Send to one participant; false if they are not in the meeting.
    pub fn send_to(&self, meeting: &str, participant: &str, msg: ServerMsg) -> bool {
        let m = self.lock();
        m.get(meeting)
            .and_then(|ms| ms.members.iter().find(|x| x.info.id == participant))
            .is_some_and(|x| x.out.send(msg))
    }

    /// Who is in the meeting now.
    pub fn members(&self, meeting: &str) -> Vec<ParticipantInfo> {
        self.members_where(meeting, |_| true)
    }

    /// Who is in the meeting now, of those whose admission `keep` accepts.
    pub fn members_where(
        &self,
        meeting: &str,
        keep: impl Fn(&Holder) -> bool,
    ) -> Vec<ParticipantInfo> {
        self.lock()
            .get(meeting)
            .map(|ms| {
                ms.members
                    .iter()
                    .filter(|x| keep(&x.holder))
                    .map(|x| x.info.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many are in `meeting` now.
    /// The rooms of scheduled meetings open now, with their meeting's id.
    pub fn open_meetings(&self) -> Vec<(String, i64)> {
        self.lock()
            .keys()
            .filter_map(|room| Some((room.clone(), crate::admission::meeting_of_room(room)?)))
            .collect()
    }

    /// The sites with someone in `meeting` now.
    pub fn present_sites(&self, meeting: &str) -> std::collections::HashSet<i64> {
        self.lock()
            .get(meeting)
            .map(|mt| mt.members.iter().filter_map(|x| x.holder.site_id).collect())
            .unwrap_or_default()
    }

    /// Every participant whose microphone is off now, by itself or by the chair.
    pub fn muted(&self) -> std::collections::HashSet<String> {
        let m = self.lock();
        m.values()
            .flat_map(|mt| {
                mt.members
                    .iter()
                    .filter(|x| x.info.audio_muted || mt.control.held(&x.info.id).audio)
                    .map(|x| x.info.id.clone())
            })
            .collect()
    }

    /// Whether `meeting`'s room is open (someone is in it).
    pub fn is_open(&self, meeting: &str) -> bool {
        self.lock().contains_key(meeting)
    }

    pub fn count_in(&self, meeting: &str) -> usize {
        self.lock().get(meeting).map_or(0, |m| m.members.len())
    }

    pub fn count(&self) -> usize {
        self.lock().values().map(|m| m.members.len()).sum()
    }
}

impl Registry {
    /// Change `meeting`'s controls with `change`, which sees them and who is present
    /// (id, credential, chair role), and tell everyone what changed. Returns the effects
    /// for the caller to apply to the media room; empty when nobody is in the meeting.
    pub fn control(
        &self,
        meeting: &str,
        change: impl FnOnce(&mut Control, &[(String, Holder)]) -> Effects,
    ) -> Effects {
        let mut m = self.lock();
        let Some(mt) = m.get_mut(meeting) else {
            return Effects::default();
        };
        let present: Vec<(String, Holder)> = mt
            .members
            .iter()
            .map(|x| (x.info.id.clone(), x.holder.clone()))
            .collect();
        let mut fx = change(&mut mt.control, &present);
        // A `controls` message names the secretary as present now.
        let secretary = Self::secretary_in(mt);
        for msg in &mut fx.tell {
            if let ServerMsg::Controls { secretary: s, .. } = msg {
                *s = secretary.clone();
            }
        }
        for msg in &fx.tell {
            for x in &mt.members {
                x.out.send(msg.clone());
            }
        }
        fx
    }

    /// Read `meeting`'s controls (default ones when nobody is there).
    pub fn read_control<T>(&self, meeting: &str, read: impl FnOnce(&Control) -> T) -> T {
        let m = self.lock();
        match m.get(meeting) {
            Some(mt) => read(&mt.control),
            None => read(&Control::default()),
        }
    }

    /// The participant holding the secretary's credential now.
    fn secretary_in(mt: &Meeting) -> Option<String> {
        let s = mt.control.secretary()?;
        mt.members
            .iter()
            .find(|x| x.holder.same_credential(s))
            .map(|x| x.info.id.clone())
    }

    /// Whether `holder` is the meeting's secretary.
    pub fn is_secretary(&self, meeting: &str, holder: &Holder) -> bool {
        self.read_control(meeting, |c| {
            c.secretary().is_some_and(|s| s.same_credential(holder))
        })
    }

    /// The controls as a page joining now is told them.
    pub fn control_snapshot(&self, meeting: &str) -> Vec<ServerMsg> {
        let m = self.lock();
        match m.get(meeting) {
            Some(mt) => mt.control.snapshot(Self::secretary_in(mt)),
            None => Vec::new(),
        }
    }

    /// The credential participant `id` was admitted with.
    pub fn holder_of(&self, meeting: &str, id: &str) -> Option<Holder> {
        self.lock()
            .get(meeting)?
            .members
            .iter()
            .find(|x| x.info.id == id)
            .map(|x| x.holder.clone())
    }
}

impl Registry {
    /// Who has the chair's powers in `meeting` now: the chair role and the secretary.
    pub fn chairs(&self, meeting: &str) -> Vec<String> {
        let m = self.lock();
        let Some(mt) = m.get(meeting) else {
            return Vec::new();
        };
        let secretary = mt.control.secretary();
        mt.members
            .iter()
            .filter(|x| x.chair || secretary.is_some_and(|s| s.same_credential(&x.holder)))
            .map(|x| x.info.id.clone())
            .collect()
    }

    /// Send to those with the chair's powers in `meeting`: the chair role and the
    /// secretary.
    pub fn tell_chairs(&self, meeting: &str, msg: &ServerMsg) {
        let m = self.lock();
        let Some(mt) = m.get(meeting) else { return };
        let secretary = mt.control.secretary();
        for x in &mt.members {
            if x.chair || secretary.is_some_and(|s| s.same_credential(&x.holder)) {
                x.out.send(msg.clone());
            }
        }
    }
}

impl Registry {
    /// Meetings with anyone in them.
    pub fn meetings(&self) -> usize {
        self.lock().len()
    }

    /// Participants connected, by district (the sites tree bounds the labels).
    pub fn districts(&self) -> Vec<(String, usize)> {
        let mut by: std::collections::BTreeMap<String, usize> = Default::default();
        for mt in self.lock().values() {
            for x in &mt.members {
                *by.entry(x.info.district.clone()).or_default() += 1;
            }
        }
        by.into_iter().collect()
    }
}
