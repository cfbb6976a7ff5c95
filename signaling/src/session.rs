//! One WebSocket connection: the protocol state machine of `PROTOCOL.md`.
//!
//! Generic over the socket's `Sink`/`Stream` halves (axum `examples/testing-websockets`),
//! so the whole exchange is testable with channels. Every bad input yields an `error`
//! message and a log line; only a wrong protocol version or a lost media session ends the
//! connection.

use std::sync::Arc;

use cauhop_protocol::{
    ClientMsg, ErrorCode, MAX_MESSAGE_BYTES, MediaKind, PROTOCOL_VERSION, ServerMsg, SlotSource,
};
use cauhop_sfu::{OfferOutcome, ParticipantId, SfuError, SfuEvent, TrackKind, ViewHints};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tracing::{debug, info, warn};

use crate::AppState;
use crate::admission::JoinRequest;
use crate::entry::{self, Joined};
use crate::outbox::{OUTBOX_CAPACITY, Outbox};
use crate::session_limits::{
    JOIN_WITHIN, LogBudget, MESSAGE_CHARS, MESSAGES_PER_SEC, MessageRate, Verdict, clip, clip_to,
};
use crate::waiting_sockets::Waiting;

/// A frame as the session sees it, independent of the WebSocket library.
#[derive(Debug)]
pub enum Frame {
    Text(String),
    Binary(usize),
    Close,
}

/// A frame the WebSocket layer could not read: the code the client is told, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    pub code: ErrorCode,
    pub message: String,
}

enum Flow {
    Continue,
    End,
}

/// Serve one connection. `waiting` counts it among the sockets that have not joined yet
/// and is let go at the join.
pub async fn run<S, R>(
    state: Arc<AppState>,
    mut sink: S,
    mut stream: R,
    peer: String,
    mut waiting: Option<Waiting>,
) where
    S: Sink<String> + Unpin + Send + 'static,
    R: Stream<Item = Result<Frame, ReadError>> + Unpin,
{
    let (out_tx, mut out_rx) = Outbox::new(OUTBOX_CAPACITY);
    let (done_tx, mut writer_done) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn(async move {
        let _done = done_tx;
        while let Some(msg) = out_rx.recv().await {
            let last = matches!(
                msg,
                ServerMsg::MeetingEnded { .. } | ServerMsg::Error { fatal: true, .. }
            );
            if sink.send(msg.to_json()).await.is_err() || last {
                break;
            }
        }
        let _ = sink.close().await;
    });

    let mut joined: Option<Joined> = None;
    let mut shutdown = state.shutdown.clone();
    let conn = Conn {
        peer: peer.clone(),
        out: out_tx.clone(),
        log: LogBudget::default(),
        state: state.clone(),
    };
    state.metrics.websockets.inc();
    let mut rate = MessageRate::new(std::time::Instant::now());
    let mut join_by = tokio::time::Instant::now() + JOIN_WITHIN;
    loop {
        let waiting_for_join = joined.is_none();
        let media_event = async {
            match joined.as_mut() {
                Some(j) => j.media.recv().await,
                None => std::future::pending().await,
            }
        };
        let flow = tokio::select! {
            frame = stream.next() => match frame {
                None | Some(Ok(Frame::Close)) => Flow::End,
                Some(Err(e)) => {
                    if conn.log.allow() {
                        warn!(%peer, "websocket read failed: {}", clip_to(&e.message, MESSAGE_CHARS));
                    }
                    out_tx.send(ServerMsg::fatal(e.code, clip_to(&format!("connection closed: {}", e.message), MESSAGE_CHARS)));
                    Flow::End
                }
                Some(Ok(frame)) => match rate.take(std::time::Instant::now()) {
                    Verdict::Handle => match frame {
                        Frame::Binary(n) => {
                            conn.err(ErrorCode::BinaryFrame, format!("binary frame of {n} bytes refused: binary frames are not part of the protocol; send JSON text"));
                            Flow::Continue
                        }
                        Frame::Text(text) => {
                            let was_joined = joined.is_some();
                            let flow = handle_text(&state, &conn, &mut joined, &text).await;
                            if joined.is_some() {
                                drop(waiting.take());
                            }
                            // Each join attempt (a refused one too) gives another 10 s.
                            if !was_joined {
                                join_by = tokio::time::Instant::now() + JOIN_WITHIN;
                            }
                            flow
                        }
                        Frame::Close => Flow::End,
                    },
                    Verdict::Drop => {
                        conn.err(ErrorCode::RateLimited, format!("over {MESSAGES_PER_SEC} messages a second; message dropped"));
                        Flow::Continue
                    }
                    Verdict::Close => {
                        warn!(%peer, "connection closed: message flood");
                        out_tx.send(ServerMsg::fatal(ErrorCode::RateLimited, "too many messages; connection closed"));
                        Flow::End
                    }
                },
            },
            // A socket that never joins costs a task and a descriptor: closed quietly (a
            // page waiting for its meeting's lobby opens a new one when it retries).
            () = tokio::time::sleep_until(join_by), if waiting_for_join => {
                debug!(%peer, "no join within {JOIN_WITHIN:?}; connection closed");
                Flow::End
            }
            ev = media_event => match ev {
                Some(ev) => handle_media_event(&state, &out_tx, joined.as_ref(), ev),
                None => Flow::End,
            },
            // The writer stops after a final message (meeting ended, fatal error): so do we.
            _ = &mut writer_done => Flow::End,
            // Its credential was withdrawn (`Registry::eject`), or it fell too far behind
            // reading (`Outbox`).
            () = out_tx.ended() => {
                info!(%peer, "session ended by the bridge (credential withdrawn or client not reading)");
                Flow::End
            }
            _ = shutdown.changed() => {
                out_tx.send(ServerMsg::MeetingEnded { reason: "server_shutdown".into() });
                Flow::End
            }
        };
        if matches!(flow, Flow::End) {
            break;
        }
    }
    if let Some(j) = joined {
        entry::leave(&state, j).await;
    }
    state.metrics.websockets.dec();
    if conn.log.suppressed() > 0 {
        info!(%peer, suppressed = conn.log.suppressed(), "errors of this connection not logged one by one");
    }
    drop(conn);
    drop(out_tx);
    // A client that does not read would hold the writer (and its socket) forever.
    let abort = writer.abort_handle();
    let last_messages = tokio::time::timeout(WRITER_GRACE, writer);
    tokio::pin!(last_messages);
    // Meanwhile, and for a moment after our close frame, read (and drop) whatever the
    // client still sends: a socket closed with unread input is reset, and the reset
    // throws away, at the client, the very messages that say why it was closed. A
    // client that reads them answers our close frame, which ends the stream.
    let mut reading = true;
    let mut linger_until: Option<tokio::time::Instant> = None;
    loop {
        let linger = linger_until.unwrap_or_else(|| tokio::time::Instant::now() + WRITER_GRACE);
        tokio::select! {
            written = &mut last_messages, if linger_until.is_none() => {
                if written.is_err() {
                    abort.abort();
                    debug!(%peer, "writer stopped: the client was not reading");
                }
                if !reading {
                    break;
                }
                linger_until = Some(tokio::time::Instant::now() + CLOSE_LINGER);
            }
            frame = stream.next(), if reading => {
                if frame.is_none() {
                    reading = false;
                    if linger_until.is_some() {
                        break;
                    }
                }
            }
            () = tokio::time::sleep_until(linger), if linger_until.is_some() => break,
        }
    }
}

