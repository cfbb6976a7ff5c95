//! The chair's controls of one meeting: the floor, the speaking queue, what the chair
//! holds of each participant (microphone, camera), the lock and the secretary.
//!
//! Plain state with the time passed in, changed under the registry's lock by the session
//! handlers. Every change returns its [`Effects`]: the messages everyone is told and the
//! holds the media room must enforce, which the caller applies after letting the lock go.
//! A participant here is its id as the protocol writes it (`p12`).

use std::collections::BTreeMap;

use cauhop_protocol::ServerMsg;
use cauhop_store::Instant;

use crate::registry::Holder;

/// What the chair stops of one participant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Held {
    pub audio: bool,
    pub video: bool,
}

/// What a change asks of the caller.
#[derive(Debug, Default, PartialEq)]
pub struct Effects {
    /// To everyone in the meeting.
    pub tell: Vec<ServerMsg>,
    /// Holds the media room must enforce now, per participant.
    pub holds: Vec<(String, Held)>,
    /// The floor changed: who holds it now, for the media room's slots.
    pub floor: Option<Option<String>>,
    /// The room closed (its last participant left) with controls not kept yet: the
    /// caller keeps them (the room's state is gone after this).
    pub closing: Option<Durable>,
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.tell.is_empty() && self.holds.is_empty() && self.floor.is_none()
    }
}

/// Why the controls refused a participant's own request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("the chair muted you; raise your hand to ask for the floor")]
    HeldByChair,
}

#[derive(Debug, Default)]
pub struct Control {
    floor: Option<(String, Instant)>,
    /// Seconds a floor turn may last (0: no limit), for the pages' timers.
    floor_limit_s: u32,
    hands: Vec<String>,
    held: BTreeMap<String, Held>,
    all_muted: bool,
    self_unmute: bool,
    locked: bool,
    /// The credential the chair named secretary; whoever holds it has the chair's powers.
    secretary: Option<Holder>,
    /// Credentials admitted before the lock (a site that dropped comes back in).
    admitted: Vec<Holder>,
    roll_call: Option<RollCallState>,
    /// Who is present, by the credential each came in with.
    holders: std::collections::HashMap<String, Holder>,
    /// What the chair holds, by credential: a muted site whose link drops comes back
    /// muted, not open to the whole meeting.
    held_creds: Vec<(Holder, Held)>,
    /// The floor holder's credential while its link is down: the floor comes back to it.
    floor_cred: Option<Holder>,
    /// What was last kept in the store (`unsaved`).
    saved: Option<Durable>,
    /// The last write of `saved` failed: the next `unsaved` writes again.
    unkept: bool,
}

/// What a meeting's room opens with (read from the store before its first participant
/// is in, so nobody joins a room without them): the meeting's settings, and what was
/// kept of its controls when the bridge restarted during this session of the meeting.
#[derive(Debug, Clone, Default)]
pub struct Opening {
    /// Sites may unmute themselves; seconds a floor turn lasts.
    pub settings: Option<(bool, u32)>,
    pub kept: Option<Durable>,
}

/// What of a meeting's controls outlives a restart of the bridge (kept in the store for
/// the meeting's session): the lock and who was in, mute-all, each site's holds, the
/// secretary and the floor, all by credential (participant ids are new after a restart).
/// The queue and an open roll call are not kept: sites raise their hands again.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Durable {
    pub locked: bool,
    pub all_muted: bool,
    pub secretary: Option<Holder>,
    pub held: Vec<(Holder, Held)>,
    pub admitted: Vec<Holder>,
    pub floor: Option<Holder>,
}

/// An open roll call: when it opened, and who confirmed (participant, its site, when).
#[derive(Debug, Clone, PartialEq)]
pub struct RollCallState {
    pub started: Instant,
    pub confirmed: Vec<(String, Option<i64>, Instant)>,
}

