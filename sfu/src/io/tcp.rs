//! ICE over TCP (RFC 6544) for sites whose network lets only web traffic out: the SFU
//! offers a passive TCP candidate on the HTTPS port, and the HTTPS listener hands over
//! every connection that starts with an RFC 4571 frame holding STUN ([`classify`]).
//! Each connection is a task here: frames in go to the driver as datagrams, datagrams
//! out come back framed through a bounded queue. A reader too slow for its media (the
//! queue full) is dropped, never waited for: the driver does not block on any client.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::debug;

use super::driver::Datagram;
use super::handle::Command;

/// Framed packets waiting for one connection's socket; beyond this the client is not
/// keeping up with its own media (about half a second of a 720p picture) and the
/// connection is closed: it reconnects, or ICE falls back to another path.
pub(crate) const MAX_QUEUE: usize = 512;
/// ICE-TCP connections open at once over all clients: the bridge admits 2 000
/// participants, each holds one.
pub(crate) const MAX_CONNECTIONS: usize = 2048;
/// A connection with nothing received for this long is closed (ICE consent checks
/// arrive every few seconds while a session lives).
const IDLE: Duration = Duration::from_secs(30);
/// A write that the client does not take within this ends the connection.
const WRITE_DEADLINE: Duration = Duration::from_secs(5);
/// STUN's magic cookie (RFC 5389), at bytes 4..8 of a STUN message.
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];

/// What the first bytes of a connection on the shared HTTPS port are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstBytes {
    /// A TLS record (a ClientHello): HTTPS.
    Tls,
    /// An RFC 4571 frame holding a STUN message: ICE over TCP, for the SFU.
    IceTcp,
    /// Too few bytes yet to tell.
    NeedMore,
    /// Neither: closed.
    Other,
}

/// Tell HTTPS from ICE-TCP by a connection's first bytes (at least 10 decide).
pub fn classify(b: &[u8]) -> FirstBytes {
    match b.first() {
        None => return FirstBytes::NeedMore,
        // A TLS handshake record: content type 22, version 3.x.
        Some(0x16) => {
            return match b.get(1) {
                None => FirstBytes::NeedMore,
                Some(0x03) => FirstBytes::Tls,
                Some(_) => FirstBytes::Other,
            };
        }
        Some(_) => {}
    }
    if b.len() < 10 {
        return FirstBytes::NeedMore;
    }
    let len = usize::from(u16::from_be_bytes([b[0], b[1]]));
    // A STUN message: 20-byte header, the two top bits of its type zero, the cookie.
    if len >= 20 && b[2] & 0xC0 == 0 && b[6..10] == MAGIC_COOKIE {
        FirstBytes::IceTcp
    } else {
        FirstBytes::Other
    }
}

/// RFC 4571 framing: a 2-byte length before each packet.
#[derive(Debug, Default)]
pub(crate) struct Frames {
    buf: Vec<u8>,
    start: usize,
}

impl Frames {
    pub(crate) fn push(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next whole frame; empty frames are skipped.
    pub(crate) fn next_frame(&mut self) -> Option<&[u8]> {
        loop {
            let rest = &self.buf[self.start..];
            if rest.len() < 2 {
                self.compact();
                return None;
            }
            let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            if rest.len() < 2 + len {
                self.compact();
                return None;
            }
            let from = self.start + 2;
            self.start = from + len;
            if len > 0 {
                return Some(&self.buf[from..from + len]);
            }
        }
    }

    /// Drop what was consumed once it is most of the buffer, so a long-lived
    /// connection's buffer stays the size of one partial frame.
    fn compact(&mut self) {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}

/// One packet framed for the wire.
pub(crate) fn frame(packet: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(packet.len()).ok()?;
    let mut out = Vec::with_capacity(2 + packet.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(packet);
    Some(out)
}

/// Serve one ICE-TCP connection until either side ends it. `local`: the candidate
/// address the client connected to.
pub(crate) async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    net: mpsc::Sender<Datagram>,
    commands: mpsc::Sender<Command>,
) {
    let _ = stream.set_nodelay(true);
    let (writer, mut queue) = mpsc::channel::<Vec<u8>>(MAX_QUEUE);
    // Handed to the driver with the first frame; once the driver drops it (a stranger,
    // a reader too slow), `queue` ends and so does the connection.
    let mut writer = Some(writer);
    let (mut read, mut write) = stream.into_split();
    let mut frames = Frames::default();
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::new();
    let why = loop {
        tokio::select! {
            n = tokio::time::timeout(IDLE, read.read(&mut buf)) => {
                let n = match n {
                    Err(_) => break "idle",
                    Ok(Err(_)) | Ok(Ok(0)) => break "closed by the client",
                    Ok(Ok(n)) => n,
                };
                frames.push(&buf[..n]);
                let mut gone = false;
                while let Some(f) = frames.next_frame() {
                    let d = Datagram::tcp(peer, local, f.to_vec(), writer.take());
                    if net.send(d).await.is_err() {
                        gone = true;
                        break;
                    }
                }
                if gone {
                    break "media server stopped";
                }
            }
            first = queue.recv() => {
                let Some(first) = first else { break "dropped by the media server" };
                // Whatever else is queued leaves in the same write.
                out.clear();
                out.extend_from_slice(&first);
                while out.len() < 64 * 1024 {
                    let Ok(more) = queue.try_recv() else { break };
                    out.extend_from_slice(&more);
                }
                match tokio::time::timeout(WRITE_DEADLINE, write.write_all(&out)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break "write failed",
                    Err(_) => break "write stalled",
                }
            }
        }
    };
    debug!(%peer, why, "ICE-TCP connection ended");
    let _ = commands.send(Command::TcpClosed { peer }).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun_frame() -> Vec<u8> {
        let mut stun = vec![0x00, 0x01, 0x00, 0x00];
        stun.extend_from_slice(&MAGIC_COOKIE);
        stun.extend_from_slice(&[7u8; 12]);
        frame(&stun).expect("small")
    }

    #[test]
    fn tls_and_ice_tcp_are_told_apart_by_their_first_bytes() {
        assert_eq!(classify(&[0x16, 0x03, 0x01, 0x02, 0x00]), FirstBytes::Tls);
        assert_eq!(classify(&stun_frame()), FirstBytes::IceTcp);
        assert_eq!(classify(&stun_frame()[..9]), FirstBytes::NeedMore);
        assert_eq!(classify(&[]), FirstBytes::NeedMore);
        assert_eq!(classify(&[0x16]), FirstBytes::NeedMore);
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), FirstBytes::Other);
        assert_eq!(classify(&[0x16, 0x47, 0, 0]), FirstBytes::Other);
        // A frame of RTP, not STUN, cannot open a connection.
        let mut rtp = vec![0x00, 0x20, 0x80, 0x60];
        rtp.extend_from_slice(&[0u8; 30]);
        assert_eq!(classify(&rtp), FirstBytes::Other);
    }

