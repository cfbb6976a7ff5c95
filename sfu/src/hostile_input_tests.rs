//! Every parser that faces the network, fed what a hostile peer could send: arbitrary
//! bytes, and bytes shaped like RTP, RTCP, STUN and DTLS. Nothing may panic, every call
//! must return (proptest's per-case timeout is a hang guard, far above any real cost; the
//! speed of these paths is in the benches), and a meeting under such a stream keeps its
//! media flowing.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::probe::{self, ProbeServer};
use crate::rtp::keyframe::{VideoCodec, is_keyframe_start};
use crate::rtp::red;
use crate::rtp::vp8::{self, Vp8Rewriter};
use crate::sim::{ClientSpec, Sim};

/// A hang, not a slow case: every input here is at most a few kilobytes.
const HANG_GUARD_MS: u32 = 10_000;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        timeout: HANG_GUARD_MS,
        ..ProptestConfig::default()
    }
}

/// Bytes as they come off the wire: anything, or with the first bytes of an RTP or RTCP
/// header (version 2, any payload type), a STUN header (with the magic cookie), or a
/// DTLS record, so the parsers behind each demultiplexing branch are reached.
fn datagram() -> impl Strategy<Value = Vec<u8>> {
    let tail = vec(any::<u8>(), 0..1400);
    prop_oneof![
        vec(any::<u8>(), 0..1500),
        (0x80u8..0xc0, any::<u8>(), tail.clone()).prop_map(|(b0, pt, t)| {
            let mut d = vec![b0, pt];
            d.extend(t);
            d
        }),
        (0x80u8..0xc0, 200u8..=207, tail.clone()).prop_map(|(b0, pt, t)| {
            let mut d = vec![b0, pt];
            d.extend(t);
            d
        }),
        (0u8..2, any::<u8>(), any::<u16>(), tail.clone()).prop_map(|(b0, b1, len, t)| {
            let mut d = vec![b0, b1];
            d.extend(len.to_be_bytes());
            d.extend([0x21, 0x12, 0xa4, 0x42]);
            d.extend(t);
            d
        }),
        (20u8..64, tail).prop_map(|(b0, t)| {
            let mut d = vec![b0, 0xfe, 0xfd];
            d.extend(t);
            d
        }),
    ]
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn keyframe_detection_takes_any_payload(p in vec(any::<u8>(), 0..1500)) {
        for codec in [VideoCodec::Vp8, VideoCodec::H264, VideoCodec::Other] {
            let _ = is_keyframe_start(codec, &p);
        }
    }

    #[test]
    fn the_vp8_descriptor_takes_any_payload_and_keeps_its_length(
        p in vec(any::<u8>(), 0..64),
        sources in vec(0u64..4, 1..8),
    ) {
        let _ = vp8::keyframe_size(&p);
        let mut r = Vp8Rewriter::default();
        let shared: Arc<[u8]> = p.clone().into();
        for s in sources {
            let mut q = p.clone();
            r.rewrite(s, &mut q);
            prop_assert_eq!(q.len(), p.len());
            if let Some(out) = r.rewrite_shared(s, &shared) {
                prop_assert_eq!(out.len(), p.len());
            }
        }
    }

    #[test]
    fn red_takes_any_payload(p in vec(any::<u8>(), 0..1500)) {
        let _ = red::primary(&p);
    }

    #[test]
    fn link_check_probes_take_any_datagram(d in datagram(), mut probe_like in vec(any::<u8>(), 0..200)) {
        let mut server = ProbeServer::default();
        let now = Instant::now();
        let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), 40000);
        let _ = probe::is_probe(&d);
        let _ = server.handle(now, 0, from, &d);
        // Past the first check: what a probe starts with, then anything.
        if let Some(first) = d.first() {
            probe_like.insert(0, *first);
        }
        let _ = server.handle(now, 0, from, &probe_like);
        let mut out = Vec::new();
        server.poll(now + Duration::from_secs(1), &mut out);
    }
}

/// A meeting of three under a stream of hostile datagrams, from its members' own
/// addresses (a spoofer on the path) and from strangers: no panic, and afterwards every
/// site still hears the chair.
#[test]
fn the_room_core_takes_any_datagram_and_the_meeting_goes_on() {
    let mut sim = Sim::new(7);
    sim.join(ClientSpec {
        chair: true,
        level: 30,
        ..ClientSpec::site("room")
    })
    .expect("chair joins");
    for _ in 0..2 {
        sim.join(ClientSpec::site("room")).expect("site joins");
    }
    sim.run_until(Duration::from_secs(10), |s| {
        s.clients.iter().all(|c| c.connected.is_some())
    })
    .expect("every site connects");
    sim.run(Duration::from_secs(2));
    let chair = sim.clients[0].id.0;
    let sim = RefCell::new(sim);
    // One simulation across the cases (a meeting takes a while to set up); the runner's
    // timeout would need a fork per case, so a hang here shows as a stuck test instead.
    let mut runner = TestRunner::new(Config {
        cases: 200,
        ..Config::default()
    });
    let from_member = (0usize..3).prop_map(Some);
    let from_stranger = (1u8..255).prop_map(|_| None);
    let source = prop_oneof![from_member, from_stranger];
    runner
        .run(&vec((source, datagram()), 1..20), |batch| {
            let mut s = sim.borrow_mut();
            let to = s.sfu_addr();
            for (who, d) in batch {
                let from = match who {
                    Some(i) => s.client_addr(i),
                    None => SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)), 4000),
                };
                let now = s.now;
                let _ = s.core.receive(now, from, to, &d);
            }
            s.run(Duration::from_millis(20));
            Ok(())
        })
        .expect("no hostile datagram panics the room core");
    let mut s = sim.into_inner();
    s.run(Duration::from_secs(2));
    for i in 1..3 {
        assert!(
            s.heard(i, Duration::from_millis(500)).contains(&chair),
            "site {i} still hears the chair after the hostile stream"
        );
    }
}

