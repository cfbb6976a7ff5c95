//! What one WebSocket client may cost the bridge: a socket that never joins is closed
//! after 10 s, a message flood is refused and then closed, and error messages do not
//! repeat more than a few dozen characters of what the client sent; one address (and
//! all together) may hold only so many sockets that have not joined.

use std::time::{Duration, Instant};

use cauhop_protocol::{ErrorCode, ServerMsg};
use cauhop_signaling::waiting_sockets::{WAITING_PER_ADDRESS, WAITING_TOTAL};
use cauhop_tests::bridge::Bridge;
use cauhop_tests::init_log;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Every server message until the socket closes or `limit` passes; and whether it closed.
async fn drain<S>(ws: &mut S, limit: Duration) -> (Vec<ServerMsg>, bool)
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
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
    // The client reads while it sends (the bridge reads only what it handles, so a
    // client that read nothing would see its unread answers cut off by the reset).
    let (flood, _) = tokio_tungstenite::connect_async(bridge.ws_url()).await?;
    let (mut tx, mut rx) = flood.split();
    let sending = tokio::spawn(async move {
        for _ in 0..400 {
            if tx
                .send(Message::Text(r#"{"type":"ping"}"#.into()))
                .await
                .is_err()
            {
                break;
            }
        }
        tx
    });
    let (got, closed) = drain(&mut rx, Duration::from_secs(5)).await;
    drop(sending.await?);
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

/// A socket "from" `client`, as the proxy on loopback (trusted by default) names it.
async fn connect_as(
    bridge: &Bridge,
    client: &str,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut request = bridge.ws_url().into_client_request()?;
    if let Ok(v) = client.parse() {
        request.headers_mut().insert("x-forwarded-for", v);
    }
    Ok(tokio_tungstenite::connect_async(request).await?.0)
}

fn refused_with(r: Result<Ws, tokio_tungstenite::tungstenite::Error>, status: u16) {
    match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), status);
            assert!(resp.headers().contains_key("retry-after"));
        }
        Err(e) => panic!("want HTTP {status}, got {e}"),
        Ok(_) => panic!("want HTTP {status}, got a socket"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_waiting_to_join_are_capped_per_address_and_in_all() -> anyhow::Result<()> {
    init_log();
    let bridge = Bridge::start().await?;

    // One address: its share, then 429; another address is not affected.
    let mut held = Vec::new();
    for _ in 0..WAITING_PER_ADDRESS {
        held.push(connect_as(&bridge, "203.0.113.7").await?);
    }
    refused_with(connect_as(&bridge, "203.0.113.7").await, 429);
    let mut other = connect_as(&bridge, "203.0.113.8").await?;

    // A socket that joins no longer counts: the address gets a place back.
    let mut first = held.remove(0);
    let join = r#"{"type":"join","v":1,"meeting":"caps","name":"Xã 1"}"#;
    first.send(Message::Text(join.into())).await?;
    let (got, _) = drain(&mut first, Duration::from_millis(800)).await;
    assert!(
        matches!(got.first(), Some(ServerMsg::Welcome { .. })),
        "{got:?}"
    );
    held.push(connect_as(&bridge, "203.0.113.7").await?);
    refused_with(connect_as(&bridge, "203.0.113.7").await, 429);

    // Many addresses together: the total, then 503 for everyone.
    let mut n = 0u32;
    while held.len() + 1 < WAITING_TOTAL as usize {
        n += 1;
        held.push(connect_as(&bridge, &format!("198.51.100.{}", n % 250 + 1)).await?);
    }
    refused_with(connect_as(&bridge, "192.0.2.200").await, 503);

    // Closing them frees the places; the joined page was never disturbed.
    drop(held);
    other
        .send(Message::Text(r#"{"type":"ping"}"#.into()))
        .await?;
    let (got, _) = drain(&mut other, Duration::from_millis(500)).await;
    assert!(matches!(got.first(), Some(ServerMsg::Pong)), "{got:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut again = loop {
        match connect_as(&bridge, "192.0.2.200").await {
            Ok(ws) => break ws,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => anyhow::bail!("still refused after the others closed: {e}"),
        }
    };
    again
        .send(Message::Text(r#"{"type":"ping"}"#.into()))
        .await?;
    let (got, _) = drain(&mut again, Duration::from_millis(500)).await;
    assert!(matches!(got.first(), Some(ServerMsg::Pong)), "{got:?}");
    first
        .send(Message::Text(r#"{"type":"ping"}"#.into()))
        .await?;
    let (got, closed) = drain(&mut first, Duration::from_millis(500)).await;
    assert!(
        !closed && got.iter().any(|m| matches!(m, ServerMsg::Pong)),
        "{got:?}"
    );
    Ok(())
}
