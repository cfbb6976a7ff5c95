//! The IO edge of the SFU: sockets, timers and commands, in one tokio task around the
//! sans-IO room core (`room.rs`).
//!
//! The task owns the core (no locks on the forwarding path). Receive tasks, one per
//! local address, hand datagrams over a channel; the driver reads the clock once per
//! input, hands the input to the core, and drains `poll_output` until it says
//! `Timeout`: datagrams go to the socket of their source address, events to the
//! participant's signaling channel. Datagrams collect in one batch per socket and leave
//! in `sendmmsg` calls (`batch.rs`) when the core has nothing more to say for now.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::net::Protocol;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::batch::{MAX_BATCH, SendBatch};
use super::handle::{Command, SfuHandle};
use crate::probe::{self, ProbeServer};
use crate::room::{Output, Rooms};
use crate::types::{ParticipantId, SfuEvent, SfuStats};
use crate::{SfuConfig, SfuError};

/// Datagrams taken from the receive queue in one go before the timers run (see `run`).
const INPUT_BATCH: usize = 32;

/// Largest datagram we read; WebRTC keeps packets under the 1200-byte MTU target.
const RECV_BUF: usize = 2048;

/// Socket buffers asked for. An SFU sends in bursts: one voice packet becomes 300
/// datagrams at once, three speakers every 20 ms, and the kernel's default (~200 KB)
/// dropped 6.7 % of the audio in `cauhop-load --scenario audio -n 300` (measured).
const SOCKET_BUFFER: usize = 4 << 20;
/// Below this, the log says how to raise the kernel's limit.
const SOCKET_BUFFER_WARN: usize = 1 << 20;

/// Ask for large socket buffers and say what the kernel granted (it caps them at
/// `net.core.wmem_max` / `rmem_max`).
fn size_buffers(socket: &UdpSocket, local: SocketAddr) {
    let s = socket2::SockRef::from(socket);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let (send, recv) = (
        s.send_buffer_size().unwrap_or(0),
        s.recv_buffer_size().unwrap_or(0),
    );
    if send < SOCKET_BUFFER_WARN || recv < SOCKET_BUFFER_WARN {
        warn!(
            %local, send, recv,
            "media socket buffers are small: a large meeting's bursts will be dropped; \
             raise them with sysctl -w net.core.wmem_max=4194304 net.core.rmem_max=4194304"
        );
    } else {
        debug!(%local, send, recv, "media socket buffers");
    }
}

pub(crate) struct Datagram {
    socket: usize,
    source: SocketAddr,
    pub(crate) data: Vec<u8>,
    /// A frame of an ICE-TCP connection to this local address (`tcp.rs`), not UDP.
    pub(crate) tcp: Option<SocketAddr>,
    /// With a connection's first frame: where packets for it go. In the same queue as
    /// the frame, so the driver knows the connection before it judges the frame.
    pub(crate) writer: Option<mpsc::Sender<Vec<u8>>>,
}

impl Datagram {
    pub(crate) fn tcp(
        source: SocketAddr,
        local: SocketAddr,
        data: Vec<u8>,
        writer: Option<mpsc::Sender<Vec<u8>>>,
    ) -> Self {
        Self {
            socket: 0,
            source,
            data,
            tcp: Some(local),
            writer,
        }
    }
}

struct MediaSocket {
    socket: Arc<UdpSocket>,
    /// The address it is bound to (what an ICE-TCP connection on that IP maps from).
    local: SocketAddr,
    /// The address ICE sees: the public IP when configured, else the local one.
    advertised: SocketAddr,
    /// Datagrams the core produced for this socket, not yet handed to the kernel.
    outgoing: SendBatch,
}

