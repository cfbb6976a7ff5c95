//! A test participant on the `webrtc` crate: joins through the real WebSocket protocol,
//! publishes Opus-shaped audio and VP8-shaped video with payloads that name their sender
//! and sequence, and records everything it receives.
//!
//! Payloads are not decodable media (no encoder is needed to test forwarding), but the
//! VP8 payload descriptor and key-frame bit are real, because the SFU starts a
//! subscriber's video only on a keyframe.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use cauhop_protocol::{ClientMsg, PROTOCOL_VERSION, ServerMsg};
use tokio::sync::mpsc;
use webrtc::api::APIBuilder;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::ice::network_type::NetworkType;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::track::track_local::TrackLocalWriter;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;

use crate::link::Link;
use crate::signal;

/// What one subscriber got from one publisher.
#[derive(Debug, Default, Clone)]
pub struct FromPublisher {
    pub audio: Vec<Vec<u8>>,
    pub video: Vec<Vec<u8>>,
    pub video_ssrc: Option<u32>,
}

#[derive(Default)]
pub struct Shared {
    /// Keyed by the sender named in the payload (media arrives in the SFU's slots, whose
    /// stream ids name the slot, not the publisher).
    pub received: Mutex<HashMap<String, FromPublisher>>,
    pub sent_audio: Mutex<HashSet<Vec<u8>>>,
    pub sent_video: Mutex<HashSet<Vec<u8>>>,
    pub plis_received: AtomicU64,
    pub keyframes_sent: AtomicU64,
    pub keyframe_wanted: AtomicBool,
    pub server_offers: Mutex<Vec<String>>,
    pub messages: Mutex<Vec<ServerMsg>>,
    /// Who is in each slot (`a0`, `v0`, ...), from the bridge's `slots` messages, and
    /// the packets of a slot that arrived before its label did.
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    labels: HashMap<String, String>,
    /// Per slot: (video, payload, ssrc) not yet attributed.
    pending: HashMap<String, Vec<(bool, Vec<u8>, u32)>>,
}

impl Shared {
    /// What arrived from `publisher` so far.
    pub fn from(&self, publisher: &str) -> FromPublisher {
        self.received
            .lock()
            .ok()
            .and_then(|r| r.get(publisher).cloned())
            .unwrap_or_default()
    }

    /// Record one received packet under its sender: the one its payload names (the
    /// test publishers), else the one the slot map says (real encoders, such as the
    /// agent's Opus), else later, when the slot's label arrives.
    fn record(&self, slot: &str, video: bool, payload: Vec<u8>, ssrc: u32) {
        let sender = sender_of(&payload, video).or_else(|| {
            self.slots
                .lock()
                .ok()
                .and_then(|s| s.labels.get(slot).cloned())
        });
        match sender {
            Some(sender) => self.store(&sender, video, payload, ssrc),
            None => {
                if let Ok(mut s) = self.slots.lock() {
                    s.pending
                        .entry(slot.to_owned())
                        .or_default()
                        .push((video, payload, ssrc));
                }
            }
        }
    }

    fn store(&self, sender: &str, video: bool, payload: Vec<u8>, ssrc: u32) {
        if let Ok(mut r) = self.received.lock() {
            let e = r.entry(sender.to_owned()).or_default();
            if video {
                e.video_ssrc = Some(ssrc);
                e.video.push(payload);
            } else {
                e.audio.push(payload);
            }
        }
    }

    /// A `slots` message: label the slots, and hand over what waited for a label.
    fn label(&self, audio: &[Option<String>], video: &[Option<cauhop_protocol::SlotSource>]) {
        let mut waiting = Vec::new();
        if let Ok(mut s) = self.slots.lock() {
            let named =
                audio
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (format!("a{i}"), p.clone()))
                    .chain(video.iter().enumerate().map(|(i, v)| {
                        (format!("v{i}"), v.as_ref().map(|v| v.participant.clone()))
                    }));
            for (slot, who) in named {
                match who {
                    Some(who) => {
                        if let Some(p) = s.pending.remove(&slot) {
                            waiting.push((who.clone(), p));
                        }
                        s.labels.insert(slot, who);
                    }
                    None => {
                        s.labels.remove(&slot);
                    }
                }
            }
        }
        for (who, packets) in waiting {
            for (video, payload, ssrc) in packets {
                self.store(&who, video, payload, ssrc);
            }
        }
    }
}

