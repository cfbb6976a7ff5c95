//! What one WebSocket client may cost the bridge: a socket that never joins is closed
//! after 10 s, a message flood is refused and then closed, and error messages do not
//! repeat more than a few dozen characters of what the client sent.

use std::time::{Duration, Instant};

use cauhop_protocol::{ErrorCode, ServerMsg};
use cauhop_tests::bridge::Bridge;
use cauhop_tests::init_log;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Every server message until the socket closes or `limit` passes; and whether it closed.
async fn drain(ws: &mut Ws, limit: Duration) -> (Vec<ServerMsg>, bool) {
    let start = Instant::now();
    let mut got = Vec::new();
    loop {
        let left = limit.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                if let Ok(m) = serde_json::from_str(&t) {
                    got.push(m);
                }
            }
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return (got, true),
            Ok(Some(Ok(_))) => {}
            Err(_) => return (got, false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_flooding_and_echoing_clients_are_bounded() -> anyhow::Result<()> {
    init_log();
    let bridge = Bridge::start().await?;

    // Echo: a 5 000-character message type comes back cut short.
    let (mut ws, _) = tokio_tungstenite::connect_async(bridge.ws_url()).await?;
    let junk = format!("{{\"type\":\"{}\"}}", "x".repeat(5000));
    ws.send(Message::Text(junk.into())).await?;
    let (got, _) = drain(&mut ws, Duration::from_millis(500)).await;
    match got.first() {
        Some(ServerMsg::Error { code, message, .. }) => {
            assert_eq!(*code, ErrorCode::BadMessage);
            assert!(
                message.chars().count() <= 200,
                "the error repeats {} characters",
                message.chars().count()
            );
        }
        other => panic!("want an error, got {other:?}"),
    }

    // Flood: pings far over the rate are dropped with `rate_limited`, then the
    // connection is closed.
    let (mut flood, _) = tokio_tungstenite::connect_async(bridge.ws_url()).await?;
    for _ in 0..400 {
        flood
            .send(Message::Text(r#"{"type":"ping"}"#.into()))
            .await?;
    }
    let (got, closed) = drain(&mut flood, Duration::from_secs(5)).await;
    let pongs = got.iter().filter(|m| matches!(m, ServerMsg::Pong)).count();
    let limited = got
        .iter()
        .filter(|m| {
            matches!(
                m,
                ServerMsg::Error {
                    code: ErrorCode::RateLimited,
                    ..
                }
            )
        })
        .count();
    eprintln!("flood: {pongs} pongs, {limited} rate_limited, closed {closed}");
    assert!(pongs < 100, "the flood was answered: {pongs} pongs");
    assert!(limited > 0, "no rate_limited error");
    assert!(closed, "a flood of 400 messages closes the connection");

    // Idle: a socket that never joins is closed after 10 s (quietly: no error a page
    // would take as final).
    let start = Instant::now();
    let (mut idle, _) = tokio_tungstenite::connect_async(bridge.ws_url()).await?;
    let (got, closed) = drain(&mut idle, Duration::from_secs(20)).await;
    let after = start.elapsed();
    eprintln!("idle socket closed after {after:?}");
    assert!(closed, "an idle socket stays open");
    assert!(
        after >= Duration::from_secs(9) && after < Duration::from_secs(15),
        "closed after {after:?}, want about 10 s"
    );
    assert!(got.is_empty(), "closed with messages: {got:?}");

    // The bridge still serves a well-behaved client.
    let (mut ok, _) = tokio_tungstenite::connect_async(bridge.ws_url()).await?;
    ok.send(Message::Text(r#"{"type":"ping"}"#.into())).await?;
    let (got, _) = drain(&mut ok, Duration::from_millis(500)).await;
    assert!(matches!(got.first(), Some(ServerMsg::Pong)), "{got:?}");
    Ok(())
}
