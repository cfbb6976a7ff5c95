//! WebSockets that have connected but not joined a meeting yet, counted per client
//! address and in all.
//!
//! A page joins within a second of connecting, so a socket that waits is either on its
//! way in or a hostile client holding sockets open (each costs the server a task,
//! buffers and a descriptor until `JOIN_WITHIN` ends it). Without a bound, one address
//! could hold thousands of them, run the process out of descriptors, and leave the
//! allocator holding the memory long after they close. A joined socket is no longer
//! counted: joins are bounded by the links and the meeting's caps.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::client_addr::rate_key;

/// Sockets one client address (an IPv6 /64) may have waiting at once. An office behind
/// one NAT address with every official opening the page at 08:00 stays well under it:
/// each socket waits only as long as its join takes (milliseconds), and a page in the
/// lobby lets its socket go while it waits.
pub const WAITING_PER_ADDRESS: u32 = 8;
/// Sockets waiting at once, all addresses together. Sockets waiting = arrivals a second ×
/// time to join: a whole province reconnecting after a restart (270 sites within about
/// a second, by the pages' jittered backoff) at 100 ms a join is under 30. A refused page
/// retries with backoff, so the cap delays a storm instead of failing it.
pub const WAITING_TOTAL: u32 = 64;

/// A flood is refused thousands of times a second: one log line per this long says how
/// many.
pub const REFUSALS_LOGGED_EVERY: Duration = Duration::from_secs(10);

/// Why a new socket was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("too many connections from this address are waiting to join")]
    Address,
    #[error("the server has too many connections waiting to join")]
    Total,
}

#[derive(Debug, Default)]
struct Counts {
    by_address: HashMap<IpAddr, u32>,
    total: u32,
    refused: u32,
    logged_at: Option<Instant>,
}

/// The counts, shared by every connection.
#[derive(Debug, Clone, Default)]
pub struct WaitingSockets {
    counts: Arc<Mutex<Counts>>,
}

impl WaitingSockets {
    /// Count a new socket from `client`, or refuse it.
    pub fn enter(&self, client: IpAddr) -> Result<Waiting, Refused> {
        let key = rate_key(client);
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if c.total >= WAITING_TOTAL {
            return Err(Refused::Total);
        }
        let n = c.by_address.entry(key).or_insert(0);
        if *n >= WAITING_PER_ADDRESS {
            return Err(Refused::Address);
        }
        *n += 1;
        c.total += 1;
        Ok(Waiting {
            counts: self.counts.clone(),
            key,
        })
    }

    /// Count a refusal; returns how many to report when a log line is due (at most one
    /// per `REFUSALS_LOGGED_EVERY`).
    pub fn note_refusal(&self, now: Instant) -> Option<u32> {
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        c.refused = c.refused.saturating_add(1);
        let due = c
            .logged_at
            .is_none_or(|at| now.duration_since(at) >= REFUSALS_LOGGED_EVERY);
        if !due {
            return None;
        }
        c.logged_at = Some(now);
        Some(std::mem::take(&mut c.refused))
    }

    /// Sockets waiting now, all addresses together.
    pub fn total(&self) -> u32 {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

/// One waiting socket; dropping it (on join, or when the socket ends) uncounts it.
#[derive(Debug)]
pub struct Waiting {
    counts: Arc<Mutex<Counts>>,
    key: IpAddr,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_address.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                // Keep the map as small as the set of addresses waiting now.
                c.by_address.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn one_address_holds_at_most_its_share_and_gets_it_back_on_drop() {
        let w = WaitingSockets::default();
        let held: Vec<_> = (0..WAITING_PER_ADDRESS)
            .map(|_| w.enter(ip("203.0.113.9")).expect("under the cap"))
            .collect();
        assert_eq!(w.enter(ip("203.0.113.9")).err(), Some(Refused::Address));
        // Another address is not affected.
        let other = w.enter(ip("203.0.113.10")).expect("other address");
        drop(held);
        assert_eq!(w.total(), 1);
        assert!(w.enter(ip("203.0.113.9")).is_ok());
        drop(other);
    }

    #[test]
    fn an_ipv6_client_cannot_escape_the_cap_by_changing_its_interface_id() {
        let w = WaitingSockets::default();
        let _held: Vec<_> = (0..WAITING_PER_ADDRESS)
            .map(|i| {
                w.enter(ip(&format!("2001:db8:1:2::{:x}", i + 1)))
                    .expect("under the cap")
            })
            .collect();
        assert_eq!(
            w.enter(ip("2001:db8:1:2:ffff::1")).err(),
            Some(Refused::Address)
        );
    }

    #[test]
    fn refusals_reach_the_log_once_per_period_with_their_count() {
        let w = WaitingSockets::default();
        let t0 = Instant::now();
        assert_eq!(w.note_refusal(t0), Some(1));
        for i in 1..500 {
            assert_eq!(w.note_refusal(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(w.note_refusal(t0 + REFUSALS_LOGGED_EVERY), Some(500));
    }

    #[test]
    fn the_total_bounds_many_addresses_together() {
        let w = WaitingSockets::default();
        let _held: Vec<_> = (0..WAITING_TOTAL)
            .map(|i| {
                let [a, b] = (i as u16).to_be_bytes();
                w.enter(IpAddr::from([10, 1, a, b])).expect("under the cap")
            })
            .collect();
        assert_eq!(w.enter(ip("192.0.2.1")).err(), Some(Refused::Total));
        drop(_held);
        assert_eq!(w.total(), 0);
        assert!(w.counts.lock().expect("lock").by_address.is_empty());
    }
}