/// How a test peer proves it may join.
#[derive(Debug, Clone)]
pub enum Credentials {
    None,
    Token(String),
    DeviceKey(String),
}

pub struct TestPeer {
    pub id: String,
    pub pc: Arc<RTCPeerConnection>,
    pub shared: Arc<Shared>,
    ws_tx: mpsc::UnboundedSender<ClientMsg>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for TestPeer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn new_pc() -> anyhow::Result<Arc<RTCPeerConnection>> {
    let mut m = MediaEngine::default();
    m.register_default_codecs()?;
    // webrtc-rs registers no RTX by default, and str0m sends no NACKs to a publisher
    // without RTX negotiated. Its responder then resends on the main SSRC, which str0m
    // accepts as the missing packet.
    m.register_codec(
        RTCRtpCodecParameters {
            capability: RTCRtpCodecCapability {
                mime_type: "video/rtx".to_owned(),
                clock_rate: 90000,
                sdp_fmtp_line: "apt=96".to_owned(),
                ..Default::default()
            },
            payload_type: 97,
            ..Default::default()
        },
        RTPCodecType::Video,
    )?;
    let registry = register_default_interceptors(Registry::new(), &mut m)?;
    let mut s = SettingEngine::default();
    // Loopback only: the tests must not send to any other address of the machine.
    s.set_include_loopback_candidate(true);
    s.set_ip_filter(Box::new(|ip| ip.is_loopback()));
    s.set_network_types(vec![NetworkType::Udp4]);
    let api = APIBuilder::new()
        .with_media_engine(m)
        .with_interceptor_registry(registry)
        .with_setting_engine(s)
        .build();
    Ok(Arc::new(
        api.new_peer_connection(RTCConfiguration::default()).await?,
    ))
}

impl TestPeer {
    /// Join `meeting` (an ad-hoc room), publish audio and video, and start sending media.
    pub async fn join(
        ws_url: &str,
        meeting: &str,
        name: &str,
        link: Option<Arc<Link>>,
    ) -> anyhow::Result<Self> {
        Self::join_with(ws_url, meeting, name, Credentials::None, link).await
    }

