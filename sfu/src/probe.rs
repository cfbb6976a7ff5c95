//! The link-check responder on the media port: a room agent measures RTT, loss each way
//! and usable bandwidth each way against the very port its media will use, before a
//! meeting (`cauhop-endpoint check`).
//!
//! The wire format is `cauhop_protocol::probe`. A probe is answered only with a token
//! signaling issued to an authenticated device, only to the first address that used it,
//! and an echo is never larger than its request. The one reply larger than its request
//! (a download train) needs a round trip first: the train request must carry the cookie
//! of an echo reply, which only the address that really sent the echo receives (a
//! spoofed first packet binds the token to a victim's address, but the attacker never
//! sees the cookie). Trains are capped in rate, length, count per token and number at
//! once over the server. So the port cannot be used to amplify traffic towards a third
//! party.
//!
//! Pure: time is passed in, datagrams come back as values.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use cauhop_protocol::probe::*;

struct Train {
    to: SocketAddr,
    socket: usize,
    size: usize,
    interval: Duration,
    next: Instant,
    remaining: u32,
    seq: u32,
}

struct Session {
    expires: Instant,
    source: Option<SocketAddr>,
    /// Sent in echo replies; a train request must return it.
    cookie: [u8; COOKIE_LEN],
    report: Report,
    upload_first: Option<Instant>,
    upload_last: Option<Instant>,
    trains: u32,
    train: Option<Train>,
}

/// A datagram to send: (socket index, destination, bytes).
pub type Out = (usize, SocketAddr, Vec<u8>);

#[derive(Default)]
pub struct ProbeServer {
    sessions: HashMap<Token, Session>,
    /// Probe datagrams refused (unknown or expired token, wrong source, bad request).
    pub refused: u64,
    /// Train requests refused because [`MAX_CONCURRENT_TRAINS`] were running.
    pub busy_refusals: u64,
}

impl ProbeServer {
    /// Signaling issued `token` to an authenticated device; it is good until `expires`.
    pub fn allow(&mut self, token: Token, expires: Instant, now: Instant) {
        self.sessions.retain(|_, s| s.expires > now);
        self.sessions.insert(
            token,
            Session {
                expires,
                source: None,
                cookie: rand::random(),
                report: Report::default(),
                upload_first: None,
                upload_last: None,
                trains: 0,
                train: None,
            },
        );
    }

    pub fn handle(
        &mut self,
        now: Instant,
        socket: usize,
        from: SocketAddr,
        d: &[u8],
    ) -> Option<Out> {
        let Some((h, body)) = parse(d) else {
            self.refused += 1;
            return None;
        };
        // Trains running now, over every device (counted before borrowing this session).
        let busy = self.sessions.values().filter(|s| s.train.is_some()).count();
        let Some(s) = self.sessions.get_mut(&h.token).filter(|s| s.expires > now) else {
            self.refused += 1;
            return None;
        };
        // The first address to use a token owns it: no replies to a spoofed third party.
        if *s.source.get_or_insert(from) != from {
            self.refused += 1;
            return None;
        }
        match h.kind {
            ECHO => {
                // Same size as the request, never more: it must have room for the cookie.
                if d.len() < MIN_ECHO {
                    self.refused += 1;
                    return None;
                }
                s.report.echoes += 1;
                let mut body = [0u8; 4 + COOKIE_LEN];
                body[..4].copy_from_slice(&s.report.echoes.to_be_bytes());
                body[4..].copy_from_slice(&s.cookie);
                let reply = packet(ECHO_REPLY, &h.token, h.seq, h.time_us, &body, d.len());
                Some((socket, from, reply))
            }
            UPLOAD => {
                s.report.upload_packets += 1;
                s.report.upload_bytes += d.len() as u64;
                s.upload_first.get_or_insert(now);
                s.upload_last = Some(now);
                None
            }
            REPORT_REQUEST => {
                if let (Some(a), Some(b)) = (s.upload_first, s.upload_last) {
                    s.report.upload_span_us = b.saturating_duration_since(a).as_micros() as u64;
                }
                let body = s.report.encode();
                let reply = packet(REPORT, &h.token, h.seq, h.time_us, &body, 0);
                // A report is a little larger than its header-only request; the client pads
                // its request to the report's size, so even this is no amplification.
                (reply.len() <= d.len()).then_some((socket, from, reply))
            }
            TRAIN_REQUEST => {
                let cookie_ok = body.get(10..10 + COOKIE_LEN) == Some(&s.cookie[..]);
                if !cookie_ok || s.trains >= MAX_TRAINS || s.train.is_some() {
                    self.refused += 1;
                    return None;
                }
                if busy >= MAX_CONCURRENT_TRAINS {
                    self.refused += 1;
                    self.busy_refusals += 1;
                    return None;
                }
                let kbps = u32::from_be_bytes([body[0], body[1], body[2], body[3]])
                    .clamp(16, MAX_TRAIN_KBPS);
                let ms = u32::from_be_bytes([body[4], body[5], body[6], body[7]])
                    .clamp(100, MAX_TRAIN_MS);
                let size = usize::from(u16::from_be_bytes([body[8], body[9]]))
                    .clamp(HEADER_LEN + 16, MAX_PACKET);
                let per_sec = f64::from(kbps) * 1000.0 / 8.0 / size as f64;
                let count = (per_sec * f64::from(ms) / 1000.0).ceil().max(1.0) as u32;
                s.trains += 1;
                s.train = Some(Train {
                    to: from,
                    socket,
                    size,
                    interval: Duration::from_secs_f64(1.0 / per_sec),
                    next: now,
                    remaining: count,
                    seq: 0,
                });
                None
            }
            _ => {
                self.refused += 1;
                None
            }
        }
    }

