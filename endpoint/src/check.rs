//! The link check (`cauhop-endpoint check`, and before each meeting): RTT, loss each way
//! and usable bandwidth each way, measured against the bridge's media port in about 8 s,
//! then a go / weak / no-go verdict a district IT officer can act on.
//!
//! Method: 100 small echoes (RTT; the bridge counts what arrived, so loss is known per
//! direction), then a paced upload train and a download train well above what a meeting
//! needs; the rate at which a train arrives is the bottleneck's rate (packet-train
//! dispersion). The trains are capped, so a fibre link reads "at least" the train rate.

use std::net::SocketAddr;
use std::time::Duration;

use cauhop_protocol::probe::{self, Report, Token};
use serde::Serialize;
use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::bridge::{BridgeClient, BridgeError};

#[derive(Debug, Error)]
pub enum CheckError {
    #[error(transparent)]
    Bridge(#[from] BridgeError),
    #[error("the bridge gave no usable media address ({0})")]
    NoAddress(String),
    #[error("network error: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "no answer from the bridge's media port {0}: UDP is blocked or the link is down (no-go)"
    )]
    NoAnswer(SocketAddr),
}

/// What a check measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LinkFigures {
    pub rtt_ms: f64,
    pub rtt_p95_ms: f64,
    /// Fractions (0..1) of small packets lost on the way to the bridge and back.
    pub loss_up: f64,
    pub loss_down: f64,
    pub up_kbps: f64,
    pub down_kbps: f64,
    /// The train rate was reached: the link may be faster than the figure.
    pub up_at_least: bool,
    pub down_at_least: bool,
    pub seconds: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Full video both ways.
    Go,
    /// Audio and small video; the room will see the chair and the speaker at low quality.
    Weak,
    /// Audio may break up; call the district IT officer before the meeting.
    NoGo,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Go => "GO",
            Verdict::Weak => "WEAK",
            Verdict::NoGo => "NO-GO",
        }
    }

    /// The process exit code of `cauhop-endpoint check`, for scripts (1 is a failed check).
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Go => 0,
            Verdict::Weak => 2,
            Verdict::NoGo => 3,
        }
    }
}

/// Limits for each verdict: (download kbit/s, upload kbit/s, loss, RTT ms). Go is what
/// 360p video both ways needs with headroom; weak is audio (~40 kbit/s with FEC) plus the
/// 180p layer of one or two tiles.
pub const GO: (f64, f64, f64, f64) = (1000.0, 500.0, 0.02, 250.0);
pub const WEAK: (f64, f64, f64, f64) = (250.0, 100.0, 0.10, 700.0);

/// The verdict and, when it is not go, the reasons (one line each).
pub fn judge(f: &LinkFigures) -> (Verdict, Vec<String>) {
    let loss = f.loss_up.max(f.loss_down);
    let short = |lim: (f64, f64, f64, f64)| {
        let mut why = Vec::new();
        if f.down_kbps < lim.0 {
            why.push(format!(
                "download {:.0} kbit/s < {:.0} needed",
                f.down_kbps, lim.0
            ));
        }
        if f.up_kbps < lim.1 {
            why.push(format!(
                "upload {:.0} kbit/s < {:.0} needed",
                f.up_kbps, lim.1
            ));
        }
        if loss > lim.2 {
            why.push(format!(
                "loss {:.1} % > {:.0} %",
                loss * 100.0,
                lim.2 * 100.0
            ));
        }
        if f.rtt_ms > lim.3 {
            why.push(format!("round trip {:.0} ms > {:.0} ms", f.rtt_ms, lim.3));
        }
        why
    };
    let to_go = short(GO);
    if to_go.is_empty() {
        return (Verdict::Go, Vec::new());
    }
    let to_weak = short(WEAK);
    if to_weak.is_empty() {
        (Verdict::Weak, to_go)
    } else {
        (Verdict::NoGo, to_weak)
    }
}

