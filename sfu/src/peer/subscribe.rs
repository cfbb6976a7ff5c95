//! The subscribing side of a peer: its fixed slots (offered once, after the client's
//! first offer or `ready`), the answers, and what the room decided for it: which source
//! in which slot, and which layer of each (the allocator, with the bandwidth decisions
//! of `policy/estimate.rs` around it).

use std::collections::HashMap;
use std::time::Instant;

use str0m::bwe::Bitrate;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, MediaKind, Mid};
use tracing::{debug, info, warn};

use super::{
    PAUSE_REMEMBERED, Peer, PublishedLayers, RTX_MAX_AGE, RTX_PACKETS, RTX_RATIO_CAP,
    RTX_RATIO_CAP_PROTECTED, Slot, new_rtc,
};
use crate::policy::allocator::{Priority, VideoSource, encoding_top, layer_for_tile};
use crate::policy::estimate::{self, Path};
use crate::rtp::red;
use crate::types::{
    AUDIO_SLOTS, Forwarding, OfferOutcome, SlotMap, TrackKey, VIDEO_SLOTS, VideoSlot, ViewHints,
};
use crate::{ParticipantId, SfuError};

/// Audio slots first, then video slots, main first. At least the main slot; at most a
/// screenful.
pub(super) fn fixed_slots(video: Option<usize>) -> Vec<Slot> {
    let video = video.unwrap_or(VIDEO_SLOTS).clamp(1, 25);
    (0..AUDIO_SLOTS)
        .map(|i| Slot::new(MediaKind::Audio, i))
        .chain((0..video).map(|i| Slot::new(MediaKind::Video, i)))
        .collect()
}

/// How long after a refused answer the slots are offered again.
const OFFER_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// When the server may send its offer of the slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OfferWhen {
    /// Not before the client's first offer (or `ready`), so a client's opening offer
    /// never collides with ours.
    NotYet,
    /// The client offered first and was answered: offer once the session is connected.
    /// webrtc-rs takes an offer that arrives right after it applied an answer for an ICE
    /// restart, answers with new credentials, and every answer was refused in a loop;
    /// and no media can flow into the slots before the session is up anyway.
    Connected,
    /// The client publishes nothing and said `ready`: its session needs this offer to
    /// connect at all.
    Now,
    /// A publish-only client (WHIP): it holds no slots and is never offered any.
    Never,
}

/// What the room chose for one video slot: the source, and whether it is a screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotChoice {
    pub(crate) source: TrackKey,
    pub(crate) screen: bool,
}

/// Whether an SDP lists RED (RFC 2198) for audio: `a=rtpmap:<pt> red/48000/2`.
fn offers_red(sdp: &str) -> bool {
    sdp.lines().any(|l| {
        l.strip_prefix("a=rtpmap:")
            .and_then(|r| r.split_once(' '))
            .is_some_and(|(_, codec)| codec.trim().to_ascii_lowercase().starts_with("red/48000"))
    })
}

/// The m-lines a client offers to receive on (`a=recvonly`), with their kind and mid.
fn receiving_sections(sdp: &str) -> Vec<(MediaKind, Mid)> {
    let mut out = Vec::new();
    let mut section: Option<(Option<MediaKind>, Option<Mid>, bool, bool)> = None;
    let mut close = |s: Option<(Option<MediaKind>, Option<Mid>, bool, bool)>| {
        if let Some((Some(kind), Some(mid), true, false)) = s {
            out.push((kind, mid));
        }
    };
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            close(section.take());
            let kind = match m.split(' ').next() {
                Some("audio") => Some(MediaKind::Audio),
                Some("video") => Some(MediaKind::Video),
                _ => None,
            };
            // Port 0: a rejected (or bundle-only) section; bundle-only ones carry a mid
            // and are real, so only the kind and direction decide.
            section = Some((kind, None, false, false));
        } else if let Some(s) = section.as_mut() {
            if let Some(mid) = line.strip_prefix("a=mid:") {
                s.1 = Some(Mid::from(mid.trim()));
            } else if line == "a=recvonly" {
                s.2 = true;
            } else if line == "a=inactive" {
                s.3 = true;
            }
        }
    }
    close(section.take());
    out
}