/// Bind the media sockets and start the SFU task.
pub async fn start(config: &SfuConfig) -> Result<SfuHandle, SfuError> {
    let ips = if config.listen_ips.is_empty() {
        local_ipv4_addresses()
    } else {
        config.listen_ips.clone()
    };
    if ips.is_empty() {
        return Err(SfuError::NoAddress);
    }
    let mut sockets = Vec::new();
    let mut port = config.port;
    for ip in ips {
        let addr = SocketAddr::new(ip, port);
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|source| SfuError::Bind { addr, source })?;
        let local = socket
            .local_addr()
            .map_err(|source| SfuError::Bind { addr, source })?;
        // Port 0 means "pick one": the first socket picks, the rest share its number.
        port = local.port();
        size_buffers(&socket, local);
        let advertised = match config.public_ip {
            Some(public) if !ip.is_loopback() => SocketAddr::new(public, port),
            _ => local,
        };
        info!(%local, %advertised, "media socket open");
        sockets.push(MediaSocket {
            socket: Arc::new(socket),
            local,
            advertised,
            outgoing: SendBatch::default(),
        });
    }
    let media_addrs: Vec<SocketAddr> = sockets.iter().map(|s| s.advertised).collect();
    let (cmd_tx, cmd_rx) = mpsc::channel(1024);
    let (net_tx, net_rx) = mpsc::channel(4096);
    let receivers = sockets
        .iter()
        .enumerate()
        .map(|(index, s)| tokio::spawn(receive_loop(index, s.socket.clone(), net_tx.clone())))
        .collect();
    let mut core = Rooms::new(media_addrs.clone());
    let workers = match config.workers {
        // The cores this process may run on (its CPU affinity), not the machine's.
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    core.set_workers(workers)?;
    core.set_temporal_layers(config.temporal_layers);
    info!(
        workers = core.workers(),
        "media sessions polled on worker threads"
    );
    let driver = Driver {
        sockets,
        core,
        events: HashMap::new(),
        unclaimed: 0,
        send_drops: 0,
        receivers,
        probes: ProbeServer::default(),
        tcp: HashMap::new(),
        recorders: HashMap::new(),
        record_drops: 0,
    };
    tokio::spawn(driver.run(cmd_rx, net_rx));
    Ok(SfuHandle {
        tx: cmd_tx,
        net: net_tx,
        tcp_slots: Arc::new(tokio::sync::Semaphore::new(super::tcp::MAX_CONNECTIONS)),
        media_addrs,
    })
}

fn local_ipv4_addresses() -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = match if_addrs::get_if_addrs() {
        Ok(ifs) => ifs
            .into_iter()
            .map(|i| i.ip())
            .filter(|ip| ip.is_ipv4())
            .collect(),
        Err(e) => {
            warn!("cannot list network interfaces: {e}");
            Vec::new()
        }
    };
    if !ips.iter().any(|ip| ip.is_loopback()) {
        ips.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    ips.sort();
    ips.dedup();
    ips
}

async fn receive_loop(index: usize, socket: Arc<UdpSocket>, tx: mpsc::Sender<Datagram>) {
    let mut buf = vec![0u8; RECV_BUF];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, source)) => {
                let d = Datagram {
                    socket: index,
                    source,
                    data: buf[..n].to_vec(),
                    tcp: None,
                    writer: None,
                };
                if tx.send(d).await.is_err() {
                    return;
                }
            }
            // ICMP port unreachable from a departed client surfaces here on Linux; the
            // socket itself is fine.
            Err(e) => debug!("media socket receive error: {e}"),
        }
    }
}

