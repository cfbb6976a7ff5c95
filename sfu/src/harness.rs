//! The forwarding path without sockets, for benchmarks and profiles: one publisher and
//! N subscribers as str0m clients, wired to the SFU's room state by function calls on a
//! simulated clock. DTLS-SRTP, TWCC feedback, the allocator and the pacer all run as in
//! production; only the kernel and tokio are left out, so a profile of
//! [`Harness::forward`] shows what the SFU itself costs per packet.
//!
//! Built with the `bench` feature only; not part of the SFU's API.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpWrite};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::sync::mpsc;

use crate::driver::Rooms;
use crate::{JoinOptions, ParticipantId, SfuEvent};

const ROOM: &str = "bench";
const TICK: Duration = Duration::from_millis(100);

struct Client {
    rtc: Rtc,
    addr: SocketAddr,
    id: ParticipantId,
    events: mpsc::UnboundedReceiver<SfuEvent>,
    connected: bool,
    /// Packets of media received (after SRTP and str0m).
    received: u64,
}

/// One datagram from the SFU, in a buffer that is reused (the harness must not
/// allocate per packet, or it would hide the SFU's own allocations).
struct Out {
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

pub struct Harness {
    rooms: Rooms,
    now: Instant,
    sfu: SocketAddr,
    clients: Vec<Client>,
    next_tick: Instant,
    out: Vec<Out>,
    out_len: usize,
    audio_mid: Mid,
    video_mid: Mid,
    audio_seq: u64,
    video_seq: u64,
    frame: u32,
    key_wanted: bool,
}

/// The payload type a client negotiated for `codec`.
fn payload_type(rtc: &Rtc, codec: Codec) -> Option<str0m::media::Pt> {
    rtc.codec_config()
        .iter()
        .find(|p| p.spec().codec == codec)
        .map(|p| p.pt())
}

fn addr(last: u32) -> SocketAddr {
    let ip = Ipv4Addr::from(0x0a00_0000 + last);
    SocketAddr::new(IpAddr::V4(ip), 5000)
}

impl Harness {
    /// A publisher (audio and one VP8 layer) and `subscribers` receivers, connected and
    /// warmed up for `warmup` of simulated time (the bandwidth estimates settle and
    /// video flows).
    pub fn new(subscribers: usize, warmup: Duration) -> Result<Self, String> {
        let now = Instant::now();
        let sfu = addr(1);
        let mut rooms = Rooms::default();
        let mut clients = Vec::new();
        let mut mids = (None, None);
        for i in 0..=subscribers {
            let (tx, events) = mpsc::unbounded_channel();
            let id = ParticipantId(i as u64 + 1);
            rooms
                .join(ROOM, id, JoinOptions::default(), tx, vec![sfu], now)
                .map_err(|e| e.to_string())?;
            let caddr = addr(100 + i as u32);
            let mut rtc = RtcConfig::new()
                .set_rtp_mode(true)
                .clear_codecs()
                .enable_opus(true, false)
                .enable_vp8(true)
                .build(now);
            rtc.add_local_candidate(Candidate::host(caddr, "udp").map_err(|e| e.to_string())?);
            let peer = rooms.peers.get_mut(&id).ok_or("joined peer missing")?;
            if i == 0 {
                let mut api = rtc.sdp_api();
                let a = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
                let v = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
                mids = (Some(a), Some(v));
                let (offer, pending) = api.apply().ok_or("publisher made no offer")?;
                let answer = match peer
                    .handle_offer(&offer.to_sdp_string())
                    .map_err(|e| e.to_string())?
                {
                    crate::OfferOutcome::Answer(a) => a,
                    crate::OfferOutcome::Ignored => return Err("offer ignored".into()),
                };
                let answer = str0m::change::SdpAnswer::from_sdp_string(&answer)
                    .map_err(|e| e.to_string())?;
                rtc.sdp_api()
                    .accept_answer(pending, answer)
                    .map_err(|e| e.to_string())?;
            } else {
                peer.set_ready();
            }
            rooms.dirty.insert(id);
            clients.push(Client {
                rtc,
                addr: caddr,
                id,
                events,
                connected: false,
                received: 0,
            });
        }
        let (Some(audio_mid), Some(video_mid)) = mids else {
            return Err("no publisher".into());
        };
        let mut h = Self {
            rooms,
            now,
            sfu,
            clients,
            next_tick: now,
            out: Vec::new(),
            out_len: 0,
            audio_mid,
            video_mid,
            audio_seq: 0,
            video_seq: 0,
            frame: 0,
            key_wanted: true,
        };
        // Connect: exchange datagrams and signaling until every client is up.
        for _ in 0..2000 {
            h.step(Duration::from_millis(5));
            if h.clients.iter().all(|c| c.connected) {
                break;
            }
        }
        if !h.clients.iter().all(|c| c.connected) {
            return Err("clients did not connect".into());
        }
        // Warm up with media at its real rate: estimates, allocation, keyframes.
        let mut t = Duration::ZERO;
        while t < warmup {
            let dg = h.publish_audio();
            h.forward(&dg);
            if h.frame_due() {
                for dg in h.publish_video_frame() {
                    h.forward(&dg);
                }
            }
            h.step(Duration::from_millis(20));
            t += Duration::from_millis(20);
        }
        Ok(h)
    }

