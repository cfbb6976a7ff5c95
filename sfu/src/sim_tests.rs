//! The room core in simulated meetings (`sim.rs`): slots, layer pausing, a province
//! join wave, each deterministic from its seed.

use std::time::{Duration, Instant};

use crate::sim::{CAMERA, ClientSpec, Sim};
use crate::types::{ParticipantId, ViewHints};

const ROOM: &str = "giao-ban";

fn chair() -> ClientSpec {
    ClientSpec {
        chair: true,
        level: 30,
        ..ClientSpec::site(ROOM)
    }
}

fn all_connected(s: &Sim) -> bool {
    s.clients.iter().all(|c| c.connected.is_some())
}

/// Sites 0..n: the chair speaking with a camera, the rest silent cameras.
fn meeting(seed: u64, n: usize) -> Sim {
    let mut s = Sim::new(seed);
    s.join(chair()).expect("chair joins");
    for _ in 1..n {
        s.join(ClientSpec::site(ROOM)).expect("site joins");
    }
    s.run_until(Duration::from_secs(10), all_connected)
        .expect("every site connects");
    s
}

#[test]
fn slots_keep_the_sdp_fixed_renegotiate_nobody_and_follow_the_speaker() {
    let mut small = meeting(1, 3);
    small.run(Duration::from_secs(3));
    let mut s = meeting(2, 30);
    s.run(Duration::from_secs(3));
    assert_eq!(
        small.m_lines(1),
        s.m_lines(1),
        "a subscriber's SDP has as many m-lines with 3 sites as with 30"
    );
    // Everyone was offered its slots once, when it joined; a later join offered nobody.
    let offers_before: Vec<u32> = s.clients.iter().map(|c| c.offers).collect();
    assert!(offers_before.iter().all(|n| *n == 1), "{offers_before:?}");
    s.join(ClientSpec::site(ROOM)).expect("a late site joins");
    s.run(Duration::from_secs(2));
    for (c, before) in s.clients.iter().zip(&offers_before) {
        assert_eq!(c.offers, *before, "participant {} was renegotiated", c.id);
    }
    // The chair is on everyone's main slot, and heard.
    let chair_id = s.clients[0].id.0;

    for i in 1..s.clients.len() {
        assert_eq!(
            s.in_slot(i, "v0", Duration::from_millis(500)).map(|x| x.0),
            Some(chair_id),
            "site {i} sees the chair in its main slot"
        );
        assert!(s.heard(i, Duration::from_millis(500)).contains(&chair_id));
    }
    // Site 7 speaks, the chair falls silent: site 7 takes the main slot within a
    // keyframe interval (the speaker detector's switch delay, then a keyframe).
    let speaker = 7;
    let speaker_id = s.clients[speaker].id.0;
    s.set_level(0, 127);
    s.set_level(speaker, 25);
    let took = s.run_until(Duration::from_secs(5), |s| {
        s.in_slot(12, "v0", Duration::from_millis(100)).map(|x| x.0) == Some(speaker_id)
    });
    let took = took.expect("the main slot carries the new speaker");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    s.run(Duration::from_secs(1));
    let map = s.clients[12].slots.clone().expect("slot map sent");
    assert_eq!(
        map.video[0].map(|v| v.participant),
        Some(ParticipantId(speaker_id)),
        "the slot message names the new speaker"
    );
    assert!(
        s.heard(12, Duration::from_millis(300))
            .contains(&speaker_id)
    );
}

#[test]
fn unwatched_layers_are_paused_and_come_back_when_a_subscriber_wants_them() {
    let mut s = Sim::new(3);
    s.join(ClientSpec {
        layers: CAMERA.to_vec(),
        ..chair()
    })
    .expect("chair");
    let thumbs = ViewHints {
        slots: vec![180],
        ..Default::default()
    };
    for _ in 0..3 {
        s.join(ClientSpec {
            view: Some(thumbs.clone()),
            ..ClientSpec::site(ROOM)
        })
        .expect("site");
    }
    s.run_until(Duration::from_secs(10), all_connected)
        .expect("connected");
    let told = s.run_until(Duration::from_secs(10), |s| {
        s.clients[0].active_layers.is_some()
    });
    assert!(
        told.is_some(),
        "the publisher was told which layers to send"
    );
    assert_eq!(
        s.clients[0].active_layers.as_deref(),
        Some(&["q".to_string()][..])
    );
    // One subscriber makes its main tile 720 px tall: the top layer comes back, and it
    // receives it.
    s.set_view(
        1,
        ViewHints {
            slots: vec![720],
            ..Default::default()
        },
    );
    let back = s.run_until(Duration::from_secs(15), |s| {
        s.in_slot(1, "v0", Duration::from_millis(200)).map(|x| x.1) == Some(2)
    });
    let active = s.clients[0].active_layers.clone();
    assert!(
        back.is_some(),
        "720p did not come back; publisher sends {active:?}"
    );
    assert!(active.is_some_and(|a| a.contains(&"f".to_string())));
}

#[test]
fn a_province_join_wave_connects_every_site_without_renegotiating_anyone() {
    // 270 sites in the real meeting; CAUHOP_SIM_SITES sets another size.
    let n: usize = std::env::var("CAUHOP_SIM_SITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(270);
    let real = Instant::now();
    let mut s = Sim::new(6);
    s.join(ClientSpec {
        layers: vec![CAMERA[0]],
        ..chair()
    })
    .expect("chair");
    // Sites join in waves of ten, 100 ms apart, each with a silent microphone (DTX) and
    // a small camera at a low rate.
    let camera = crate::sim::LayerSpec {
        fps: 5,
        kbps: 60,
        ..CAMERA[0]
    };
    while s.clients.len() < n {
        for _ in 0..10.min(n - s.clients.len()) {
            s.join(ClientSpec {
                layers: vec![camera],
                ..ClientSpec::site(ROOM)
            })
            .expect("site joins");
        }
        s.run(Duration::from_millis(100));
    }
    let connected = s.run_until(Duration::from_secs(20), all_connected);
    assert!(connected.is_some(), "not every site connected");
    s.run(Duration::from_secs(3));
    let chair_id = s.clients[0].id.0;
    let mut missing = Vec::new();
    for i in 1..n {
        let video = s.in_slot(i, "v0", Duration::from_secs(1)).map(|x| x.0) == Some(chair_id);
        let audio = s.heard(i, Duration::from_secs(1)).contains(&chair_id);
        if !(video && audio) {
            missing.push(i);
        }
    }
    assert!(
        missing.is_empty(),
        "without the chair's video and voice: {missing:?}"
    );
    let offers: u32 = s.clients.iter().map(|c| c.offers).sum();
    assert_eq!(
        offers as usize, n,
        "one offer per site (its own slots), none to others"
    );
    println!(
        "join wave: {n} sites, {:.1} s simulated, {:.1} s real, SFU core {:.2} s, {} datagrams out",
        s.elapsed().as_secs_f64(),
        real.elapsed().as_secs_f64(),
        s.core_busy.as_secs_f64(),
        s.sfu_datagrams
    );
}
