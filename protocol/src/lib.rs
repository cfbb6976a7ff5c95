//! Wire types of the cauhop signaling protocol, version 1.
//!
//! Every WebSocket text frame carries one JSON object with a `type` field. The full
//! contract (ordering, negotiation roles, error codes) is in `signaling/PROTOCOL.md`;
//! these types are its single source of truth on the Rust side, shared by the server,
//! the endpoint agent and the tests so that none of them parses JSON by hand.

pub mod probe;

use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks. A `join` with another version is refused.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest text frame the server accepts, in bytes. SDP for a large meeting stays far below.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Messages a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// First message on a socket: enter a meeting.
    Join {
        v: u32,
        meeting: String,
        name: String,
        #[serde(default)]
        site: String,
        /// A signed join link's token (the `t` parameter of the link). The meeting, site
        /// and role come from it; `meeting` must match.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// A room endpoint's device key, instead of a token.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// An SDP offer describing what the client publishes (client-initiated negotiation).
    Offer { sdp: String },
    /// The answer to an offer the server sent.
    Answer { sdp: String },
    /// The client publishes nothing (yet) and wants the server to offer subscriptions now.
    /// `red`: it decodes RED-wrapped Opus (RFC 2198); the bridge offers RED only to a
    /// client that says so here or lists RED in its own first offer.
    Ready {
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        red: bool,
    },
    /// The client's own mute state, relayed to the others.
    Mute { audio: bool, video: bool },
    /// Keep-alive; answered with `pong`.
    Ping,
    /// Leave the meeting; the server closes the socket afterwards.
    Leave,
    /// Chair only: mute a participant's microphone. Enforced by the bridge (nothing of it
    /// is forwarded), and the participant is told (`held`).
    MuteParticipant { participant: String },
    /// Chair only: let a muted participant's microphone through again.
    UnmuteParticipant { participant: String },
    /// Chair only: mute everyone but the floor holder and the chairs, and every site that
    /// joins after, until `unmute_all`.
    MuteAll,
    /// Chair only: lift every mute the chair set (a site's own mute stays its own).
    UnmuteAll,
    /// Chair only: stop (`stop: true`) or allow again a participant's camera.
    StopCamera {
        participant: String,
        #[serde(default = "yes")]
        stop: bool,
    },
    /// Chair only: end a participant's session; its link cannot rejoin this meeting.
    /// `reason` is shown to them (at most 200 characters).
    Remove {
        participant: String,
        #[serde(default)]
        reason: String,
    },
    /// Chair only: refuse (`true`) or allow again joins of sites not yet in the meeting.
    Lock { locked: bool },
    /// Chair only: whether a site the chair muted may unmute itself.
    SelfUnmute { allowed: bool },
    /// Chair only: name a secretary who has the chair's powers in this meeting (`null`:
    /// nobody). Bound to the participant's credential, so it survives a reconnect.
    NameSecretary { participant: Option<String> },
    /// Chair only: open (`true`) or close a roll call ("điểm danh").
    RollCall { open: bool },
    /// Answer an open roll call: this site is present ("có mặt").
    Present,
    /// Ask for the floor ("xin phát biểu"): joins the speaking queue.
    RaiseHand,
    /// Leave the speaking queue; the chair may lower anyone's hand (`participant`).
    LowerHand {
        #[serde(default)]
        participant: Option<String>,
    },
    /// Chair only: give the floor to a participant (`null` takes it back).
    GrantFloor { participant: Option<String> },
    /// Chair only: move the end of the meeting `minutes` later.
    Extend { minutes: u32 },
    /// Chair only: end the meeting for everyone.
    EndMeeting,
    /// What this client shows, so the bridge sends no video larger than its tiles and
    /// none at all when the user chose audio only or the page is hidden. Sent on change.
    View {
        /// The user's "audio only" switch.
        #[serde(default)]
        audio_only: bool,
        /// The user's "low data" switch: the smallest picture of everyone.
        #[serde(default)]
        low_data: bool,
        /// The page is not visible (another tab, minimised).
        #[serde(default)]
        hidden: bool,
        /// Each shown participant's tile height in device pixels. Empty: no layout yet.
        #[serde(default)]
        tiles: Vec<TileView>,
        /// The participant the user pinned: it takes this page's main slot.
        #[serde(default)]
        pinned: Option<String>,
        /// Tile height per video slot, main first (`v0`, `v1`, ...): the page shows this
        /// many slots. Empty: every slot, sized by `tiles`.
        #[serde(default)]
        slots: Vec<u16>,
    },
}

/// One video tile as the client lays it out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TileView {
    pub participant: String,
    pub height: u16,
}

/// A TURN server the client may relay its media through (a network that lets nothing
/// out but web traffic), as `RTCIceServer` takes it. The credentials are short-lived
/// (the TURN REST API scheme: `username` is `expiry:participant`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