/// The report an operator reads, Vietnamese first.
pub fn render(f: &LinkFigures, verdict: Verdict, reasons: &[String]) -> String {
    let at_least = |b: bool| if b { "≥ " } else { "" };
    let meaning = match verdict {
        Verdict::Go => "đủ cho hình ảnh đầy đủ / full video both ways",
        Verdict::Weak => "âm thanh và hình nhỏ / audio and small video only",
        Verdict::NoGo => {
            "âm thanh có thể bị ngắt, hãy báo cán bộ CNTT huyện / audio may break up: call the district IT officer"
        }
    };
    let mut s = format!(
        "Kiểm tra đường truyền / Link check ({:.1} s)\n  \
         Thời gian khứ hồi / Round trip   {:.0} ms (p95 {:.0} ms)\n  \
         Mất gói đi / Loss up             {:.1} %\n  \
         Mất gói về / Loss down           {:.1} %\n  \
         Tải lên / Upload                 {}{:.0} kbit/s\n  \
         Tải xuống / Download             {}{:.0} kbit/s\n\
         Kết luận / Verdict: {} — {meaning}\n",
        f.seconds,
        f.rtt_ms,
        f.rtt_p95_ms,
        f.loss_up * 100.0,
        f.loss_down * 100.0,
        at_least(f.up_at_least),
        f.up_kbps,
        at_least(f.down_at_least),
        f.down_kbps,
        verdict.label(),
    );
    for r in reasons {
        s.push_str(&format!("  - {r}\n"));
    }
    s
}

/// How hard the check pushes. The defaults take about 8 s.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub echoes: u32,
    pub echo_every: Duration,
    pub echo_size: usize,
    pub train_kbps: u32,
    pub train_time: Duration,
    pub train_size: usize,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            echoes: 100,
            echo_every: Duration::from_millis(30),
            echo_size: 160,
            train_kbps: 2500,
            train_time: Duration::from_millis(1500),
            train_size: 1000,
        }
    }
}

impl Plan {
    /// About 3 s on a fast link, for tests and demos; less exact on slow links.
    pub fn quick() -> Self {
        Self {
            echoes: 30,
            echo_every: Duration::from_millis(20),
            train_time: Duration::from_millis(500),
            ..Self::default()
        }
    }
}

