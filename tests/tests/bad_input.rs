//! Malformed input on the WebSocket gets an `error` reply with a reason, and neither the
//! connection nor the server goes down.

use std::time::Duration;

use cauhop_protocol::{ErrorCode, ServerMsg};
use cauhop_signaling::Options;
use cauhop_tests::bridge::Bridge;
use cauhop_tests::peer::TestPeer;
use cauhop_tests::{init_log, wait_for};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(ws: &mut Ws, text: impl Into<String>) {
    ws.send(Message::Text(text.into().into()))
        .await
        .expect("send");
}

async fn recv(ws: &mut Ws) -> ServerMsg {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("reply in time")
            .expect("socket open")
            .expect("frame");
        if let Message::Text(t) = m {
            return serde_json::from_str(&t).expect("server sends valid JSON");
        }
    }
}

async fn expect_error(ws: &mut Ws, code: ErrorCode) -> String {
    match recv(ws).await {
        ServerMsg::Error {
            code: c,
            message,
            fatal,
            ..
        } => {
            assert_eq!(c, code, "{message}");
            assert!(!fatal);
            assert!(!message.is_empty());
            message
        }
        other => panic!("expected {code:?} error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_get_errors_and_the_server_survives() -> anyhow::Result<()> {
    init_log();
    let bridge = Bridge::start_with(Options {
        ad_hoc: Some(Some(vec!["hop".into()])),
        ..Options::default()
    })
    .await?;
    let (mut ws, _) = tokio_tungstenite::connect_async(bridge.ws_url()).await?;

    // Garbage, wrong types, unknown messages.
    send(&mut ws, "}{ not json").await;
    expect_error(&mut ws, ErrorCode::BadMessage).await;
    send(
        &mut ws,
        r#"{"type":"join","v":"one","meeting":7,"name":null}"#,
    )
    .await;
    expect_error(&mut ws, ErrorCode::BadMessage).await;
    send(&mut ws, r#"{"type":"launch_rockets"}"#).await;
    expect_error(&mut ws, ErrorCode::BadMessage).await;
    ws.send(Message::Binary(vec![1u8, 2, 3].into())).await?;
    expect_error(&mut ws, ErrorCode::BinaryFrame).await;

    // Over the protocol limit but under the socket's hard limit: refused, socket lives.
    let huge = format!(r#"{{"type":"offer","sdp":"{}"}}"#, "x".repeat(200_000));
    send(&mut ws, huge).await;
    let msg = expect_error(&mut ws, ErrorCode::TooLarge).await;
    assert!(msg.contains("65536"), "{msg}");

    // Out of order: media messages before join.
    send(&mut ws, r#"{"type":"offer","sdp":"v=0"}"#).await;
    expect_error(&mut ws, ErrorCode::OutOfOrder).await;
    send(&mut ws, r#"{"type":"answer","sdp":"v=0"}"#).await;
    expect_error(&mut ws, ErrorCode::OutOfOrder).await;

    // Unknown meeting, bad names.
    send(
        &mut ws,
        r#"{"type":"join","v":1,"meeting":"not-listed","name":"A"}"#,
    )
    .await;
    expect_error(&mut ws, ErrorCode::UnknownMeeting).await;
    send(
        &mut ws,
        r#"{"type":"join","v":1,"meeting":"bad id!","name":"A"}"#,
    )
    .await;
    expect_error(&mut ws, ErrorCode::UnknownMeeting).await;
    send(
        &mut ws,
        r#"{"type":"join","v":1,"meeting":"hop","name":"   "}"#,
    )
    .await;
    expect_error(&mut ws, ErrorCode::BadName).await;

    // A proper join on the same socket still works.
    send(
        &mut ws,
        r#"{"type":"join","v":1,"meeting":"hop","name":"Xã Tả Van","site":"Sa Pa"}"#,
    )
    .await;
    assert!(matches!(recv(&mut ws).await, ServerMsg::Welcome { .. }));
    send(
        &mut ws,
        r#"{"type":"join","v":1,"meeting":"hop","name":"again"}"#,
    )
    .await;
    expect_error(&mut ws, ErrorCode::OutOfOrder).await;

    // SDP str0m cannot parse, SDP without m-lines, SDP without a fingerprint.
    send(&mut ws, r#"{"type":"offer","sdp":"this is not sdp"}"#).await;
    expect_error(&mut ws, ErrorCode::BadSdp).await;
    let no_mlines = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
    send(
        &mut ws,
        serde_json::json!({"type":"offer","sdp":no_mlines}).to_string(),
    )
    .await;
    expect_error(&mut ws, ErrorCode::BadSdp).await;
    // An answer with no offer outstanding.
    let answer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
    send(
        &mut ws,
        serde_json::json!({"type":"answer","sdp":answer}).to_string(),
    )
    .await;
    let m = recv(&mut ws).await;
    assert!(
        matches!(
            m,
            ServerMsg::Error {
                code: ErrorCode::BadSdp | ErrorCode::NoOfferPending,
                ..
            }
        ),
        "{m:?}"
    );

    // The connection is still usable.
    send(&mut ws, r#"{"type":"ping"}"#).await;
    assert_eq!(recv(&mut ws).await, ServerMsg::Pong);

    // Wrong protocol version is fatal for that socket only.
    let (mut ws2, _) = tokio_tungstenite::connect_async(bridge.ws_url()).await?;
    send(
        &mut ws2,
        r#"{"type":"join","v":99,"meeting":"hop","name":"A"}"#,
    )
    .await;
    assert!(matches!(
        recv(&mut ws2).await,
        ServerMsg::Error {
            code: ErrorCode::UnsupportedVersion,
            fatal: true,
            ..
        }
    ));

    // Over the hard frame limit: that socket is closed, the server is not.
    let (mut ws3, _) = tokio_tungstenite::connect_async(bridge.ws_url()).await?;
    let _ = ws3
        .send(Message::Text("y".repeat(2 * 1024 * 1024).into()))
        .await;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = ws3.next().await {}
    })
    .await;

    // The next client after all this gets real media through.
    let a = TestPeer::join(&bridge.ws_url(), "hop", "A", None).await?;
    let b = TestPeer::join(&bridge.ws_url(), "hop", "B", None).await?;
    wait_for("media after bad input", Duration::from_secs(20), || {
        a.from(&b.id).video.len() > 10 && b.from(&a.id).audio.len() > 10
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_clients_the_meeting_ended() -> anyhow::Result<()> {
    init_log();
    let bridge = Bridge::start().await?;
    let (mut ws, _) = tokio_tungstenite::connect_async(bridge.ws_url()).await?;
    send(&mut ws, r#"{"type":"join","v":1,"meeting":"m","name":"A"}"#).await;
    assert!(matches!(recv(&mut ws).await, ServerMsg::Welcome { .. }));
    bridge.shutdown();
    assert!(matches!(
        recv(&mut ws).await,
        ServerMsg::MeetingEnded { .. }
    ));
    Ok(())
}