impl Peer {
    pub(super) fn slot_by_mid(&self, mid: Mid) -> Option<&Slot> {
        self.slots.iter().find(|s| s.open && s.mid == Some(mid))
    }

    /// Who is in which slot, as the page is told: a video slot names the source it
    /// forwards now.
    pub(super) fn slot_map(&self) -> SlotMap {
        let mut map = SlotMap::default();
        for s in &self.slots {
            match s.kind {
                MediaKind::Audio => map.audio.push(s.voice.map(|k| k.participant)),
                MediaKind::Video => map.video.push(s.current.map(|(k, _)| VideoSlot {
                    participant: k.participant,
                    screen: s.screen && s.source == Some(k),
                })),
            }
        }
        map
    }

    /// How many video slots the page shows (the rest stay empty).
    pub(crate) fn shown_video_slots(&self) -> usize {
        let n = self
            .slots
            .iter()
            .filter(|s| s.kind == MediaKind::Video)
            .count();
        if self.view.slots.is_empty() {
            n
        } else {
            n.min(self.view.slots.len())
        }
    }

    /// The voices for the audio slots, in slot order.
    /// Whether this session receives anything (a publish-only one does not).
    pub(crate) fn has_slots(&self) -> bool {
        !self.slots.is_empty()
    }

    pub(crate) fn audio_slots(&self) -> Vec<Option<ParticipantId>> {
        self.slots
            .iter()
            .filter(|s| s.kind == MediaKind::Audio)
            .map(|s| s.voice.map(|k| k.participant))
            .collect()
    }

    /// The video sources in slot order (main first).
    pub(crate) fn video_sources(&self) -> Vec<Option<TrackKey>> {
        self.slots
            .iter()
            .filter(|s| s.kind == MediaKind::Video)
            .map(|s| s.source)
            .collect()
    }

    /// Put the room's choice into the slots: `voices` per audio slot, `videos` per video
    /// slot. A video slot whose source changes keeps forwarding the old one until the new
    /// one's keyframe (its target is set by the allocation that follows).
    pub(crate) fn assign(&mut self, voices: &[Option<TrackKey>], videos: &[Option<SlotChoice>]) {
        let (mut a, mut v) = (0, 0);
        for s in &mut self.slots {
            match s.kind {
                MediaKind::Audio => {
                    let voice = voices.get(a).copied().flatten();
                    a += 1;
                    self.slots_changed |= s.set_voice(voice);
                }
                MediaKind::Video => {
                    let choice = videos.get(v).copied().flatten();
                    v += 1;
                    s.source = choice.map(|c| c.source);
                    s.screen = choice.is_some_and(|c| c.screen);
                }
            }
        }
    }

    /// Offer the slots not yet offered, if no negotiation is under way.
    pub(super) fn negotiate(&mut self, now: Instant) {
        // Runs on every poll: once the slots are offered there is nothing to do.
        if self.slots_offered {
            return;
        }
        let allowed = match self.offer_when {
            OfferWhen::NotYet => false,
            OfferWhen::Connected => self.connected_at.is_some(),
            OfferWhen::Now => true,
            OfferWhen::Never => false,
        };
        if !allowed
            || self.pending.is_some()
            || !self.rtc.is_alive()
            || self.offer_after.is_some_and(|t| now < t)
        {
            return;
        }
        if self.slots.iter().all(|s| s.mid.is_some()) {
            self.slots_offered = true;
            return;
        }
        let mut api = self.rtc.sdp_api();
        for s in &mut self.slots {
            if s.mid.is_some() {
                continue;
            }
            let name = match s.kind {
                MediaKind::Audio => format!("a{}", s.index),
                MediaKind::Video => format!("v{}", s.index),
            };
            let mid = api.add_media(
                s.kind,
                Direction::SendOnly,
                Some(name.clone()),
                Some(name),
                None,
            );
            s.mid = Some(mid);
        }
        let Some((offer, pending)) = api.apply() else {
            return;
        };
        self.pending = Some(pending);
        self.slots_offered = true;
        debug!(participant = %self.id, site = %self.options.name, "sending server offer (slots)");
        self.send_event(crate::types::SfuEvent::Offer(offer.to_sdp_string()));
    }

