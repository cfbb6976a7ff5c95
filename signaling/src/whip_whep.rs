//! WHIP ingest (RFC 9725) and WHEP egress: a studio encoder, OBS or a GStreamer device
//! publishes into a scheduled meeting with one HTTP POST of its SDP offer; a hall display
//! or a recorder receives the meeting the same way.
//!
//! WHEP: `POST /whep/{meeting}` with `Authorization: Bearer <join link token>` of a link
//! issued with the **viewer** role, and a receive-only offer: its audio and video m-lines
//! become the session's slots in order (the first video one is the main picture: the
//! floor, else the speaker, else the chair; the audio ones the loudest voices). A viewer
//! is never on the attendance list. `DELETE` (same token) and `PATCH` as for WHIP.
//!
//! `POST /whip/{meeting}` with `Authorization: Bearer <device key>` (the hall's encoder is
//! a room device of its site: it appears as that site's participant under the device's
//! name, and does not take the place of the site's page) and `Content-Type:
//! application/sdp`; `201 Created` with the answer and a `Location` for the session, which
//! `DELETE` (same key) ends at once. The session is publish-only: WHIP has no way for the
//! bridge to offer, so it receives nothing. The bridge takes the client's candidates from
//! the offer (it is ICE-lite, its own candidates are in the answer), so `PATCH` (trickle,
//! ICE restart) answers 405: a client that lost its path posts again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use cauhop_protocol::{ErrorCode, MAX_MESSAGE_BYTES, ServerMsg};
use cauhop_sfu::{OfferOutcome, SfuEvent};
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::AppState;
use crate::admission::JoinRequest;
use crate::entry::{self, Refused, Way};
use crate::outbox::{OUTBOX_CAPACITY, Outbox};

/// The live WHIP sessions by their resource id.
#[derive(Default)]
pub struct WhipSessions {
    inner: Mutex<HashMap<String, Live>>,
}

struct Live {
    way: Way,
    meeting: String,
    /// The device key that opened it: only it may delete the session.
    key: String,
    /// Ends the session; the session answers once it has left the meeting.
    stop: oneshot::Sender<oneshot::Sender<()>>,
}

impl WhipSessions {
    pub fn len(&self) -> usize {
        self.inner.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/whip/{meeting}", post(whip).options(preflight))
        .route(
            "/whip/{meeting}/{session}",
            delete(end_whip).patch(patch).options(preflight),
        )
        .route("/whep/{meeting}", post(whep).options(preflight))
        .route(
            "/whep/{meeting}/{session}",
            delete(end_whep).patch(patch).options(preflight),
        )
}

/// CORS for browser-based WHIP clients (RFC 9725 §4.8): the key is the credential, not a
/// cookie, so any origin may call.
fn cors(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, Link"),
    );
    r
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    cors(
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            message.into(),
        )
            .into_response(),
    )
}

async fn preflight() -> Response {
    cors(
        (
            StatusCode::NO_CONTENT,
            [
                (
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    "POST, DELETE, PATCH, OPTIONS",
                ),
                (
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    "Authorization, Content-Type, If-Match",
                ),
                (header::ACCESS_CONTROL_MAX_AGE, "86400"),
                (
                    header::HeaderName::from_static("accept-post"),
                    "application/sdp",
                ),
            ],
        )
            .into_response(),
    )
}

/// The device key of `Authorization: Bearer <key>`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = v.split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

fn unauthorized(message: &str) -> Response {
    let mut r = text(StatusCode::UNAUTHORIZED, message);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"cauhop\""),
    );
    r
}

/// The HTTP status for a refused join.
fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::UnknownMeeting => StatusCode::NOT_FOUND,
        ErrorCode::NotInvited
        | ErrorCode::MeetingClosed
        | ErrorCode::NotOpen
        | ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Full => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::BadSdp | ErrorCode::BadMessage => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn refused(r: Refused) -> Response {
    if r.code == ErrorCode::Unauthorized {
        return unauthorized(&r.message);
    }
    let mut resp = text(status_of(r.code), r.message);
    // A meeting that has not opened yet: when to come back.
    if r.code == ErrorCode::NotOpen
        && let Some(at) = r.at.and_then(|a| HeaderValue::from_str(&a).ok())
    {
        resp.headers_mut()
            .insert(header::HeaderName::from_static("x-meeting-opens-at"), at);
    }
    resp
}

async fn whip(
    State(state): State<Arc<AppState>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Path(meeting): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    start(state, from, meeting, headers, body, Way::Whip).await
}

async fn whep(
    State(state): State<Arc<AppState>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Path(meeting): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    start(state, from, meeting, headers, body, Way::Whep).await
}

/// The path prefix of a way's resources.
fn prefix(way: Way) -> &'static str {
    if way == Way::Whep { "whep" } else { "whip" }
}

