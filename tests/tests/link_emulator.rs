//! The link emulator over real UDP sockets: what comes out of a `3g-commune` relay has the
//! profile's rate, delay and loss, and a scripted blackout drops everything.

use std::time::{Duration, Instant};

use cauhop_tests::emulator::{LinkParams, Schedule};
use cauhop_tests::link::Link;
use cauhop_tests::profiles::{Profile, profile};
use tokio::net::UdpSocket;

/// Send `n` datagrams of `size` from the "peer" through `link` to the "SFU" at `every`,
/// after one packet the other way so the relay knows the peer; return arrival offsets of
/// the packets the SFU side sent towards the peer (the down direction).
async fn blast_down(
    p: &Profile,
    n: usize,
    size: usize,
    every: Duration,
) -> anyhow::Result<(Vec<(u32, Duration)>, Link)> {
    let sfu = UdpSocket::bind("127.0.0.1:0").await?;
    let peer = UdpSocket::bind("127.0.0.1:0").await?;
    let link = Link::start_profile(sfu.local_addr()?, p, 7).await?;
    // Up: introduce the peer (retry: the up direction may lose it).
    let mut buf = vec![0u8; 2048];
    let from = loop {
        peer.send_to(b"hello", link.addr).await?;
        if let Ok(Ok((_, from))) =
            tokio::time::timeout(Duration::from_millis(500), sfu.recv_from(&mut buf)).await
        {
            break from;
        }
    };
    let start = Instant::now();
    let sender = tokio::spawn(async move {
        let mut pkt = vec![0u8; size];
        for i in 0..n as u32 {
            pkt[..4].copy_from_slice(&i.to_be_bytes());
            let _ = sfu.send_to(&pkt, from).await;
            tokio::time::sleep_until(tokio::time::Instant::from_std(start + every * (i + 1))).await;
        }
    });
    let mut got = Vec::new();
    while let Ok(Ok((len, _))) =
        tokio::time::timeout(Duration::from_secs(2), peer.recv_from(&mut buf)).await
    {
        if len >= 4 {
            let seq = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
            got.push((seq, start.elapsed() - every * seq));
        }
    }
    sender.await?;
    Ok((got, link))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_3g_commune_link_has_its_rate_delay_and_loss() -> anyhow::Result<()> {
    let p = profile("3g-commune")?;
    // 600 kbit/s offered for 4 s into a 384 kbit/s downlink.
    let (got, link) = blast_down(&p, 800, 375, Duration::from_millis(5)).await?;
    // Rate over the span in which packets arrived (the queue drains after the sender stops).
    let arrivals: Vec<Duration> = got
        .iter()
        .map(|(s, d)| Duration::from_millis(5) * *s + *d)
        .collect();
    let span = arrivals.last().copied().unwrap_or_default()
        - arrivals.first().copied().unwrap_or_default();
    let delivered_kbps = (got.len() as f64 - 1.0) * 375.0 * 8.0 / span.as_secs_f64() / 1000.0;
    let min_delay = got.iter().map(|(_, d)| *d).min().unwrap_or_default();
    let in_order = got.windows(2).all(|w| w[0].0 < w[1].0);
    println!(
        "3g-commune down: offered 600 kbit/s, delivered {delivered_kbps:.0} kbit/s, min one-way delay {min_delay:?}, {} dropped",
        link.stats
            .down_dropped
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    assert!(
        (300.0..=400.0).contains(&delivered_kbps),
        "{delivered_kbps}"
    );
    assert!(
        min_delay >= Duration::from_millis(150) && min_delay < Duration::from_millis(260),
        "{min_delay:?}"
    );
    assert!(in_order);

    // Light load: only the burst loss, about 3 %.
    let (got, _) = blast_down(&p, 1500, 100, Duration::from_millis(4)).await?;
    let loss = 1.0 - got.len() as f64 / 1500.0;
    println!("3g-commune down at 200 kbit/s: loss {:.1} %", loss * 100.0);
    assert!((0.005..0.08).contains(&loss), "{loss}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_blackout_drops_everything_then_recovers() -> anyhow::Result<()> {
    let black = LinkParams {
        blackout: true,
        ..Default::default()
    };
    let clear = LinkParams::default();
    let p = Profile {
        name: "blackout".into(),
        description: String::new(),
        up: Schedule::constant(clear),
        down: Schedule {
            steps: vec![
                (Duration::ZERO, clear),
                (Duration::from_millis(300), black),
                (Duration::from_millis(900), clear),
            ],
        },
    };
    let (got, _) = blast_down(&p, 150, 100, Duration::from_millis(10)).await?;
    let during = got.iter().filter(|(s, _)| (35..85).contains(s)).count();
    let after = got.iter().filter(|(s, _)| *s >= 100).count();
    assert_eq!(during, 0, "nothing passes during the blackout");
    assert!(after >= 45, "traffic returns after it ({after})");
    Ok(())
}
