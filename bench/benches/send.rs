//! The kernel's cost of the SFU's fan-out: one `sendto` per datagram against one
//! `sendmmsg` per batch (`cauhop_sfu::SendBatch`, what the driver uses), on loopback.
//!
//! Each round sends one datagram to each of `sites` receiving sockets, as one voice
//! packet of a speaker does in a meeting of that size; receivers are drained between
//! rounds, outside the time counted. On loopback the kernel delivers into the
//! receiver's buffer inside the send call, so the figure includes delivery work a real
//! NIC would take off the sender; the ratio is what matters.
//!
//! `cargo bench -p cauhop-bench --bench send` (`CAUHOP_BENCH_SITES`, default
//! 30,270; `CAUHOP_BENCH_SIZES` in bytes, default 160,1100); under `cargo test` it
//! runs one short round of each to check that every datagram arrives.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use cauhop_sfu::SendBatch;
use tokio::net::UdpSocket;

fn list(var: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(var)
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

struct Bench {
    sender: UdpSocket,
    /// Plain std sockets: read outside tokio's reactor, so nothing waits on it.
    receivers: Vec<std::net::UdpSocket>,
    to: Vec<SocketAddr>,
}

impl Bench {
    async fn new(sites: usize) -> Bench {
        let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let sender = UdpSocket::bind(any).await.expect("bind sender");
        socket2::SockRef::from(&sender)
            .set_send_buffer_size(4 << 20)
            .expect("send buffer");
        let mut receivers = Vec::new();
        for _ in 0..sites {
            let r = std::net::UdpSocket::bind(any).expect("bind receiver");
            r.set_nonblocking(true).expect("non-blocking");
            receivers.push(r);
        }
        let to = receivers
            .iter()
            .map(|r| r.local_addr().expect("address"))
            .collect();
        sender.writable().await.expect("writable");
        Bench {
            sender,
            receivers,
            to,
        }
    }

    /// Reads every receiver empty; returns how many datagrams arrived.
    fn drain(&self) -> usize {
        let mut buf = [0u8; 2048];
        let mut n = 0;
        for r in &self.receivers {
            while r.recv(&mut buf).is_ok() {
                n += 1;
            }
        }
        n
    }

    /// Time spent sending `rounds` fan-outs, and datagrams that arrived.
    async fn run(&self, rounds: usize, size: usize, batched: bool) -> (Duration, usize) {
        let payload = vec![0x80u8; size];
        let mut batch = SendBatch::default();
        let mut spent = Duration::ZERO;
        let mut arrived = 0;
        for _ in 0..rounds {
            // Copies are made outside the clock, as str0m hands the driver owned buffers.
            let copies: Vec<Vec<u8>> = self.to.iter().map(|_| payload.clone()).collect();
            self.sender.writable().await.expect("writable");
            let start = Instant::now();
            if batched {
                for (to, data) in self.to.iter().zip(copies) {
                    batch.push(*to, data);
                }
                batch.flush(&self.sender);
            } else {
                for (to, data) in self.to.iter().zip(&copies) {
                    let _ = self.sender.try_send_to(data, *to);
                }
            }
            spent += start.elapsed();
            arrived += self.drain();
        }
        (spent, arrived)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sites = if full {
        list("CAUHOP_BENCH_SITES", &[30, 270])
    } else {
        vec![30]
    };
    let sizes = list("CAUHOP_BENCH_SIZES", &[160, 1100]);
    let rounds = if full { 2000 } else { 20 };
    println!("| sites | bytes | sendto µs/datagram | sendmmsg µs/datagram | ratio |");
    println!("|---|---|---|---|---|");
    for &n in &sites {
        let bench = Bench::new(n).await;
        for &size in &sizes {
            // Warm both paths (route cache, socket buffers) before counting.
            bench.run(rounds / 10 + 1, size, false).await;
            bench.run(rounds / 10 + 1, size, true).await;
            let (plain, got_plain) = bench.run(rounds, size, false).await;
            let (batched, got_batched) = bench.run(rounds, size, true).await;
            let sent = (rounds * n) as f64;
            let per = |d: Duration| d.as_secs_f64() * 1e6 / sent;
            println!(
                "| {n} | {size} | {:.3} | {:.3} | {:.2}x |",
                per(plain),
                per(batched),
                per(plain) / per(batched)
            );
            assert_eq!(got_plain, rounds * n, "every sendto datagram arrived");
            assert_eq!(got_batched, rounds * n, "every batched datagram arrived");
        }
    }
}