impl Control {
    /// What to keep of the controls now.
    pub fn durable(&self) -> Durable {
        Durable {
            locked: self.locked,
            all_muted: self.all_muted,
            secretary: self.secretary.clone(),
            held: self.held_creds.clone(),
            admitted: self.admitted.clone(),
            floor: self
                .floor
                .as_ref()
                .and_then(|(p, _)| self.holders.get(p).cloned())
                .or_else(|| self.floor_cred.clone()),
        }
    }

    /// What to keep now, when it differs from what was kept last (and is then taken as
    /// kept).
    pub fn unsaved(&mut self) -> Option<Durable> {
        let now = self.durable();
        let same = self.saved.as_ref() == Some(&now)
            || (self.saved.is_none() && now == Durable::default());
        if same && !self.unkept {
            return None;
        }
        self.unkept = false;
        self.saved = Some(now.clone());
        Some(now)
    }

    /// What [`Control::unsaved`] gave last was not written: give it again next time.
    pub fn unkept(&mut self) {
        self.unkept = true;
    }

    /// The controls of a room opening with `o`. Nobody is present yet, so what the
    /// settings change is told to nobody: each joiner's snapshot carries it.
    pub fn opened(o: Opening) -> Self {
        let mut c = Self::default();
        if let Some((self_unmute, floor_limit_s)) = o.settings {
            let _ = c.configure(self_unmute, floor_limit_s);
        }
        if let Some(kept) = o.kept {
            c.restore(kept);
        }
        c
    }

    /// Take up what was kept (a room opening again after a restart of the bridge): sites
    /// get their holds back, and the floor holder its floor, as they rejoin.
    pub fn restore(&mut self, d: Durable) {
        self.locked = d.locked;
        self.all_muted = d.all_muted;
        self.secretary = d.secretary;
        self.held_creds = d.held;
        self.admitted = d.admitted;
        self.floor_cred = d.floor;
        self.saved = Some(self.durable());
    }

    /// The state a joining page is told, after `welcome`: only what differs from a
    /// fresh meeting (a page starts from the defaults), so a commune on 3G joining a quiet
    /// room is sent nothing more.
    pub fn snapshot(&self, secretary_now: Option<String>) -> Vec<ServerMsg> {
        let mut v = Vec::new();
        if self.locked || self.self_unmute || self.all_muted || secretary_now.is_some() {
            v.push(self.controls_msg(secretary_now));
        }
        if self.floor.is_some() {
            v.push(self.floor_msg());
        }
        if !self.hands.is_empty() {
            v.push(self.hands_msg());
        }
        if !self.held.is_empty() {
            v.push(self.held_all_msg());
        }
        if let Some(r) = &self.roll_call {
            v.push(ServerMsg::RollCall {
                open: true,
                started_at: r.started.rfc3339(),
                result: None,
            });
        }
        v
    }

    /// Open a roll call (a new one if one is open: its confirmations start over).
    pub fn open_roll_call(&mut self, now: Instant) -> Effects {
        self.roll_call = Some(RollCallState {
            started: now,
            confirmed: Vec::new(),
        });
        Effects {
            tell: vec![ServerMsg::RollCall {
                open: true,
                started_at: now.rfc3339(),
                result: None,
            }],
            ..Effects::default()
        }
    }

    /// `participant` of `site` confirms: true the first time, false when it had, or when
    /// no roll call is open.
    pub fn confirm(&mut self, participant: &str, site: Option<i64>, now: Instant) -> bool {
        let Some(r) = self.roll_call.as_mut() else {
            return false;
        };
        if r.confirmed.iter().any(|c| c.0 == participant) {
            return false;
        }
        r.confirmed.push((participant.to_owned(), site, now));
        true
    }

    /// Close the open roll call; the caller counts and keeps its result.
    pub fn close_roll_call(&mut self) -> Option<RollCallState> {
        self.roll_call.take()
    }

    pub fn roll_call_open(&self) -> bool {
        self.roll_call.is_some()
    }

    pub fn floor_holder(&self) -> Option<&str> {
        self.floor.as_ref().map(|f| f.0.as_str())
    }

    pub fn held(&self, participant: &str) -> Held {
        self.held.get(participant).copied().unwrap_or_default()
    }

