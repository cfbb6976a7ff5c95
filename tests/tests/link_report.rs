//! Link history and the meeting report (issue 17), with real peers over real UDP: two
//! communes in a province meeting, one of them through the link emulator, dark both
//! ways for 20 s mid-meeting. The bridge samples every 2 s and names sites in trouble for
//! 10 s or more. `/metrics` shows the commune's loss and its seconds cut off; the store
//! holds its samples; the report (JSON and CSV) names it, with the right duration, and
//! not the other commune; a district admin reads its own communes' report and a site's
//! page, and another district's admin gets 403.

use std::sync::Arc;
use std::time::Duration;

use cauhop_signaling::Options;
use cauhop_signaling::auth::{JoinKeys, JoinTokens};
use cauhop_signaling::link_history::HistoryOptions;
use cauhop_signaling::report::ReportOptions;
use cauhop_store::model::{MeetingRole, NewSite, PersonRole, SiteKind};
use cauhop_tests::api::Api;
use cauhop_tests::bridge::Bridge;
use cauhop_tests::fixture::{invite, issued_link_as, office_admins, open_meeting, province_tree};
use cauhop_tests::link::Link;
use cauhop_tests::profiles::blackout;
use cauhop_tests::sim_peer::{SimConfig, SimPeer};

const PW: &str = "mật-khẩu-dài-2026";
const DARK_AT: Duration = Duration::from_secs(8);
const DARK_FOR: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commune_dark_for_20_s_is_named_in_the_report_with_its_duration() -> anyhow::Result<()> {
    cauhop_tests::init_log();
    let keys = JoinKeys::ephemeral();
    let bridge = Bridge::start_with(Options {
        join_keys: keys.clone(),
        history: HistoryOptions {
            sample_every: Duration::from_secs(2),
            keep_days: 90,
        },
        report: ReportOptions {
            after: Duration::from_secs(10),
            letterhead: "UBND TỈNH\nVĂN PHÒNG".into(),
        },
        ..Options::default()
    })
    .await?;
    let store = bridge.store.clone();
    let tree = province_tree(&store, &["Xã Sáng", "Xã Tối"]).await?;
    let (bright, dark) = (tree.communes[0], tree.communes[1]);
    let m = store
        .create_meeting(
            &open_meeting(
                "Giao ban tỉnh",
                tree.province,
                vec![invite(bright, None), invite(dark, None)],
            ),
            None,
        )
        .await?;
    let tokens = JoinTokens::new(&keys);
    let link = |jti: &'static str, site: i64| {
        let (store, tokens) = (store.clone(), &tokens);
        async move {
            issued_link_as(
                &store,
                tokens,
                jti,
                (m.id, site, None),
                MeetingRole::Participant,
            )
            .await
        }
    };
    let meeting = m.id.to_string();
    let a = SimPeer::join(
        &bridge.ws_url(),
        SimConfig {
            token: Some(link("jti-bright", bright).await?),
            ..SimConfig::new(&meeting, "Xã Sáng")
        },
    )
    .await?;
    // The dark commune's link starts now: dark from DARK_AT to DARK_AT + DARK_FOR.
    let emulated =
        Arc::new(Link::start_profile(bridge.media_addr(), &blackout(DARK_AT, DARK_FOR), 17).await?);
    let b = SimPeer::join(
        &bridge.ws_url(),
        SimConfig {
            token: Some(link("jti-dark", dark).await?),
            link: Some(emulated.clone()),
            ..SimConfig::new(&meeting, "Xã Tối")
        },
    )
    .await?;
    cauhop_tests::wait_for("media both ways", Duration::from_secs(20), || {
        a.recent_audio(&b, Duration::from_secs(1)) > 0
            && b.recent_audio(&a, Duration::from_secs(1)) > 0
    })
    .await?;
    // Through the dark and back: media from the commune again after it.
    tokio::time::sleep(DARK_AT + DARK_FOR).await;
    cauhop_tests::wait_for("the commune back", Duration::from_secs(30), || {
        a.recent_audio(&b, Duration::from_secs(1)) > 0
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        emulated
            .stats
            .up_dropped
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0,
        "the emulator dropped nothing"
    );

    // The metrics, while the sites are in.
    let text = reqwest::get(bridge.url("/metrics")).await?.text().await?;
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let cut = line("cauhop_site_link_seconds_total{site=\"Xã Tối\",state=\"cut_off\"}")
        .or_else(|| line("cauhop_site_link_seconds_total{state=\"cut_off\",site=\"Xã Tối\"}"));
    assert!(
        cut.is_some_and(|s| (12.0..=28.0).contains(&s)),
        "seconds cut off in /metrics: {cut:?}\n{text}"
    );
    assert!(
        text.contains("cauhop_site_loss_up_ratio{site=\"Xã Tối\"}"),
        "the commune's loss in /metrics"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("cauhop_site_link_seconds_total")
                && l.contains("audio_only")
                && l.contains("Xã Tối")),
        "its seconds on audio only in /metrics"
    );
    let bright_cut = line("cauhop_site_link_seconds_total{site=\"Xã Sáng\",state=\"cut_off\"}")
        .or_else(|| line("cauhop_site_link_seconds_total{state=\"cut_off\",site=\"Xã Sáng\"}"));
    assert!(
        bright_cut.is_some_and(|s| s < 4.0),
        "Xã Sáng: {bright_cut:?}"
    );

    // They leave; their last samples are kept at the next tick.
    drop((a, b));
    cauhop_tests::wait_for("both gone", Duration::from_secs(10), || {
        bridge.state.registry.count() == 0
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let chunks = store.meeting_links(m.id).await?;
    let samples_of = |site: i64| -> usize {
        chunks
            .iter()
            .filter(|c| c.site_id == Some(site))
            .map(|c| c.samples.len())
            .sum()
    };
    // About 45 s in: some 20 samples each (the first tick only notes the counters).
    assert!(samples_of(bright) >= 12, "{}", samples_of(bright));
    assert!(samples_of(dark) >= 12, "{}", samples_of(dark));

    // The report, as the province office reads it.
    office_admins(&store, &tree, PW).await?;
    let hash = cauhop_signaling::auth::hash_password(PW).map_err(anyhow::Error::msg)?;
    let other = store
        .create_site(&NewSite {
            code: "D2".into(),
            name: "Huyện khác".into(),
            kind: SiteKind::District,
            parent_id: Some(tree.province),
            down_kbps: 10_000,
            up_kbps: 10_000,
        })
        .await?;
    store
        .create_person(
            "khac",
            "Huyện khác",
            PersonRole::DistrictAdmin,
            Some(other.id),
            Some(&hash),
        )
        .await?;
    let api = Api::new(bridge.url(""));
    let tinh = api.login("tinh", PW).await?;
    let (status, r) = api
        .get(&tinh, &format!("/api/v1/meetings/{}/report", m.id))
        .await?;
    assert_eq!(status, 200, "{r}");
    eprintln!("{}", serde_json::to_string_pretty(&r["troubled"])?);
    assert_eq!(r["troubled"], serde_json::json!(["Xã Tối"]), "{r}");
    assert_eq!(
        r["letterhead"],
        serde_json::json!(["UBND TỈNH", "VĂN PHÒNG"])
    );
    let site = |name: &str| {
        r["sites"]
            .as_array()
            .and_then(|v| v.iter().find(|s| s["site"] == name))
            .cloned()
            .unwrap_or_default()
    };
    let d = site("Xã Tối");
    let stretches = d["stretches"].as_array().cloned().unwrap_or_default();
    let cut: Vec<&serde_json::Value> = stretches
        .iter()
        .filter(|s| s["trouble"] == "cut_off")
        .collect();
    assert_eq!(cut.len(), 1, "one stretch cut off: {stretches:?}");
    let secs = cut[0]["seconds"].as_u64().unwrap_or(0);
    eprintln!("Xã Tối cut off for {secs} s by the report (dark for 20 s)");
    assert!((16..=26).contains(&secs), "{secs} s");
    assert!(
        site("Xã Sáng")["stretches"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    let chart = d["chart"].as_array().map_or(0, Vec::len);
    assert!(chart >= 10, "the chart has {chart} points");

    let (status, csv) = api
        .get(
            &tinh,
            &format!("/api/v1/meetings/{}/report?format=csv", m.id),
        )
        .await?;
    assert_eq!(status, 200);
    let csv = csv.as_str().unwrap_or_default().to_owned();
    let row = csv
        .lines()
        .find(|l| l.starts_with("Xã Tối"))
        .unwrap_or_default();
    assert!(row.contains("cut_off"), "{csv}");

    // The district whose communes were invited reads their report and their pages;
    // another district reads neither.
    let huyen = api.login("huyen", PW).await?;
    let khac = api.login("khac", PW).await?;
    let (status, r) = api
        .get(&huyen, &format!("/api/v1/meetings/{}/report", m.id))
        .await?;
    assert_eq!(
        (status, r["troubled"].clone()),
        (200, serde_json::json!(["Xã Tối"]))
    );
    let (status, page) = api
        .get(&huyen, &format!("/api/v1/sites/{dark}/links?days=30"))
        .await?;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page[0]["meeting_id"], m.id, "{page}");
    assert!(
        page[0]["cut_off_s"].as_u64().is_some_and(|s| s >= 16),
        "{page}"
    );
    for path in [
        format!("/api/v1/meetings/{}/report", m.id),
        format!("/api/v1/sites/{dark}/links"),
    ] {
        let (status, body) = api.get(&khac, &path).await?;
        assert_eq!(status, 403, "another district: {path} {body}");
    }
    let (status, body) = api
        .get(&tinh, &format!("/api/v1/sites/{dark}/links?days=0"))
        .await?;
    assert_eq!(status, 422, "{body}");
    Ok(())
}