    #[test]
    fn frames_come_out_whole_however_the_bytes_arrive() {
        let packets: Vec<Vec<u8>> = vec![vec![1; 20], vec![2; 1200], vec![], vec![3; 65535]];
        let wire: Vec<u8> = packets
            .iter()
            .flat_map(|p| frame(p).expect("fits"))
            .collect();
        for chunk in [1usize, 3, 700, 70_000] {
            let mut f = Frames::default();
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                f.push(piece);
                while let Some(p) = f.next_frame() {
                    got.push(p.to_vec());
                }
            }
            // The empty frame is skipped.
            let want: Vec<Vec<u8>> = packets.iter().filter(|p| !p.is_empty()).cloned().collect();
            assert_eq!(got, want, "chunks of {chunk}");
            assert!(
                f.buf.len() <= 2 * 65_537 + chunk,
                "buffer grew: {}",
                f.buf.len()
            );
        }
        assert!(frame(&vec![0; 65_536]).is_none());
    }
}

#[cfg(test)]
mod connection_tests {
    use super::*;
    use std::time::Instant;
    use tokio::net::TcpListener;

    /// A client that stops reading: the queue towards it is bounded (the driver's
    /// `try_send` fails instead of waiting), and the connection ends by itself once a
    /// write stalls, telling the driver it closed.
    #[tokio::test]
    async fn a_client_that_stops_reading_is_dropped_without_waiting_for_it() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        // The client connects and never reads; its receive buffer is kept small.
        let mut client = std::net::TcpStream::connect(addr).expect("connect");
        let _ = socket2::SockRef::from(&client).set_recv_buffer_size(4096);
        let (server, peer) = listener.accept().await.expect("accept");
        let _ = socket2::SockRef::from(&server).set_send_buffer_size(4096);
        let (net, mut net_rx) = mpsc::channel(16);
        let (commands, mut cmd_rx) = mpsc::channel(16);
        let task = tokio::spawn(connection(server, peer, addr, net, commands));
        // Its first frame brings the connection's queue to the driver.
        std::io::Write::write_all(&mut client, &frame(&[1u8; 20]).expect("fits")).expect("write");
        let first = tokio::time::timeout(Duration::from_secs(5), net_rx.recv())
            .await
            .expect("in time")
            .expect("a datagram");
        let writer = first.writer.expect("the first frame carries the queue");
        let packet = frame(&[0u8; 1200]).expect("fits");
        let t0 = Instant::now();
        let mut full = false;
        while t0.elapsed() < Duration::from_secs(10) {
            match writer.try_send(packet.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    full = true;
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => break,
            }
            tokio::task::yield_now().await;
        }
        assert!(full, "the queue towards a stuck reader never filled");
        // The driver would drop its sender here; the stalled write ends the task anyway.
        let ended = tokio::time::timeout(WRITE_DEADLINE * 3, task).await;
        assert!(ended.is_ok(), "the connection outlived a stalled write");
        let closed = tokio::time::timeout(Duration::from_secs(1), cmd_rx.recv()).await;
        assert!(
            matches!(closed, Ok(Some(Command::TcpClosed { .. }))),
            "no TcpClosed"
        );
        drop(client);
    }

    /// Frames read from the client reach the driver as TCP datagrams, whole, in order.
    #[tokio::test]
    async fn frames_from_the_client_reach_the_driver() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (server, peer) = listener.accept().await.expect("accept");
        let (net, mut net_rx) = mpsc::channel(16);
        let (commands, _commands_rx) = mpsc::channel(16);
        tokio::spawn(connection(server, peer, addr, net, commands));
        let mut wire = frame(&[1u8; 30]).expect("fits");
        wire.extend(frame(&[2u8; 65_535]).expect("fits"));
        client.write_all(&wire).await.expect("write");
        for (i, (byte, len)) in [(1u8, 30usize), (2, 65_535)].into_iter().enumerate() {
            let d = tokio::time::timeout(Duration::from_secs(5), net_rx.recv())
                .await
                .expect("in time")
                .expect("a datagram");
            assert_eq!(d.tcp, Some(addr));
            assert_eq!(
                d.writer.is_some(),
                i == 0,
                "the queue comes with the first frame"
            );
            assert_eq!(d.data.len(), len);
            assert!(d.data.iter().all(|b| *b == byte));
        }
    }
}