/// Messages the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// Reply to `join`: who you are and who is already there.
    Welcome {
        v: u32,
        meeting: String,
        participant: String,
        participants: Vec<ParticipantInfo>,
        /// Your role: `chair`, `presenter`, `participant` or `viewer`.
        #[serde(default)]
        role: String,
        /// TURN servers for this session, when the bridge has them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
    },
    /// Where a scheduled meeting is: sent after `welcome` and on every change.
    MeetingState {
        title: String,
        /// `lobby` (joined, not started), `open`, `closing` (warned; ends soon).
        phase: String,
        /// RFC 3339, Vietnam time.
        starts_at: String,
        ends_at: String,
    },
    /// The chair asks you to mute your microphone.
    MuteRequest {
        by: String,
    },
    /// Who has the floor now (`null`: nobody in particular), since when (RFC 3339), and
    /// the meeting's limit per turn in seconds (0: none), for the page's timer.
    Floor {
        participant: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<String>,
        #[serde(default, skip_serializing_if = "is_zero")]
        limit_s: u32,
    },
    /// The speaking queue, first raised first. Sent to everyone on change.
    Hands {
        queue: Vec<String>,
    },
    /// What the chair holds of a participant: its microphone (`audio`), its camera
    /// (`video`). Sent to everyone on change; the participant itself mutes what is held
    /// (the bridge forwards none of it anyway).
    Held {
        participant: String,
        audio: bool,
        video: bool,
        /// Whether the participant may lift the microphone hold itself.
        #[serde(default)]
        self_unmute: bool,
    },
    /// A roll call opened (`open: true`, sites confirm with `present`) or closed (with
    /// its result). Sent to everyone, and after `welcome` while one is open.
    RollCall {
        open: bool,
        /// RFC 3339: when it opened.
        started_at: String,
        /// At the close: how many invited sites confirmed, were connected without
        /// confirming, were not connected.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<RollCallCount>,
    },
    /// To the chairs: a participant confirmed the roll call (and to it, as its receipt).
    Present {
        participant: String,
    },
    /// Everything the chair holds, in one message: after `welcome`, and instead of one
    /// `held` per site when the chair mutes or unmutes everyone (270 sites would be
    /// 270 messages to each of 270 pages). Replaces what the page knew.
    HeldAll {
        /// Participants whose microphone the chair holds.
        audio: Vec<String>,
        /// Participants whose camera the chair holds.
        video: Vec<String>,
        self_unmute: bool,
    },
    /// The meeting's audio is being recorded (`on`), since when (RFC 3339); or the
    /// record stopped, and why (`reason`: `setting`, `ended`, `disk_full`, `failed`).
    /// Sent to everyone when it changes and after `welcome` while on: every page shows it.
    Recording {
        on: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The meeting's controls: sent after `welcome` and on every change.
    Controls {
        locked: bool,
        /// Sites the chair muted may unmute themselves.
        self_unmute: bool,
        /// Everyone but the floor and the chairs is muted, newcomers too.
        all_muted: bool,
        /// The participant the chair named secretary (chair's powers), if present.
        secretary: Option<String>,
    },
    /// The server's answer to a client offer.
    Answer {
        sdp: String,
    },
    /// A server-initiated offer: subscriptions were added or removed.
    Offer {
        sdp: String,
    },
    ParticipantJoined {
        participant: ParticipantInfo,
    },
    ParticipantLeft {
        participant: String,
        reason: String,
    },
    /// A participant's track reached the SFU. `stream` is the msid stream id the
    /// subscriber sees on the matching incoming track (the publisher's participant id).
    TrackPublished {
        participant: String,
        kind: MediaKind,
        mid: String,
        stream: String,
    },
    TrackUnpublished {
        participant: String,
        kind: MediaKind,
        mid: String,
    },
    Mute {
        participant: String,
        audio: bool,
        video: bool,
    },
    /// Something the client sent could not be used. `fatal` errors are followed by a close.
    Error {
        code: ErrorCode,
        message: String,
        fatal: bool,
        /// For `not_open`/`meeting_closed`: the instant (RFC 3339) the message refers to,
        /// so the client can show it in the user's own words.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<String>,
    },
    /// The meeting is over for this client (ended, server shutting down).
    MeetingEnded {
        reason: String,
    },
    Pong,
    /// Your link cannot carry video now: you get audio only (`audio_only: true`), until
    /// it can again (`false`, sent when video resumes by itself). `kbps`: the estimate.
    Bandwidth {
        audio_only: bool,
        kbps: u32,
    },
    /// Who is speaking now, from audio levels (`null`: nobody).
    Speaker {
        participant: Option<String>,
    },
    /// Who is in each of your slots now (sent on change). Media arrives in fixed slots:
    /// audio slot `i` is the track whose msid stream id is `a{i}`, video slot `i` the
    /// one with `v{i}`; `v0` is the main picture. `null`: the slot is empty.
    Slots {
        audio: Vec<Option<String>>,
        video: Vec<Option<SlotSource>>,
    },
    /// To a publisher: send only these simulcast layers (rids) of your video track
    /// `mid`; nobody receives the others now. Sent on change; all layers until then.
    Layers {
        mid: String,
        active: Vec<String>,
    },
    /// How well a participant's own link reaches the bridge: `good`, `weak` or `bad`
    /// (loss, round trip and jitter). Sent on change; `good` is assumed until then.
    LinkQuality {
        participant: String,
        quality: String,
    },
}