fn parse_token(hex: &str) -> Option<Token> {
    let mut t = [0u8; probe::TOKEN_LEN];
    if hex.len() != 2 * t.len() {
        return None;
    }
    for (i, b) in t.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(t)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Bits per second of a train, from the spread of its arrivals.
fn dispersion_kbps(bytes: u64, first_packet: u64, span: Duration) -> f64 {
    if span.is_zero() {
        return 0.0;
    }
    (bytes.saturating_sub(first_packet)) as f64 * 8.0 / 1000.0 / span.as_secs_f64()
}

/// Run a check against the bridge (`via`: send through this UDP address instead).
pub async fn run(
    client: &BridgeClient,
    via: Option<SocketAddr>,
    plan: Plan,
) -> Result<LinkFigures, CheckError> {
    let started = Instant::now();
    let ticket = client.link_check_ticket().await?;
    let token = parse_token(&ticket.token)
        .ok_or_else(|| CheckError::NoAddress(format!("bad token {:?}", ticket.token)))?;
    let target = match via {
        Some(v) => v,
        None => ticket
            .media
            .iter()
            .filter_map(|m| m.parse::<SocketAddr>().ok())
            .find(|a| !a.ip().is_loopback() || client.is_local())
            .ok_or_else(|| CheckError::NoAddress(ticket.media.join(", ")))?,
    };
    let bind: SocketAddr = if target.ip().is_loopback() {
        "127.0.0.1:0"
    } else {
        "0.0.0.0:0"
    }
    .parse()
    .map_err(|_| CheckError::NoAddress("bind".into()))?;
    let sock = UdpSocket::bind(bind).await?;
    sock.connect(target).await?;
    let mut buf = vec![0u8; 2048];
    let us = |t: Instant| t.duration_since(started).as_micros() as u64;

    // 1. Echoes: RTT and loss each way.
    let mut rtts = Vec::new();
    // The bridge's cookie from its echo replies: a download train needs it (proof that
    // this address receives what the bridge sends).
    let mut cookie: Option<Vec<u8>> = None;
    let mut tick = tokio::time::interval(plan.echo_every);
    let mut sent = 0u32;
    let mut last_sent = Instant::now();
    loop {
        let straggler_wait = Duration::from_millis(1500);
        if sent >= plan.echoes && last_sent.elapsed() > straggler_wait {
            break;
        }
        tokio::select! {
            _ = tick.tick(), if sent < plan.echoes => {
                let size = plan.echo_size.max(probe::MIN_ECHO);
                let p = probe::packet(probe::ECHO, &token, sent, us(Instant::now()), &[], size);
                sock.send(&p).await?;
                sent += 1;
                last_sent = Instant::now();
            }
            r = sock.recv(&mut buf) => {
                let n = r?;
                if let Some((h, body)) = probe::parse(&buf[..n])
                    && h.kind == probe::ECHO_REPLY
                {
                    rtts.push((us(Instant::now()).saturating_sub(h.time_us)) as f64 / 1000.0);
                    if let Some(c) = body.get(4..4 + probe::COOKIE_LEN) {
                        cookie = Some(c.to_vec());
                    }
                }
            }
            _ = tokio::time::sleep(straggler_wait) => {}
        }
    }
    if rtts.is_empty() {
        return Err(CheckError::NoAnswer(target));
    }
    rtts.sort_by(f64::total_cmp);
    let rtt_ms = percentile(&rtts, 0.5);

    // 2. Upload train, then the bridge's report of what arrived.
    let size = plan
        .train_size
        .clamp(probe::HEADER_LEN + 16, probe::MAX_PACKET);
    let per_sec = f64::from(plan.train_kbps) * 1000.0 / 8.0 / size as f64;
    let count = (per_sec * plan.train_time.as_secs_f64()).ceil() as u32;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_sec));
    for seq in 0..count {
        tick.tick().await;
        let p = probe::packet(probe::UPLOAD, &token, seq, 0, &[], size);
        // A full socket buffer on a slow uplink is part of what we measure.
        let _ = sock.send(&p).await;
    }
    // Let the bottleneck's queue drain before asking.
    tokio::time::sleep(Duration::from_millis(600) + Duration::from_secs_f64(rtt_ms / 1000.0)).await;
    let mut report = None;
    for attempt in 0..8u32 {
        // Padded to the report's size: the bridge never answers with more than it got.
        let p = probe::packet(probe::REPORT_REQUEST, &token, attempt, 0, &[0; 28], 0);
        sock.send(&p).await?;
        let deadline = Instant::now()
            + Duration::from_millis(400).max(Duration::from_secs_f64(2.0 * rtt_ms / 1000.0));
        while let Ok(r) = tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            let n = r?;
            if let Some((h, body)) = probe::parse(&buf[..n])
                && h.kind == probe::REPORT
            {
                report = Report::decode(body);
                break;
            }
        }
        if report.is_some() {
            break;
        }
    }
    let report = report.ok_or(CheckError::NoAnswer(target))?;
    let up_kbps = dispersion_kbps(
        report.upload_bytes,
        size as u64,
        Duration::from_micros(report.upload_span_us),
    );
    let echoes_in = report.echoes.max(rtts.len() as u32);
    let loss_up = 1.0 - f64::from(echoes_in) / f64::from(sent.max(1));
    let loss_down = 1.0 - rtts.len() as f64 / f64::from(echoes_in.max(1));

    // 3. Download train.
    let mut body = Vec::with_capacity(10);
    body.extend_from_slice(&plan.train_kbps.to_be_bytes());
    body.extend_from_slice(&(plan.train_time.as_millis() as u32).to_be_bytes());
    body.extend_from_slice(&(size as u16).to_be_bytes());
    body.extend_from_slice(cookie.as_deref().unwrap_or_default());
    let (mut bytes, mut packets) = (0u64, 0u32);
    let (mut first, mut last) = (None, None);
    for attempt in 0..3u32 {
        let p = probe::packet(probe::TRAIN_REQUEST, &token, attempt, 0, &body, 0);
        sock.send(&p).await?;
        let quiet = Duration::from_millis(800) + Duration::from_secs_f64(rtt_ms / 1000.0);
        let end = Instant::now() + plan.train_time + quiet * 2;
        loop {
            let wait = if packets == 0 { quiet * 2 } else { quiet };
            let until = (Instant::now() + wait).min(end);
            match tokio::time::timeout_at(until, sock.recv(&mut buf)).await {
                Ok(r) => {
                    let n = r?;
                    if let Some((h, _)) = probe::parse(&buf[..n])
                        && h.kind == probe::TRAIN_DATA
                    {
                        let now = Instant::now();
                        first.get_or_insert(now);
                        last = Some(now);
                        bytes += n as u64;
                        packets += 1;
                    }
                }
                Err(_) => break,
            }
        }
        if packets > 0 {
            break;
        }
    }
    let down_kbps = match (first, last) {
        (Some(a), Some(b)) => dispersion_kbps(bytes, size as u64, b.duration_since(a)),
        _ => 0.0,
    };
    let cap = f64::from(plan.train_kbps) * 0.9;
    Ok(LinkFigures {
        rtt_ms,
        rtt_p95_ms: percentile(&rtts, 0.95),
        loss_up: loss_up.clamp(0.0, 1.0),
        loss_down: loss_down.clamp(0.0, 1.0),
        up_kbps,
        down_kbps,
        up_at_least: up_kbps >= cap,
        down_at_least: down_kbps >= cap,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(down: f64, up: f64, loss: f64, rtt: f64) -> LinkFigures {
        LinkFigures {
            rtt_ms: rtt,
            loss_up: loss,
            loss_down: loss / 2.0,
            up_kbps: up,
            down_kbps: down,
            ..Default::default()
        }
    }

    #[test]
    fn verdicts_follow_the_limits() {
        assert_eq!(judge(&fig(2500.0, 2500.0, 0.0, 10.0)).0, Verdict::Go);
        let (v, why) = judge(&fig(370.0, 124.0, 0.03, 330.0));
        assert_eq!(v, Verdict::Weak);
        assert_eq!(why.len(), 4, "{why:?}");
        let (v, why) = judge(&fig(190.0, 95.0, 0.08, 690.0));
        assert_eq!(v, Verdict::NoGo);
        assert_eq!(
            why,
            [
                "download 190 kbit/s < 250 needed",
                "upload 95 kbit/s < 100 needed"
            ]
        );
        assert_eq!(
            judge(&fig(5000.0, 5000.0, 0.2, 20.0)).0,
            Verdict::NoGo,
            "loss alone"
        );
    }

    #[test]
    fn tokens_parse_from_hex() {
        let t = parse_token("000102030405060708090a0b0c0d0e0f").expect("token");
        assert_eq!(t[15], 15);
        assert!(parse_token("00").is_none());
        assert!(parse_token("zz0102030405060708090a0b0c0d0e0f").is_none());
    }

    #[test]
    fn the_report_says_why() {
        let f = fig(190.0, 95.0, 0.08, 690.0);
        let (v, why) = judge(&f);
        let text = render(&f, v, &why);
        assert!(text.contains("NO-GO"), "{text}");
        assert!(text.contains("download 190 kbit/s < 250 needed"), "{text}");
        assert!(text.contains("Kết luận"), "{text}");
    }
}
