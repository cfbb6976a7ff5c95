//! cauhop signaling: the HTTP server, the REST API (`/api/v1`), the WebSocket protocol
//! (`PROTOCOL.md`), the scheduler's runtime, and the embedded web client.
//!
//! [`app`] builds the whole router from one [`AppState`]; the binary serves it and tests
//! call it directly.

mod admission;
pub mod api;
pub mod auth;
mod chair;
pub mod client_addr;
mod control;
mod entry;
pub mod https;
pub mod link_history;
pub mod metrics;
pub mod outbox;
pub mod record;
mod record_turn;
mod registry;
pub mod report;
pub mod scheduler;
pub mod session;
pub mod session_limits;
pub mod turn;
pub mod waiting_sockets;
mod web;
pub mod webhooks;
pub mod whip_whep;

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cauhop_sfu::SfuHandle;
use cauhop_store::Store;
use cauhop_store::schedule::ScheduleConfig;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;

pub use admission::{
    Access, Admission, AdmitFuture, Admitted, JoinRequest, Refusal, meeting_state, room_of,
    valid_meeting_id,
};
pub use registry::{Holder, Registry};

use crate::auth::{JoinKeys, JoinTokens, RateLimiter};
use crate::client_addr::TrustedProxies;
use crate::waiting_sockets::{Refused, Waiting, WaitingSockets};

/// Frames larger than this are cut off by the WebSocket layer itself and close the
/// connection; frames between [`cauhop_protocol::MAX_MESSAGE_BYTES`] and this get an
/// `error` reply and the connection lives on. It bounds what one socket can make the
/// server buffer (times `WAITING_TOTAL` sockets before a join), so it stays a small
/// multiple of the largest message.
pub const HARD_FRAME_LIMIT: usize = 4 * cauhop_protocol::MAX_MESSAGE_BYTES;

/// How the server treats meetings and sessions.
#[derive(Debug, Clone)]
pub struct Options {
    /// Ad-hoc rooms without credentials: `None` off (the default for a real bridge),
    /// `Some(None)` any id, `Some(Some(ids))` only these.
    pub ad_hoc: Option<Option<Vec<String>>>,
    pub schedule: ScheduleConfig,
    /// Mark the session cookie `Secure` (browsers then send it over HTTPS and to localhost
    /// only). Turn off only for a plain-HTTP test bridge on a LAN.
    pub secure_cookies: bool,
    /// The keys join links are signed with (never from the store: a backup would hold
    /// them). The binary reads them from the key file or `CAUHOP_JOIN_KEY`; the default
    /// is a random key that lives as long as the process.
    pub join_keys: JoinKeys,
    /// Reverse proxies whose `X-Forwarded-For` names the client (default: loopback).
    pub trusted_proxies: TrustedProxies,
    /// Participants one meeting admits at once, and the whole bridge.
    pub max_per_meeting: usize,
    pub max_participants: usize,
    /// The certificate the bridge serves HTTPS with, when it does (shown to admins).
    pub https: Option<Arc<https::Certificates>>,
    /// TURN servers handed to clients with short-lived credentials (`turn.rs`).
    pub turn: Option<turn::Turn>,
    /// Where meetings' audio records go (`record.rs`); `None`: this bridge records none.
    pub records: Option<record::RecordOptions>,
    /// A scraper of `/metrics` sends this as a bearer token; `None`: only clients on the
    /// bridge's own machine may read it.
    pub metrics_token: Option<String>,
    /// Each participant's link, sampled and kept for the meeting report.
    pub history: link_history::HistoryOptions,
    /// The meeting report's threshold and letterhead.
    pub report: report::ReportOptions,
    /// Where meeting and site events are posted (`webhooks.rs`).
    pub webhooks: webhooks::WebhookOptions,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            ad_hoc: None,
            schedule: ScheduleConfig::default(),
            secure_cookies: true,
            join_keys: JoinKeys::ephemeral(),
            trusted_proxies: TrustedProxies::default(),
            // The province meeting is ~270 sites; room for the chair's office and guests.
            max_per_meeting: 500,
            max_participants: 2000,
            https: None,
            turn: None,
            records: None,
            metrics_token: None,
            history: link_history::HistoryOptions::default(),
            report: report::ReportOptions::default(),
            webhooks: webhooks::WebhookOptions::default(),
        }
    }
}