/// A closed roll call in numbers (sites of the roster).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollCallCount {
    pub present: u32,
    pub connected: u32,
    pub absent: u32,
}

/// What a video slot carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotSource {
    pub participant: String,
    /// The participant's shared screen, not its camera.
    #[serde(default)]
    pub screen: bool,
}

/// One participant as others see them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    pub id: String,
    pub name: String,
    pub site: String,
    /// The district the site belongs to (a district or the province: its own name), so a
    /// page can list a province meeting's sites by district. Empty in ad-hoc rooms.
    #[serde(default)]
    pub district: String,
    pub audio_muted: bool,
    pub video_muted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Audio,
    Video,
}

/// Machine-readable reason in an `error` message; clients translate it for the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame was not JSON, or not a known message, or had wrong field types.
    BadMessage,
    /// The frame was larger than [`MAX_MESSAGE_BYTES`].
    TooLarge,
    /// Binary frames are not part of the protocol.
    BinaryFrame,
    UnsupportedVersion,
    /// A message that needs a joined session arrived before `join`, or `join` came twice.
    OutOfOrder,
    /// Meeting id malformed or not known to this bridge.
    UnknownMeeting,
    /// Display name empty or too long.
    BadName,
    /// The SDP could not be parsed or was refused by the media server.
    BadSdp,
    /// An answer arrived while the server had no offer outstanding.
    NoOfferPending,
    /// The meeting or the server is full.
    Full,
    /// The media server failed; the client should rejoin.
    Internal,
    /// The meeting exists but is not open yet (`at`: when its lobby opens).
    NotOpen,
    /// The meeting is over (`at`: when it ended).
    MeetingClosed,
    /// The join link has expired.
    LinkExpired,
    /// The link or key is not valid (malformed, forged, revoked, or for another meeting).
    Unauthorized,
    /// The site or person is not on this meeting's roster.
    NotInvited,
    /// The action needs another role (only the chair mutes others or ends the meeting).
    Forbidden,
    /// Too many attempts from this address; wait and retry.
    RateLimited,
    /// The same join link was opened again elsewhere (another tab or PC); this session
    /// gave way to it. Final: the client does not rejoin by itself.
    Replaced,
    /// The chair removed this participant (the message says why); its link cannot rejoin
    /// this meeting. Final.
    Removed,
    /// The chair locked the meeting against sites that were not in it yet.
    Locked,
}

fn yes() -> bool {
    true
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ClientMsg {
    /// Parse one text frame; the error string says what was wrong, for the `error` reply.
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }
}

impl ServerMsg {
    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail: no maps with non-string keys, no floats.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{\"type\":\"error\"}"))
    }

    /// An error after which the server closes the connection.
    pub fn fatal(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMsg::Error {
            code,
            message: message.into(),
            fatal: true,
            at: None,
        }
    }

    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMsg::Error {
            code,
            message: message.into(),
            fatal: false,
            at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_round_trips() {
        let text = r#"{"type":"join","v":1,"meeting":"m1","name":"Xã A","site":"Bắc Hà"}"#;
        let msg = ClientMsg::parse(text).expect("valid join");
        assert_eq!(
            msg,
            ClientMsg::Join {
                v: 1,
                meeting: "m1".into(),
                name: "Xã A".into(),
                site: "Bắc Hà".into(),
                token: None,
                key: None,
            }
        );
    }

    #[test]
    fn wrong_types_and_unknown_messages_are_errors() {
        assert!(ClientMsg::parse(r#"{"type":"join","v":"1","meeting":3}"#).is_err());
        assert!(ClientMsg::parse(r#"{"type":"explode"}"#).is_err());
        assert!(ClientMsg::parse("not json").is_err());
        assert!(ClientMsg::parse(r#"{"type":"mute","audio":true,"video":false,"x":1}"#).is_err());
    }

    #[test]
    fn server_messages_are_tagged() {
        let json = ServerMsg::error(ErrorCode::BadSdp, "no m-lines").to_json();
        assert_eq!(
            json,
            r#"{"type":"error","code":"bad_sdp","message":"no m-lines","fatal":false}"#
        );
    }
}