    /// Train packets due by `now`.
    pub fn poll(&mut self, now: Instant, out: &mut Vec<Out>) {
        for (token, s) in &mut self.sessions {
            let Some(t) = &mut s.train else { continue };
            while t.remaining > 0 && t.next <= now {
                out.push((
                    t.socket,
                    t.to,
                    packet(TRAIN_DATA, token, t.seq, 0, &[], t.size),
                ));
                t.seq += 1;
                t.remaining -= 1;
                s.report.train_sent += 1;
                t.next += t.interval;
            }
            if t.remaining == 0 {
                s.train = None;
            }
        }
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        self.sessions
            .values()
            .filter_map(|s| s.train.as_ref().map(|t| t.next))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Token = [7; TOKEN_LEN];

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }

    #[test]
    fn echoes_only_with_a_token_and_only_to_its_first_address() {
        let now = Instant::now();
        let mut s = ProbeServer::default();
        let req = packet(ECHO, &T, 1, 42, &[], 160);
        assert!(s.handle(now, 0, addr(1), &req).is_none(), "unknown token");
        let tiny = packet(ECHO, &T, 1, 42, &[], HEADER_LEN);
        s.allow(T, now + Duration::from_secs(60), now);
        let (_, to, reply) = s.handle(now, 0, addr(1), &req).expect("echo");
        assert_eq!(to, addr(1));
        assert_eq!(reply.len(), req.len());
        let (h, body) = parse(&reply).expect("parse");
        assert_eq!((h.kind, h.seq, h.time_us), (ECHO_REPLY, 1, 42));
        assert_eq!(&body[..4], &1u32.to_be_bytes());
        assert!(s.handle(now, 0, addr(2), &req).is_none(), "another source");
        let later = now + Duration::from_secs(61);
        assert!(s.handle(later, 0, addr(1), &req).is_none(), "expired");
        assert!(
            s.handle(now, 0, addr(1), &tiny).is_none(),
            "no room for the cookie: no (larger) reply"
        );
        assert_eq!(s.refused, 4);
    }

    /// The cookie of an echo reply to `from` (the round trip a train needs).
    fn cookie(s: &mut ProbeServer, now: Instant, token: &Token, from: SocketAddr) -> Vec<u8> {
        let (_, _, reply) = s
            .handle(now, 0, from, &packet(ECHO, token, 0, 0, &[], 160))
            .expect("echo reply");
        let (_, body) = parse(&reply).expect("parse");
        body[4..4 + COOKIE_LEN].to_vec()
    }

