//! The room core in simulated meetings (`sim.rs`): slots, layer pausing, a province
//! join wave, a clean link climbing and a weak commune, each deterministic from its
//! seed.

use std::time::{Duration, Instant};

use crate::sim::{CAMERA, ClientSpec, LinkSpec, Sim};
use crate::types::{ParticipantId, ViewHints};

const ROOM: &str = "giao-ban";

fn chair() -> ClientSpec {
    ClientSpec {
        chair: true,
        level: 30,
        ..ClientSpec::site(ROOM)
    }
}

/// A chair sending three layers, and `sites` sites that show one 180 px tile: nobody
/// wants more than the chair's lowest layer.
fn chair_and_thumbnails(seed: u64, sites: usize) -> Sim {
    let mut s = Sim::new(seed);
    s.join(ClientSpec {
        layers: CAMERA.to_vec(),
        ..chair()
    })
    .expect("chair");
    let thumbs = ViewHints {
        slots: vec![180],
        ..Default::default()
    };
    for _ in 0..sites {
        s.join(ClientSpec {
            view: Some(thumbs.clone()),
            ..ClientSpec::site(ROOM)
        })
        .expect("site");
    }
    s
}

fn all_connected(s: &Sim) -> bool {
    s.clients.iter().all(|c| c.connected.is_some())
}

/// Sites 0..n: the chair speaking with a camera, the rest silent cameras.
fn meeting(seed: u64, n: usize) -> Sim {
    meeting_in(Sim::new(seed), n)
}

/// [`meeting`] on a simulation set up beforehand.
fn meeting_in(mut s: Sim, n: usize) -> Sim {
    s.join(chair()).expect("chair joins");
    for _ in 1..n {
        s.join(ClientSpec::site(ROOM)).expect("site joins");
    }
    s.run_until(Duration::from_secs(10), all_connected)
        .expect("every site connects");
    s
}

/// Every site but the chair sees the chair in its main slot and hears it.
fn assert_chair_on_every_main_slot(s: &Sim) {
    let chair_id = s.clients[0].id.0;
    for i in 1..s.clients.len() {
        assert_eq!(
            s.in_slot(i, "v0", Duration::from_millis(500)).map(|x| x.0),
            Some(chair_id),
            "site {i} sees the chair in its main slot"
        );
        assert!(s.heard(i, Duration::from_millis(500)).contains(&chair_id));
    }
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
    assert_chair_on_every_main_slot(&s);
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
    for (i, c) in s.clients.iter().enumerate() {
        assert_eq!(
            c.seq_gaps, 0,
            "site {i}: a video slot's sequence numbers jumped"
        );
    }
}

/// A client that offered first is offered its slots once its session is connected
/// (webrtc-rs took an offer right after an answer for an ICE restart); a client that
/// only said `ready` is offered at once, since it cannot connect without that offer.
#[test]
fn a_publish_only_client_is_forwarded_and_never_offered_slots() {
    let mut s = Sim::new(21);
    s.join(ClientSpec {
        publish_only: true,
        ..chair()
    })
    .expect("WHIP-style publisher");
    s.join(ClientSpec::site(ROOM)).expect("site");
    s.run_until(Duration::from_secs(10), all_connected)
        .expect("both connect");
    s.run(Duration::from_secs(3));
    let encoder = s.clients[0].id.0;
    assert_eq!(
        s.clients[0].offers, 0,
        "a publish-only client was sent an offer"
    );
    assert!(
        s.clients[0].received.is_empty(),
        "a publish-only client was sent media"
    );
    let got = |kind: char| -> u64 {
        s.clients[1]
            .received
            .iter()
            .filter(|(slot, _)| slot.starts_with(kind))
            .filter_map(|(_, from)| from.get(&encoder))
            .map(|c| c.packets)
            .sum()
    };
    assert!(
        got('a') > 50,
        "the site heard the encoder: {} packets",
        got('a')
    );
    assert!(
        got('v') > 50,
        "the site saw the encoder: {} packets",
        got('v')
    );
}