/// A STUN binding request naming `ufrag`, with a MESSAGE-INTEGRITY made without the
/// session's password: a forgery that parses.
fn forged_check(ufrag: &str) -> Vec<u8> {
    let name = format!("{ufrag}:someone");
    let mut attr = Vec::new();
    attr.extend(0x0006u16.to_be_bytes());
    attr.extend((name.len() as u16).to_be_bytes());
    attr.extend(name.as_bytes());
    while attr.len() % 4 != 0 {
        attr.push(0);
    }
    // PRIORITY, which a check must carry (RFC 8445 7.1.1).
    attr.extend(0x0024u16.to_be_bytes());
    attr.extend(4u16.to_be_bytes());
    attr.extend(0x6e00_1effu32.to_be_bytes());
    attr.extend(0x0008u16.to_be_bytes());
    attr.extend(20u16.to_be_bytes());
    attr.extend([0x5au8; 20]);
    let mut d = vec![0x00, 0x01];
    d.extend((attr.len() as u16).to_be_bytes());
    d.extend([0x21, 0x12, 0xa4, 0x42]);
    d.extend([9u8; 12]);
    d.extend(attr);
    d
}

/// Junk from addresses the core does not know costs one lookup and asks no session
/// (before, each such datagram asked every session on the server); a check naming a
/// session asks that one only, and a forged one admits nothing.
#[test]
fn strangers_datagrams_ask_no_session_and_a_named_check_asks_one() {
    let mut s = Sim::new(11);
    for i in 0..6 {
        s.join(ClientSpec {
            chair: i == 0,
            level: if i == 0 { 30 } else { 127 },
            ..ClientSpec::site("room")
        })
        .expect("joins");
    }
    s.run_until(Duration::from_secs(10), |s| {
        s.clients.iter().all(|c| c.connected.is_some())
    })
    .expect("every site connects");
    let to = s.sfu_addr();
    let before = s.core.asked();
    let mut runner = TestRunner::new(Config {
        cases: 300,
        ..Config::default()
    });
    let core = RefCell::new(&mut s.core);
    let now = s.now;
    runner
        .run(&(1u16..60000, datagram()), |(port, d)| {
            let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 3)), port);
            // Unless it happens to be a check naming a real session (it cannot here: the
            // ufrags are random), nobody claims it.
            prop_assert!(!core.borrow_mut().receive(now, from, to, &d));
            Ok(())
        })
        .expect("strangers' datagrams are refused");
    assert_eq!(
        s.core.asked(),
        before,
        "a stranger's datagram asked a session whether it was its own"
    );
    let target = s.clients[3].id;
    let ufrag = s.core.ufrag_of(target).expect("a session has a ufrag");
    let stranger = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 4)), 5555);
    let now = s.now;
    assert!(
        !s.core.receive(now, stranger, to, &forged_check(&ufrag)),
        "a check with no valid integrity is refused"
    );
    assert_eq!(
        s.core.asked(),
        before + 1,
        "the named session alone was asked"
    );
    // The meeting goes on.
    s.run(Duration::from_secs(2));
    let chair = s.clients[0].id.0;
    assert!(s.heard(3, Duration::from_millis(500)).contains(&chair));
}

/// A client sending view changes as fast as it can: its room is decided at most once a
/// second more than the regular ticks would, and its last choice still takes effect by
/// the next tick (here: audio only, so its video slot goes quiet).
#[test]
fn a_view_flood_costs_one_extra_decision_a_second_and_the_last_view_wins() {
    let mut s = Sim::new(13);
    s.join(ClientSpec {
        chair: true,
        level: 30,
        ..ClientSpec::site("room")
    })
    .expect("chair joins");
    for _ in 0..3 {
        s.join(ClientSpec::site("room")).expect("site joins");
    }
    s.run_until(Duration::from_secs(10), |s| {
        s.clients.iter().all(|c| c.connected.is_some())
    })
    .expect("every site connects");
    s.run(Duration::from_secs(3));
    assert!(
        s.in_slot(1, "v0", Duration::from_millis(300)).is_some(),
        "site 1 sees the chair before the flood"
    );
    let quiet = s.core.decisions();
    s.run(Duration::from_secs(1));
    let per_second = s.core.decisions() - quiet;
    let start = s.core.decisions();
    let flooder = s.clients[1].id;
    for n in 0..500u32 {
        let view = crate::types::ViewHints {
            audio_only: n % 2 == 1,
            ..Default::default()
        };
        s.set_view(1, view);
        // One view per 2 ms step, as fast as the simulation steps.
        s.run(Duration::from_millis(2));
    }
    let flood = s.core.decisions() - start;
    assert!(
        flood <= per_second + 2,
        "500 views in a second made {flood} room decisions, against {per_second} without"
    );
    // The last view (audio only) holds by the next tick: no more video to site 1.
    s.run(Duration::from_millis(600));
    assert_eq!(
        s.in_slot(1, "v0", Duration::from_millis(300)),
        None,
        "site {flooder} chose audio only last and still gets video"
    );
}
