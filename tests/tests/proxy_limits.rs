//! Behind the documented reverse proxy every connection comes from 127.0.0.1: the login
//! and join limits must count per client (the proxy's `X-Forwarded-For`), or ten wrong
//! logins lock the whole province out. A peer that is not a trusted proxy cannot choose
//! its address with that header. A username has its own login budget.

use std::time::Duration;

use cauhop_protocol::{ErrorCode, ServerMsg};
use cauhop_signaling::Options;
use cauhop_signaling::client_addr::TrustedProxies;
use cauhop_tests::bridge::Bridge;
use cauhop_tests::init_log;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

async fn login(bridge: &Bridge, from: &str, username: &str) -> anyhow::Result<u16> {
    let r = reqwest::Client::new()
        .post(bridge.url("/api/v1/login"))
        .header("x-forwarded-for", from)
        .json(&json!({"username": username, "password": "wrong-password-123"}))
        .send()
        .await?;
    Ok(r.status().as_u16())
}

/// A junk join (no such link) from `from`; the error code it gets.
async fn join(bridge: &Bridge, from: &str) -> anyhow::Result<ErrorCode> {
    let mut req = bridge.ws_url().into_client_request()?;
    req.headers_mut().insert("x-forwarded-for", from.parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    let msg = json!({"type":"join","v":1,"meeting":"1","name":"x","token":"junk"});
    ws.send(Message::Text(msg.to_string().into())).await?;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("closed"))??;
        if let Message::Text(t) = m
            && let ServerMsg::Error { code, .. } = serde_json::from_str(&t)?
        {
            return Ok(code);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_behind_a_trusted_proxy_have_their_own_budgets() -> anyhow::Result<()> {
    init_log();
    // The test connects from 127.0.0.1: the trusted proxy by default.
    let bridge = Bridge::start_with(Options::default()).await?;

    // Logins: 10 at once per client, then limited; another client is not.
    for n in 0..10 {
        assert_eq!(
            login(&bridge, "203.0.113.1", "an").await?,
            401,
            "attempt {n}"
        );
    }
    assert_eq!(login(&bridge, "203.0.113.1", "an").await?, 429);
    assert_eq!(
        login(&bridge, "203.0.113.2", "binh").await?,
        401,
        "another client behind the same proxy keeps its budget"
    );
    // One username guessed from many addresses runs out of its own budget.
    for n in 0..9 {
        let from = format!("198.51.100.{}", n + 10);
        assert_eq!(login(&bridge, &from, "binh").await?, 401, "attempt {n}");
    }
    assert_eq!(login(&bridge, "198.51.100.99", "binh").await?, 429);
    assert_eq!(login(&bridge, "198.51.100.99", "chi").await?, 401);
    // IPv6 clients count per /64.
    for n in 0..10 {
        let from = format!("2001:db8:7:7::{:x}", n + 1);
        assert_eq!(login(&bridge, &from, &format!("v6-{n}")).await?, 401);
    }
    assert_eq!(login(&bridge, "2001:db8:7:7::ffff", "v6-x").await?, 429);

    // Joins: 30 at once per client.
    for n in 0..30 {
        assert_eq!(
            join(&bridge, "203.0.113.5").await?,
            ErrorCode::Unauthorized,
            "join {n}"
        );
    }
    assert_eq!(join(&bridge, "203.0.113.5").await?, ErrorCode::RateLimited);
    assert_eq!(
        join(&bridge, "203.0.113.6").await?,
        ErrorCode::Unauthorized,
        "another client's joins are not limited by the first's"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_peer_cannot_choose_its_address() -> anyhow::Result<()> {
    init_log();
    let bridge = Bridge::start_with(Options {
        trusted_proxies: TrustedProxies(vec!["192.0.2.1/32".parse()?]),
        ..Options::default()
    })
    .await?;
    // Every attempt names a new address; all come from 127.0.0.1, not trusted here.
    for n in 0..10 {
        let from = format!("203.0.113.{}", n + 1);
        assert_eq!(login(&bridge, &from, &format!("u{n}")).await?, 401);
    }
    assert_eq!(
        login(&bridge, "203.0.113.200", "u-last").await?,
        429,
        "the header was ignored: one peer, one budget"
    );
    Ok(())
}
