//! A user-space link emulator: a UDP relay between one peer and the SFU that imposes,
//! per direction, the conditions of a [`Profile`] (rate limit with a bounded queue, delay,
//! jitter, random and burst loss, scripted changes; the model is `emulator.rs`), with a
//! seeded generator so a failing run repeats. (`tc netem` is not available here.)
//!
//! The peer is pointed at the relay by rewriting the SFU's candidate in the SDP it
//! receives; the SFU then sees the relay's address as the peer's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use std::collections::VecDeque;
use std::time::Duration;

use tokio::net::UdpSocket;

use crate::emulator::{Channel, LinkParams, Schedule};
use crate::profiles::Profile;

/// Random loss only, per direction (the simplest profile).
#[derive(Debug, Clone, Copy)]
pub struct LinkProfile {
    /// Probability of dropping a packet from the peer to the SFU.
    pub loss_up: f64,
    /// Probability of dropping a packet from the SFU to the peer.
    pub loss_down: f64,
    pub seed: u64,
}

#[derive(Debug, Default)]
pub struct LinkStats {
    pub up_passed: AtomicU64,
    pub up_dropped: AtomicU64,
    pub down_passed: AtomicU64,
    pub down_dropped: AtomicU64,
    /// RTP packets towards the peer by payload type (the header is not encrypted by SRTP).
    pub down_rtp_by_pt: Mutex<HashMap<u8, u64>>,
    /// Bytes the SFU sent towards the peer, before the link dropped any: what the SFU
    /// thinks the link carries.
    pub down_bytes_offered: AtomicU64,
}

impl LinkStats {
    pub fn down_rtp(&self, pt: u8) -> u64 {
        self.down_rtp_by_pt
            .lock()
            .map(|m| m.get(&pt).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

pub struct Link {
    /// Where the peer should send (instead of the SFU).
    pub addr: SocketAddr,
    pub target: SocketAddr,
    pub stats: Arc<LinkStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn rtp_pt(d: &[u8]) -> Option<u8> {
    // RTP version 2, and not RTCP (RTCP packet types 192..=223 sit where PT+marker are).
    if d.len() < 12 || d[0] >> 6 != 2 || (192..=223).contains(&d[1]) {
        return None;
    }
    Some(d[1] & 0x7f)
}

impl LinkProfile {
    fn profile(&self) -> Profile {
        let p = |loss| {
            Schedule::constant(LinkParams {
                loss,
                ..Default::default()
            })
        };
        Profile {
            name: "random-loss".into(),
            description: String::new(),
            up: p(self.loss_up),
            down: p(self.loss_down),
        }
    }
}

/// Datagrams in flight one way, in delivery order.
type InFlight = VecDeque<(Duration, Vec<u8>)>;

impl Link {
    pub async fn start(target: SocketAddr, profile: LinkProfile) -> anyhow::Result<Self> {
        Self::start_profile(target, &profile.profile(), profile.seed).await
    }

    /// A relay imposing `profile` between a peer and `target`.
    pub async fn start_profile(
        target: SocketAddr,
        profile: &Profile,
        seed: u64,
    ) -> anyhow::Result<Self> {
        Self::start_on(std::net::Ipv4Addr::LOCALHOST.into(), target, profile, seed).await
    }

    /// The same, with the relay's sockets on `ip` (a test network namespace's address).
    pub async fn start_on(
        ip: std::net::IpAddr,
        target: SocketAddr,
        profile: &Profile,
        seed: u64,
    ) -> anyhow::Result<Self> {
        let near = UdpSocket::bind((ip, 0)).await?;
        let far = UdpSocket::bind((ip, 0)).await?;
        let addr = near.local_addr()?;
        let stats = Arc::new(LinkStats::default());
        let st = stats.clone();
        let mut up = Channel::new(profile.up.clone(), seed);
        let mut down = Channel::new(profile.down.clone(), seed.wrapping_add(1));
        let task = tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            let mut peer: Option<SocketAddr> = None;
            let (mut to_sfu, mut to_peer): (InFlight, InFlight) = Default::default();
            let mut a = vec![0u8; 2048];
            let mut b = vec![0u8; 2048];
            loop {
                let next = [to_sfu.front(), to_peer.front()]
                    .into_iter()
                    .flatten()
                    .map(|(t, _)| *t)
                    .min();
                let due = async {
                    match next {
                        Some(t) => tokio::time::sleep_until(start + t).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    r = near.recv_from(&mut a) => {
                        let Ok((n, from)) = r else { continue };
                        peer = Some(from);
                        match up.offer(start.elapsed(), n) {
                            Ok(at) => {
                                st.up_passed.fetch_add(1, Ordering::Relaxed);
                                to_sfu.push_back((at, a[..n].to_vec()));
                            }
                            Err(_) => { st.up_dropped.fetch_add(1, Ordering::Relaxed); }
                        }
                    }
                    r = far.recv_from(&mut b) => {
                        let Ok((n, _)) = r else { continue };
                        if peer.is_none() { continue }
                        st.down_bytes_offered.fetch_add(n as u64, Ordering::Relaxed);
                        match down.offer(start.elapsed(), n) {
                            Ok(at) => {
                                st.down_passed.fetch_add(1, Ordering::Relaxed);
                                if let Some(pt) = rtp_pt(&b[..n])
                                    && let Ok(mut m) = st.down_rtp_by_pt.lock()
                                {
                                    *m.entry(pt).or_default() += 1;
                                }
                                to_peer.push_back((at, b[..n].to_vec()));
                            }
                            Err(_) => { st.down_dropped.fetch_add(1, Ordering::Relaxed); }
                        }
                    }
                    _ = due => {
                        let now = start.elapsed();
                        while to_sfu.front().is_some_and(|(t, _)| *t <= now) {
                            if let Some((_, d)) = to_sfu.pop_front() {
                                let _ = far.send_to(&d, target).await;
                            }
                        }
                        while to_peer.front().is_some_and(|(t, _)| *t <= now) {
                            if let (Some((_, d)), Some(p)) = (to_peer.pop_front(), peer) {
                                let _ = near.send_to(&d, p).await;
                            }
                        }
                    }
                }
            }
        });
        Ok(Self {
            addr,
            target,
            stats,
            task,
        })
    }

    /// Point an SDP's candidates for the SFU at this relay instead.
    pub fn rewrite_sdp(&self, sdp: &str) -> String {
        let from = format!(" {} {} typ", self.target.ip(), self.target.port());
        let to = format!(" {} {} typ", self.addr.ip(), self.addr.port());
        sdp.replace(&from, &to)
    }
}