    fn frame_due(&self) -> bool {
        // 25 fps on a 20 ms audio clock: four frames in every five ticks.
        !self.audio_seq.is_multiple_of(5)
    }

    /// Media packets each subscriber received so far.
    pub fn received(&self) -> Vec<u64> {
        self.clients.iter().skip(1).map(|c| c.received).collect()
    }

    /// The SFU's half of one packet: receive, decrypt, choose, rewrite, encrypt, send to
    /// every subscriber. Returns the datagrams it sent.
    pub fn forward(&mut self, datagram: &[u8]) -> usize {
        let before = self.out_len;
        let publisher = self.clients[0].addr;
        self.rooms.receive(self.now, publisher, self.sfu, datagram);
        self.drain_out();
        // str0m's pacer releases what was queued at a timeout that is already due; the
        // driver wakes for it at once, so it is part of this packet's cost.
        for _ in 0..4 {
            if self.rooms.next_timeout().is_none_or(|t| t > self.now) {
                break;
            }
            self.rooms.handle_timeouts(self.now);
            self.drain_out();
        }
        self.out_len - before
    }

    /// The publisher's next audio packet, encrypted, as it would arrive.
    pub fn publish_audio(&mut self) -> Vec<u8> {
        let seq = self.audio_seq;
        self.audio_seq += 1;
        let mut payload = vec![0x55; 80];
        payload[..8].copy_from_slice(&seq.to_be_bytes());
        let now = self.now;
        let mid = self.audio_mid;
        let c = &mut self.clients[0];
        let Some(pt) = payload_type(&c.rtc, Codec::Opus) else {
            return Vec::new();
        };
        if let Some(tx) = c.rtc.direct_api().stream_tx_by_mid(mid, None) {
            let ext = ExtensionValues {
                audio_level: Some(-30),
                voice_activity: Some(true),
                ..Default::default()
            };
            tx.write_rtp(
                RtpWrite::new(pt, seq.into(), (seq as u32).wrapping_mul(960), now, payload)
                    .ext_vals(ext),
            );
        }
        Self::take_transmit(c, now)
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// The publisher's next video frame (one 1000-byte VP8 packet, 200 kbit/s at 25
    /// fps; a keyframe when one was asked for), encrypted.
    pub fn publish_video_frame(&mut self) -> Vec<Vec<u8>> {
        let key = std::mem::take(&mut self.key_wanted) || self.frame.is_multiple_of(100);
        let frame = self.frame;
        self.frame += 1;
        let mut p = Vec::with_capacity(1000);
        // VP8 descriptor: X, S, 15-bit PictureID, TL0PICIDX.
        p.extend_from_slice(&[0x90, 0xc0, 0x80 | (frame >> 8) as u8 & 0x7f, frame as u8]);
        p.push(frame as u8);
        if key {
            p.extend_from_slice(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01]);
        } else {
            p.extend_from_slice(&[0x11, 0x02, 0x00]);
        }
        p.resize(1000, 0x55);
        let (now, mid, seq) = (self.now, self.video_mid, self.video_seq);
        self.video_seq += 1;
        let c = &mut self.clients[0];
        let Some(pt) = payload_type(&c.rtc, Codec::Vp8) else {
            return Vec::new();
        };
        if let Some(tx) = c.rtc.direct_api().stream_tx_by_mid(mid, None) {
            tx.write_rtp(
                RtpWrite::new(pt, seq.into(), frame.wrapping_mul(3600), now, p)
                    .marker(true)
                    .nackable(true),
            );
        }
        Self::take_transmit(c, now)
    }

