//! A user-space link emulator: a UDP relay between one peer and the SFU that drops
//! packets at random, per direction, with a seeded generator so a failing run repeats.
//!
//! The peer is pointed at the relay by rewriting the SFU's candidate in the SDP it
//! receives; the SFU then sees the relay's address as the peer's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::UdpSocket;

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

impl Link {
    pub async fn start(target: SocketAddr, profile: LinkProfile) -> anyhow::Result<Self> {
        let near = UdpSocket::bind("127.0.0.1:0").await?;
        let far = UdpSocket::bind("127.0.0.1:0").await?;
        let addr = near.local_addr()?;
        let stats = Arc::new(LinkStats::default());
        let st = stats.clone();
        let task = tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(profile.seed);
            let mut peer: Option<SocketAddr> = None;
            let mut a = vec![0u8; 2048];
            let mut b = vec![0u8; 2048];
            loop {
                tokio::select! {
                    r = near.recv_from(&mut a) => {
                        let Ok((n, from)) = r else { continue };
                        peer = Some(from);
                        if rng.random::<f64>() < profile.loss_up {
                            st.up_dropped.fetch_add(1, Ordering::Relaxed);
                        } else {
                            st.up_passed.fetch_add(1, Ordering::Relaxed);
                            let _ = far.send_to(&a[..n], target).await;
                        }
                    }
                    r = far.recv_from(&mut b) => {
                        let Ok((n, _)) = r else { continue };
                        let Some(p) = peer else { continue };
                        if rng.random::<f64>() < profile.loss_down {
                            st.down_dropped.fetch_add(1, Ordering::Relaxed);
                        } else {
                            st.down_passed.fetch_add(1, Ordering::Relaxed);
                            if let Some(pt) = rtp_pt(&b[..n])
                                && let Ok(mut m) = st.down_rtp_by_pt.lock()
                            {
                                *m.entry(pt).or_default() += 1;
                            }
                            let _ = near.send_to(&b[..n], p).await;
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