    pub(crate) fn handle_offer(&mut self, sdp: &str) -> Result<OfferOutcome, SfuError> {
        if self.pending.is_some() {
            info!(participant = %self.id, site = %self.options.name, "client offer ignored: server offer outstanding (glare)");
            return Ok(OfferOutcome::Ignored);
        }
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| SfuError::BadSdp(e.to_string()))?;
        // str0m tears the session down on an offer without a fingerprint; refuse it first
        // so a client's mistake costs it one error message, not its connection.
        if !sdp.contains("a=fingerprint:") {
            return Err(SfuError::BadSdp("missing a=fingerprint".into()));
        }
        let (sections, sending) = media_sections(sdp);
        if sending > MAX_PUBLISHED || sections > MAX_SECTIONS {
            return Err(SfuError::BadSdp(format!(
                "{sending} sending m-lines of {sections}: at most {MAX_PUBLISHED} tracks \
                 published (voice, camera, screen and a spare) in at most {MAX_SECTIONS} m-lines"
            )));
        }
        if self.offer_when == OfferWhen::NotYet {
            self.settle_red(offers_red(sdp));
        }
        let result = self.rtc.sdp_api().accept_offer(offer);
        match result {
            Ok(answer) => {
                if self.offer_when == OfferWhen::NotYet {
                    self.offer_when = OfferWhen::Connected;
                }
                if self.options.slots_from_offer && !self.slots_offered {
                    self.bind_offered_slots(sdp);
                }
                Ok(OfferOutcome::Answer(answer.to_sdp_string()))
            }
            Err(e) => {
                if !self.rtc.is_alive() {
                    self.reset();
                }
                Err(SfuError::BadSdp(e.to_string()))
            }
        }
    }

    pub(crate) fn handle_answer(&mut self, now: Instant, sdp: &str) -> Result<(), SfuError> {
        let answer =
            SdpAnswer::from_sdp_string(sdp).map_err(|e| SfuError::BadSdp(e.to_string()))?;
        let Some(pending) = self.pending.take() else {
            return Err(SfuError::NoOfferPending);
        };
        if let Err(e) = self.rtc.sdp_api().accept_answer(pending, answer) {
            // Forget the offered m-lines; negotiate() offers them again, after a pause.
            self.offer_after = Some(now + OFFER_RETRY);
            self.slots_offered = false;
            for s in &mut self.slots {
                if !s.open {
                    s.mid = None;
                }
            }
            if !self.rtc.is_alive() {
                self.reset();
            }
            return Err(SfuError::BadSdp(e.to_string()));
        }
        for s in &mut self.slots {
            if s.open {
                continue;
            }
            let Some(m) = s.mid else { continue };
            s.open = true;
            if s.kind == MediaKind::Video
                && let Some(tx) = self.rtc.direct_api().stream_tx_by_mid(m, None)
            {
                tx.set_rtx_cache(RTX_PACKETS, RTX_MAX_AGE, Some(RTX_RATIO_CAP));
            }
        }
        self.slots_changed = true;
        Ok(())
    }

    /// A WHEP client's receiving m-lines become its slots, audio and video each in the
    /// order offered; slots it did not offer are dropped (they were never negotiated).
    fn bind_offered_slots(&mut self, sdp: &str) {
        for (kind, mid) in receiving_sections(sdp) {
            let Some(s) = self
                .slots
                .iter_mut()
                .find(|s| s.kind == kind && s.mid.is_none())
            else {
                continue;
            };
            s.mid = Some(mid);
            s.open = true;
            if kind == MediaKind::Video
                && let Some(tx) = self.rtc.direct_api().stream_tx_by_mid(mid, None)
            {
                tx.set_rtx_cache(RTX_PACKETS, RTX_MAX_AGE, Some(RTX_RATIO_CAP));
            }
        }
        self.slots.retain(|s| s.mid.is_some());
        self.slots_offered = true;
        self.slots_changed = true;
    }

    /// The client publishes nothing and wants its slots now; `red`: it decodes RED.
    pub(crate) fn set_ready(&mut self, red: bool) {
        if self.offer_when == OfferWhen::Never {
            return;
        }
        if self.offer_when == OfferWhen::NotYet {
            self.settle_red(red);
        }
        self.offer_when = OfferWhen::Now;
    }

    /// Whether this participant's session offers RED-wrapped Opus now.
    #[cfg(test)]
    pub(crate) fn session_offers_red(&self) -> bool {
        self.rtc
            .codec_config()
            .params()
            .iter()
            .any(|p| p.red().is_some())
    }

    /// Before the first negotiation: offer RED only to a client that showed it decodes
    /// it (see `red_offered`). Nothing has been negotiated on the session yet, so a new
    /// one replaces it at no cost to the client.
    fn settle_red(&mut self, shown: bool) {
        if shown == self.red_offered {
            return;
        }
        debug!(participant = %self.id, site = %self.options.name, red = shown, "session rebuilt for the client's audio codecs");
        self.red_offered = shown;
        self.rtc = new_rtc(self.rtc_built, &self.candidates, shown);
    }

    /// A session str0m gave up on (bad remote SDP) is replaced by a fresh one, so the
    /// client can try again on the same signaling connection.
    pub(super) fn reset(&mut self) {
        warn!(participant = %self.id, site = %self.options.name, "media session reset after a fatal SDP error");
        self.rtc = new_rtc(Instant::now(), &self.candidates, self.red_offered);
        self.connected_at = None;
        self.tracks_in.clear();
        let video = self
            .slots
            .iter()
            .filter(|s| s.kind == MediaKind::Video)
            .count();
        let publish_only = self.options.publish_only;
        self.slots = if publish_only {
            Vec::new()
        } else {
            fixed_slots(Some(video))
        };
        self.slots_offered = false;
        self.slots_changed = true;
        self.pending = None;
        if self.offer_when != OfferWhen::Never {
            self.offer_when = OfferWhen::NotYet;
        }
        self.ssrc_mid.clear();
    }

    /// The user's view changed. A pause the user chose (audio only, a hidden page)
    /// leaves only the audio on the link, and str0m's estimate sinks to 1.5 × that; when
    /// the video is wanted again it had to climb back through probes while each layer
    /// waited a dwell, and 720p took over 15 s on loopback (`view.rs`). So the estimate
    /// from before a short pause is restored when it ends: the link is most likely the
    /// one it was a minute ago, and if not, congestion shows within a second.
    pub(crate) fn set_view(&mut self, view: ViewHints, now: Instant) {
        let paused = |v: &ViewHints| v.audio_only || v.hidden;
        match (paused(&self.view), paused(&view)) {
            (false, true) => {
                self.paused_with = self.stats.bwe_kbps.map(|k| (k * 1000, now));
            }
            (true, false) => {
                if let Some((bps, at)) = self.paused_with.take()
                    && now.saturating_duration_since(at) <= PAUSE_REMEMBERED
                    && self.stats.bwe_kbps.is_some_and(|k| k * 1000 < bps)
                {
                    debug!(participant = %self.id, site = %self.options.name, kbps = bps / 1000, "estimate from before the pause restored");
                    self.rtc.bwe().reset(Bitrate::bps(bps));
                    self.stats.bwe_kbps = Some(bps / 1000);
                    self.raw_estimate = Some(bps);
                }
            }
            _ => {}
        }
        self.view = view;
    }

    /// The estimate the allocator shares out (`policy/estimate.rs`).
    pub(crate) fn estimate_bps(&self, now: Instant) -> Option<u32> {
        estimate::shared_bps(
            self.raw_estimate,
            self.stats.bwe_kbps.map(|k| k * 1000),
            self.path(),
            self.connected_at,
            now,
        )
    }

    /// The shortest frame interval this subscriber's path repairs in time, if it limits
    /// anything (`policy/frame_rate.rs`).
    pub(crate) fn repair_frame_ms(&mut self, now: Instant) -> Option<u16> {
        // The path's own round trip, not one a full queue stretched: a queue is drained
        // by the allocation, a 3G path's round trip stays.
        let min =
            crate::policy::frame_rate::min_frame_ms(self.congestion.floor_rtt(), self.path().lossy);
        let limit = self.repair_limit.update(now, min);
        let protect = limit.is_some();
        if protect != self.protect_tails {
            self.protect_tails = protect;
            // The tail copies are resends to str0m: under the usual cap (resends at most
            // 15 % of what is sent) they alone crossed it at a 3G commune's frame rate,
            // and str0m then dropped the real repairs (gaps of 3-4 s in the simulation).
            let cap = if protect {
                RTX_RATIO_CAP_PROTECTED
            } else {
                RTX_RATIO_CAP
            };
            for s in self
                .slots
                .iter()
                .filter(|s| s.open && s.kind == MediaKind::Video)
            {
                if let Some(mid) = s.mid
                    && let Some(tx) = self.rtc.direct_api().stream_tx_by_mid(mid, None)
                {
                    tx.set_rtx_cache(RTX_PACKETS, RTX_MAX_AGE, Some(cap));
                }
            }
        }
        limit
    }

    fn path(&self) -> Path {
        Path {
            congested: self.congestion.congested(),
            queueing: self.congestion.queueing(),
            lossy: self.red.on() || self.stats.loss_down.is_some_and(|l| l >= 0.01),
        }
    }

    /// Run the allocator over this subscriber's video slots and apply its choice: each
    /// slot's layer, audio only, and what str0m should probe and pad for. `voices`:
    /// audio streams forwarded to us; `sources`: the slots' sources (main first) as the
    /// allocator sees them; `wanted_bps`: what the video tiles could use.
    pub(crate) fn allocate(
        &mut self,
        now: Instant,
        budget_bps: u32,
        voices: usize,
        sources: &[VideoSource<TrackKey>],
        layers: &HashMap<TrackKey, &PublishedLayers>,
        wanted_bps: u32,
    ) {
        let audio_streams = if self.red.on() {
            red::price(voices)
        } else {
            voices
        };
        let path = self.path();
        let a = self
            .allocator
            .allocate_on(now, budget_bps, audio_streams, sources, path.congested);
        // A queue that has built up drains only if less than the link's rate is sent:
        // no second repeat while the path shows congestion (measured on the step
        // profile: with it, a 500 ms queue took 7 s to drain).
        let distance = if path.congested {
            1
        } else {
            red::distance(budget_bps, a.total_bps, voices, self.allocator.audio_bps())
        };
        if self.red.on() && distance != self.red_distance {
            debug!(participant = %self.id, site = %self.options.name, distance, "RED repeats");
        }
        self.red_distance = distance;
        self.stats.red_distance = if self.red.on() { distance as u8 } else { 0 };
        let forced = a.audio_only && !self.view.audio_only;
        if forced != self.audio_only {
            self.audio_only = forced;
            info!(
                participant = %self.id, site = %self.options.name,
                budget_kbps = budget_bps / 1000,
                smoothed_kbps = ?self.stats.bwe_kbps,
                raw_kbps = ?self.stats.bwe_raw_kbps,
                loss = ?self.stats.loss_down,
                "audio only: {forced}"
            );
            self.send_event(crate::types::SfuEvent::Bandwidth {
                audio_only: forced,
                estimate_kbps: budget_bps / 1000,
            });
        }
        self.stats.audio_only = a.audio_only;
        self.stats.allocated_kbps = u64::from(a.total_bps / 1000);
        self.stats.forwarding.clear();
        // What the cheapest step towards what the tiles ask for would add.
        let mut next_extra: Option<u64> = None;
        for s in self.slots.iter_mut().filter(|s| s.kind == MediaKind::Video) {
            let Some(key) = s.source else {
                if s.target.take().is_some() {
                    self.stats.layer_changes += 1;
                }
                self.slots_changed |= s.stop_video();
                continue;
            };
            let choice = a
                .layers
                .iter()
                .find(|(k, _)| *k == key)
                .and_then(|(_, c)| *c);
            let published = layers.get(&key);
            let chosen = choice
                .and_then(|i| published.and_then(|p| p.layers.get(i)))
                .map(|l| (l.0, l.1, l.2.height, l.2.temporal));
            // A slot below what its tile asks for: the cheapest such step is what the
            // upgrade padding probes for (the main slot's next layer, or a thumbnail's
            // first).
            if let Some(src) = sources.iter().find(|x| x.key == key)
                && let Some(want) = layer_for_tile(&src.layers, src.max_height)
            {
                let want = if src.priority == Priority::Other {
                    encoding_top(&src.layers, 0)
                } else {
                    want
                };
                let next = choice.map_or(0, |i| i + 1);
                if next <= want
                    && let Some(step) = src.layers.get(next)
                {
                    let have = choice.and_then(|i| src.layers.get(i)).map_or(0, |l| l.bps);
                    let extra = u64::from(step.bps.saturating_sub(have));
                    next_extra = Some(next_extra.map_or(extra, |e: u64| e.min(extra)));
                }
            }
            let target = chosen.map(|c| (key, c.0));
            let temporal = chosen.and_then(|c| c.3);
            let before = s.temporal_next.unwrap_or_else(|| s.temporal.target());
            let stepped_down = s.source == s.current.map(|c| c.0)
                && s.current.is_some()
                && s.current != target
                && matches!((choice, s.step), (Some(new), Some(old)) if new < old);
            s.step = choice;
            if stepped_down {
                // Down to another encoding: until its keyframe, the old one at its
                // lowest frame rate, if the link has room for that; if not, no video
                // until the keyframe (the page labels the tile for that moment): on
                // the step profile the old 720p at its base rate alone was 480 kbit/s
                // into a 300 kbit/s link, and the audio queued behind it.
                let old_base = published.and_then(|p| {
                    p.layers
                        .iter()
                        .find(|l| Some(l.0) == s.current.map(|c| c.1) && l.2.temporal == Some(0))
                        .map(|l| l.2.bps)
                });
                let new_bps = chosen
                    .and_then(|c| {
                        published.and_then(|p| {
                            p.layers.iter().find(|l| l.0 == c.0 && l.2.temporal == c.3)
                        })
                    })
                    .map_or(0, |l| l.2.bps);
                let room = budget_bps
                    .saturating_sub(a.total_bps)
                    .saturating_add(new_bps);
                if old_base.is_some_and(|b| b <= room) {
                    s.temporal.set_target(Some(0));
                } else {
                    self.slots_changed |= s.stop_video();
                }
                s.temporal_next = Some(temporal);
            } else if s.current == target || target.is_none() {
                s.temporal.set_target(temporal);
                s.temporal_next = None;
            } else {
                s.temporal_next = Some(temporal);
            }
            if s.target == target && target.is_some() && before != temporal {
                debug!(
                    participant = %self.id, site = %self.options.name,
                    source = %key.participant,
                    layer = ?choice,
                    temporal = ?temporal,
                    budget_kbps = budget_bps / 1000,
                    "frame rate chosen"
                );
                self.stats.layer_changes += 1;
            }
            if s.target != target {
                debug!(
                    participant = %self.id, site = %self.options.name,
                    source = %key.participant,
                    layer = ?choice,
                    budget_kbps = budget_bps / 1000,
                    "layer chosen"
                );
                self.stats.layer_changes += 1;
                s.target = target;
                if target.is_none() {
                    self.slots_changed |= s.stop_video();
                    // Resends of a paused video only compete with the audio on a link
                    // that is already too slow: replacing the cache drops them.
                    if s.open
                        && let Some(mid) = s.mid
                        && let Some(tx) = self.rtc.direct_api().stream_tx_by_mid(mid, None)
                    {
                        tx.set_rtx_cache(RTX_PACKETS, RTX_MAX_AGE, Some(RTX_RATIO_CAP));
                    }
                }
            }
            if let Some((_, rid, height, temporal)) = chosen {
                self.stats.forwarding.push(Forwarding {
                    publisher: key.participant.to_string(),
                    rid: rid.map(|r| r.to_string()),
                    height: (height > 0).then_some(height),
                    temporal,
                });
            }
        }
        let audio_bps = audio_streams as u64 * u64::from(self.allocator.audio_bps());
        let ceiling = estimate::probe_ceiling_bps(
            u64::from(wanted_bps),
            audio_bps,
            if forced { a.resume_bps } else { None },
        );
        let minimum =
            estimate::padding_bps(a.resume_bps, forced, path.congested, ceiling, budget_bps).max(
                if a.audio_only {
                    0
                } else {
                    estimate::upgrade_padding_bps(
                        next_extra.map(|e| u64::from(a.total_bps) + e),
                        self.allocator.headroom(),
                        path,
                        ceiling,
                        budget_bps,
                    )
                },
            );
        self.stats.padding_kbps = minimum / 1000;
        self.rtc
            .bwe()
            .set_bitrate(Bitrate::bps(minimum), Bitrate::bps(ceiling));
    }

    /// Every video slot's target and current layer, for the publishers' layer use.
    pub(crate) fn layers_in_use(&self) -> impl Iterator<Item = (TrackKey, str0m::rtp::Ssrc)> + '_ {
        self.slots
            .iter()
            .filter(|s| s.kind == MediaKind::Video)
            .flat_map(|s| s.target.into_iter().chain(s.current))
    }
}

