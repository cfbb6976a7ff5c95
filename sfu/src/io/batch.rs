//! Outgoing datagrams leave in batches: one `sendmmsg` per socket for everything the
//! room core produced from one input, instead of one `sendto` each.
//!
//! One voice packet in a 270-site meeting becomes 270 datagrams to 270 addresses. With
//! `sendto` each one is a system call, and the kernel's entry and exit were a quarter of
//! the SFU's time in the province scenario (perf, stop 23). `sendmmsg` hands the kernel
//! up to [`MAX_BATCH`] datagrams with their own destinations in one call. (GSO, which
//! quinn-udp uses, needs one destination per call, which an SFU's fan-out is not.)
//!
//! Media is real time: a datagram the kernel refuses (full buffer, unreachable
//! destination) is counted and dropped, never queued for later; the rest of the batch
//! still goes.

use std::io;
use std::net::SocketAddr;

use tokio::net::UdpSocket;

/// Datagrams handed to the kernel per call. The kernel caps a call at `UIO_MAXIOV`
/// (1024); 64 keeps the headers' scratch space small and still makes the call's own
/// cost per datagram negligible.
pub(crate) const MAX_BATCH: usize = 64;

/// Datagrams waiting for one socket, in the order the core produced them.
#[derive(Default)]
pub struct SendBatch {
    pending: Vec<(SocketAddr, Vec<u8>)>,
}

impl SendBatch {
    pub fn push(&mut self, to: SocketAddr, data: Vec<u8>) {
        self.pending.push((to, data));
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Send everything pending on `socket`; returns how many datagrams were dropped.
    pub fn flush(&mut self, socket: &UdpSocket) -> u64 {
        let mut dropped = 0;
        let mut start = 0;
        while start < self.pending.len() {
            let end = (start + MAX_BATCH).min(self.pending.len());
            match send_many(socket, &self.pending[start..end]) {
                Ok(sent) if sent > 0 => start += sent,
                // The buffer is full: everything after it would be refused too, and late.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    dropped += (self.pending.len() - start) as u64;
                    break;
                }
                // One destination refused (the kernel reports the first failure of a
                // batch as the call's error): drop that datagram, send the rest.
                Ok(_) | Err(_) => {
                    dropped += 1;
                    start += 1;
                }
            }
        }
        self.pending.clear();
        dropped
    }
}

#[cfg(target_os = "linux")]
fn send_many(socket: &UdpSocket, batch: &[(SocketAddr, Vec<u8>)]) -> io::Result<usize> {
    use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};
    use std::io::IoSlice;

    let addrs: Vec<SocketAddrAny> = batch.iter().map(|(to, _)| (*to).into()).collect();
    let iovs: Vec<[IoSlice<'_>; 1]> = batch.iter().map(|(_, d)| [IoSlice::new(d)]).collect();
    let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = batch
        .iter()
        .map(|_| SendAncillaryBuffer::default())
        .collect();
    let mut msgs: Vec<MMsgHdr<'_>> = addrs
        .iter()
        .zip(&iovs)
        .zip(controls.iter_mut())
        .map(|((addr, iov), control)| MMsgHdr::new_with_addr(addr, iov, control))
        .collect();
    // Through tokio so a full buffer clears the socket's write readiness as `sendto` did.
    socket.try_io(tokio::io::Interest::WRITABLE, || {
        rustix::net::sendmmsg(socket, &mut msgs, SendFlags::empty()).map_err(io::Error::from)
    })
}

#[cfg(not(target_os = "linux"))]
fn send_many(socket: &UdpSocket, batch: &[(SocketAddr, Vec<u8>)]) -> io::Result<usize> {
    let (to, data) = &batch[0];
    socket.try_send_to(data, *to).map(|_| 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    async fn receive(socket: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while got.len() < n {
            let r = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf)).await;
            let len = r.expect("datagram within 5 s").expect("receive");
            got.push(buf[..len].to_vec());
        }
        got
    }

    fn numbered(tag: u8, i: usize) -> Vec<u8> {
        let mut d = vec![tag];
        d.extend_from_slice(&(i as u32).to_be_bytes());
        d
    }

    #[tokio::test]
    async fn a_batch_larger_than_one_call_arrives_in_order_at_each_destination() {
        let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let sender = UdpSocket::bind(any).await.expect("loopback socket");
        let a = UdpSocket::bind(any).await.expect("loopback socket");
        let b = UdpSocket::bind(any).await.expect("loopback socket");
        let (to_a, to_b) = (
            a.local_addr().expect("loopback socket"),
            b.local_addr().expect("loopback socket"),
        );
        let n = MAX_BATCH * 2 + 7;
        let mut batch = SendBatch::default();
        for i in 0..n {
            batch.push(to_a, numbered(b'a', i));
            batch.push(to_b, numbered(b'b', i));
        }
        assert_eq!(batch.len(), 2 * n);
        // A fresh socket is writable once tokio's reactor has seen it so.
        sender.writable().await.expect("loopback socket");
        assert_eq!(batch.flush(&sender), 0);
        assert!(batch.is_empty());
        let want_a: Vec<_> = (0..n).map(|i| numbered(b'a', i)).collect();
        let want_b: Vec<_> = (0..n).map(|i| numbered(b'b', i)).collect();
        assert_eq!(receive(&a, n).await, want_a);
        assert_eq!(receive(&b, n).await, want_b);
    }

    #[tokio::test]
    async fn a_refused_destination_drops_one_datagram_and_the_rest_still_go() {
        let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let sender = UdpSocket::bind(any).await.expect("loopback socket");
        let a = UdpSocket::bind(any).await.expect("loopback socket");
        let to_a = a.local_addr().expect("loopback socket");
        // An IPv4 socket cannot send to an IPv6 address: the kernel refuses that message.
        let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, 9));
        let mut batch = SendBatch::default();
        batch.push(to_a, numbered(b'a', 0));
        batch.push(v6, numbered(b'x', 0));
        batch.push(to_a, numbered(b'a', 1));
        batch.push(v6, numbered(b'x', 1));
        batch.push(to_a, numbered(b'a', 2));
        sender.writable().await.expect("loopback socket");
        assert_eq!(batch.flush(&sender), 2);
        let want: Vec<_> = (0..3).map(|i| numbered(b'a', i)).collect();
        assert_eq!(receive(&a, 3).await, want);
    }
}
