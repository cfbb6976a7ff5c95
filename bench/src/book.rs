//! A subscriber's ledger of one publisher stream: which numbered packets arrived, which
//! are missing, and where the SFU stopped or started forwarding the stream to it (a
//! layer switch, a silent voice). Every packet in a forwarded span is either received or
//! lost; the report checks that sum against the publisher's own count.

use std::collections::BTreeSet;

/// A gap in send time longer than this is the SFU not forwarding (a layer switch, a
/// voice it holds back), not loss: a lost packet is repaired or given up in far less.
pub const NOT_FORWARDED_US: u64 = 1_000_000;
/// Missing numbers kept for late repair; older ones are final losses.
const REPAIR_WINDOW: u32 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    first: u32,
    last: u32,
    last_sent_us: u64,
}

#[derive(Debug, Default, Clone)]
pub struct StreamBook {
    runs: Vec<Run>,
    /// Numbers missing from the current run, still repairable.
    missing: BTreeSet<u32>,
    received: u64,
    lost_final: u64,
    duplicates: u64,
    /// Lost after the last packet received, counted by [`StreamBook::close`].
    tail_lost: u64,
}

/// What a ledger adds up to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Packets in forwarded spans (including the tail closed against the publisher).
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub spans: u64,
}

impl StreamBook {
    pub fn on_packet(&mut self, n: u32, sent_us: u64) {
        let Some(run) = self.runs.last_mut() else {
            self.start_run(n, sent_us);
            return;
        };
        if n > run.last {
            if sent_us.saturating_sub(run.last_sent_us) > NOT_FORWARDED_US
                || n - run.last > REPAIR_WINDOW
            {
                self.start_run(n, sent_us);
                return;
            }
            self.missing.extend(run.last + 1..n);
            run.last = n;
            run.last_sent_us = sent_us;
            self.received += 1;
            let floor = n.saturating_sub(REPAIR_WINDOW);
            while let Some(&m) = self.missing.first() {
                if m >= floor {
                    break;
                }
                self.missing.pop_first();
                self.lost_final += 1;
            }
        } else if self.missing.remove(&n) {
            // A retransmission or a reordered packet filled a hole.
            self.received += 1;
        } else {
            self.duplicates += 1;
        }
    }

    fn start_run(&mut self, n: u32, sent_us: u64) {
        self.lost_final += self.missing.len() as u64;
        self.missing.clear();
        self.runs.push(Run {
            first: n,
            last: n,
            last_sent_us: sent_us,
        });
        self.received += 1;
    }

    /// Send time of the newest packet received.
    pub fn last_sent_us(&self) -> Option<u64> {
        self.runs.last().map(|r| r.last_sent_us)
    }

    /// The publisher's last number on this stream: the packets after the last one
    /// received were forwarded and lost (the caller decides this stream was still being
    /// forwarded to us at the end).
    pub fn close(&mut self, published_last: u32) {
        if let Some(r) = self.runs.last()
            && published_last > r.last
        {
            self.tail_lost = u64::from(published_last - r.last);
        }
    }

    pub fn tally(&self) -> Tally {
        let spans: u64 = self
            .runs
            .iter()
            .map(|r| u64::from(r.last - r.first) + 1)
            .sum();
        Tally {
            expected: spans + self.tail_lost,
            received: self.received,
            lost: self.lost_final + self.missing.len() as u64 + self.tail_lost,
            duplicates: self.duplicates,
            spans: self.runs.len() as u64,
        }
    }

    /// Highest number received.
    pub fn last(&self) -> Option<u32> {
        self.runs.iter().map(|r| r.last).max()
    }
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, o: Self) {
        self.expected += o.expected;
        self.received += o.received;
        self.lost += o.lost;
        self.duplicates += o.duplicates;
        self.spans += o.spans;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(b: &mut StreamBook, ns: &[u32]) {
        for &n in ns {
            b.on_packet(n, u64::from(n) * 20_000);
        }
    }

    #[test]
    fn all_received() {
        let mut b = StreamBook::default();
        feed(&mut b, &[5, 6, 7, 8]);
        b.close(8);
        let t = b.tally();
        assert_eq!((t.expected, t.received, t.lost), (4, 4, 0));
    }

    #[test]
    fn holes_are_lost_until_repaired() {
        let mut b = StreamBook::default();
        feed(&mut b, &[0, 1, 4, 5]);
        assert_eq!(b.tally().lost, 2);
        feed(&mut b, &[2]);
        let t = b.tally();
        assert_eq!((t.expected, t.received, t.lost), (6, 5, 1));
        feed(&mut b, &[2]);
        assert_eq!(b.tally().duplicates, 1);
    }

    #[test]
    fn a_long_pause_is_not_loss_and_the_tail_is() {
        let mut b = StreamBook::default();
        feed(&mut b, &[0, 1, 2]);
        // 3 s later in send time: the SFU stopped and resumed forwarding.
        feed(&mut b, &[150, 151]);
        b.close(153);
        let t = b.tally();
        assert_eq!(t.spans, 2);
        assert_eq!((t.expected, t.received, t.lost), (3 + 2 + 2, 5, 2));
        assert_eq!(t.received + t.lost, t.expected);
    }

    #[test]
    fn old_holes_become_final_losses() {
        let mut b = StreamBook::default();
        // Keep send times close so it stays one run.
        b.on_packet(0, 0);
        b.on_packet(2, 10);
        for n in 3..5000 {
            b.on_packet(n, 10 + u64::from(n));
        }
        let t = b.tally();
        assert_eq!((t.expected, t.received, t.lost), (5000, 4999, 1));
        b.on_packet(1, 6000);
        assert_eq!(b.tally().duplicates, 1, "too late to repair");
    }
}