    fn train_request(token: &Token, kbps: u32, ms: u32, size: u16, cookie: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&kbps.to_be_bytes());
        body.extend_from_slice(&ms.to_be_bytes());
        body.extend_from_slice(&size.to_be_bytes());
        body.extend_from_slice(cookie);
        packet(TRAIN_REQUEST, token, 0, 0, &body, 0)
    }

    /// The attack the cookie stops: the first packet with a valid token, spoofed from a
    /// victim's address, binds the token to the victim; the attacker then asks for a
    /// train (also spoofed) without the cookie it never saw. No train leaves.
    #[test]
    fn no_train_without_the_round_trip() {
        let now = Instant::now();
        let mut s = ProbeServer::default();
        s.allow(T, now + Duration::from_secs(60), now);
        let victim = addr(9);
        // The spoofed echo's reply goes to the victim; the attacker guesses a cookie.
        let _ = s.handle(now, 0, victim, &packet(ECHO, &T, 0, 0, &[], 160));
        for guess in [[0u8; COOKIE_LEN], [0xff; COOKIE_LEN]] {
            let req = train_request(&T, 4000, 4000, 1200, &guess);
            assert!(s.handle(now, 0, victim, &req).is_none());
        }
        let no_cookie = train_request(&T, 4000, 4000, 1200, &[]);
        assert!(s.handle(now, 0, victim, &no_cookie).is_none());
        assert_eq!(s.next_timeout(), None, "no train towards the victim");
        let mut out = Vec::new();
        s.poll(now + Duration::from_secs(5), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn at_most_four_trains_at_once_over_the_server() {
        let now = Instant::now();
        let mut s = ProbeServer::default();
        let mut started = 0;
        for n in 0..6u8 {
            let token = [n + 1; TOKEN_LEN];
            s.allow(token, now + Duration::from_secs(60), now);
            let from = addr(100 + u16::from(n));
            let c = cookie(&mut s, now, &token, from);
            if s.handle(now, 0, from, &train_request(&token, 1000, 1000, 1000, &c))
                .is_none()
                && s.sessions.get(&token).is_some_and(|x| x.train.is_some())
            {
                started += 1;
            }
        }
        assert_eq!(started, MAX_CONCURRENT_TRAINS);
        assert_eq!(s.busy_refusals, 2);
    }

    #[test]
    fn a_train_is_paced_and_capped() {
        let now = Instant::now();
        let mut s = ProbeServer::default();
        s.allow(T, now + Duration::from_secs(60), now);
        let c = cookie(&mut s, now, &T, addr(1));
        // Asks 100 Mbit/s for a minute in jumbo packets.
        let req = train_request(&T, 100_000, 60_000, 9000, &c);
        assert!(s.handle(now, 0, addr(1), &req).is_none());
        let mut out = Vec::new();
        let mut t = now;
        while s.next_timeout().is_some() {
            t = s.next_timeout().expect("due").max(t);
            s.poll(t, &mut out);
        }
        let bytes: usize = out.iter().map(|o| o.2.len()).sum();
        let secs = t.duration_since(now).as_secs_f64();
        // Capped at 4 Mbit/s for 4 s, in packets of at most 1200 bytes.
        assert!(
            out.iter()
                .all(|o| o.2.len() == MAX_PACKET && o.1 == addr(1))
        );
        assert!((3.9..4.1).contains(&secs), "{secs}");
        let mbits = bytes as f64 * 8.0 / 1e6;
        assert!((15.5..16.5).contains(&mbits), "{mbits} Mbit in all");
        // Three trains per token at most.
        for _ in 0..3 {
            s.handle(t, 0, addr(1), &req);
            while let Some(due) = s.next_timeout() {
                s.poll(due, &mut out);
            }
        }
        assert_eq!(s.refused, 1);
    }

    #[test]
    fn the_report_counts_the_upload() {
        let now = Instant::now();
        let mut s = ProbeServer::default();
        s.allow(T, now + Duration::from_secs(60), now);
        for i in 0..10u32 {
            let up = packet(UPLOAD, &T, i, 0, &[], 1000);
            s.handle(
                now + Duration::from_millis(u64::from(i) * 10),
                0,
                addr(1),
                &up,
            );
        }
        let req = packet(REPORT_REQUEST, &T, 0, 0, &[0; 28], 0);
        let (_, _, reply) = s.handle(now, 0, addr(1), &req).expect("report");
        let (h, body) = parse(&reply).expect("parse");
        assert_eq!(h.kind, REPORT);
        let r = Report::decode(body).expect("decode");
        assert_eq!(
            (r.upload_packets, r.upload_bytes, r.upload_span_us),
            (10, 10_000, 90_000)
        );
        // A header-only request gets no (larger) report.
        let short = packet(REPORT_REQUEST, &T, 0, 0, &[], 0);
        assert!(s.handle(now, 0, addr(1), &short).is_none());
    }
}