#[test]
fn slots_are_offered_after_connecting_to_a_publisher_and_at_once_to_a_watcher() {
    let mut s = Sim::new(9);
    let start = s.now;
    s.join(chair()).expect("publisher");
    s.join(ClientSpec {
        audio: false,
        layers: Vec::new(),
        ..ClientSpec::site(ROOM)
    })
    .expect("watcher");
    // A few milliseconds in, handshakes under way: only the watcher has its offer.
    s.run(Duration::from_millis(4));
    assert_eq!(s.clients[1].offers, 1, "the watcher is offered at once");
    assert_eq!(
        s.clients[0].offers, 0,
        "the publisher is not offered before it connects"
    );
    s.run_until(Duration::from_secs(10), all_connected)
        .expect("both connect");
    s.run(Duration::from_millis(200));
    let p = &s.clients[0];
    assert_eq!(p.offers, 1, "the publisher got its slots once connected");
    // Connecting took the ICE and DTLS round trips (5 ms each way on this link).
    let offered = p.first_offer.map(|t| t - start);
    assert!(
        offered >= Some(Duration::from_millis(20)),
        "offered at {offered:?}"
    );
}

#[test]
fn unwatched_layers_are_paused_and_come_back_when_a_subscriber_wants_them() {
    let mut s = chair_and_thumbnails(3, 3);
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

#[test]
fn a_clean_link_climbs_to_the_layer_the_tile_asks_for() {
    let mut s = Sim::new(4);
    s.join(ClientSpec {
        layers: CAMERA.to_vec(),
        ..chair()
    })
    .expect("chair");
    s.join(ClientSpec {
        layers: CAMERA.to_vec(),
        ..ClientSpec::site(ROOM)
    })
    .expect("second camera");
    let joined = s.now;
    // 622x347 tiles, as two pages on a laptop showed: the main tile asks for 360p.
    s.join(ClientSpec {
        view: Some(ViewHints {
            slots: vec![347, 180],
            ..Default::default()
        }),
        ..ClientSpec::site(ROOM)
    })
    .expect("subscriber");
    let main = s.run_until(Duration::from_secs(8), |s| {
        s.in_slot(2, "v0", Duration::from_millis(200)).map(|x| x.1) == Some(1)
    });
    let main = main.map(|_| s.now - joined);
    let thumb = s.run_until(Duration::from_secs(8), |s| {
        s.in_slot(2, "v1", Duration::from_millis(200)).map(|x| x.1) == Some(0)
            && s.in_slot(2, "v0", Duration::from_millis(200)).map(|x| x.1) == Some(1)
    });
    let both = thumb.map(|_| s.now - joined);
    println!("clean link: main slot at 360p after {main:?}, with the thumbnail after {both:?}");
    let stats = &s.core.stats()[2];
    assert!(
        main.is_some(),
        "the main slot never reached 360p: {stats:?}"
    );
    let both = both.unwrap_or_else(|| panic!("the thumbnail never came with it: {stats:?}"));
    assert!(both <= Duration::from_secs(8), "took {both:?}: {stats:?}");
}

#[test]
fn a_weak_commune_gets_the_small_picture_then_audio_only_and_keeps_hearing() {
    let mut s = Sim::new(5);
    s.join(ClientSpec {
        layers: CAMERA.to_vec(),
        ..chair()
    })
    .expect("chair");
    let three_g = LinkSpec {
        down_kbps: 400,
        up_kbps: 200,
        delay: Duration::from_millis(80),
        loss: 0.01,
        queue: Duration::from_millis(400),
    };
    s.join(ClientSpec {
        link: three_g,
        ..ClientSpec::site(ROOM)
    })
    .expect("commune");
    s.run_until(Duration::from_secs(15), |s| {
        s.in_slot(1, "v0", Duration::from_millis(300)).is_some()
    })
    .expect("the commune sees the chair");
    s.run(Duration::from_secs(5));
    assert_eq!(
        s.in_slot(1, "v0", Duration::from_millis(300)).map(|x| x.1),
        Some(0),
        "180p on 400 kbit/s: {:?}",
        s.core.stats()[1]
    );
    s.set_link(
        1,
        LinkSpec {
            down_kbps: 90,
            ..three_g
        },
    );
    s.run(Duration::from_secs(6));
    let chair_id = s.clients[0].id.0;
    assert!(
        s.in_slot(1, "v0", Duration::from_secs(2)).is_none(),
        "video stopped: {:?}",
        s.core.stats()[1]
    );
    assert!(
        s.heard(1, Duration::from_millis(500)).contains(&chair_id),
        "audio kept"
    );
}

/// The browser scenario's link (3 Mbit/s, 250 kbit/s from 20 s, 3 Mbit/s from 40 s),
/// in simulated time: the main slot goes down with the link, stays down while it is
/// low (no probing up into a link that cannot carry the next layer), and comes back.
#[test]
fn a_stepped_link_goes_down_with_the_link_stays_down_and_comes_back() {
    let mut s = Sim::new(7);
    s.join(ClientSpec {
        layers: CAMERA.to_vec(),
        ..chair()
    })
    .expect("chair");
    let fast = LinkSpec {
        down_kbps: 3000,
        up_kbps: 3000,
        delay: Duration::from_millis(10),
        loss: 0.0,
        queue: Duration::from_millis(500),
    };
    s.join(ClientSpec {
        link: fast,
        view: Some(ViewHints {
            slots: vec![720],
            ..Default::default()
        }),
        ..ClientSpec::site(ROOM)
    })
    .expect("subscriber");
    // The main slot's layer as the SFU forwards it (its height), and as it arrives: a
    // packet that waited in a queue may arrive after the decision changed.
    let forwarded = |s: &Sim| s.core.stats()[1].forwarding.first().and_then(|f| f.height);
    let layer = |s: &Sim| s.in_slot(1, "v0", Duration::from_millis(300)).map(|x| x.1);
    let mut timeline = Vec::new();
    let sample = |s: &mut Sim, until: Duration, timeline: &mut Vec<(f64, Option<u16>)>| {
        while s.elapsed() < until {
            s.run(Duration::from_millis(500));
            timeline.push((s.elapsed().as_secs_f64(), forwarded(s)));
        }
    };
    sample(&mut s, Duration::from_secs(20), &mut timeline);
    let before = layer(&s);
    s.set_link(
        1,
        LinkSpec {
            down_kbps: 250,
            ..fast
        },
    );
    sample(&mut s, Duration::from_secs(40), &mut timeline);
    s.set_link(1, fast);
    sample(&mut s, Duration::from_secs(60), &mut timeline);
    let stats = &s.core.stats()[1];
    let during: Vec<Option<u16>> = timeline
        .iter()
        .filter(|(t, _)| (26.0..40.0).contains(t))
        .map(|x| x.1)
        .collect();
    println!("stepped link: {timeline:?}");
    assert!(before >= Some(1), "before the step: {before:?} {stats:?}");
    assert!(
        during.iter().all(|h| *h <= Some(180)),
        "the main slot went above 180p on 250 kbit/s: {during:?}"
    );
    assert!(
        layer(&s) >= Some(1),
        "after the step: {:?} {stats:?}",
        layer(&s)
    );
}

/// A layer paused long ago keeps the price it had while it was sent: a newcomer on a
/// 400 kbit/s link with a tall tile gets the small picture, not a 720p layer priced at
/// what trickled in as it stopped.
#[test]
fn a_paused_layer_keeps_its_price() {
    let mut s = chair_and_thumbnails(8, 2);
    s.run(Duration::from_secs(15));
    assert_eq!(
        s.clients[0].active_layers.as_deref(),
        Some(&["q".to_string()][..])
    );
    let commune = s
        .join(ClientSpec {
            link: LinkSpec {
                down_kbps: 400,
                up_kbps: 200,
                delay: Duration::from_millis(80),
                loss: 0.0,
                queue: Duration::from_millis(400),
            },
            view: Some(ViewHints {
                slots: vec![720],
                ..Default::default()
            }),
            ..ClientSpec::site(ROOM)
        })
        .expect("commune");
    let mut heights = Vec::new();
    for _ in 0..20 {
        s.run(Duration::from_millis(500));
        heights.push(
            s.core.stats()[commune]
                .forwarding
                .first()
                .and_then(|f| f.height),
        );
    }
    assert!(
        heights.iter().all(|h| *h <= Some(180)),
        "a 400 kbit/s link was given {heights:?}"
    );
    assert!(
        heights.contains(&Some(180)),
        "the small picture came: {heights:?}"
    );
}

/// The sessions polled on three threads (two workers and the caller), from one session
/// due, so every poll takes the parallel path: the same meeting as on one thread.
#[test]
fn sessions_polled_on_worker_threads_make_the_same_meeting() {
    let mut threaded = Sim::new(11);
    threaded.core.set_workers(3).expect("worker threads");
    threaded.core.set_parallel_from(1);
    assert_eq!(threaded.core.workers(), 3);
    let mut s = meeting_in(threaded, 20);
    s.run(Duration::from_secs(3));
    assert_chair_on_every_main_slot(&s);
    let speaker = 5;
    let speaker_id = s.clients[speaker].id.0;
    s.set_level(0, 127);
    s.set_level(speaker, 25);
    s.run_until(Duration::from_secs(5), |s| {
        s.in_slot(9, "v0", Duration::from_millis(100)).map(|x| x.0) == Some(speaker_id)
    })
    .expect("the main slot carries the new speaker");
    for (i, c) in s.clients.iter().enumerate() {
        assert_eq!(c.offers, 1, "site {i} was offered its slots once");
        assert_eq!(c.seq_gaps, 0, "site {i}: a slot's sequence numbers jumped");
    }
}

/// GStreamer's `webrtcbin` (libnice) keeps its path alive with STUN binding
/// indications, which the ICE-lite side does not count: the bridge ended its session
/// after 30 s although authenticated media kept arriving on the pair. Media that
/// arrives is evidence of the path; a session ends only when nothing does, 30 s after.
#[test]
fn media_arriving_keeps_a_session_whose_checks_stopped() {
    let mut s = meeting(7, 3);
    s.clients[0].stun_lost = true;
    s.run(Duration::from_secs(75));
    assert_eq!(s.clients[0].ended, None, "the chair's session was ended");
    let chair_id = s.clients[0].id.0;
    assert!(
        s.heard(1, Duration::from_millis(500)).contains(&chair_id),
        "site 1 no longer hears the chair"
    );
    // When nothing arrives any more, the session still ends.
    s.set_link(
        0,
        LinkSpec {
            loss: 1.0,
            ..LinkSpec::FIBRE
        },
    );
    s.run(Duration::from_secs(29));
    assert_eq!(s.clients[0].ended, None, "ended before the grace");
    s.run(Duration::from_secs(3));
    assert_eq!(s.clients[0].ended.as_deref(), Some("ice_disconnected"));
}

/// The same for a client that only receives (a hall display, a recorder): its
/// reports, decrypted, are the evidence.
#[test]
fn reports_arriving_keep_a_watcher_whose_checks_stopped() {
    let mut s = meeting(11, 2);
    let w = s
        .join(ClientSpec {
            audio: false,
            layers: Vec::new(),
            ..ClientSpec::site(ROOM)
        })
        .expect("watcher joins");
    s.run_until(Duration::from_secs(10), all_connected)
        .expect("the watcher connects");
    s.clients[w].stun_lost = true;
    s.run(Duration::from_secs(75));
    assert_eq!(s.clients[w].ended, None, "the watcher's session was ended");
    let chair_id = s.clients[0].id.0;
    assert!(
        s.heard(w, Duration::from_millis(500)).contains(&chair_id),
        "the watcher no longer hears the chair"
    );
}

/// Packets client `i` received from each sender across its audio slots.
fn audio_packets(s: &Sim, i: usize) -> std::collections::BTreeMap<u64, u64> {
    let mut by = std::collections::BTreeMap::new();
    for (slot, senders) in &s.clients[i].received {
        if slot.starts_with('a') {
            for (sender, n) in senders {
                *by.entry(*sender).or_default() += n.packets;
            }
        }
    }
    by
}

/// A 30-site meeting in which the chair mutes everyone but itself: sites whose pages
/// go on sending speech (as a page that ignores the mute message would) reach nobody,
/// and no held voice takes anyone's main slot. The floor then goes to a site that raised
/// its hand (signaling lets its voice through): everyone sees and hears it within a
/// keyframe interval. Its camera stopped, the main slot goes back to the chair.
#[test]
fn held_sites_reach_nobody_and_the_floor_holder_reaches_everyone() {
    let mut s = meeting(11, 30);
    s.record(ROOM, true);
    let talkers = [3usize, 8, 17, 25];
    for &t in &talkers {
        s.set_level(t, 20);
    }
    s.run(Duration::from_secs(2));
    assert!(
        talkers.iter().any(|&t| s
            .heard(1, Duration::from_millis(500))
            .contains(&s.clients[t].id.0)),
        "before the mute the talkers are heard"
    );
    // Mute all: one decision of the room for the 29 holds.
    let decisions = s.core.decisions();
    let all: Vec<(usize, bool, bool)> = (1..30).map(|i| (i, true, false)).collect();
    s.hold(&all);
    assert_eq!(s.core.decisions() - decisions, 1, "29 holds, one decision");
    s.run(Duration::from_millis(300));
    let before: Vec<_> = (0..30).map(|i| audio_packets(&s, i)).collect();
    s.run(Duration::from_secs(5));
    let chair_id = s.clients[0].id.0;
    for (i, was) in before.iter().enumerate() {
        let now = audio_packets(&s, i);
        for (sender, n) in &now {
            let new = n - was.get(sender).copied().unwrap_or(0);
            assert!(
                new == 0 || *sender == chair_id,
                "site {i} got {new} audio packets from held participant {sender}"
            );
        }
    }
    assert_chair_on_every_main_slot(&s);
    // The record takes what the room hears: the chair, none of the held talkers.
    let recorded_before = s.recorded.len();

    // Site 17 raised its hand; the chair gives it the floor and signaling lets its
    // voice through.
    let holder = 17;
    let holder_id = s.clients[holder].id.0;
    s.hold(&[(holder, false, false)]);
    s.floor(ROOM, Some(holder));
    let took = s.run_until(Duration::from_secs(5), |s| {
        (1..30).filter(|&i| i != holder).all(|i| {
            s.in_slot(i, "v0", Duration::from_millis(100)).map(|x| x.0) == Some(holder_id)
                && s.heard(i, Duration::from_millis(100)).contains(&holder_id)
        })
    });
    let took = took.expect("every site sees and hears the floor holder");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // The other talkers are still held.
    let held_talkers: Vec<u64> = talkers
        .iter()
        .filter(|&&t| t != holder)
        .map(|&t| s.clients[t].id.0)
        .collect();
    s.run(Duration::from_secs(1));
    for i in 0..30 {
        let heard = s.heard(i, Duration::from_millis(800));
        assert!(
            held_talkers.iter().all(|t| !heard.contains(t)),
            "site {i} hears a held talker: {heard:?}"
        );
    }

    let recorded: std::collections::BTreeSet<u64> = s.recorded[recorded_before..]
        .iter()
        .map(|r| r.0.0)
        .collect();
    assert!(
        recorded.contains(&chair_id) && recorded.contains(&holder_id),
        "{recorded:?}"
    );
    assert!(
        held_talkers.iter().all(|t| !recorded.contains(t)),
        "a held talker in the record: {recorded:?}"
    );
    // The floor holder's camera goes to the record too, and nobody else's.
    let video: std::collections::BTreeSet<u64> = s.recorded_video.iter().map(|r| r.0.0).collect();
    assert_eq!(
        video.into_iter().collect::<Vec<_>>(),
        [holder_id],
        "recorded cameras"
    );

    // The chair stops the floor holder's camera: the main slot shows the chair again,
    // the holder's voice goes on.
    s.hold(&[(holder, false, true)]);
    let back = s.run_until(Duration::from_secs(5), |s| {
        (1..30)
            .filter(|&i| i != holder)
            .all(|i| s.in_slot(i, "v0", Duration::from_millis(100)).map(|x| x.0) == Some(chair_id))
    });
    assert!(back.is_some(), "the held camera left every main slot");
    assert!(s.heard(5, Duration::from_millis(300)).contains(&holder_id));
    for (i, c) in s.clients.iter().enumerate() {
        assert_eq!(
            c.seq_gaps, 0,
            "site {i}: a video slot's sequence numbers jumped"
        );
    }
}
