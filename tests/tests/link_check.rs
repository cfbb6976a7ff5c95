//! `cauhop-endpoint check` against the bridge's media port through the link emulator:
//! fibre must read go, a mountain commune's 3G weak, the edge of the cell no-go, and the
//! figures must be close to what the emulator imposes. The figures are printed.

use std::time::Duration;

use cauhop_endpoint::bridge::BridgeClient;
use cauhop_endpoint::check::{self, Plan, Verdict, judge, render};
use cauhop_signaling::Options;
use cauhop_store::model::*;
use cauhop_tests::bridge::Bridge;
use cauhop_tests::link::Link;
use cauhop_tests::profiles::profile;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_check_verdicts_per_profile() -> anyhow::Result<()> {
    cauhop_tests::init_log();
    let bridge = Bridge::start_with(Options::default()).await?;
    let site = bridge
        .store
        .create_site(&NewSite {
            code: "X".into(),
            name: "Xã".into(),
            kind: SiteKind::Province,
            parent_id: None,
            down_kbps: 384,
            up_kbps: 128,
        })
        .await?;
    let room = bridge
        .store
        .create_endpoint(&NewEndpoint {
            site_id: site.id,
            name: "Phòng họp".into(),
        })
        .await?;
    let client = BridgeClient::new(&bridge.url(""), &room.key);

    // Without a key there is no ticket, and a probe without a valid token gets nothing.
    let stranger = BridgeClient::new(&bridge.url(""), "not-a-key");
    assert!(stranger.link_check_ticket().await.is_err());
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let forged =
        cauhop_protocol::probe::packet(cauhop_protocol::probe::ECHO, &[9; 16], 0, 0, &[], 100);
    sock.send_to(&forged, bridge.media_addr()).await?;
    let mut buf = [0u8; 256];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), sock.recv(&mut buf))
            .await
            .is_err(),
        "a forged token is answered"
    );

    let mut rows = Vec::new();
    for (name, want) in [
        ("fibre", Verdict::Go),
        ("3g-commune", Verdict::Weak),
        ("3g-bad", Verdict::NoGo),
    ] {
        let p = profile(name)?;
        let link = Link::start_profile(bridge.media_addr(), &p, 11).await?;
        let f = check::run(&client, Some(link.addr), Plan::default()).await?;
        let (v, why) = judge(&f);
        println!("--- {name} ---\n{}", render(&f, v, &why));
        rows.push(format!(
            "| {name} | {:.0} | {:.1} / {:.1} | {:.0} | {:.0} | {:.1} | {} |",
            f.rtt_ms,
            f.loss_up * 100.0,
            f.loss_down * 100.0,
            f.up_kbps,
            f.down_kbps,
            f.seconds,
            v.label()
        ));
        assert_eq!(v, want, "{name}: {f:?} {why:?}");
        assert!(f.seconds < 30.0, "a check takes under 30 s");
        // The figures track the emulated link.
        if name == "3g-commune" {
            assert!((300.0..450.0).contains(&f.rtt_ms), "rtt {f:?}");
            assert!((100.0..140.0).contains(&f.up_kbps), "up {f:?}");
            assert!((300.0..400.0).contains(&f.down_kbps), "down {f:?}");
        }
    }
    println!("| profile | RTT ms | loss up / down % | up kbit/s | down kbit/s | s | verdict |");
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    let stats = bridge.sfu.stats().await?;
    assert!(stats.probes_refused >= 1, "the forged probe was counted");
    // Six tickets an hour per device (three went to the checks above).
    for n in 0..3 {
        assert!(client.link_check_ticket().await.is_ok(), "ticket {}", n + 4);
    }
    match client.link_check_ticket().await {
        Err(cauhop_endpoint::bridge::BridgeError::Status(429, _)) => {}
        other => panic!("a seventh ticket within the hour: {other:?}"),
    }
    Ok(())
}