    pub fn locked(&self) -> bool {
        self.locked
    }

    pub fn secretary(&self) -> Option<&Holder> {
        self.secretary.as_ref()
    }

    /// Whether a join by `holder` may enter: always unless locked; when locked, only a
    /// credential already admitted before.
    pub fn may_enter(&self, holder: &Holder) -> bool {
        !self.locked
            || self
                .admitted
                .iter()
                .any(|h| h.same_site_or_credential(holder))
    }

    /// A participant entered. It is held when everyone is muted (`chair`: not).
    pub fn joined(
        &mut self,
        participant: &str,
        holder: &Holder,
        chair: bool,
        now: Instant,
    ) -> Effects {
        if !self.admitted.iter().any(|h| h == holder) && holder.is_credential() {
            self.admitted.push(holder.clone());
        }
        self.holders.insert(participant.to_owned(), holder.clone());
        let mut fx = Effects::default();
        let kept = self
            .held_creds
            .iter()
            .find(|(h, _)| h.same_credential(holder))
            .map(|(_, held)| *held);
        if let Some(kept) = kept {
            self.set_held(&mut fx, participant, |h| *h = kept);
        }
        // The floor holder whose link dropped (or the bridge restarted) has it back.
        let floor_back = self.floor.is_none()
            && self
                .floor_cred
                .as_ref()
                .is_some_and(|f| f.same_credential(holder));
        if floor_back {
            self.floor_cred = None;
            let back = self.grant_floor(Some(participant.to_owned()), now);
            fx.tell.extend(back.tell);
            fx.holds.extend(back.holds);
            fx.floor = back.floor;
        } else if self.all_muted && !chair {
            self.set_held(&mut fx, participant, |h| h.audio = true);
        }
        fx
    }

    /// A participant left (or its link failed): out of the queue, off the floor.
    pub fn left(&mut self, participant: &str) -> Effects {
        let mut fx = Effects::default();
        self.held.remove(participant);
        if self.hands.iter().any(|p| p == participant) {
            self.hands.retain(|p| p != participant);
            fx.tell.push(self.hands_msg());
        }
        if self.floor_holder() == Some(participant) {
            self.floor_cred = self
                .holders
                .get(participant)
                .filter(|h| h.is_credential())
                .cloned();
            self.floor = None;
            fx.floor = Some(None);
            fx.tell.push(self.floor_msg());
        }
        self.holders.remove(participant);
        fx
    }

    pub fn grant_floor(&mut self, participant: Option<String>, now: Instant) -> Effects {
        let mut fx = Effects::default();
        // The chair's choice: the floor no longer waits for anyone's return.
        self.floor_cred = None;
        if self.floor_holder() == participant.as_deref() {
            return fx;
        }
        self.floor = participant.clone().map(|p| (p, now));
        fx.floor = Some(participant.clone());
        fx.tell.push(self.floor_msg());
        if let Some(p) = participant {
            if self.hands.contains(&p) {
                self.hands.retain(|h| *h != p);
                fx.tell.push(self.hands_msg());
            }
            // Whoever has the floor is heard: that is what the floor is.
            self.set_held(&mut fx, &p, |h| h.audio = false);
        }
        fx
    }

    /// The meeting's settings: whether muted sites may unmute themselves, the floor's
    /// turn limit. Applied when the room opens and when an admin changes them.
    pub fn configure(&mut self, self_unmute: bool, floor_limit_s: u32) -> Effects {
        let mut fx = self.set_self_unmute(self_unmute);
        if self.floor_limit_s != floor_limit_s {
            self.floor_limit_s = floor_limit_s;
            if self.floor.is_some() {
                fx.tell.push(self.floor_msg());
            }
        }
        fx
    }

    pub fn raise_hand(&mut self, participant: &str) -> Effects {
        let mut fx = Effects::default();
        if self.floor_holder() == Some(participant) || self.hands.iter().any(|p| p == participant) {
            return fx;
        }
        self.hands.push(participant.to_owned());
        fx.tell.push(self.hands_msg());
        fx
    }

