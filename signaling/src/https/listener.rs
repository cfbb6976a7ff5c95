//! The HTTPS port as an axum [`Listener`]: TCP connections are accepted in a task of
//! their own, each handshake runs in its own task with a deadline, and only finished
//! TLS streams reach the HTTP server. A client that connects and sends nothing (or a
//! slow 3G handshake) holds one task until the deadline, never the accept loop.
//!
//! The port is shared with the SFU: a connection whose first bytes are an RFC 4571
//! frame of STUN is ICE over TCP, handed to the SFU, so a site that can open
//! https://bridge can carry its media there too.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::serve::Listener;
use cauhop_sfu::{FirstBytes, SfuHandle, classify_first_bytes};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, warn};

/// A handshake must finish within this (a 3G link with 1 s round trips needs ~3).
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(15);
/// Handshakes in progress at once; connections beyond are closed at once. A flood of
/// half-open connections costs at most this many tasks.
pub const MAX_HANDSHAKES: usize = 512;

/// Counters for the log and the metrics.
#[derive(Debug, Default)]
pub struct TlsCounters {
    pub handshakes_failed: AtomicU64,
    pub handshakes_timed_out: AtomicU64,
    pub refused_busy: AtomicU64,
}

/// A connection that sends nothing decisive in its first bytes within this is closed.
const FIRST_BYTES_DEADLINE: Duration = Duration::from_secs(10);

pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    task: tokio::task::JoinHandle<()>,
    pub counters: Arc<TlsCounters>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsListener {
    /// `ice_tcp`: the SFU that takes connections starting with an RFC 4571 frame of
    /// STUN (ICE over TCP on the HTTPS port); `None`: such connections are closed.
    pub fn new(
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
        ice_tcp: Option<SfuHandle>,
    ) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let counters = Arc::new(TlsCounters::default());
        let task = tokio::spawn(accept_loop(
            tcp,
            TlsAcceptor::from(config),
            tx,
            counters.clone(),
            ice_tcp,
        ));
        Ok(Self {
            local,
            ready,
            task,
            counters,
        })
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    counters: Arc<TlsCounters>,
    ice_tcp: Option<SfuHandle>,
) {
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                warn!("HTTPS accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            counters.refused_busy.fetch_add(1, Ordering::Relaxed);
            debug!(%peer, "HTTPS: too many handshakes in progress, connection closed");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        let counters = counters.clone();
        let ice_tcp = ice_tcp.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match first_bytes(&stream).await {
                FirstBytes::Tls => {}
                FirstBytes::IceTcp => {
                    match ice_tcp {
                        Some(sfu) => sfu.serve_ice_tcp(stream, peer),
                        None => debug!(%peer, "ICE-TCP connection on a port without media: closed"),
                    }
                    return;
                }
                FirstBytes::NeedMore | FirstBytes::Other => {
                    counters.handshakes_failed.fetch_add(1, Ordering::Relaxed);
                    debug!(%peer, "neither TLS nor ICE-TCP on the HTTPS port: closed");
                    return;
                }
            }
            match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(e)) => {
                    // Browsers that have not accepted a self-signed certificate yet,
                    // scanners, plain HTTP sent to the TLS port: common, so not a warning.
                    counters.handshakes_failed.fetch_add(1, Ordering::Relaxed);
                    debug!(%peer, "TLS handshake failed: {e}");
                }
                Err(_) => {
                    counters
                        .handshakes_timed_out
                        .fetch_add(1, Ordering::Relaxed);
                    debug!(%peer, "TLS handshake timed out");
                }
            }
        });
    }
}

/// What the connection's first bytes say it is, without taking them from it.
async fn first_bytes(stream: &TcpStream) -> FirstBytes {
    let deadline = tokio::time::Instant::now() + FIRST_BYTES_DEADLINE;
    let mut buf = [0u8; 16];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return FirstBytes::Other,
        };
        match classify_first_bytes(&buf[..n]) {
            // A ClientHello or a STUN frame comes in one segment; a client that dribbles
            // its first bytes waits a little between looks.
            FirstBytes::NeedMore if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            FirstBytes::NeedMore => return FirstBytes::Other,
            kind => return kind,
        }
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
