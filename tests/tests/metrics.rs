//! `/metrics` (issue 17): Prometheus text with the bridge's families, each metric the
//! Grafana dashboard in `deploy/` uses among them; counters of joins, refusals and
//! errors that move with what happens; the media server's sessions sampled; readable
//! from the bridge's own machine without a token, and with the token only when one is set.

use std::collections::BTreeSet;
use std::time::Duration;

use cauhop_signaling::Options;
use cauhop_tests::bridge::Bridge;
use cauhop_tests::sim_peer::{SimConfig, SimPeer};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

/// The families a scrape declares (`# TYPE name kind`).
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The value of the first sample whose line starts with `prefix`.
fn value(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_hold_what_the_dashboard_shows_and_move_with_the_meeting() -> anyhow::Result<()> {
    cauhop_tests::init_log();
    let bridge = Bridge::start_with(Options {
        ad_hoc: Some(None),
        ..Options::default()
    })
    .await?;
    // Two sites exchange media; a page sends something unreadable; a join is refused.
    let a = SimPeer::join(&bridge.ws_url(), SimConfig::new("giao-ban", "Xã A")).await?;
    let b = SimPeer::join(&bridge.ws_url(), SimConfig::new("giao-ban", "Xã B")).await?;
    cauhop_tests::wait_for("media both ways", Duration::from_secs(20), || {
        a.recent_audio(&b, Duration::from_secs(1)) > 0
    })
    .await?;
    let (mut ws, _) = tokio_tungstenite::connect_async(bridge.ws_url()).await?;
    ws.send(Message::Text("{not json".into())).await?;
    ws.send(Message::Text(
        r#"{"type":"join","v":1,"meeting":"bad id!","name":"X"}"#.into(),
    ))
    .await?;
    // A couple of seconds of media: the sessions' stats come once a second.
    tokio::time::sleep(Duration::from_secs(3)).await;
    bridge.state.metrics.sample(&bridge.state).await;

    let http = reqwest::Client::new();
    let r = http.get(bridge.url("/metrics")).send().await?;
    assert_eq!(r.status(), 200, "from this machine, without a token");
    let text = r.text().await?;
    let have = families(&text);

    // Every metric the dashboard uses is served (a family, or a family's sample).
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana-dashboard.json"
    ))?)?;
    let mut used = BTreeSet::new();
    for p in dashboard["panels"].as_array().cloned().unwrap_or_default() {
        for t in p["targets"].as_array().cloned().unwrap_or_default() {
            let expr = t["expr"].as_str().unwrap_or_default();
            for w in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if w.starts_with("cauhop_") {
                    used.insert(w.to_owned());
                }
            }
        }
    }
    assert!(used.len() >= 15, "{used:?}");
    for m in &used {
        let family = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| m.strip_suffix(s))
            .unwrap_or(m);
        assert!(
            have.contains(family),
            "the dashboard uses {m}; /metrics has no {family}"
        );
    }

    // The counters moved with what happened.
    assert_eq!(
        value(&text, "cauhop_joins_total{kind=\"ad_hoc\"}"),
        Some(2.0),
        "{text}"
    );
    assert!(
        value(
            &text,
            "cauhop_joins_refused_total{reason=\"unknown_meeting\"}"
        ) >= Some(1.0),
        "{text}"
    );
    assert!(
        value(&text, "cauhop_signaling_errors_total{code=\"bad_message\"}") >= Some(1.0),
        "{text}"
    );
    assert!(
        value(&text, "cauhop_rtp_received_total") > Some(100.0),
        "{text}"
    );
    assert!(
        value(&text, "cauhop_rtp_forwarded_total") > Some(100.0),
        "{text}"
    );
    assert!(
        value(&text, "cauhop_loss_up_ratio_count") >= Some(2.0),
        "every session's uplink loss sampled: {text}"
    );
    assert_eq!(value(&text, "cauhop_meetings_open"), Some(1.0));
    assert!(
        value(&text, "cauhop_rtt_seconds_count") >= Some(1.0),
        "{text}"
    );
    assert!(value(&text, "cauhop_process_resident_bytes") > Some(1e6));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_set_only_a_scraper_that_sends_it_reads_the_metrics() -> anyhow::Result<()> {
    cauhop_tests::init_log();
    let bridge = Bridge::start_with(Options {
        metrics_token: Some("ma-bi-mat-cua-prometheus-2026".into()),
        ..Options::default()
    })
    .await?;
    let http = reqwest::Client::new();
    let url = bridge.url("/metrics");
    assert_eq!(http.get(&url).send().await?.status(), 403);
    let wrong = http.get(&url).bearer_auth("doan-thu").send().await?;
    assert_eq!(wrong.status(), 403);
    let right = http
        .get(&url)
        .bearer_auth("ma-bi-mat-cua-prometheus-2026")
        .send()
        .await?;
    assert_eq!(right.status(), 200);
    // A request through the proxy is not "this machine" when no token is set.
    let open = Bridge::start_with(Options::default()).await?;
    let proxied = http
        .get(open.url("/metrics"))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await?;
    assert_eq!(proxied.status(), 403);
    Ok(())
}
