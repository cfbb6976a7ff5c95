//! Which frames of a VP8 stream with temporal layers one subscriber gets.
//!
//! Chrome sends each VP8 simulcast encoding in three temporal layers (the TID in the
//! payload descriptor, RFC 7741): the base layer T0 at a quarter of the frame rate, T1
//! adding a quarter, T2 the other half, in the pattern 0 2 1 2 0 2 1 2. A frame refers
//! only to frames of its own layer or below, so a subscriber whose link cannot carry the
//! full rate gets a lower frame rate at the same resolution, and a lost packet of a T2
//! frame (which nothing refers to) costs one frame, not a freeze until the next keyframe.
//!
//! Switching down is safe at any frame (what stays refers only to what stays). Switching
//! up is safe only at a *layer sync* frame (Y=1: it refers to the base layer alone) of the
//! next layer up, one layer at a time, or at a keyframe; a T1 frame that is not a sync
//! refers to the previous T1 frame, which this subscriber never got. A frame's fate is
//! decided on its first packet seen and kept for its other packets, so a target that
//! changes mid-frame never cuts a frame in two.
//!
//! Pure: no clock, no IO. A stream without temporal layers (no T bit) passes whole.

/// One packet as the filter sees it (`rtp/vp8.rs` reads it from the descriptor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FramePacket {
    /// The frame's PictureID; `None`: frames are told apart by `start` alone.
    pub picture: Option<u16>,
    pub start: bool,
    pub key: bool,
    pub tid: Option<u8>,
    pub sync: bool,
}

/// Recent decisions kept per subscriber: reordering spans a few frames at most.
const REMEMBERED: usize = 16;

#[derive(Debug, Clone)]
pub struct TemporalFilter {
    /// The highest layer the allocator wants sent; `None`: every layer.
    target: Option<u8>,
    /// The highest layer sent now (`None`: every layer): it follows the target down at
    /// once and up at sync points.
    current: Option<u8>,
    recent: [(u16, bool); REMEMBERED],
    filled: usize,
    next: usize,
    /// For streams without PictureIDs: the decision of the last frame started.
    last: bool,
}

impl Default for TemporalFilter {
    fn default() -> Self {
        Self {
            target: None,
            current: None,
            recent: [(0, false); REMEMBERED],
            filled: 0,
            next: 0,
            last: true,
        }
    }
}

/// `None` is "every layer", above any number.
fn level(t: Option<u8>) -> u16 {
    t.map_or(u16::MAX, u16::from)
}

impl TemporalFilter {
    /// The highest layer to send from now on (`None`: all).
    pub fn set_target(&mut self, target: Option<u8>) {
        self.target = target;
    }

    pub fn target(&self) -> Option<u8> {
        self.target
    }

    /// Another stream starts (a layer switch, a new source): its PictureIDs have nothing
    /// to do with the decisions remembered, and it starts on a keyframe.
    pub fn restart(&mut self) {
        self.filled = 0;
        self.next = 0;
        self.last = true;
    }

    /// The highest layer being sent now.
    pub fn current(&self) -> Option<u8> {
        self.current
    }

    /// Whether this packet goes to the subscriber.
    pub fn admit(&mut self, p: FramePacket) -> bool {
        let Some(tid) = p.tid else {
            return true;
        };
        if let Some(pid) = p.picture {
            if let Some((_, d)) = self.recent[..self.filled].iter().find(|(x, _)| *x == pid) {
                return *d;
            }
        } else if !p.start {
            return self.last;
        }
        self.follow_target(tid, p.key, p.sync);
        let pass = u16::from(tid) <= level(self.current);
        if let Some(pid) = p.picture {
            self.recent[self.next] = (pid, pass);
            self.next = (self.next + 1) % REMEMBERED;
            self.filled = (self.filled + 1).min(REMEMBERED);
        }
        self.last = pass;
        pass
    }