pub struct AppState {
    pub sfu: SfuHandle,
    pub store: Store,
    pub registry: Registry,
    pub admission: Box<dyn Admission>,
    pub tokens: Arc<JoinTokens>,
    pub schedule: ScheduleConfig,
    pub options: Options,
    pub next_participant: AtomicU64,
    /// Flips to `true` when the server is shutting down; sessions tell their clients.
    pub shutdown: watch::Receiver<bool>,
    login_limit: Mutex<RateLimiter>,
    /// Per username as well: guessing one admin's password from many addresses.
    login_user_limit: Mutex<RateLimiter<String>>,
    join_limit: Mutex<RateLimiter>,
    /// Link-check tickets per room device: each lets a device ask for download trains.
    link_check_limit: Mutex<RateLimiter<i64>>,
    /// WebSockets that have not joined yet, per client address.
    waiting: WaitingSockets,
    /// Live WHIP publishers and WHEP receivers (`whip_whep.rs`).
    pub whip: whip_whep::WhipSessions,
    /// Meetings' audio records being made.
    pub recorders: record::Recorders,
    pub metrics: metrics::Metrics,
    /// Taken around every read-then-write of a meeting's kept controls (`chair.rs`), so
    /// that they are written in the order they changed.
    pub keeping: tokio::sync::Mutex<()>,
    /// Participants' links being sampled (`link_history.rs`).
    pub links: link_history::Links,
    /// Events for other systems, queued (`webhooks.rs`).
    pub webhooks: webhooks::Webhooks,
}

impl AppState {
    /// Build the state (the join-link keys come in `options`, never from the store).
    pub async fn new(
        sfu: SfuHandle,
        store: Store,
        options: Options,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Arc<Self>, cauhop_store::StoreError> {
        let tokens = Arc::new(JoinTokens::new(&options.join_keys));
        let links = link_history::Links::new(options.history.sample_every);
        let webhooks = webhooks::Webhooks::new(&options.webhooks);
        let admission = Box::new(Access {
            store: store.clone(),
            tokens: tokens.clone(),
            schedule: options.schedule,
            ad_hoc: options.ad_hoc.clone(),
        });
        Ok(Arc::new(Self {
            sfu,
            store,
            registry: Registry::default(),
            admission,
            tokens,
            schedule: options.schedule,
            options,
            next_participant: AtomicU64::new(1),
            shutdown,
            // 10 logins at once, then 6 a minute, per address: enough for an office
            // behind one NAT, too slow for guessing passwords.
            login_limit: Mutex::new(RateLimiter::new(10, 6)),
            login_user_limit: Mutex::new(RateLimiter::new(10, 6)),
            // Room PCs rejoin after every drop; 30 at once then 60 a minute per address.
            join_limit: Mutex::new(RateLimiter::new(30, 60)),
            // The agent checks at start-up and before meetings (at most every 30 min),
            // an operator by hand now and then: 6 an hour is plenty.
            link_check_limit: Mutex::new(RateLimiter::per_hour(6, 6)),
            waiting: WaitingSockets::default(),
            whip: whip_whep::WhipSessions::default(),
            recorders: record::Recorders::default(),
            metrics: metrics::Metrics::new(),
            keeping: tokio::sync::Mutex::new(()),
            links,
            webhooks,
        }))
    }

    /// One login attempt from `ip` for `username`: both the address's and the name's
    /// budget must allow it.
    pub fn check_login_rate(&self, ip: IpAddr, username: &str) -> Result<(), Duration> {
        let now = std::time::Instant::now();
        self.login_limit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .check(client_addr::rate_key(ip), now)?;
        self.login_user_limit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .check(username.trim().to_lowercase(), now)
    }

    /// `peer` is the client's address as text ("unknown" when not known).
    pub fn check_join_rate(&self, peer: &str) -> Result<(), Duration> {
        let Ok(addr) = peer.parse::<std::net::SocketAddr>() else {
            return Ok(());
        };
        self.join_limit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .check(client_addr::rate_key(addr.ip()), std::time::Instant::now())
    }

    /// One link-check ticket for room device `endpoint`, or how long to wait.
    pub fn check_link_check_rate(&self, endpoint: i64) -> Result<(), Duration> {
        self.link_check_limit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .check(endpoint, std::time::Instant::now())
    }

    /// The client behind the proxy, for a request that came over TCP from `peer`.
    pub fn client_addr(
        &self,
        peer: std::net::SocketAddr,
        headers: &axum::http::HeaderMap,
    ) -> std::net::SocketAddr {
        self.options.trusted_proxies.client(peer, headers)
    }
}

pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/ws", get(ws_upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics_page))
        .merge(api::routes())
        .merge(whip_whep::routes())
        .merge(web::routes())
        .layer(axum::middleware::map_response(security_headers))
        .layer(tower_http::compression::CompressionLayer::new())
        .with_state(state)
}