    pub fn lower_hand(&mut self, participant: &str) -> Effects {
        let mut fx = Effects::default();
        if self.hands.iter().any(|p| p == participant) {
            self.hands.retain(|p| p != participant);
            fx.tell.push(self.hands_msg());
        }
        fx
    }

    /// The chair mutes (`true`) or unmutes one participant's microphone.
    pub fn mute(&mut self, participant: &str, muted: bool) -> Effects {
        let mut fx = Effects::default();
        self.set_held(&mut fx, participant, |h| h.audio = muted);
        fx
    }

    /// The chair stops (`true`) or allows one participant's camera.
    pub fn stop_camera(&mut self, participant: &str, stop: bool) -> Effects {
        let mut fx = Effects::default();
        self.set_held(&mut fx, participant, |h| h.video = stop);
        fx
    }

    /// Everyone in `present` but the floor holder and `chairs` is muted, and so is every
    /// site that joins until [`Control::unmute_all`].
    pub fn mute_all(&mut self, present: &[String], chairs: &[String]) -> Effects {
        let mut fx = Effects::default();
        if !self.all_muted {
            self.all_muted = true;
            fx.tell.push(self.controls_msg(None));
        }
        for p in present {
            if chairs.contains(p) || self.floor_holder() == Some(p.as_str()) {
                continue;
            }
            self.set_held(&mut fx, p, |h| h.audio = true);
        }
        self.one_message(fx)
    }

    /// Many holds changed at once: everyone is told the whole list in one message.
    fn one_message(&self, mut fx: Effects) -> Effects {
        if fx.holds.len() > 1 {
            fx.tell.retain(|m| !matches!(m, ServerMsg::Held { .. }));
            fx.tell.push(self.held_all_msg());
        }
        fx
    }

    fn held_all_msg(&self) -> ServerMsg {
        let list = |f: fn(&Held) -> bool| {
            self.held
                .iter()
                .filter(|(_, h)| f(h))
                .map(|(p, _)| p.clone())
                .collect()
        };
        ServerMsg::HeldAll {
            audio: list(|h| h.audio),
            video: list(|h| h.video),
            self_unmute: self.self_unmute,
        }
    }