    /// Join with a join link's token or a room's device key.
    pub async fn join_with(
        ws_url: &str,
        meeting: &str,
        name: &str,
        creds: Credentials,
        link: Option<Arc<Link>>,
    ) -> anyhow::Result<Self> {
        let (token, key) = match creds {
            Credentials::None => (None, None),
            Credentials::Token(t) => (Some(t), None),
            Credentials::DeviceKey(k) => (None, Some(k)),
        };
        let joined = signal::join(
            ws_url,
            ClientMsg::Join {
                v: PROTOCOL_VERSION,
                meeting: meeting.into(),
                name: name.into(),
                site: "test".into(),
                token,
                key,
            },
        )
        .await?;
        let (id, ws_tx, mut ws_stream) = (joined.participant, joined.tx, joined.rx);
        let mut tasks = vec![joined.writer];

        let pc = new_pc().await?;
        let shared = Arc::new(Shared::default());
        let (audio, video) = add_sending_tracks(&pc, &shared, &id, &mut tasks).await?;

        record_tracks(&pc, &shared);

        let offer = pc.create_offer(None).await?;
        let mut gathered = pc.gathering_complete_promise().await;
        pc.set_local_description(offer).await?;
        let _ = gathered.recv().await;
        let local = pc
            .local_description()
            .await
            .context("no local description")?;
        if std::env::var_os("CAUHOP_TEST_DUMP_SDP").is_some() {
            eprintln!("--- test peer offer ---\n{}", local.sdp);
        }
        ws_tx.send(ClientMsg::Offer { sdp: local.sdp })?;

        // Signaling reader: answers, server offers, and the rest recorded for assertions.
        let (pc2, sh, tx2) = (pc.clone(), shared.clone(), ws_tx.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok(msg) = signal::next_msg(&mut ws_stream).await else {
                    break;
                };
                if let Ok(mut m) = sh.messages.lock() {
                    m.push(msg.clone());
                }
                if let ServerMsg::Slots { audio, video } = &msg {
                    sh.label(audio, video);
                }
                let result = match msg {
                    ServerMsg::Answer { sdp } => {
                        let sdp = link.as_ref().map_or(sdp.clone(), |l| l.rewrite_sdp(&sdp));
                        match RTCSessionDescription::answer(sdp) {
                            Ok(d) => pc2
                                .set_remote_description(d)
                                .await
                                .map_err(anyhow::Error::from),
                            Err(e) => Err(e.into()),
                        }
                    }
                    ServerMsg::Offer { sdp } => {
                        let sdp = link.as_ref().map_or(sdp.clone(), |l| l.rewrite_sdp(&sdp));
                        if let Ok(mut o) = sh.server_offers.lock() {
                            o.push(sdp.clone());
                        }
                        answer_offer(&pc2, sdp, &tx2).await
                    }
                    _ => Ok(()),
                };
                if let Err(e) = result {
                    tracing::warn!("test peer negotiation failed: {e:#}");
                }
            }
        }));

        tasks.push(tokio::spawn(send_media(
            audio,
            video,
            shared.clone(),
            id.clone(),
        )));
        Ok(Self {
            id,
            pc,
            shared,
            ws_tx,
            tasks,
        })
    }

    pub fn from(&self, publisher: &str) -> FromPublisher {
        self.shared.from(publisher)
    }

    /// What the bridge said to this peer so far.
    pub fn messages(&self) -> Vec<ServerMsg> {
        self.shared
            .messages
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// Ask the SFU for a keyframe of `publisher`'s video, as a decoder would.
    pub async fn request_keyframe(&self, publisher: &str) -> anyhow::Result<()> {
        let ssrc = self
            .from(publisher)
            .video_ssrc
            .context("no video from publisher")?;
        self.pc
            .write_rtcp(&[Box::new(PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc: ssrc,
            })])
            .await?;
        Ok(())
    }

    pub fn send(&self, msg: ClientMsg) -> anyhow::Result<()> {
        self.ws_tx.send(msg)?;
        Ok(())
    }

    pub async fn leave(self) -> anyhow::Result<()> {
        let _ = self.ws_tx.send(ClientMsg::Leave);
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.pc.close().await?;
        Ok(())
    }
}

/// Record every incoming packet under its sender (`Shared::record`).
fn record_tracks(pc: &Arc<RTCPeerConnection>, shared: &Arc<Shared>) {
    let sh = shared.clone();
    pc.on_track(Box::new(move |track, _, _| {
        let sh = sh.clone();
        Box::pin(async move {
            let is_video = track.kind() == RTPCodecType::Video;
            let ssrc = track.ssrc();
            // The msid stream id names the bridge's slot.
            let slot = track.stream_id();
            tokio::spawn(async move {
                while let Ok((pkt, _)) = track.read_rtp().await {
                    sh.record(&slot, is_video, pkt.payload.to_vec(), ssrc);
                }
            });
        })
    }));
}

