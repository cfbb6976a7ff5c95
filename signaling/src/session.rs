//! One WebSocket connection: the protocol state machine of `PROTOCOL.md`.
//!
//! Generic over the socket's `Sink`/`Stream` halves (axum `examples/testing-websockets`),
//! so the whole exchange is testable with channels. Every bad input yields an `error`
//! message and a log line; only a wrong protocol version or a lost media session ends the
//! connection.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use cauhop_protocol::{
    ClientMsg, ErrorCode, MAX_MESSAGE_BYTES, MediaKind, PROTOCOL_VERSION, ParticipantInfo,
    ServerMsg,
};
use cauhop_sfu::{OfferOutcome, ParticipantId, SfuError, SfuEvent, TrackKind};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::AppState;

/// A frame as the session sees it, independent of the WebSocket library.
#[derive(Debug)]
pub enum Frame {
    Text(String),
    Binary(usize),
    Close,
}

struct Joined {
    id: ParticipantId,
    meeting: String,
    media: mpsc::UnboundedReceiver<SfuEvent>,
}

enum Flow {
    Continue,
    End,
}

pub async fn run<S, R, E>(state: Arc<AppState>, mut sink: S, mut stream: R, peer: String)
where
    S: Sink<String> + Unpin + Send + 'static,
    R: Stream<Item = Result<Frame, E>> + Unpin,
    E: std::fmt::Display,
{
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<ServerMsg>();
    let writer = tokio::spawn(async move {
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
    loop {
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
                    warn!(%peer, "websocket read failed: {e}");
                    let _ = out_tx.send(ServerMsg::Error {
                        code: ErrorCode::TooLarge,
                        message: format!("connection closed: {e}"),
                        fatal: true,
                    });
                    Flow::End
                }
                Some(Ok(Frame::Binary(n))) => {
                    warn!(%peer, bytes = n, "binary frame refused");
                    let _ = out_tx.send(ServerMsg::error(ErrorCode::BinaryFrame, "binary frames are not part of the protocol; send JSON text"));
                    Flow::Continue
                }
                Some(Ok(Frame::Text(text))) => {
                    handle_text(&state, &out_tx, &mut joined, &text, &peer).await
                }
            },
            ev = media_event => match ev {
                Some(ev) => handle_media_event(&state, &out_tx, joined.as_ref(), ev),
                None => Flow::End,
            },
            _ = shutdown.changed() => {
                let _ = out_tx.send(ServerMsg::MeetingEnded { reason: "server_shutdown".into() });
                Flow::End
            }
        };
        if matches!(flow, Flow::End) {
            break;
        }
    }
    if let Some(j) = joined {
        state.sfu.leave(j.id).await;
        state.registry.leave(&j.meeting, &j.id.to_string(), "left");
        info!(participant = %j.id, meeting = %j.meeting, "left meeting");
    }
    drop(out_tx);
    let _ = writer.await;
}

fn kind(k: TrackKind) -> MediaKind {
    match k {
        TrackKind::Audio => MediaKind::Audio,
        TrackKind::Video => MediaKind::Video,
    }
}

fn handle_media_event(
    state: &AppState,
    out: &mpsc::UnboundedSender<ServerMsg>,
    joined: Option<&Joined>,
    ev: SfuEvent,
) -> Flow {
    let Some(j) = joined else {
        return Flow::Continue;
    };
    let me = j.id.to_string();
    match ev {
        SfuEvent::Offer(sdp) => {
            let _ = out.send(ServerMsg::Offer { sdp });
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
        SfuEvent::Disconnected { reason } => {
            warn!(participant = %me, %reason, "media connection lost");
            let _ = out.send(ServerMsg::Error {
                code: ErrorCode::Internal,
                message: format!("media connection lost ({reason}); rejoin"),
                fatal: true,
            });
            return Flow::End;
        }
    }
    Flow::Continue
}

fn sfu_error(e: &SfuError) -> ErrorCode {
    match e {
        SfuError::BadSdp(_) => ErrorCode::BadSdp,
        SfuError::NoOfferPending => ErrorCode::NoOfferPending,
        _ => ErrorCode::Internal,
    }
}

async fn handle_text(
    state: &Arc<AppState>,
    out: &mpsc::UnboundedSender<ServerMsg>,
    joined: &mut Option<Joined>,
    text: &str,
    peer: &str,
) -> Flow {
    let reply_err = |code: ErrorCode, message: String| {
        warn!(%peer, ?code, "{message}");
        let _ = out.send(ServerMsg::error(code, message));
    };
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
            reply_err(ErrorCode::BadMessage, format!("unreadable message: {e}"));
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
            },
            None,
        ) => {
            if v != PROTOCOL_VERSION {
                warn!(%peer, v, "unsupported protocol version");
                let _ = out.send(ServerMsg::Error {
                    code: ErrorCode::UnsupportedVersion,
                    message: format!("this bridge speaks protocol version {PROTOCOL_VERSION}, not {v}; reload the page"),
                    fatal: true,
                });
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
            if let Err(refusal) = state.admission.admit(&meeting) {
                reply_err(ErrorCode::UnknownMeeting, refusal.0);
                return Flow::Continue;
            }
            let id = ParticipantId(state.next_participant.fetch_add(1, Ordering::Relaxed));
            let media = match state.sfu.join(&meeting, id).await {
                Ok(rx) => rx,
                Err(e) => {
                    reply_err(sfu_error(&e), e.to_string());
                    return Flow::Continue;
                }
            };
            let info = ParticipantInfo {
                id: id.to_string(),
                name,
                site,
                audio_muted: false,
                video_muted: false,
            };
            info!(participant = %id, %meeting, name = %info.name, site = %info.site, %peer, "joined meeting");
            let present = state.registry.join(&meeting, info, out.clone());
            let _ = out.send(ServerMsg::Welcome {
                v: PROTOCOL_VERSION,
                meeting: meeting.clone(),
                participant: id.to_string(),
                participants: present,
            });
            *joined = Some(Joined { id, meeting, media });
        }
        (ClientMsg::Ping, _) => {
            let _ = out.send(ServerMsg::Pong);
        }
        (ClientMsg::Leave, _) => return Flow::End,
        (_, None) => {
            reply_err(ErrorCode::OutOfOrder, "send join first".into());
        }
        (ClientMsg::Offer { sdp }, Some(j)) => match state.sfu.offer(j.id, sdp).await {
            Ok(OfferOutcome::Answer(sdp)) => {
                let _ = out.send(ServerMsg::Answer { sdp });
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
        (ClientMsg::Ready, Some(j)) => {
            if let Err(e) = state.sfu.ready(j.id).await {
                reply_err(sfu_error(&e), e.to_string());
            }
        }
        (ClientMsg::Mute { audio, video }, Some(j)) => {
            state
                .registry
                .set_mute(&j.meeting, &j.id.to_string(), audio, video);
        }
    }
    Flow::Continue
}
