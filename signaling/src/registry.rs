//! Who is in which meeting right now, and the fan-out of roster events to their sockets.
//!
//! Signaling state only (names, sites, mute flags); media state lives in the SFU. Not on
//! the packet path, so a mutex is fine here.

use std::collections::HashMap;
use std::sync::Mutex;

use cauhop_protocol::{ErrorCode, ParticipantInfo, ServerMsg};

use crate::outbox::Outbox;

/// What a connection was admitted as: what an administrator's view of one district and
/// the revocation of a credential match on. All `None` in ad-hoc rooms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    pub site_id: Option<i64>,
    pub person_id: Option<i64>,
    pub endpoint_id: Option<i64>,
    /// The join link's id, when it came in by a link.
    pub jti: Option<String>,
}

struct Member {
    info: ParticipantInfo,
    holder: Holder,
    /// The connection's outgoing queue; `Outbox::end` ends its session even if the
    /// client is not reading.
    out: Outbox,
}

#[derive(Default)]
pub struct Registry {
    meetings: Mutex<HashMap<String, Vec<Member>>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Member>>> {
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
        out: Outbox,
    ) -> Vec<ParticipantInfo> {
        let mut m = self.lock();
        let members = m.entry(meeting.to_owned()).or_default();
        let present: Vec<ParticipantInfo> = members.iter().map(|x| x.info.clone()).collect();
        for x in members.iter() {
            x.out.send(ServerMsg::ParticipantJoined {
                participant: info.clone(),
            });
        }
        members.push(Member { info, holder, out });
        present
    }

    pub fn leave(&self, meeting: &str, participant: &str, reason: &str) {
        let mut m = self.lock();
        let Some(members) = m.get_mut(meeting) else {
            return;
        };
        members.retain(|x| x.info.id != participant);
        for x in members.iter() {
            x.out.send(ServerMsg::ParticipantLeft {
                participant: participant.to_owned(),
                reason: reason.to_owned(),
            });
        }
        if members.is_empty() {
            m.remove(meeting);
        }
    }

    pub fn set_mute(&self, meeting: &str, participant: &str, audio: bool, video: bool) {
        let mut m = self.lock();
        if let Some(x) = m
            .get_mut(meeting)
            .and_then(|ms| ms.iter_mut().find(|x| x.info.id == participant))
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
        for (room, members) in m.iter() {
            if meeting.is_some_and(|want| want != room) {
                continue;
            }
            for x in members.iter().filter(|x| whom(&x.holder)) {
                x.out.send(ServerMsg::fatal(code, why.to_owned()));
                x.out.end();
                n += 1;
            }
        }
        n
    }

    /// Everyone's admission in `meeting`, with their participant ids.
    pub fn holders(&self, meeting: &str) -> Vec<(String, Holder)> {
        self.lock()
            .get(meeting)
            .map(|ms| {
                ms.iter()
                    .map(|x| (x.info.id.clone(), x.holder.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Send to everyone in the meeting except `except`.
    pub fn broadcast(&self, meeting: &str, except: Option<&str>, msg: ServerMsg) {
        let m = self.lock();
        if let Some(members) = m.get(meeting) {
            for x in members
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
            .and_then(|ms| ms.iter().find(|x| x.info.id == participant))
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
                ms.iter()
                    .filter(|x| keep(&x.holder))
                    .map(|x| x.info.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many are in `meeting` now.
    pub fn count_in(&self, meeting: &str) -> usize {
        self.lock().get(meeting).map_or(0, Vec::len)
    }

    pub fn count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }
}