struct Driver {
    sockets: Vec<MediaSocket>,
    core: Rooms,
    /// Each participant's signaling channel.
    events: HashMap<ParticipantId, mpsc::UnboundedSender<SfuEvent>>,
    unclaimed: u64,
    send_drops: u64,
    receivers: Vec<tokio::task::JoinHandle<()>>,
    probes: ProbeServer,
    /// Open ICE-TCP connections by the client's address: their framed-packet queues.
    tcp: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    /// Each recorded room's recorder (`Command::Record`), and the voice packets it was
    /// too slow to take (never waited for: the media path does not stop for a disk).
    recorders: HashMap<std::sync::Arc<str>, mpsc::Sender<crate::Recorded>>,
    record_drops: u64,
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut net: mpsc::Receiver<Datagram>,
    ) {
        let mut deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let wake = self
                .probes
                .next_timeout()
                .map_or(deadline, |t| t.min(deadline));
            tokio::select! {
                cmd = commands.recv() => {
                    let Some(cmd) = cmd else {
                        info!("SFU handle dropped; media server stopping");
                        return;
                    };
                    if matches!(cmd, Command::Stop) {
                        info!("media server stopping");
                        for r in &self.receivers {
                            r.abort();
                        }
                        return;
                    }
                    self.handle_command(cmd, Instant::now());
                }
                Some(d) = net.recv() => {
                    self.handle_datagram(d, Instant::now());
                    // Datagrams already waiting go in before the timers run, so that a
                    // subscriber takes the packets of several publishers into one
                    // str0m timeout and sends them in one paced burst, instead of one
                    // full timeout per forwarded packet. Bounded, so timers still run.
                    for _ in 1..INPUT_BATCH {
                        let Ok(d) = net.try_recv() else { break };
                        // str0m's rule: drain before the next input to the same session.
                        self.drain_core(Instant::now());
                        self.handle_datagram(d, Instant::now());
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    let now = Instant::now();
                    self.send_probe_trains(now);
                    self.core.handle_timeout(now);
                }
            }
            deadline = self.drain(Instant::now());
        }
    }

    fn send_probe_trains(&mut self, now: Instant) {
        let mut out = Vec::new();
        self.probes.poll(now, &mut out);
        for (socket, to, data) in out {
            if let Some(s) = self.sockets.get(socket)
                && s.socket.try_send_to(&data, to).is_err()
            {
                self.send_drops += 1;
            }
        }
    }

    fn handle_datagram(&mut self, mut d: Datagram, now: Instant) {
        if let Some(local) = d.tcp {
            if let Some(writer) = d.writer.take() {
                self.tcp.insert(d.source, writer);
            }
            // The candidate address ICE knows: the public IP of the media socket on the
            // same local address, when one is configured.
            let advertised = self
                .sockets
                .iter()
                .find(|s| s.local.ip() == local.ip())
                .map_or(local, |s| SocketAddr::new(s.advertised.ip(), local.port()));
            if !self
                .core
                .receive_on(now, Protocol::Tcp, d.source, advertised, &d.data)
            {
                // A connection whose packets no session claims (a session is made at
                // join, before any ICE check) is a stranger's: closed at once rather
                // than kept open until it idles out.
                self.unclaimed += 1;
                if self.tcp.remove(&d.source).is_some() {
                    debug!(peer = %d.source, "ICE-TCP connection naming no session: closed");
                }
            }
            return;
        }
        let Some(sock) = self.sockets.get(d.socket) else {
            return;
        };
        if probe::is_probe(&d.data) {
            let refused = self.probes.refused;
            if let Some((socket, to, reply)) = self.probes.handle(now, d.socket, d.source, &d.data)
                && let Some(s) = self.sockets.get(socket)
            {
                let _ = s.socket.try_send_to(&reply, to);
            }
            if self.probes.refused > refused && self.probes.refused.is_power_of_two() {
                // Logged at 1, 2, 4, 8 ... refusals: visible, but no log flood from a scan.
                info!(source = %d.source, refused = self.probes.refused, "link-check probe refused (no valid token)");
            }
            return;
        }
        if !self.core.receive(now, d.source, sock.advertised, &d.data) {
            self.unclaimed += 1;
        }
    }

    fn handle_command(&mut self, cmd: Command, now: Instant) {
        match cmd {
            Command::Join {
                room,
                participant,
                options,
                events,
                reply,
            } => {
                let r = self.core.join(now, &room, participant, options);
                if r.is_ok() {
                    self.events.insert(participant, events);
                }
                let _ = reply.send(r);
            }
            Command::Offer {
                participant,
                sdp,
                reply,
            } => {
                let _ = reply.send(self.core.offer(participant, &sdp));
            }
            Command::Answer {
                participant,
                sdp,
                reply,
            } => {
                let _ = reply.send(self.core.answer(now, participant, &sdp));
            }
            Command::Ready { participant, red } => self.core.ready(participant, red),
            Command::Leave { participant } => {
                self.core.leave(now, participant);
                self.events.remove(&participant);
            }
            Command::View { participant, hints } => self.core.view(now, participant, hints),
            Command::Floor { room, participant } => self.core.floor(now, &room, participant),
            Command::Record { room, to } => {
                self.core.set_recording(&room, to.is_some());
                match to {
                    Some(tx) => self.recorders.insert(room.as_str().into(), tx),
                    None => self.recorders.remove(room.as_str()),
                };
            }
            Command::Hold { holds } => self.core.hold(now, &holds),
            Command::Stop => {}
            Command::TcpClosed { peer } => {
                if self.tcp.get(&peer).is_some_and(|w| w.is_closed()) {
                    self.tcp.remove(&peer);
                }
            }
            Command::TcpCandidates { addrs } => {
                info!(?addrs, "ICE over TCP: passive candidates for new sessions");
                self.core.set_tcp_candidates(addrs);
            }
            Command::AllowProbe { token, ttl } => self.probes.allow(token, now + ttl, now),
            Command::Stats { reply } => {
                let _ = reply.send(SfuStats {
                    peers: self.core.stats(),
                    totals: self.core.totals(),
                    unclaimed_datagrams: self.unclaimed,
                    send_drops: self.send_drops,
                    probes_refused: self.probes.refused,
                });
            }
        }
    }

    /// Everything the core has to send and say; returns when it wants to wake next.
    fn drain(&mut self, now: Instant) -> Instant {
        let next = self.drain_core(now);
        self.flush();
        // Sessions the core ended (media gone) have no channel left to feed.
        if self.events.len() > self.core.len() {
            let core = &self.core;
            self.events.retain(|p, _| core.has(*p));
        }
        next
    }

    /// Poll the core until it says `Timeout`; datagrams wait in the batches unless
    /// one is full.
    fn drain_core(&mut self, now: Instant) -> Instant {
        loop {
            match self.core.poll_output(now) {
                Output::Transmit(t) if t.proto == Protocol::Tcp => {
                    self.send_tcp(t.destination, &t.contents);
                }
                Output::Transmit(t) => {
                    let index = self
                        .sockets
                        .iter()
                        .position(|s| s.advertised == t.source)
                        .unwrap_or(0);
                    if let Some(s) = self.sockets.get_mut(index) {
                        s.outgoing.push(t.destination, t.contents.into());
                        if s.outgoing.len() >= MAX_BATCH {
                            self.send_drops += s.outgoing.flush(&s.socket);
                        }
                    }
                }
                Output::Event(p, e) => {
                    let gone = self.events.get(&p).is_some_and(|tx| tx.send(e).is_err());
                    if gone {
                        debug!(participant = %p, "signaling gone; event dropped");
                        self.events.remove(&p);
                    }
                }
                Output::Record(room, a) => {
                    if let Some(tx) = self.recorders.get(&room)
                        && tx.try_send(a).is_err()
                    {
                        self.record_drops += 1;
                        if self.record_drops.is_power_of_two() {
                            warn!(%room, dropped = self.record_drops, "recorder not keeping up; packets dropped from the record");
                        }
                    }
                }
                Output::Timeout(t) => return t,
            }
        }
    }

    /// Queue a packet for an ICE-TCP connection. A client whose queue is full is not
    /// keeping up with its media: its connection is closed rather than waited for.
    fn send_tcp(&mut self, to: SocketAddr, packet: &[u8]) {
        let Some(writer) = self.tcp.get(&to) else {
            self.send_drops += 1;
            return;
        };
        let Some(framed) = super::tcp::frame(packet) else {
            return;
        };
        match writer.try_send(framed) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                info!(peer = %to, queued = super::tcp::MAX_QUEUE, "ICE-TCP client too slow for its media: connection closed");
                self.send_drops += 1;
                self.tcp.remove(&to);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.send_drops += 1;
                self.tcp.remove(&to);
            }
        }
    }

    /// Hand every socket's pending datagrams to the kernel. Media is real time: what
    /// the kernel refuses (a full send buffer means the packet is late anyway) is
    /// counted and dropped.
    fn flush(&mut self) {
        for s in &mut self.sockets {
            if !s.outgoing.is_empty() {
                self.send_drops += s.outgoing.flush(&s.socket);
            }
        }
    }
}