/// What the pages may load and who may frame them: only this bridge's own scripts, styles
/// and WebSocket, never inside another site's frame (a join page framed by a look-alike
/// could be clicked through), no MIME guessing, and no join link leaking in `Referer`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; media-src 'self' blob: mediastream:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

async fn security_headers(mut r: Response) -> Response {
    use axum::http::{HeaderValue, header};
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// `/metrics` for a scraper with the token, or on the bridge's own machine.
async fn metrics_page(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    connect: Option<axum::Extension<ConnectInfo<std::net::SocketAddr>>>,
) -> Response {
    use axum::http::{StatusCode, header};
    let allowed = match &state.options.metrics_token {
        Some(token) => headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| {
                use sha2::Digest;
                // Compared as digests: equal-length, so the time does not tell a prefix.
                sha2::Sha256::digest(given.as_bytes()) == sha2::Sha256::digest(token.as_bytes())
            }),
        // Loopback only, and not through a proxy (a proxied request is someone else's).
        None => {
            connect.is_some_and(|c| c.0.0.ip().is_loopback())
                && !headers.contains_key("x-forwarded-for")
        }
    };
    if !allowed {
        tracing::warn!("/metrics refused: no valid token");
        let why = if state.options.metrics_token.is_some() {
            "send the metrics token: Authorization: Bearer <[http] metrics_token>"
        } else {
            "metrics are served to this machine only; set [http] metrics_token to scrape from elsewhere"
        };
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Initial read and write buffer of one signaling WebSocket.
const WS_BUFFER: usize = 1024;

async fn ws_upgrade(
    ws: WebSocketUpgrade,
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    connect: Option<axum::Extension<ConnectInfo<std::net::SocketAddr>>>,
) -> Response {
    let client = connect.map(|c| state.client_addr(c.0.0, &headers));
    let peer = client.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
    let waiting = match state
        .waiting
        .enter(client.map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |a| a.ip()))
    {
        Ok(w) => w,
        Err(refused) => return refuse_socket(&state, &peer, refused),
    };
    // tungstenite's default buffers are 128 KiB each, taken at the upgrade: a thousand
    // sockets that never say anything would hold 128 MiB, and glibc keeps most of it after
    // they close. Signaling messages are a few KiB (an SDP offer for 32 m-lines is under
    // 16 KiB), so small buffers that grow when a frame needs it cost nothing.
    ws.max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .read_buffer_size(WS_BUFFER)
        .write_buffer_size(WS_BUFFER)
        .on_upgrade(move |socket| serve_socket(state, socket, peer, waiting))
}

/// Refuse a socket over the waiting caps, before the upgrade costs anything. The page
/// treats it as a dropped connection and retries with backoff.
fn refuse_socket(state: &AppState, peer: &str, refused: Refused) -> Response {
    use axum::http::{StatusCode, header};
    if let Some(n) = state.waiting.note_refusal(std::time::Instant::now()) {
        tracing::warn!(%peer, waiting = state.waiting.total(), "websocket refused: {refused} ({n} refused since the last such line)");
    }
    let status = match refused {
        Refused::Address => StatusCode::TOO_MANY_REQUESTS,
        Refused::Total => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, [(header::RETRY_AFTER, "5")], refused.to_string()).into_response()
}

/// What a WebSocket read error means: the client went away (the session ends quietly), a
/// frame over the limits (`too_large`), or anything else it sent wrong (`bad_message`).
fn read_failed(e: axum::Error) -> Result<session::Frame, session::ReadError> {
    use cauhop_protocol::ErrorCode;
    match e.into_inner().downcast::<tungstenite::Error>() {
        // A tab closed or a 3G link dropped: the socket is simply gone.
        Ok(t) if socket_gone(&t) => Ok(session::Frame::Close),
        Ok(t) => Err(session::ReadError {
            code: if matches!(*t, tungstenite::Error::Capacity(_)) {
                ErrorCode::TooLarge
            } else {
                ErrorCode::BadMessage
            },
            message: t.to_string(),
        }),
        Err(other) => Err(session::ReadError {
            code: ErrorCode::BadMessage,
            message: other.to_string(),
        }),
    }
}

/// Errors that mean the client went away, not that it sent something wrong.
fn socket_gone(e: &tungstenite::Error) -> bool {
    use tungstenite::Error as E;
    use tungstenite::error::ProtocolError as P;
    matches!(
        e,
        E::ConnectionClosed
            | E::AlreadyClosed
            | E::Io(_)
            | E::Protocol(P::ResetWithoutClosingHandshake)
    )
}

async fn serve_socket(state: Arc<AppState>, socket: WebSocket, peer: String, waiting: Waiting) {
    let (sink, stream) = socket.split();
    let sink =
        sink.with(|text: String| async move { Ok::<_, axum::Error>(Message::Text(text.into())) });
    let stream = stream.filter_map(|m| async move {
        match m {
            Ok(Message::Text(t)) => Some(Ok(session::Frame::Text(t.to_string()))),
            Ok(Message::Binary(b)) => Some(Ok(session::Frame::Binary(b.len()))),
            Ok(Message::Close(_)) => Some(Ok(session::Frame::Close)),
            Ok(Message::Ping(_) | Message::Pong(_)) => None,
            Err(e) => Some(read_failed(e)),
        }
    });
    // Every line this connection logs names its participant, meeting and site once it
    // has joined (`entry::enter` fills them in): `journalctl | grep "Xã Tả Van"` tells
    // that commune's story, and the JSON log has them as fields.
    let span = tracing::info_span!(
        "ws",
        %peer,
        participant = tracing::field::Empty,
        meeting = tracing::field::Empty,
        site = tracing::field::Empty
    );
    tracing::Instrument::instrument(
        session::run(state, Box::pin(sink), Box::pin(stream), peer, Some(waiting)),
        span,
    )
    .await;
}

#[cfg(test)]
mod read_failed_tests {
    use super::*;
    use cauhop_protocol::ErrorCode;
    use tungstenite::error::{CapacityError, ProtocolError};

    fn read(e: tungstenite::Error) -> Result<session::Frame, session::ReadError> {
        read_failed(axum::Error::new(e))
    }

    #[test]
    fn a_client_gone_ends_quietly_and_a_bad_frame_is_named() {
        assert!(matches!(
            read(tungstenite::Error::Protocol(
                ProtocolError::ResetWithoutClosingHandshake
            )),
            Ok(session::Frame::Close)
        ));
        assert!(matches!(
            read(tungstenite::Error::ConnectionClosed),
            Ok(session::Frame::Close)
        ));
        let big = read(tungstenite::Error::Capacity(
            CapacityError::MessageTooLong {
                size: 300_000,
                max_size: HARD_FRAME_LIMIT,
            },
        ));
        assert_eq!(big.err().map(|e| e.code), Some(ErrorCode::TooLarge));
        let unmasked = read(tungstenite::Error::Protocol(
            ProtocolError::UnmaskedFrameFromClient,
        ));
        assert_eq!(unmasked.err().map(|e| e.code), Some(ErrorCode::BadMessage));
    }
}
