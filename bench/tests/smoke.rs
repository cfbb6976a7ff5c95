//! A few seconds of each load scenario against a bridge in this process, checking the
//! generator's bookkeeping rather than speed: every packet a subscriber was forwarded
//! is received or lost and no more than was published, nobody gets its own media back,
//! and the delay figures are positive. Speed is `cauhop-load`'s business (bench/README).

use std::time::Duration;

use cauhop_bench::cauhop_target::CauhopTarget;
use cauhop_bench::report::Report;
use cauhop_bench::scenario::{self, Kind, RunOptions, Scenario, Target};
use cauhop_tests::bridge::Bridge;

async fn smoke(kind: Kind, n: usize, publishers: usize) -> Report {
    cauhop_tests::init_log();
    let bridge = Bridge::start().await.expect("bridge");
    let meeting = format!("smoke-{kind:?}");
    let target = Target::Cauhop(CauhopTarget::running(
        bridge.ws_url(),
        &meeting,
        std::process::id(),
    ));
    let scenario = Scenario {
        kind,
        n,
        publishers,
    };
    let opt = RunOptions {
        warmup: Duration::from_secs(2),
        duration: Duration::from_secs(3),
        progress: false,
        ..RunOptions::default()
    };
    let r = scenario::run(&target, &scenario, &opt).await.expect("run");
    println!("{}\n{}\n{}", Report::header(), r.row(), r.ledger());
    assert!(r.problems.is_empty(), "bookkeeping: {:#?}", r.problems);
    assert_eq!(r.own, 0, "own media came back");
    assert!(r.published > 0 && r.total.expected > 0, "nothing flowed");
    assert_eq!(r.total.received + r.total.lost, r.total.expected);
    assert!(r.total.received <= r.total.expected);
    assert!(r.audio.received > 0, "no audio forwarded");
    let (p50, p99) = (r.p50_us.expect("p50"), r.p99_us.expect("p99"));
    assert!(
        p50 > 0 && p99 >= p50 && r.max_us >= p99,
        "{p50} {p99} {}",
        r.max_us
    );
    assert!(r.forwarded_packets > 0);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meeting_3x3() {
    let r = smoke(Kind::Meeting, 3, 1).await;
    assert!(r.video.received > 0, "no video forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_1_to_4() {
    let r = smoke(Kind::Broadcast, 4, 1).await;
    assert!(r.video.received > 0, "no video forwarded");
    // Every receiver hears the chair from its first packet to the publisher's last.
    assert!(r.audio.spans >= 4, "{:?}", r.audio);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_6_with_2_speaking() {
    let r = smoke(Kind::Audio, 6, 2).await;
    assert_eq!(r.video.expected, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn province_12() {
    let r = smoke(Kind::Province, 12, 1).await;
    assert!(r.video.received > 0, "no video forwarded");
    // 3 audio and 7 video slots, plus the site's own microphone and camera.
    assert_eq!(r.m_lines, 12, "m-lines per subscriber");
}
