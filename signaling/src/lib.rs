//! cauhop signaling: the HTTP server, the WebSocket protocol (`PROTOCOL.md`) and the
//! embedded web client.
//!
//! [`app`] builds the whole router from one [`AppState`]; the binary serves it and tests
//! call it directly. Routes: `/` and `/m/{meeting}` (the web client), `/static/*`,
//! `/ws` (signaling), `/api/v1/stats` (media counters), `/healthz`.

mod admission;
mod registry;
pub mod session;
mod web;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use cauhop_sfu::SfuHandle;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;

pub use admission::{AdHoc, Admission, Refusal, valid_meeting_id};
pub use registry::Registry;

/// Frames larger than this are cut off by the WebSocket layer itself and close the
/// connection; frames between [`cauhop_protocol::MAX_MESSAGE_BYTES`] and this get an
/// `error` reply and the connection lives on.
pub const HARD_FRAME_LIMIT: usize = 1024 * 1024;

pub struct AppState {
    pub sfu: SfuHandle,
    pub registry: Registry,
    pub admission: Box<dyn Admission>,
    pub next_participant: AtomicU64,
    /// Flips to `true` when the server is shutting down; sessions tell their clients.
    pub shutdown: watch::Receiver<bool>,
}

impl AppState {
    pub fn new(
        sfu: SfuHandle,
        admission: Box<dyn Admission>,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Self> {
        Arc::new(Self {
            sfu,
            registry: Registry::default(),
            admission,
            next_participant: AtomicU64::new(1),
            shutdown,
        })
    }
}

pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/ws", get(ws_upgrade))
        .route("/api/v1/stats", get(stats))
        .route("/healthz", get(|| async { "ok" }))
        .merge(web::routes())
        .layer(tower_http::compression::CompressionLayer::new())
        .with_state(state)
}

async fn stats(State(state): State<Arc<AppState>>) -> Response {
    match state.sfu.stats().await {
        Ok(s) => Json(s).into_response(),
        Err(e) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

async fn ws_upgrade(
    ws: WebSocketUpgrade,
    State(state): State<Arc<AppState>>,
    connect: Option<axum::Extension<ConnectInfo<std::net::SocketAddr>>>,
) -> Response {
    let peer = connect.map_or_else(|| "unknown".to_owned(), |c| c.0.0.to_string());
    ws.max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .on_upgrade(move |socket| serve_socket(state, socket, peer))
}

async fn serve_socket(state: Arc<AppState>, socket: WebSocket, peer: String) {
    let (sink, stream) = socket.split();
    let sink =
        sink.with(|text: String| async move { Ok::<_, axum::Error>(Message::Text(text.into())) });
    let stream = stream.filter_map(|m| async move {
        match m {
            Ok(Message::Text(t)) => Some(Ok(session::Frame::Text(t.to_string()))),
            Ok(Message::Binary(b)) => Some(Ok(session::Frame::Binary(b.len()))),
            Ok(Message::Close(_)) => Some(Ok(session::Frame::Close)),
            Ok(Message::Ping(_) | Message::Pong(_)) => None,
            Err(e) => Some(Err(e)),
        }
    });
    session::run(state, Box::pin(sink), Box::pin(stream), peer).await;
}