    /// What a client sends now (media after `write_rtp`, in order).
    fn take_transmit(c: &mut Client, now: Instant) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        let _ = c.rtc.handle_input(Input::Timeout(now));
        while let Ok(o) = c.rtc.poll_output() {
            match o {
                Output::Transmit(t) => v.push(t.contents.to_vec()),
                Output::Timeout(_) => break,
                Output::Event(_) => {}
            }
        }
        v
    }

    /// Deliver what the SFU sent, let every side answer (RTCP, TWCC feedback,
    /// signaling), and move the clock on by `dt`.
    pub fn step(&mut self, dt: Duration) {
        for _ in 0..8 {
            self.deliver();
            let mut moved = false;
            for i in 0..self.clients.len() {
                moved |= self.poll_client(i);
            }
            self.drain_out();
            if !moved && self.out_len == 0 {
                break;
            }
        }
        self.now += dt;
        for c in &mut self.clients {
            let _ = c.rtc.handle_input(Input::Timeout(self.now));
        }
        self.rooms.handle_timeouts(self.now);
        if self.now >= self.next_tick {
            self.next_tick = self.now + TICK;
            self.rooms.tick_speakers(self.now);
            self.rooms.allocate(self.now);
        }
        self.drain_out();
    }

    /// Poll the SFU; what it sends is kept for [`Self::deliver`].
    fn drain_out(&mut self) {
        let (out, out_len) = (&mut self.out, &mut self.out_len);
        self.rooms.drain(self.now, |from, to, data| {
            if *out_len == out.len() {
                out.push(Out {
                    from,
                    to,
                    data: Vec::with_capacity(1500),
                });
            }
            let o = &mut out[*out_len];
            o.from = from;
            o.to = to;
            o.data.clear();
            o.data.extend_from_slice(data);
            *out_len += 1;
        });
    }

    /// Hand the SFU's datagrams to their clients.
    fn deliver(&mut self) {
        for k in 0..self.out_len {
            let o = &self.out[k];
            let Some(c) = self.clients.iter_mut().find(|c| c.addr == o.to) else {
                continue;
            };
            let Ok(contents) = o.data.as_slice().try_into() else {
                continue;
            };
            let input = Input::Receive(
                self.now,
                Receive {
                    proto: Protocol::Udp,
                    source: o.from,
                    destination: o.to,
                    contents,
                },
            );
            if c.rtc.accepts(&input) {
                let _ = c.rtc.handle_input(input);
            }
        }
        self.out_len = 0;
    }

    /// Drain one client: its datagrams go to the SFU, its signaling is answered.
    fn poll_client(&mut self, i: usize) -> bool {
        let mut moved = false;
        loop {
            let c = &mut self.clients[i];
            let o = match c.rtc.poll_output() {
                Ok(o) => o,
                Err(_) => break,
            };
            match o {
                Output::Timeout(_) => break,
                Output::Transmit(t) => {
                    moved = true;
                    let (from, to) = (c.addr, t.destination);
                    let data = t.contents.to_vec();
                    self.rooms.receive(self.now, from, to, &data);
                }
                Output::Event(e) => match e {
                    Event::Connected => c.connected = true,
                    Event::RtpPacket(_) => c.received += 1,
                    Event::KeyframeRequest(_) if i == 0 => self.key_wanted = true,
                    _ => {}
                },
            }
        }
        // Server offers to subscribers: answer them as a browser would.
        while let Ok(ev) = self.clients[i].events.try_recv() {
            let SfuEvent::Offer(sdp) = ev else { continue };
            let c = &mut self.clients[i];
            let Ok(offer) = SdpOffer::from_sdp_string(&sdp) else {
                continue;
            };
            let Ok(answer) = c.rtc.sdp_api().accept_offer(offer) else {
                continue;
            };
            let id = c.id;
            if let Some(p) = self.rooms.peers.get_mut(&id)
                && let Ok(opened) = p.handle_answer(&answer.to_sdp_string())
            {
                self.rooms.dirty.insert(id);
                for key in opened {
                    if let Some(p) = self.rooms.peers.get_mut(&key.participant) {
                        p.request_keyframe(
                            key.mid,
                            None,
                            str0m::media::KeyframeRequestKind::Pli,
                            self.now,
                        );
                        self.rooms.dirty.insert(key.participant);
                    }
                }
            }
            moved = true;
        }
        moved
    }
}