async fn start(
    state: Arc<AppState>,
    from: SocketAddr,
    meeting: String,
    headers: HeaderMap,
    body: Bytes,
    way: Way,
) -> Response {
    let peer = state.client_addr(from, &headers).to_string();
    let Some(key) = bearer(&headers) else {
        return unauthorized(if way == Way::Whep {
            "a WHEP client authenticates with a viewer join link: Authorization: Bearer <token>"
        } else {
            "a WHIP client authenticates with its room device key: Authorization: Bearer <key>"
        });
    };
    let sdp_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("application/sdp"));
    if !sdp_type {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the offer must be sent as Content-Type: application/sdp",
        );
    }
    if body.len() > MAX_MESSAGE_BYTES {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "an offer of {} bytes is over the {MAX_MESSAGE_BYTES}-byte limit",
                body.len()
            ),
        );
    }
    let Ok(offer) = std::str::from_utf8(&body) else {
        return text(StatusCode::BAD_REQUEST, "the offer is not UTF-8 text");
    };
    let (out, mut told) = Outbox::new(OUTBOX_CAPACITY);
    let (token, device_key) = if way == Way::Whep {
        (Some(key), None)
    } else {
        (None, Some(key))
    };
    let request = JoinRequest {
        meeting: &meeting,
        token,
        key: device_key,
        name: if way == Way::Whep { "WHEP" } else { "WHIP" },
        site: "",
    };
    let entered = match entry::enter(&state, &peer, &out, request, way).await {
        Ok(e) => e,
        Err(r) => return refused(r),
    };
    let mut joined = entered.joined;
    let answer = match state.sfu.offer(joined.id, offer.to_owned()).await {
        Ok(OfferOutcome::Answer(sdp)) => sdp,
        Ok(OfferOutcome::Ignored) => {
            entry::leave(&state, joined).await;
            return text(StatusCode::CONFLICT, "the session is negotiating already");
        }
        Err(e) => {
            warn!(%peer, participant = %joined.id, ?way, "offer refused: {e}");
            entry::leave(&state, joined).await;
            return text(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let session = {
        let bytes: [u8; 16] = rand::random();
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let (stop, mut stopped) = oneshot::channel();
    if let Ok(mut live) = state.whip.inner.lock() {
        live.insert(
            session.clone(),
            Live {
                way,
                meeting: meeting.clone(),
                key: key.to_owned(),
                stop,
            },
        );
    }
    info!(%peer, participant = %joined.id, meeting = %meeting, ?way, "HTTP media session started");
    // A hall's encoder publishing alone still opens the meeting's record.
    if way == entry::Way::Whip {
        crate::record::start_if_wanted(&state, &joined.meeting, joined.meeting_id).await;
    }
    // TURN servers for the client's later ICE restarts (RFC 9725 4.6), to authenticated
    // sessions only: credentials in a preflight would make coturn an open relay.
    let links: Vec<String> = state
        .options
        .turn
        .as_ref()
        .map(|t| {
            let s = t.ice_server_now(&joined.id.to_string());
            s.urls
                .iter()
                .map(|u| {
                    format!(
                        "<{u}>; rel=\"ice-server\"; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                        s.username, s.credential
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    // The session lives until DELETE, the media path is lost, the credential is
    // withdrawn or the meeting ends.
    let (st, id) = (state.clone(), session.clone());
    tokio::spawn(async move {
        let mut deleted = None;
        let why = loop {
            tokio::select! {
                ack = &mut stopped => {
                    if let Ok(ack) = ack {
                        deleted = Some(ack);
                    }
                    break "deleted";
                }
                ev = joined.media.recv() => match ev {
                    Some(SfuEvent::Disconnected { .. }) | None => break "media lost",
                    Some(_) => {}
                },
                msg = told.recv() => match msg {
                    Some(ServerMsg::MeetingEnded { .. }) | None => break "meeting ended",
                    Some(ServerMsg::Error { fatal: true, .. }) => break "refused by the bridge",
                    Some(_) => {}
                },
                () = out.ended() => break "credential withdrawn",
            }
        };
        if let Ok(mut live) = st.whip.inner.lock() {
            live.remove(&id);
        }
        info!(participant = %joined.id, ?way, "HTTP media session ended: {why}");
        entry::leave(&st, joined).await;
        if let Some(ack) = deleted {
            let _ = ack.send(());
        }
    });
    let location = format!("/{}/{meeting}/{session}", prefix(way));
    let mut r = cors(
        (
            StatusCode::CREATED,
            [(header::CONTENT_TYPE, "application/sdp")],
            answer,
        )
            .into_response(),
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    for link in links {
        if let Ok(v) = HeaderValue::from_str(&link) {
            r.headers_mut().append(header::LINK, v);
        }
    }
    r
}

/// Equal without telling, by timing, how much of a guessed key matched.
fn same_key(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn end_whip(
    State(state): State<Arc<AppState>>,
    Path((meeting, session)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    end(state, meeting, session, headers, Way::Whip).await
}

async fn end_whep(
    State(state): State<Arc<AppState>>,
    Path((meeting, session)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    end(state, meeting, session, headers, Way::Whep).await
}

async fn end(
    state: Arc<AppState>,
    meeting: String,
    session: String,
    headers: HeaderMap,
    way: Way,
) -> Response {
    let Some(key) = bearer(&headers) else {
        return unauthorized("DELETE needs the credential the session was opened with");
    };
    let live = {
        let Ok(mut map) = state.whip.inner.lock() else {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "session table unavailable",
            );
        };
        match map.get(&session) {
            Some(l) if l.way == way && l.meeting == meeting && same_key(&l.key, key) => {
                map.remove(&session)
            }
            Some(l) if l.way == way && l.meeting == meeting => {
                return unauthorized("this session was opened with another credential");
            }
            _ => None,
        }
    };
    match live {
        Some(l) => {
            // Answer once the participant has left: a client that deletes and at once
            // posts again must not meet its old self on the roster.
            let (ack, left) = oneshot::channel();
            if l.stop.send(ack).is_ok() {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), left).await;
            }
            cors(StatusCode::OK.into_response())
        }
        None => text(StatusCode::NOT_FOUND, "no such session (it may have ended)"),
    }
}

async fn patch() -> Response {
    let mut r = text(
        StatusCode::METHOD_NOT_ALLOWED,
        "this bridge takes candidates in the offer and does not restart ICE over WHIP: \
         DELETE the session and POST a new offer",
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("DELETE, OPTIONS"));
    r
}