    pub fn unmute_all(&mut self) -> Effects {
        let mut fx = Effects::default();
        if self.all_muted {
            self.all_muted = false;
            fx.tell.push(self.controls_msg(None));
        }
        let muted: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| h.audio)
            .map(|(p, _)| p.clone())
            .collect();
        for p in muted {
            self.set_held(&mut fx, &p, |h| h.audio = false);
        }
        // Those away come back unmuted too.
        for (_, h) in &mut self.held_creds {
            h.audio = false;
        }
        self.held_creds.retain(|(_, h)| *h != Held::default());
        self.one_message(fx)
    }

    /// The participant itself unmutes: allowed unless the chair holds its microphone
    /// and the meeting does not let sites lift that themselves.
    pub fn self_unmute(&mut self, participant: &str) -> Result<Effects, ControlError> {
        let mut fx = Effects::default();
        if !self.held(participant).audio {
            return Ok(fx);
        }
        if !self.self_unmute {
            return Err(ControlError::HeldByChair);
        }
        self.set_held(&mut fx, participant, |h| h.audio = false);
        Ok(fx)
    }

    pub fn set_locked(&mut self, locked: bool) -> Effects {
        self.set_flag(|c| &mut c.locked, locked)
    }

    pub fn set_self_unmute(&mut self, allowed: bool) -> Effects {
        let mut fx = self.set_flag(|c| &mut c.self_unmute, allowed);
        // Each held participant's page says whether it may unmute itself.
        if !fx.is_empty() && !self.held.is_empty() {
            fx.tell.push(self.held_all_msg());
        }
        fx
    }

    /// Name the credential `holder` secretary (`None`: nobody). `shown`: the participant
    /// holding it now, for the pages.
    pub fn name_secretary(&mut self, holder: Option<Holder>, shown: Option<String>) -> Effects {
        let mut fx = Effects::default();
        if self.secretary == holder {
            return fx;
        }
        self.secretary = holder;
        fx.tell.push(self.controls_msg(shown));
        fx
    }

    fn set_flag(&mut self, field: impl Fn(&mut Self) -> &mut bool, on: bool) -> Effects {
        let mut fx = Effects::default();
        if *field(self) != on {
            *field(self) = on;
            fx.tell.push(self.controls_msg(None));
        }
        fx
    }

    fn set_held(&mut self, fx: &mut Effects, participant: &str, change: impl Fn(&mut Held)) {
        let before = self.held(participant);
        let mut after = before;
        change(&mut after);
        if after == before {
            return;
        }
        if after == Held::default() {
            self.held.remove(participant);
        } else {
            self.held.insert(participant.to_owned(), after);
        }
        if let Some(holder) = self.holders.get(participant).filter(|h| h.is_credential()) {
            self.held_creds.retain(|(h, _)| !h.same_credential(holder));
            if after != Held::default() {
                self.held_creds.push((holder.clone(), after));
            }
        }
        fx.holds.push((participant.to_owned(), after));
        fx.tell.push(self.held_msg(participant, after));
    }

    fn held_msg(&self, participant: &str, h: Held) -> ServerMsg {
        ServerMsg::Held {
            participant: participant.to_owned(),
            audio: h.audio,
            video: h.video,
            self_unmute: self.self_unmute,
        }
    }

    fn floor_msg(&self) -> ServerMsg {
        ServerMsg::Floor {
            participant: self.floor.as_ref().map(|f| f.0.clone()),
            since: self.floor.as_ref().map(|f| f.1.rfc3339()),
            limit_s: self.floor_limit_s,
        }
    }

    fn hands_msg(&self) -> ServerMsg {
        ServerMsg::Hands {
            queue: self.hands.clone(),
        }
    }

    /// `secretary`: the participant holding the secretary's credential now; the caller
    /// fills it in (`Registry::tell_controls`) when it is `None` here.
    pub fn controls_msg(&self, secretary: Option<String>) -> ServerMsg {
        ServerMsg::Controls {
            locked: self.locked,
            self_unmute: self.self_unmute,
            all_muted: self.all_muted,
            secretary,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(id: i64) -> Holder {
        Holder {
            site_id: Some(id),
            jti: Some(format!("link-{id}")),
            ..Holder::default()
        }
    }

    fn held_of(fx: &Effects, p: &str) -> Option<Held> {
        fx.holds.iter().find(|h| h.0 == p).map(|h| h.1)
    }

    #[test]
    fn mute_all_spares_the_floor_and_the_chairs_and_holds_late_joiners() {
        let mut c = Control::default();
        let t = Instant(1_000);
        c.grant_floor(Some("p3".into()), t);
        let present: Vec<String> = (1..=5).map(|i| format!("p{i}")).collect();
        let fx = c.mute_all(&present, &["p1".into()]);
        let held: Vec<&str> = fx.holds.iter().map(|h| h.0.as_str()).collect();
        assert_eq!(held, ["p2", "p4", "p5"]);
        // One message for everyone, not one per site.
        let told: Vec<&ServerMsg> = fx
            .tell
            .iter()
            .filter(|m| matches!(m, ServerMsg::Held { .. } | ServerMsg::HeldAll { .. }))
            .collect();
        assert_eq!(
            told,
            [&ServerMsg::HeldAll {
                audio: vec!["p2".into(), "p4".into(), "p5".into()],
                video: vec![],
                self_unmute: false
            }]
        );
        assert!(fx.holds.iter().all(|h| h.1.audio && !h.1.video));
        // A site joining now is muted too; a chair is not.
        assert_eq!(
            held_of(&c.joined("p6", &site(6), false, Instant(0)), "p6"),
            Some(Held {
                audio: true,
                video: false
            })
        );
        assert!(c.joined("p7", &site(7), true, Instant(0)).is_empty());
        // Unmute all lifts every hold the chair set, and newcomers are free again.
        let fx = c.unmute_all();
        assert_eq!(fx.holds.len(), 4);
        assert!(fx.holds.iter().all(|h| h.1 == Held::default()));
        assert!(c.joined("p8", &site(8), false, Instant(0)).is_empty());
    }

    #[test]
    fn the_queue_is_in_order_and_the_floor_takes_its_holder_out_and_unmutes_it() {
        let mut c = Control::default();
        c.mute_all(&["p2".into(), "p3".into(), "p4".into()], &[]);
        c.raise_hand("p4");
        c.raise_hand("p2");
        c.raise_hand("p4"); // twice is once
        assert_eq!(c.hands, ["p4", "p2"]);
        let fx = c.grant_floor(Some("p2".into()), Instant(50));
        assert_eq!(fx.floor, Some(Some("p2".into())));
        assert_eq!(c.hands, ["p4"]);
        assert_eq!(
            held_of(&fx, "p2"),
            Some(Held::default()),
            "heard on the floor"
        );
        assert!(fx.tell.contains(&ServerMsg::Floor {
            participant: Some("p2".into()),
            since: Some(Instant(50).rfc3339()),
            limit_s: 0,
        }));
        // The floor holder cannot queue; leaving takes a hand down and the floor away.
        assert!(c.raise_hand("p2").is_empty());
        let fx = c.left("p4");
        assert!(fx.tell.contains(&ServerMsg::Hands { queue: vec![] }));
        let fx = c.left("p2");
        assert_eq!(fx.floor, Some(None));
        assert_eq!(c.floor_holder(), None);
    }

    #[test]
    fn a_muted_site_unmutes_itself_only_when_the_meeting_allows_it() {
        let mut c = Control::default();
        c.mute("p5", true);
        assert_eq!(c.self_unmute("p5"), Err(ControlError::HeldByChair));
        assert!(c.held("p5").audio);
        let fx = c.set_self_unmute(true);
        assert!(fx.tell.iter().any(|m| matches!(
            m,
            ServerMsg::HeldAll {
                self_unmute: true,
                ..
            }
        )));
        let fx = c.self_unmute("p5").expect("allowed now");
        assert_eq!(held_of(&fx, "p5"), Some(Held::default()));
        // Its own unmute when nothing is held changes nothing.
        assert!(c.self_unmute("p9").expect("free").is_empty());
    }

    #[test]
    fn a_locked_meeting_lets_back_only_sites_that_were_in() {
        let mut c = Control::default();
        c.joined("p1", &site(1), false, Instant(0));
        c.set_locked(true);
        assert!(c.may_enter(&site(1)), "a site that dropped comes back");
        assert!(!c.may_enter(&site(2)), "a new site does not");
        // Same site, another device (the kiosk after the browser).
        let kiosk = Holder {
            site_id: Some(1),
            endpoint_id: Some(40),
            ..Holder::default()
        };
        assert!(c.may_enter(&kiosk));
        c.set_locked(false);
        assert!(c.may_enter(&site(2)));
    }

    #[test]
    fn a_roll_call_counts_each_participant_once_and_closes_once() {
        let mut c = Control::default();
        assert!(!c.confirm("p1", Some(1), Instant(5)), "no roll call open");
        c.open_roll_call(Instant(10));
        assert!(c.confirm("p1", Some(1), Instant(11)));
        assert!(!c.confirm("p1", Some(1), Instant(12)), "twice is once");
        assert!(
            Control::default().snapshot(None).is_empty(),
            "a quiet room: nothing"
        );
        let told = c.snapshot(None);
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(matches!(told[0], ServerMsg::RollCall { open: true, .. }));
        let r = c.close_roll_call().expect("was open");
        assert_eq!(r.confirmed, vec![("p1".to_owned(), Some(1), Instant(11))]);
        assert!(c.close_roll_call().is_none());
    }

    #[test]
    fn a_muted_site_whose_link_drops_comes_back_muted() {
        let mut c = Control::default();
        c.joined("p2", &site(2), false, Instant(0));
        c.joined("p3", &site(3), false, Instant(0));
        c.mute("p2", true);
        c.left("p2");
        // The same link, a new participant id.
        let fx = c.joined("p9", &site(2), false, Instant(0));
        assert_eq!(
            held_of(&fx, "p9"),
            Some(Held {
                audio: true,
                video: false
            })
        );
        assert!(
            c.joined("p10", &site(3), false, Instant(0)).is_empty(),
            "another site is free"
        );
        // Unmuted while it was away: it comes back free.
        c.left("p9");
        c.unmute_all();
        assert!(c.joined("p11", &site(2), false, Instant(0)).is_empty());
    }

    #[test]
    fn what_is_kept_across_a_restart_comes_back_as_sites_rejoin() {
        let mut c = Control::default();
        c.joined("p1", &site(1), false, Instant(0));
        c.joined("p2", &site(2), false, Instant(0));
        c.joined("p3", &site(3), false, Instant(0));
        c.mute_all(&["p1".into(), "p2".into(), "p3".into()], &[]);
        c.grant_floor(Some("p3".into()), Instant(5));
        c.set_locked(true);
        let kept = c.durable();
        assert_eq!(kept.floor, Some(site(3)));
        // Through the store (JSON) and into a fresh room after the restart.
        let text = serde_json::to_string(&kept).expect("json");
        let mut after = Control::opened(Opening {
            settings: Some((false, 120)),
            kept: Some(serde_json::from_str(&text).expect("json")),
        });
        assert_eq!(
            after.unsaved(),
            None,
            "what was just read is not written back"
        );
        assert!(after.locked() && after.may_enter(&site(2)) && !after.may_enter(&site(9)));
        let fx = after.joined("p20", &site(2), false, Instant(100));
        assert_eq!(
            held_of(&fx, "p20"),
            Some(Held {
                audio: true,
                video: false
            }),
            "still muted"
        );
        let fx = after.joined("p21", &site(3), false, Instant(101));
        assert_eq!(
            fx.floor,
            Some(Some("p21".into())),
            "the floor comes back to its holder"
        );
        assert_ne!(
            held_of(&fx, "p21"),
            Some(Held {
                audio: true,
                video: false
            })
        );
    }

    #[test]
    fn a_write_that_failed_is_given_again_even_when_nothing_changed_since() {
        let mut c = Control::default();
        c.set_locked(true);
        let first = c.unsaved();
        assert!(first.as_ref().is_some_and(|d| d.locked));
        assert_eq!(c.unsaved(), None, "written: nothing more to write");
        c.unkept();
        assert_eq!(c.unsaved(), first, "the store refused it: again");
        assert_eq!(c.unsaved(), None);
        // Back to the defaults is a change to write too, once something was kept.
        c.set_locked(false);
        assert_eq!(c.unsaved(), Some(Durable::default()));
    }

    #[test]
    fn the_floor_waits_for_its_holder_s_return_until_the_chair_gives_it_away() {
        let mut c = Control::default();
        c.joined("p2", &site(2), false, Instant(0));
        c.grant_floor(Some("p2".into()), Instant(1));
        assert_eq!(c.left("p2").floor, Some(None));
        assert_eq!(
            c.joined("p5", &site(2), false, Instant(2)).floor,
            Some(Some("p5".into()))
        );
        c.left("p5");
        c.grant_floor(None, Instant(3));
        assert_eq!(c.joined("p6", &site(2), false, Instant(4)).floor, None);
    }

    #[test]
    fn the_camera_hold_is_apart_from_the_microphone_hold() {
        let mut c = Control::default();
        c.mute("p2", true);
        let fx = c.stop_camera("p2", true);
        assert_eq!(
            held_of(&fx, "p2"),
            Some(Held {
                audio: true,
                video: true
            })
        );
        let fx = c.grant_floor(Some("p2".into()), Instant(0));
        assert_eq!(
            held_of(&fx, "p2"),
            Some(Held {
                audio: false,
                video: true
            }),
            "the floor lifts the microphone hold, not the camera's"
        );
    }
}
