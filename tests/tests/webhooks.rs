//! Webhooks (issue 17 item 4): a receiver gets the meeting's and its sites' events,
//! signed, in order, the first one retried after the receiver failed it; a site invited
//! and still absent after the wait is reported; a second URL that accepts no connection
//! holds nothing up.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as Clock};

use axum::http::{HeaderMap, StatusCode};
use cauhop_signaling::Options;
use cauhop_signaling::auth::{JoinKeys, JoinTokens};
use cauhop_signaling::webhooks::{WebhookOptions, sign};
use cauhop_store::model::MeetingRole;
use cauhop_tests::bridge::Bridge;
use cauhop_tests::fixture::{invite, issued_link_as, open_meeting, province_tree};
use cauhop_tests::signal;
use serde_json::Value;

const SECRET: &str = "bí-mật-của-tỉnh-2026";

#[derive(Default)]
struct Received {
    /// (event header, body, signature checked)
    events: Vec<(String, Value, bool)>,
    failed_first: bool,
}

async fn receiver() -> anyhow::Result<(String, Arc<Mutex<Received>>)> {
    let got = Arc::new(Mutex::new(Received::default()));
    let state = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let got = state.clone();
            async move {
                let Ok(mut g) = got.lock() else {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                };
                // The first delivery fails: the bridge must come back with it.
                if !g.failed_first {
                    g.failed_first = true;
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let h = |k: &str| {
                    headers
                        .get(k)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                let ts: i64 = h("x-cauhop-timestamp").parse().unwrap_or(0);
                let signed =
                    h("x-cauhop-signature") == format!("sha256={}", sign(SECRET, ts, &body));
                let v = serde_json::from_str(&body).unwrap_or(Value::Null);
                g.events.push((h("x-cauhop-event"), v, signed));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, got))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_meeting_s_events_reach_the_receiver_signed_in_order_and_retried() -> anyhow::Result<()>
{
    cauhop_tests::init_log();
    let (url, got) = receiver().await?;
    // Nothing listens on port 9 (discard) here: connections are refused.
    let dead = "http://127.0.0.1:9/hook".to_owned();
    let keys = JoinKeys::ephemeral();
    let bridge = Bridge::start_with(Options {
        join_keys: keys.clone(),
        webhooks: WebhookOptions {
            urls: vec![dead, url],
            secret: SECRET.into(),
            unreachable_after: Duration::from_secs(4),
            retry_after: Duration::from_millis(200),
            attempts: 4,
        },
        ..Options::default()
    })
    .await?;
    let store = bridge.store.clone();
    let tree = province_tree(&store, &["Xã Có Mặt", "Xã Vắng"]).await?;
    let (here, away) = (tree.communes[0], tree.communes[1]);
    let m = store
        .create_meeting(
            &open_meeting(
                "Giao ban",
                tree.province,
                vec![invite(here, None), invite(away, None)],
            ),
            None,
        )
        .await?;
    let tokens = JoinTokens::new(&keys);
    let link = issued_link_as(
        &store,
        &tokens,
        "jti-here",
        (m.id, here, None),
        MeetingRole::Participant,
    )
    .await?;
    let t0 = Clock::now();
    let site = signal::join(&bridge.ws_url(), signal::join_link(m.id, &link, "Đại biểu")).await?;
    let join_took = t0.elapsed();
    assert!(
        join_took < Duration::from_secs(5),
        "a dead webhook URL must not hold up a join: {join_took:?}"
    );
    let kinds = |g: &Received| g.events.iter().map(|e| e.0.clone()).collect::<Vec<_>>();
    cauhop_tests::wait_for("the absent site reported", Duration::from_secs(20), || {
        got.lock()
            .map(|g| {
                g.events
                    .iter()
                    .any(|e| e.0 == "site.unreachable" && e.1["data"]["site_id"] == away)
            })
            .unwrap_or(false)
    })
    .await?;
    drop(site);
    cauhop_tests::wait_for("the meeting's end", Duration::from_secs(20), || {
        got.lock()
            .map(|g| g.events.iter().any(|e| e.0 == "meeting.ended"))
            .unwrap_or(false)
    })
    .await?;
    let g = got.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let k = kinds(&g);
    eprintln!("{k:?}");
    assert!(g.failed_first, "the receiver never failed one");
    assert!(
        g.events.iter().all(|e| e.2),
        "every event is signed with the secret"
    );
    let pos = |kind: &str| k.iter().position(|x| x == kind);
    // The first event was failed once and came back; each came once.
    for kind in [
        "meeting.started",
        "site.joined",
        "site.left",
        "meeting.ended",
    ] {
        assert_eq!(k.iter().filter(|x| *x == kind).count(), 1, "{kind}: {k:?}");
    }
    assert!(
        pos("site.joined") < pos("site.left") && pos("site.left") < pos("meeting.ended"),
        "{k:?}"
    );
    let joined = &g.events[pos("site.joined").unwrap_or(0)].1;
    assert_eq!(joined["data"]["site_id"], here);
    assert_eq!(joined["data"]["site"], "Xã Có Mặt");
    assert!(
        !g.events
            .iter()
            .any(|e| e.0 == "site.unreachable" && e.1["data"]["site_id"] == here),
        "the site that came is not reported absent"
    );
    Ok(())
}
