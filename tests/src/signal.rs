//! The WebSocket half of a test participant: connect, send `join`, wait for `welcome`.
//! Shared by the webrtc-rs peer (`peer.rs`) and the str0m peer (`sim_peer.rs`), which
//! differ only in their media stack.

use anyhow::{Context, bail};
use cauhop_protocol::{ClientMsg, ServerMsg};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

pub type WsStream = futures_util::stream::SplitStream<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
>;

/// A joined signaling session.
pub struct Joined {
    pub participant: String,
    /// Messages to the server (a task writes them to the socket).
    pub tx: mpsc::UnboundedSender<ClientMsg>,
    /// What the server sends after `welcome`.
    pub rx: WsStream,
    pub writer: tokio::task::JoinHandle<()>,
}

/// Connect to `ws_url`, send `join`, and wait for `welcome` (a refusal is an error with
/// the server's sentence).
pub async fn join(ws_url: &str, join: ClientMsg) -> anyhow::Result<Joined> {
    join_from(None, ws_url, join).await
}

/// [`join`] from the local address `from` (a load generator gives each site its own
/// 127.x.y.z, as each commune has its own address; the bridge limits joins per address).
pub async fn join_from(
    from: Option<std::net::IpAddr>,
    ws_url: &str,
    join: ClientMsg,
) -> anyhow::Result<Joined> {
    let ws = match from {
        None => {
            tokio_tungstenite::connect_async(ws_url)
                .await
                .context("websocket")?
                .0
        }
        Some(ip) => {
            let server: std::net::SocketAddr = ws_url
                .strip_prefix("ws://")
                .and_then(|r| r.split('/').next())
                .context("ws://HOST:PORT/… expected")?
                .parse()
                .context("server address")?;
            let socket = if ip.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            socket.bind(std::net::SocketAddr::new(ip, 0))?;
            let tcp = socket.connect(server).await.context("connect")?;
            tokio_tungstenite::client_async(ws_url, tokio_tungstenite::MaybeTlsStream::Plain(tcp))
                .await
                .context("websocket")?
                .0
        }
    };
    let (mut sink, mut rx) = ws.split();
    let (tx, mut out) = mpsc::unbounded_channel::<ClientMsg>();
    let writer = tokio::spawn(async move {
        while let Some(m) = out.recv().await {
            let Ok(text) = serde_json::to_string(&m) else {
                continue;
            };
            if sink.send(Message::Text(text.into())).await.is_err() {
                break;
            }
        }
    });
    tx.send(join)?;
    let participant = loop {
        match next_msg(&mut rx).await? {
            ServerMsg::Welcome { participant, .. } => break participant,
            ServerMsg::Error { message, .. } => bail!("join refused: {message}"),
            _ => {}
        }
    };
    Ok(Joined {
        participant,
        tx,
        rx,
        writer,
    })
}

/// The next protocol message; other frames are skipped.
pub async fn next_msg(ws: &mut WsStream) -> anyhow::Result<ServerMsg> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t)?),
            Some(Ok(Message::Close(_))) | None => bail!("websocket closed"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
        }
    }
}

/// The first message `want` accepts, within `limit` (an error naming `what` otherwise).
pub async fn until(
    s: &mut Joined,
    what: &str,
    limit: std::time::Duration,
    want: impl Fn(&ServerMsg) -> bool,
) -> anyhow::Result<ServerMsg> {
    let wait = async {
        loop {
            let m = next_msg(&mut s.rx).await?;
            if want(&m) {
                return anyhow::Ok(m);
            }
        }
    };
    tokio::time::timeout(limit, wait)
        .await
        .map_err(|_| anyhow::anyhow!("{} waited {limit:?} for {what}", s.participant))?
}

/// A `join` with a join link's token for scheduled meeting `meeting`.
pub fn join_link(meeting: i64, token: &str, name: &str) -> ClientMsg {
    ClientMsg::Join {
        v: cauhop_protocol::PROTOCOL_VERSION,
        meeting: meeting.to_string(),
        name: name.into(),
        site: String::new(),
        token: Some(token.into()),
        key: None,
    }
}