/// How long the last messages (a final error, `meeting_ended`) may take to leave.
const WRITER_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
/// How long, after them, the client has to answer the close frame.
const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// One connection's ways to answer: its outbox, and its share of the log.
struct Conn {
    peer: String,
    out: Outbox,
    log: LogBudget,
    state: Arc<AppState>,
}

/// The protocol's name of an error code (`bad_message`), for metrics' labels.
fn code_name(code: ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl Conn {
    fn metrics_code(&self, code: ErrorCode) {
        let m = &self.state.metrics;
        crate::metrics::Metrics::inc(&m.signaling_errors, "code", &code_name(code));
    }

    /// An error for the client, and a log line while the connection's log budget lasts.
    fn err(&self, code: ErrorCode, message: String) {
        self.metrics_code(code);
        let message = clip_to(&message, MESSAGE_CHARS);
        if self.log.allow() {
            warn!(peer = %self.peer, ?code, "{message}");
        }
        self.out.send(ServerMsg::error(code, message));
    }
}

fn kind(k: TrackKind) -> MediaKind {
    match k {
        TrackKind::Audio => MediaKind::Audio,
        TrackKind::Video => MediaKind::Video,
    }
}

fn handle_media_event(
    state: &AppState,
    out: &Outbox,
    joined: Option<&Joined>,
    ev: SfuEvent,
) -> Flow {
    let Some(j) = joined else {
        return Flow::Continue;
    };
    let me = j.id.to_string();
    match ev {
        SfuEvent::Offer(sdp) => {
            out.send(ServerMsg::Offer { sdp });
        }
        SfuEvent::Published { mid, kind: k } => state.registry.broadcast(
            &j.meeting,
            Some(&me),
            ServerMsg::TrackPublished {
                participant: me.clone(),
                kind: kind(k),
                mid,
                stream: me.clone(),
            },
        ),
        SfuEvent::Unpublished { mid, kind: k } => state.registry.broadcast(
            &j.meeting,
            Some(&me),
            ServerMsg::TrackUnpublished {
                participant: me.clone(),
                kind: kind(k),
                mid,
            },
        ),
        SfuEvent::Connected => debug!(participant = %me, "media connected"),
        SfuEvent::Interrupted => info!(participant = %me, "media path interrupted; waiting for it"),
        SfuEvent::Resumed { after } => {
            info!(participant = %me, "media path resumed after {:.1} s", after.as_secs_f64())
        }
        SfuEvent::Bandwidth {
            audio_only,
            estimate_kbps,
        } => {
            info!(participant = %me, estimate_kbps, "audio only: {audio_only}");
            out.send(ServerMsg::Bandwidth {
                audio_only,
                kbps: estimate_kbps,
            });
        }
        SfuEvent::Speaker { participant } => {
            out.send(ServerMsg::Speaker {
                participant: participant.map(|p| p.to_string()),
            });
        }
        SfuEvent::LinkQuality {
            participant,
            quality,
        } => {
            out.send(ServerMsg::LinkQuality {
                participant: participant.to_string(),
                quality: quality.as_str().to_owned(),
            });
        }
        SfuEvent::Slots(map) => {
            out.send(ServerMsg::Slots {
                audio: map.audio.iter().map(|a| a.map(|p| p.to_string())).collect(),
                video: map
                    .video
                    .iter()
                    .map(|v| {
                        v.map(|v| SlotSource {
                            participant: v.participant.to_string(),
                            screen: v.screen,
                        })
                    })
                    .collect(),
            });
        }
        SfuEvent::Layers { mid, active } => {
            out.send(ServerMsg::Layers { mid, active });
        }
        SfuEvent::Disconnected { reason } => {
            warn!(participant = %me, %reason, "media connection lost");
            out.send(ServerMsg::fatal(
                ErrorCode::Internal,
                format!("media connection lost ({reason}); rejoin"),
            ));
            return Flow::End;
        }
    }
    Flow::Continue
}

/// More tiles than any screen shows; a longer list is a client bug.
const MAX_TILES: usize = 500;
/// More video slots than a session has.
const MAX_SLOTS: usize = 32;

/// `p12` -> participant 12 (the form `ParticipantId` displays as).
pub(crate) fn parse_participant(s: &str) -> Option<ParticipantId> {
    s.strip_prefix('p')?.parse().ok().map(ParticipantId)
}

pub(crate) fn sfu_error(e: &SfuError) -> ErrorCode {
    match e {
        SfuError::BadSdp(_) => ErrorCode::BadSdp,
        SfuError::NoOfferPending => ErrorCode::NoOfferPending,
        _ => ErrorCode::Internal,
    }
}

async fn handle_text(
    state: &Arc<AppState>,
    conn: &Conn,
    joined: &mut Option<Joined>,
    text: &str,
) -> Flow {
    let (out, peer) = (&conn.out, conn.peer.as_str());
    let reply_err = |code: ErrorCode, message: String| conn.err(code, message);
    if text.len() > MAX_MESSAGE_BYTES {
        reply_err(
            ErrorCode::TooLarge,
            format!(
                "message of {} bytes is over the {MAX_MESSAGE_BYTES}-byte limit",
                text.len()
            ),
        );
        return Flow::Continue;
    }
    let msg = match ClientMsg::parse(text) {
        Ok(m) => m,
        Err(e) => {
            reply_err(
                ErrorCode::BadMessage,
                format!("unreadable message: {}", clip(&e)),
            );
            return Flow::Continue;
        }
    };
    match (msg, joined.as_ref()) {
        (ClientMsg::Join { .. }, Some(_)) => {
            reply_err(ErrorCode::OutOfOrder, "already joined".into());
        }
        (
            ClientMsg::Join {
                v,
                meeting,
                name,
                site,
                token,
                key,
            },
            None,
        ) => {
            if v != PROTOCOL_VERSION {
                warn!(%peer, v, "unsupported protocol version");
                out.send(ServerMsg::fatal(
                    ErrorCode::UnsupportedVersion,
                    format!("this bridge speaks protocol version {PROTOCOL_VERSION}, not {v}; reload the page"),
                ));
                return Flow::End;
            }
            let name = name.trim().to_owned();
            let site = site.trim().to_owned();
            if name.is_empty() || name.chars().count() > 64 || site.chars().count() > 64 {
                reply_err(
                    ErrorCode::BadName,
                    "name must be 1-64 characters, site at most 64".into(),
                );
                return Flow::Continue;
            }
            let request = JoinRequest {
                meeting: &meeting,
                token: token.as_deref(),
                key: key.as_deref(),
                name: &name,
                site: &site,
            };
            match entry::enter(state, peer, out, request, entry::Way::Socket).await {
                Ok(e) => {
                    // The welcome was queued when the room took us in (`entry::enter`).
                    if let Some(st) = e.state {
                        out.send(st);
                    }
                    for m in e.controls {
                        out.send(m);
                    }
                    // After the welcome, so the page that opens the room sees the mark.
                    crate::record::start_if_wanted(state, &e.joined.meeting, e.joined.meeting_id)
                        .await;
                    *joined = Some(e.joined);
                }
                Err(r) => {
                    out.send(ServerMsg::Error {
                        code: r.code,
                        message: r.message,
                        fatal: false,
                        at: r.at,
                    });
                    return Flow::Continue;
                }
            }
        }
        (ClientMsg::Ping, _) => {
            out.send(ServerMsg::Pong);
        }
        (ClientMsg::Leave, _) => return Flow::End,
        (_, None) => {
            reply_err(ErrorCode::OutOfOrder, "send join first".into());
        }
        (ClientMsg::Offer { sdp }, Some(j)) => match state.sfu.offer(j.id, sdp).await {
            Ok(OfferOutcome::Answer(sdp)) => {
                out.send(ServerMsg::Answer { sdp });
            }
            Ok(OfferOutcome::Ignored) => {
                debug!(participant = %j.id, "offer ignored on glare; the client answers ours first")
            }
            Err(e) => reply_err(sfu_error(&e), e.to_string()),
        },
        (ClientMsg::Answer { sdp }, Some(j)) => {
            if let Err(e) = state.sfu.answer(j.id, sdp).await {
                reply_err(sfu_error(&e), e.to_string());
            }
        }
        (
            ClientMsg::View {
                audio_only,
                low_data,
                hidden,
                tiles,
                pinned,
                slots,
            },
            Some(j),
        ) => {
            if slots.len() > MAX_SLOTS {
                reply_err(
                    ErrorCode::BadMessage,
                    format!("view lists {} slots; at most {MAX_SLOTS}", slots.len()),
                );
                return Flow::Continue;
            }
            if tiles.len() > MAX_TILES {
                reply_err(
                    ErrorCode::BadMessage,
                    format!("view lists {} tiles; at most {MAX_TILES}", tiles.len()),
                );
                return Flow::Continue;
            }
            // Ids of participants who already left are normal (the layout lags a
            // moment); ids that are not ids at all are the client's mistake.
            let mut parsed = Vec::with_capacity(tiles.len());
            for t in &tiles {
                match parse_participant(&t.participant) {
                    Some(p) => parsed.push((p, t.height)),
                    None => {
                        reply_err(
                            ErrorCode::BadMessage,
                            format!("view: \"{}\" is not a participant id", t.participant),
                        );
                        return Flow::Continue;
                    }
                }
            }
            let hints = ViewHints {
                audio_only,
                low_data,
                hidden,
                tiles: parsed,
                pinned: pinned.as_deref().and_then(parse_participant),
                slots,
            };
            if let Err(e) = state.sfu.view(j.id, hints).await {
                reply_err(sfu_error(&e), e.to_string());
            }
        }
        (ClientMsg::Ready { red }, Some(j)) => {
            if let Err(e) = state.sfu.ready(j.id, red).await {
                reply_err(sfu_error(&e), e.to_string());
            }
        }
        (ClientMsg::Mute { audio, video }, Some(j)) => {
            // Unmuting what the chair holds needs the meeting's leave.
            let msg = ClientMsg::Mute { audio, video };
            if crate::chair::own(state, j, &msg, &reply_err).await {
                state
                    .registry
                    .set_mute(&j.meeting, &j.id.to_string(), audio, video);
            }
        }
        (msg, Some(j)) if crate::chair::is_chair_action(&msg) => {
            if !crate::chair::may_chair(state, j) {
                reply_err(
                    ErrorCode::Forbidden,
                    "only the chair (or the secretary the chair named) can do this".into(),
                );
                return Flow::Continue;
            }
            let actor = crate::chair::Actor::of(j, peer);
            crate::chair::act(state, &actor, msg, &reply_err).await;
        }
        (
            msg @ (ClientMsg::RaiseHand | ClientMsg::LowerHand { .. } | ClientMsg::Present),
            Some(j),
        ) => {
            crate::chair::own(state, j, &msg, &reply_err).await;
        }
        (msg, Some(_)) => {
            // Every chair action is matched above; nothing else is left.
            debug!(?msg, "unhandled message");
        }
    }
    Flow::Continue
}
