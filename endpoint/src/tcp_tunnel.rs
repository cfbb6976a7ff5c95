//! Media over TCP for a room whose network lets only web traffic out. webrtc-rs (0.17)
//! gathers and pairs UDP candidates only, so the agent carries its ICE, DTLS and SRTP
//! over one TCP connection to the bridge's HTTPS port itself: the peer connection sends
//! to a UDP socket on this machine (the bridge's candidates are rewritten to it, as for
//! a `media_via` relay), and each datagram crosses the TCP connection as an RFC 4571
//! frame. The bridge sees an ICE-TCP client on its passive TCP candidate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tracing::{debug, info, warn};

/// Datagrams carried each way, for the session's health and the tests.
#[derive(Debug, Default)]
pub struct TunnelCounters {
    pub up: AtomicU64,
    pub down: AtomicU64,
}

/// A running tunnel; dropping it closes the connection.
pub struct TcpTunnel {
    /// Where the peer connection sends its media (instead of the bridge's UDP port).
    pub local: SocketAddr,
    pub counters: Arc<TunnelCounters>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TcpTunnel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TcpTunnel {
    /// Connect to `bridge` (its HTTPS address, where it takes ICE-TCP) and listen for
    /// the peer connection's datagrams on loopback.
    pub async fn start(bridge: SocketAddr) -> std::io::Result<Self> {
        let tcp = TcpStream::connect(bridge).await?;
        let _ = tcp.set_nodelay(true);
        let udp = UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let local = udp.local_addr()?;
        let counters = Arc::new(TunnelCounters::default());
        info!(%bridge, %local, "media over TCP to the bridge's HTTPS port");
        let task = tokio::spawn(carry(tcp, udp, counters.clone()));
        Ok(Self {
            local,
            counters,
            task,
        })
    }
}

async fn carry(tcp: TcpStream, udp: UdpSocket, counters: Arc<TunnelCounters>) {
    let (mut read, mut write) = tcp.into_split();
    let mut from_pc = vec![0u8; 2048];
    let mut from_bridge = vec![0u8; 16 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    // The peer connection's own address, learnt from its first datagram.
    let mut pc: Option<SocketAddr> = None;
    let why = loop {
        tokio::select! {
            got = udp.recv_from(&mut from_pc) => {
                let Ok((n, src)) = got else { continue };
                pc = Some(src);
                let Ok(len) = u16::try_from(n) else { continue };
                let mut framed = Vec::with_capacity(2 + n);
                framed.extend_from_slice(&len.to_be_bytes());
                framed.extend_from_slice(&from_pc[..n]);
                if let Err(e) = write.write_all(&framed).await {
                    break format!("write: {e}");
                }
                counters.up.fetch_add(1, Ordering::Relaxed);
            }
            got = read.read(&mut from_bridge) => {
                let n = match got {
                    Ok(0) => break "closed by the bridge".to_owned(),
                    Ok(n) => n,
                    Err(e) => break format!("read: {e}"),
                };
                pending.extend_from_slice(&from_bridge[..n]);
                let mut at = 0;
                while pending.len() >= at + 2 {
                    let len = usize::from(u16::from_be_bytes([pending[at], pending[at + 1]]));
                    if pending.len() < at + 2 + len {
                        break;
                    }
                    if let Some(to) = pc
                        && len > 0
                    {
                        let _ = udp.send_to(&pending[at + 2..at + 2 + len], to).await;
                        counters.down.fetch_add(1, Ordering::Relaxed);
                    }
                    at += 2 + len;
                }
                pending.drain(..at);
            }
        }
    };
    // The session notices the silence and restarts (a new session, a new tunnel).
    warn!("media tunnel to the bridge ended: {why}");
    debug!(
        up = counters.up.load(Ordering::Relaxed),
        down = counters.down.load(Ordering::Relaxed),
        "media tunnel totals"
    );
}