    /// Move the layer sent towards the target at this frame, where that is safe.
    fn follow_target(&mut self, tid: u8, key: bool, sync: bool) {
        let (target, current) = (level(self.target), level(self.current));
        if key || target < current {
            // A keyframe refreshes every reference: any target can start here.
            self.current = self.target;
        } else if target > current && u16::from(tid) == current + 1 && sync {
            self.current = if u16::from(tid) >= target {
                self.target
            } else {
                Some(tid)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Chrome's three-layer pattern (`vp8_shape`), frame 0 of the stream a keyframe.
    fn chrome(frame: u32) -> FramePacket {
        let t = crate::vp8_shape::chrome_temporal(frame);
        FramePacket {
            picture: Some((frame & 0x7fff) as u16),
            start: true,
            key: frame == 0,
            tid: Some(t.tid),
            sync: t.sync,
        }
    }

    fn passed(f: &mut TemporalFilter, frames: std::ops::Range<u32>) -> Vec<u8> {
        frames
            .filter_map(|n| {
                let p = chrome(n);
                f.admit(p).then_some(p.tid.unwrap_or(0))
            })
            .collect()
    }

    #[test]
    fn each_target_passes_its_layers_and_those_below() {
        for (target, per_eight) in [(Some(0), 2), (Some(1), 4), (Some(2), 8), (None, 8)] {
            let mut f = TemporalFilter::default();
            f.set_target(target);
            let got = passed(&mut f, 0..64);
            assert_eq!(got.len(), per_eight * 8, "target {target:?}");
            assert!(got.iter().all(|t| u16::from(*t) <= level(target)));
        }
    }

    #[test]
    fn down_at_the_next_frame_up_only_at_a_sync_frame() {
        let mut f = TemporalFilter::default();
        assert_eq!(passed(&mut f, 0..8).len(), 8);
        f.set_target(Some(0));
        // Frame 8 is T0, 9 T2: dropped at once.
        assert!(f.admit(chrome(8)));
        assert!(!f.admit(chrome(9)));
        f.set_target(Some(2));
        // Frame 10 is T1 *and* a sync: T1 starts; 11 (T2, not a sync) waits.
        assert!(f.admit(chrome(10)));
        assert_eq!(f.current(), Some(1));
        assert!(!f.admit(chrome(11)));
        assert!(f.admit(chrome(12)));
        assert!(!f.admit(chrome(13)), "T2, and not a sync");
        assert!(f.admit(chrome(14)));
        assert!(!f.admit(chrome(15)));
        // Frame 17: T2 sync.
        assert!(f.admit(chrome(16)));
        assert!(f.admit(chrome(17)));
        assert_eq!(f.current(), Some(2));
    }

    #[test]
    fn a_keyframe_starts_any_target_and_every_packet_of_a_frame_shares_its_fate() {
        let mut f = TemporalFilter::default();
        f.set_target(Some(0));
        passed(&mut f, 0..5);
        f.set_target(None);
        let key = FramePacket {
            picture: Some(5),
            key: true,
            ..chrome(5)
        };
        assert!(f.admit(key));
        assert_eq!(f.current(), None);
        // Frame 6 (T1) passes; the target drops mid-frame: its later packets still pass.
        assert!(f.admit(chrome(6)));
        f.set_target(Some(0));
        let later = FramePacket {
            start: false,
            ..chrome(6)
        };
        assert!(f.admit(later));
        assert!(!f.admit(chrome(7)));
    }

    #[test]
    fn streams_without_temporal_layers_pass_whole() {
        let mut f = TemporalFilter::default();
        f.set_target(Some(0));
        for n in 0..20u16 {
            assert!(f.admit(FramePacket {
                picture: Some(n),
                start: true,
                ..Default::default()
            }));
        }
    }

    #[test]
    fn without_picture_ids_a_frame_follows_its_first_packet() {
        let mut f = TemporalFilter::default();
        f.set_target(Some(0));
        let p = |start, tid| FramePacket {
            picture: None,
            start,
            key: false,
            tid: Some(tid),
            sync: false,
        };
        assert!(f.admit(p(true, 0)));
        assert!(f.admit(p(false, 0)));
        assert!(!f.admit(p(true, 2)));
        assert!(!f.admit(p(false, 2)));
    }

    /// The frames a subscriber gets are decodable: each refers only to frames it got
    /// (frame 0 is the keyframe).
    fn decodable(got: &[u32]) -> Result<(), String> {
        let have: std::collections::HashSet<u32> = got.iter().copied().collect();
        for &n in got.iter().filter(|n| **n > 0) {
            for r in crate::vp8_shape::chrome_refs(n) {
                if !have.contains(&r) {
                    return Err(format!("frame {n} refers to {r}, not sent"));
                }
            }
        }
        Ok(())
    }

    proptest! {
        /// Whatever the allocator does to the target, and whenever: what passes stays
        /// decodable, and the target is reached within two cycles.
        #[test]
        fn targets_changing_anywhere_keep_the_stream_decodable(
            changes in proptest::collection::vec((0u32..200, 0u8..4), 0..30),
        ) {
            let mut f = TemporalFilter::default();
            let mut got = Vec::new();
            let mut changed_at = 0;
            for n in 0..200u32 {
                for (at, t) in &changes {
                    if *at == n {
                        f.set_target(if *t == 3 { None } else { Some(*t) });
                        changed_at = n;
                    }
                }
                if f.admit(chrome(n)) {
                    got.push(n);
                    prop_assert!(u16::from(chrome(n).tid.unwrap_or(0)) <= level(f.current()));
                }
            }
            prop_assert_eq!(decodable(&got), Ok(()));
            // Up one layer per eight-frame cycle at most: two cycles reach any target.
            // (The stream's top layer is 2: "every layer" is reached there.)
            if changed_at + 16 < 200 {
                prop_assert_eq!(level(f.current()).min(2), level(f.target()).min(2));
            }
        }
    }
}