/// Tracks one participant may publish: a voice, a camera, a screen, and one spare (a
/// second camera in a studio). More is a client gone wrong or a hostile one: each track
/// costs the bridge a stream, a place in every allocation and a route.
pub(crate) const MAX_PUBLISHED: usize = 4;
/// M-lines one session may hold: its own tracks and the bridge's slots, with room to
/// spare for m-lines a client stopped but keeps in its SDP.
pub(crate) const MAX_SECTIONS: usize = 32;

/// The media sections of an offer, and how many of them the client sends on
/// (`sendrecv` or `sendonly`, not rejected with port 0).
fn media_sections(sdp: &str) -> (usize, usize) {
    let (mut sections, mut sending) = (0, 0);
    let mut current: Option<(bool, bool)> = None; // (rejected, sends)
    let close = |c: Option<(bool, bool)>, sending: &mut usize| {
        if let Some((rejected, sends)) = c
            && !rejected
            && sends
        {
            *sending += 1;
        }
    };
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            close(current.take(), &mut sending);
            sections += 1;
            let rejected = m.split_whitespace().nth(1) == Some("0");
            // Without a direction attribute a section is sendrecv (RFC 8866 6.7).
            current = Some((rejected, true));
        } else if let Some((_, sends)) = current.as_mut() {
            match line {
                "a=recvonly" | "a=inactive" => *sends = false,
                "a=sendrecv" | "a=sendonly" => *sends = true,
                _ => {}
            }
        }
    }
    close(current, &mut sending);
    (sections, sending)
}

#[cfg(test)]
mod section_tests {
    use super::{MediaKind, Mid, media_sections, receiving_sections};

    #[test]
    fn a_whep_offer_names_its_receiving_sections_in_order() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=recvonly\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\na=mid:1\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=sendrecv\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:3\r\na=inactive\r\n\
                   m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:4\r\na=recvonly\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\n";
        // Only recvonly audio/video with a mid: not sendrecv, inactive, data, or mid-less.
        assert_eq!(
            receiving_sections(sdp),
            vec![
                (MediaKind::Audio, Mid::from("0")),
                (MediaKind::Video, Mid::from("1"))
            ]
        );
        assert!(receiving_sections("").is_empty());
        assert!(receiving_sections("m=\na=mid:\na=recvonly").is_empty());
    }

    #[test]
    fn sending_sections_are_counted_by_direction() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\n\
                   m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";
        // audio sendrecv, video sendonly, and the last audio with no direction: 3 send;
        // recvonly and the rejected (port 0) section do not.
        assert_eq!(media_sections(sdp), (5, 3));
        assert_eq!(media_sections(""), (0, 0));
    }
}