/// A sending Opus and VP8 track on `pc` (stream `label`), and a task per sender that
/// notes the PLIs it gets (the next frame is then a keyframe).
async fn add_sending_tracks(
    pc: &Arc<RTCPeerConnection>,
    shared: &Arc<Shared>,
    label: &str,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<(Arc<TrackLocalStaticRTP>, Arc<TrackLocalStaticRTP>)> {
    let audio = Arc::new(TrackLocalStaticRTP::new(
        RTCRtpCodecCapability {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48000,
            channels: 2,
            ..Default::default()
        },
        "audio".into(),
        label.to_owned(),
    ));
    let video = Arc::new(TrackLocalStaticRTP::new(
        RTCRtpCodecCapability {
            mime_type: MIME_TYPE_VP8.to_owned(),
            clock_rate: 90000,
            ..Default::default()
        },
        "video".into(),
        label.to_owned(),
    ));
    for track in [audio.clone(), video.clone()] {
        let tr = pc
            .add_transceiver_from_track(
                track,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    send_encodings: vec![],
                }),
            )
            .await?;
        let sender = tr.sender().await;
        let sh = shared.clone();
        tasks.push(tokio::spawn(async move {
            while let Ok((packets, _)) = sender.read_rtcp().await {
                for p in packets {
                    if p.as_any().downcast_ref::<PictureLossIndication>().is_some() {
                        sh.plis_received.fetch_add(1, Ordering::Relaxed);
                        sh.keyframe_wanted.store(true, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    Ok((audio, video))
}

async fn answer_offer(
    pc: &RTCPeerConnection,
    sdp: String,
    tx: &mpsc::UnboundedSender<ClientMsg>,
) -> anyhow::Result<()> {
    pc.set_remote_description(RTCSessionDescription::offer(sdp)?)
        .await?;
    let answer = pc.create_answer(None).await?;
    pc.set_local_description(answer).await?;
    let local = pc.local_description().await.context("no local answer")?;
    tx.send(ClientMsg::Answer { sdp: local.sdp })?;
    Ok(())
}

/// 50 audio packets and 30 two-packet video frames per second; a keyframe every 2 s or
/// when a PLI arrived.
async fn send_media(
    audio: Arc<TrackLocalStaticRTP>,
    video: Arc<TrackLocalStaticRTP>,
    shared: Arc<Shared>,
    id: String,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let (mut aseq, mut vseq, mut n) = (0u16, 0u16, 0u64);
    loop {
        tick.tick().await;
        n += 1;
        if n % 2 == 0 {
            let mut payload = format!("A:{id}:{n}:").into_bytes();
            payload.resize(80, 0xaa);
            shared
                .sent_audio
                .lock()
                .map(|mut s| s.insert(payload.clone()))
                .ok();
            let pkt = rtp_packet(aseq, (n * 480) as u32, false, payload);
            aseq = aseq.wrapping_add(1);
            let _ = audio.write_rtp(&pkt).await;
        }
        if n % 3 == 0 {
            let key = n % 200 == 0 || shared.keyframe_wanted.swap(false, Ordering::Relaxed);
            if key {
                shared.keyframes_sent.fetch_add(1, Ordering::Relaxed);
            }
            let ts = (n * 900) as u32;
            for part in 0..2u8 {
                // VP8 descriptor: S=1 on the first packet of the frame, then the frame tag
                // whose low bit is 0 on a keyframe.
                let mut payload = vec![
                    if part == 0 { 0x10 } else { 0x00 },
                    if key { 0x00 } else { 0x01 },
                ];
                payload.extend_from_slice(format!("V:{id}:{n}:{part}:").as_bytes());
                payload.resize(if key { 1000 } else { 600 }, 0x55);
                shared
                    .sent_video
                    .lock()
                    .map(|mut s| s.insert(payload.clone()))
                    .ok();
                let pkt = rtp_packet(vseq, ts, part == 1, payload);
                vseq = vseq.wrapping_add(1);
                let _ = video.write_rtp(&pkt).await;
            }
        }
    }
}

/// The sender a test payload names: `A:{id}:` for audio, `V:{id}:` after the 2-byte
/// VP8 descriptor for video.
fn sender_of(payload: &[u8], video: bool) -> Option<String> {
    let text = payload.get(if video { 2 } else { 0 }..)?;
    let mark = if video { b"V:" } else { b"A:" };
    let rest = text.strip_prefix(mark)?;
    let end = rest.iter().position(|b| *b == b':')?;
    String::from_utf8(rest[..end].to_vec()).ok()
}

fn rtp_packet(seq: u16, ts: u32, marker: bool, payload: Vec<u8>) -> webrtc::rtp::packet::Packet {
    webrtc::rtp::packet::Packet {
        header: webrtc::rtp::header::Header {
            version: 2,
            marker,
            sequence_number: seq,
            timestamp: ts,
            ..Default::default()
        },
        payload: payload.into(),
    }
}

/// A WHIP publisher (RFC 9725) on webrtc-rs: one POST of its offer to `/whip/{meeting}`
/// with a room device key, media labelled `label` (so receivers find it with
/// [`TestPeer::from`]), and DELETE of its session.
pub struct WhipPublisher {
    pub pc: Arc<RTCPeerConnection>,
    pub shared: Arc<Shared>,
    /// The session's resource, from the `Location` header.
    pub location: String,
    /// The 201's `Link` headers (TURN servers, when the bridge has them).
    pub links: Vec<String>,
    base: String,
    key: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for WhipPublisher {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What a WHIP POST got back: status, `Location`, body.
pub struct WhipReply {
    pub status: u16,
    pub location: Option<String>,
    /// `Link` headers (RFC 9725 4.6: the TURN servers offered).
    pub links: Vec<String>,
    pub body: String,
}

/// POST `sdp` to the meeting's WHIP URL as `Authorization: Bearer <key>` (no header when
/// `key` is `None`).
pub async fn whip_post(
    base: &str,
    meeting: &str,
    key: Option<&str>,
    sdp: &str,
) -> anyhow::Result<WhipReply> {
    http_offer(base, &format!("/whip/{meeting}"), key, sdp).await
}

/// POST an SDP offer to `path` (WHIP or WHEP) with an optional Bearer credential.
pub async fn http_offer(
    base: &str,
    path: &str,
    key: Option<&str>,
    sdp: &str,
) -> anyhow::Result<WhipReply> {
    let mut req = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("content-type", "application/sdp")
        .body(sdp.to_owned());
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let links = resp
        .headers()
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect();
    Ok(WhipReply {
        status,
        location,
        links,
        body: resp.text().await?,
    })
}

impl WhipPublisher {
    /// Publish into `meeting` on the bridge at `base` (`http://HOST:PORT`).
    pub async fn publish(
        base: &str,
        meeting: &str,
        key: &str,
        label: &str,
    ) -> anyhow::Result<Self> {
        let pc = new_pc().await?;
        let shared = Arc::new(Shared::default());
        let mut tasks = Vec::new();
        let (audio, video) = add_sending_tracks(&pc, &shared, label, &mut tasks).await?;
        let offer = pc.create_offer(None).await?;
        let mut gathered = pc.gathering_complete_promise().await;
        pc.set_local_description(offer).await?;
        let _ = gathered.recv().await;
        let local = pc.local_description().await.context("no local offer")?;
        let reply = whip_post(base, meeting, Some(key), &local.sdp).await?;
        anyhow::ensure!(
            reply.status == 201,
            "WHIP POST answered {}: {}",
            reply.status,
            reply.body
        );
        let location = reply.location.context("201 without Location")?;
        let links = reply.links;
        pc.set_remote_description(RTCSessionDescription::answer(reply.body)?)
            .await?;
        tasks.push(tokio::spawn(send_media(
            audio,
            video,
            shared.clone(),
            label.to_owned(),
        )));
        Ok(Self {
            pc,
            shared,
            location,
            links,
            base: base.to_owned(),
            key: key.to_owned(),
            tasks,
        })
    }

    /// DELETE the session; the HTTP status.
    pub async fn delete(&self) -> anyhow::Result<u16> {
        let resp = reqwest::Client::new()
            .delete(format!("{}{}", self.base, self.location))
            .bearer_auth(&self.key)
            .send()
            .await?;
        Ok(resp.status().as_u16())
    }
}

/// A WHEP receiver on webrtc-rs: a receive-only offer (one audio, one video m-line) to
/// `/whep/{meeting}` with a viewer link's token; what arrives is recorded by sender.
pub struct WhepReceiver {
    pub pc: Arc<RTCPeerConnection>,
    pub shared: Arc<Shared>,
    pub location: String,
}

impl WhepReceiver {
    /// The POST's reply, and the receiver when it was `201`.
    pub async fn receive(
        base: &str,
        meeting: &str,
        token: &str,
    ) -> anyhow::Result<(WhipReply, Option<Self>)> {
        use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
        let pc = new_pc().await?;
        let shared = Arc::new(Shared::default());
        for kind in [RTPCodecType::Audio, RTPCodecType::Video] {
            pc.add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    send_encodings: vec![],
                }),
            )
            .await?;
        }
        record_tracks(&pc, &shared);
        let offer = pc.create_offer(None).await?;
        let mut gathered = pc.gathering_complete_promise().await;
        pc.set_local_description(offer).await?;
        let _ = gathered.recv().await;
        let local = pc.local_description().await.context("no local offer")?;
        let reply = http_offer(base, &format!("/whep/{meeting}"), Some(token), &local.sdp).await?;
        if reply.status != 201 {
            return Ok((reply, None));
        }
        pc.set_remote_description(RTCSessionDescription::answer(reply.body.clone())?)
            .await?;
        let location = reply.location.clone().context("201 without Location")?;
        Ok((
            reply,
            Some(Self {
                pc,
                shared,
                location,
            }),
        ))
    }

    pub fn from(&self, publisher: &str) -> FromPublisher {
        self.shared.from(publisher)
    }
}
