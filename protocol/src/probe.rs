//! The link-check wire format on the media port (see `sfu/src/probe.rs` for the
//! responder and `endpoint/src/check.rs` for the client). Probe datagrams start with
//! [`MAGIC`], whose first byte (`C`, 67) is in the range RFC 7983 leaves to TURN channels,
//! which cauhop never uses, so they cannot be mistaken for STUN, DTLS or RTP.

pub const MAGIC: &[u8; 4] = b"CHPR";
pub const TOKEN_LEN: usize = 16;
/// magic, kind, token, seq (u32), sender time (u64 µs).
pub const HEADER_LEN: usize = 4 + 1 + TOKEN_LEN + 4 + 8;

pub const ECHO: u8 = 1;
/// Body: echoes received (u32), then the session's cookie ([`COOKIE_LEN`] bytes). The
/// reply is as long as its request, so a request must have room for both.
pub const ECHO_REPLY: u8 = 2;
/// Body: rate kbit/s (u32), duration ms (u32), packet size (u16), then the cookie from an
/// echo reply: only an address that receives the bridge's replies can ask for a train.
pub const TRAIN_REQUEST: u8 = 3;
pub const TRAIN_DATA: u8 = 4;
pub const UPLOAD: u8 = 5;
pub const REPORT_REQUEST: u8 = 6;
/// Body: echoes received (u32), upload packets (u32), upload bytes (u64), upload span µs
/// (u64), train packets sent (u32).
pub const REPORT: u8 = 7;

pub const MAX_TRAIN_KBPS: u32 = 4000;
pub const MAX_TRAIN_MS: u32 = 4000;
pub const MAX_TRAINS: u32 = 3;
pub const MAX_PACKET: usize = 1200;
/// The per-session secret an echo reply carries and a train request must return.
pub const COOKIE_LEN: usize = 8;
/// The smallest echo request the bridge answers (header, echo count, cookie).
pub const MIN_ECHO: usize = HEADER_LEN + 4 + COOKIE_LEN;
/// Download trains the bridge sends at once, over all devices.
pub const MAX_CONCURRENT_TRAINS: usize = 4;

pub type Token = [u8; TOKEN_LEN];

pub fn is_probe(d: &[u8]) -> bool {
    d.len() >= HEADER_LEN && d.starts_with(MAGIC)
}

/// Build a probe datagram of `size` bytes (at least the header).
pub fn packet(
    kind: u8,
    token: &Token,
    seq: u32,
    time_us: u64,
    body: &[u8],
    size: usize,
) -> Vec<u8> {
    let mut p = Vec::with_capacity(size.max(HEADER_LEN + body.len()));
    p.extend_from_slice(MAGIC);
    p.push(kind);
    p.extend_from_slice(token);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&time_us.to_be_bytes());
    p.extend_from_slice(body);
    if p.len() < size {
        p.resize(size, 0);
    }
    p
}

/// The fields every probe datagram carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: u8,
    pub token: Token,
    pub seq: u32,
    pub time_us: u64,
}

pub fn parse(d: &[u8]) -> Option<(Header, &[u8])> {
    if !is_probe(d) {
        return None;
    }
    let mut token = [0u8; TOKEN_LEN];
    token.copy_from_slice(&d[5..5 + TOKEN_LEN]);
    let at = 5 + TOKEN_LEN;
    let seq = u32::from_be_bytes(d[at..at + 4].try_into().ok()?);
    let time_us = u64::from_be_bytes(d[at + 4..at + 12].try_into().ok()?);
    Some((
        Header {
            kind: d[4],
            token,
            seq,
            time_us,
        },
        &d[HEADER_LEN..],
    ))
}

/// Counters the server reports back in [`REPORT`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    pub echoes: u32,
    pub upload_packets: u32,
    pub upload_bytes: u64,
    pub upload_span_us: u64,
    pub train_sent: u32,
}

impl Report {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(28);
        b.extend_from_slice(&self.echoes.to_be_bytes());
        b.extend_from_slice(&self.upload_packets.to_be_bytes());
        b.extend_from_slice(&self.upload_bytes.to_be_bytes());
        b.extend_from_slice(&self.upload_span_us.to_be_bytes());
        b.extend_from_slice(&self.train_sent.to_be_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < 28 {
            return None;
        }
        Some(Self {
            echoes: u32::from_be_bytes(b[0..4].try_into().ok()?),
            upload_packets: u32::from_be_bytes(b[4..8].try_into().ok()?),
            upload_bytes: u64::from_be_bytes(b[8..16].try_into().ok()?),
            upload_span_us: u64::from_be_bytes(b[16..24].try_into().ok()?),
            train_sent: u32::from_be_bytes(b[24..28].try_into().ok()?),
        })
    }
}
