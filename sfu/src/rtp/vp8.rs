//! VP8 payload descriptor (RFC 7741) fields the SFU must touch when it switches a
//! subscriber between simulcast layers, and the frame size of keyframes.
//!
//! Each simulcast encoding numbers its pictures (PictureID) and base-layer frames
//! (TL0PICIDX) on its own. A subscriber switched from one encoding to another must see
//! both continue from where they were, or its decoder takes the jump for lost frames and
//! asks for keyframes it does not need. The rewrite is in place: the descriptor keeps its
//! length (a 7-bit PictureID stays 7-bit), so nothing in the payload moves.
//!
//! Pure: no clock, no IO; malformed payloads are left as they are.

/// Where the numbering fields sit in one payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fields {
    /// Offset of the PictureID and whether it is the 15-bit form.
    picture_id: Option<(usize, bool)>,
    tl0picidx: Option<usize>,
}

fn fields(p: &[u8]) -> Option<Fields> {
    let b0 = *p.first()?;
    let mut f = Fields {
        picture_id: None,
        tl0picidx: None,
    };
    if b0 & 0x80 == 0 {
        return Some(f);
    }
    let x = *p.get(1)?;
    let mut i = 2;
    if x & 0x80 != 0 {
        let m = *p.get(i)? & 0x80 != 0;
        if m {
            p.get(i + 1)?;
        }
        f.picture_id = Some((i, m));
        i += if m { 2 } else { 1 };
    }
    if x & 0x40 != 0 {
        p.get(i)?;
        f.tl0picidx = Some(i);
    }
    Some(f)
}

fn read_pid(p: &[u8], (at, long): (usize, bool)) -> u16 {
    if long {
        (u16::from(p[at] & 0x7f) << 8) | u16::from(p[at + 1])
    } else {
        u16::from(p[at] & 0x7f)
    }
}

fn write_pid(p: &mut [u8], (at, long): (usize, bool), v: u16) {
    if long {
        p[at] = 0x80 | ((v >> 8) as u8 & 0x7f);
        p[at + 1] = v as u8;
    } else {
        p[at] = v as u8 & 0x7f;
    }
}

/// What the SFU reads of one packet's descriptor to choose temporal layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Descriptor {
    /// The frame's first packet (S=1, partition 0).
    pub start: bool,
    /// The first packet of a keyframe.
    pub key: bool,
    /// The PictureID as sent (7 or 15 bits).
    pub picture_id: Option<u16>,
    /// The temporal layer (T=1), and whether the frame is a layer sync (Y=1): it refers
    /// only to the base layer, so a receiver can start this layer here.
    pub tid: Option<u8>,
    pub sync: bool,
}

/// Parse the descriptor of `p`; `None` when it is truncated.
pub fn descriptor(p: &[u8]) -> Option<Descriptor> {
    let b0 = *p.first()?;
    let start = b0 & 0x10 != 0 && b0 & 0x07 == 0;
    let mut d = Descriptor {
        start,
        ..Default::default()
    };
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let f = fields(p)?;
        let x = p[1];
        i = 2;
        if let Some(loc) = f.picture_id {
            d.picture_id = Some(read_pid(p, loc));
            i += if loc.1 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1;
        }
        if x & 0x30 != 0 {
            let t = *p.get(i)?;
            i += 1;
            if x & 0x20 != 0 {
                d.tid = Some(t >> 6);
                d.sync = t & 0x20 != 0;
            }
        }
    }
    d.key = start && p.get(i).is_some_and(|tag| tag & 0x01 == 0);
    Some(d)
}

/// The length of `p`'s payload descriptor: where the VP8 frame's bytes begin.
pub fn descriptor_len(p: &[u8]) -> Option<usize> {
    let b0 = *p.first()?;
    if b0 & 0x80 == 0 {
        return Some(1);
    }
    let f = fields(p)?;
    let x = p[1];
    let mut i = 2;
    if let Some((_, long)) = f.picture_id {
        i += if long { 2 } else { 1 };
    }
    if x & 0x40 != 0 {
        i += 1;
    }
    if x & 0x30 != 0 {
        i += 1;
    }
    (i <= p.len()).then_some(i)
}

/// The size of a keyframe whose first packet this is (RFC 6386 9.1: frame tag, start
/// code 9d 01 2a, then 14-bit width and height).
pub fn keyframe_size(p: &[u8]) -> Option<(u16, u16)> {
    let b0 = *p.first()?;
    // S=1 and partition 0: the frame header follows the descriptor.
    if b0 & 0x10 == 0 || b0 & 0x07 != 0 {
        return None;
    }
    let i = descriptor_len(p)?;
    let h = p.get(i..i + 10)?;
    if h[0] & 0x01 != 0 || h[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u16::from_le_bytes([h[6], h[7]]) & 0x3fff;
    let ht = u16::from_le_bytes([h[8], h[9]]) & 0x3fff;
    Some((w, ht))
}

/// Keeps one subscriber's PictureID and TL0PICIDX continuous across source switches,
/// and across the pictures of temporal layers it is not sent: a decoder that sees a
/// PictureID jump takes it for loss (libwebrtc then waits for, or asks for, a frame that
/// will never come).
#[derive(Debug, Default)]
pub struct Vp8Rewriter {
    source: Option<u64>,
    pid_offset: u16,
    tl0_offset: u8,
    last_pid: Option<u16>,
    last_tl0: Option<u8>,
    /// The current source's PictureIDs, unwrapped: the newest seen, and the newest
    /// forwarded (a skip older than that leaves its gap: the number is already used).
    newest_in: Option<u64>,
    newest_sent: Option<u64>,
    skipped: Skips,
}

/// Where a PictureID of `modulo` lands next to the unwrapped `last`.
fn unwrap_pid(last: Option<u64>, pid: u16, modulo: u16) -> u64 {
    let Some(last) = last else {
        // Room below for reordered pictures of the first frames.
        return u64::from(pid) + (1 << 32);
    };
    let m = u64::from(modulo);
    let low = last % m;
    let fwd = (u64::from(pid) + m - low) % m;
    if fwd < m / 2 {
        last + fwd
    } else {
        last - (m - fwd)
    }
}

impl Vp8Rewriter {
    /// A picture of `source` is not sent to this subscriber: the pictures after it move
    /// down by one. Called for each of its packets; counted once.
    pub fn skip(&mut self, source: u64, payload: &[u8]) {
        if self.source != Some(source) {
            return;
        }
        let Some(f) = fields(payload) else { return };
        let Some(loc) = f.picture_id else { return };
        let modulo = if loc.1 { 0x8000 } else { 0x80 };
        let ext = unwrap_pid(self.newest_in, read_pid(payload, loc), modulo);
        if self.newest_in.is_none_or(|n| ext > n) {
            self.newest_in = Some(ext);
        }
        if self.newest_sent.is_none_or(|n| ext > n) {
            self.skipped.insert(ext);
        }
    }

    /// Rewrite a shared payload: a copy only when a field changes (after a layer switch),
    /// so a subscriber that never switched costs no allocation.
    pub fn rewrite_shared(
        &mut self,
        source: u64,
        payload: &std::sync::Arc<[u8]>,
    ) -> Option<std::sync::Arc<[u8]>> {
        // The descriptor is at most 6 bytes: X, I (2-byte PictureID), L, T/K.
        let n = payload.len().min(6);
        let mut head = [0u8; 6];
        head[..n].copy_from_slice(&payload[..n]);
        self.rewrite(source, &mut head[..n]);
        if head[..n] == payload[..n] {
            return None;
        }
        let mut v = payload.to_vec();
        v[..n].copy_from_slice(&head[..n]);
        Some(v.into())
    }

    /// Rewrite `payload` of `source` in place. A new source is a switch: its numbering is
    /// placed right after the last one sent. Callers switch only on a keyframe.
    pub fn rewrite(&mut self, source: u64, payload: &mut [u8]) {
        let Some(f) = fields(payload) else { return };
        if self.source != Some(source) {
            self.source = Some(source);
            self.newest_in = None;
            self.newest_sent = None;
            self.skipped.clear();
            if let (Some(loc), Some(last)) = (f.picture_id, self.last_pid) {
                let modulo = if loc.1 { 0x8000 } else { 0x80 };
                let input = read_pid(payload, loc);
                self.pid_offset = (last + 1).wrapping_sub(input) % modulo;
            } else {
                self.pid_offset = 0;
            }
            self.tl0_offset = match (f.tl0picidx, self.last_tl0) {
                (Some(at), Some(last)) => last.wrapping_add(1).wrapping_sub(payload[at]),
                _ => 0,
            };
        }
        if let Some(loc) = f.picture_id {
            let modulo: u16 = if loc.1 { 0x8000 } else { 0x80 };
            let input = read_pid(payload, loc);
            let ext = unwrap_pid(self.newest_in, input, modulo);
            if self.newest_in.is_none_or(|n| ext > n) {
                self.newest_in = Some(ext);
            }
            if self.newest_sent.is_none_or(|n| ext > n) {
                self.newest_sent = Some(ext);
            }
            let below = (self.skipped.below(ext) % u64::from(modulo)) as u16;
            let out = input
                .wrapping_add(self.pid_offset)
                .wrapping_add(modulo)
                .wrapping_sub(below)
                % modulo;
            write_pid(payload, loc, out);
            self.last_pid = Some(out);
        }
        if let Some(at) = f.tl0picidx {
            let out = payload[at].wrapping_add(self.tl0_offset);
            payload[at] = out;
            self.last_tl0 = Some(out);
        }
    }
}

/// Numbers (sequence numbers, PictureIDs) of one source that were not forwarded, so
/// the ones after them can close the gap. Bounded: the oldest are folded into a count.
#[derive(Debug, Default, Clone)]
pub struct Skips {
    /// Ascending.
    recent: Vec<u64>,
    /// How many were folded, all below `recent`.
    folded: u64,
}

const SKIPS_KEPT: usize = 256;

impl Skips {
    pub fn insert(&mut self, n: u64) {
        let at = self.recent.partition_point(|x| *x < n);
        if self.recent.get(at) == Some(&n) {
            return;
        }
        self.recent.insert(at, n);
        if self.recent.len() > SKIPS_KEPT {
            self.recent.remove(0);
            self.folded += 1;
        }
    }

    /// How many skipped numbers are below `n`. A number older than the ones kept is
    /// counted as if after every folded one: it is that old only in a reordering far
    /// beyond any jitter buffer.
    pub fn below(&self, n: u64) -> u64 {
        self.folded + self.recent.partition_point(|x| *x < n) as u64
    }

    pub fn clear(&mut self) {
        self.recent.clear();
        self.folded = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// X=1, S=1 (when `start`), I and L set, 15-bit PictureID, then a frame header.
    fn packet(pid: u16, tl0: u8, start: bool, key: Option<(u16, u16)>) -> Vec<u8> {
        let mut p = vec![
            0x80 | if start { 0x10 } else { 0 },
            0xc0,
            0x80 | (pid >> 8) as u8,
            pid as u8,
            tl0,
        ];
        match key {
            Some((w, h)) => {
                p.extend_from_slice(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a]);
                p.extend_from_slice(&w.to_le_bytes());
                p.extend_from_slice(&h.to_le_bytes());
            }
            None => p.extend_from_slice(&[0x11, 0, 0]),
        }
        p
    }

    fn pid_tl0(p: &[u8]) -> (u16, u8) {
        let f = fields(p).expect("descriptor");
        (
            read_pid(p, f.picture_id.expect("pid")),
            p[f.tl0picidx.expect("tl0")],
        )
    }

    #[test]
    fn keyframe_size_is_read_and_delta_frames_have_none() {
        assert_eq!(
            keyframe_size(&packet(5, 1, true, Some((640, 360)))),
            Some((640, 360))
        );
        assert_eq!(keyframe_size(&packet(5, 1, true, None)), None);
        assert_eq!(keyframe_size(&packet(5, 1, false, Some((640, 360)))), None);
        // Without the extension byte, as webrtc-rs and the agent's source send.
        let mut plain = vec![0x10, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        plain.extend_from_slice(&320u16.to_le_bytes());
        plain.extend_from_slice(&180u16.to_le_bytes());
        assert_eq!(keyframe_size(&plain), Some((320, 180)));
        for n in 0..plain.len() {
            assert_eq!(keyframe_size(&plain[..n]), None, "truncated at {n}");
        }
    }

    #[test]
    fn a_switch_continues_the_numbering_of_the_previous_layer() {
        let mut rw = Vp8Rewriter::default();
        for i in 0..3u16 {
            let mut p = packet(100 + i, 7, true, None);
            rw.rewrite(1, &mut p);
            assert_eq!(pid_tl0(&p), (100 + i, 7));
        }
        // Layer 2 numbers from elsewhere; its keyframe must follow 102 / 7.
        let mut p = packet(30_000, 200, true, Some((1280, 720)));
        rw.rewrite(2, &mut p);
        assert_eq!(pid_tl0(&p), (103, 8));
        let mut p = packet(30_001, 201, true, None);
        rw.rewrite(2, &mut p);
        assert_eq!(pid_tl0(&p), (104, 9));
        // Back to layer 1, whose numbers moved on meanwhile.
        let mut p = packet(500, 50, true, Some((320, 180)));
        rw.rewrite(1, &mut p);
        assert_eq!(pid_tl0(&p), (105, 10));
    }

    #[test]
    fn picture_ids_wrap_in_their_own_width() {
        let mut rw = Vp8Rewriter::default();
        let mut p = packet(0x7fff, 255, true, None);
        rw.rewrite(1, &mut p);
        let mut p = packet(0x10, 3, true, Some((320, 180)));
        rw.rewrite(2, &mut p);
        assert_eq!(pid_tl0(&p), (0, 0));
        let mut p = packet(0x11, 4, true, None);
        rw.rewrite(2, &mut p);
        assert_eq!(pid_tl0(&p), (1, 1));
        // 7-bit PictureIDs stay 7-bit and wrap at 128.
        let mut short = vec![0x90, 0x80, 0x7f, 0x11];
        let mut rw = Vp8Rewriter::default();
        rw.rewrite(1, &mut short);
        let mut next = vec![0x90, 0x80, 0x05, 0x10];
        rw.rewrite(2, &mut next);
        assert_eq!(next[2], 0x00);
        assert_eq!(next.len(), 4);
    }

    #[test]
    fn shared_payloads_are_copied_only_when_a_field_changes() {
        let mut rw = Vp8Rewriter::default();
        let a: std::sync::Arc<[u8]> = packet(10, 1, true, None).into();
        assert!(rw.rewrite_shared(1, &a).is_none());
        let b: std::sync::Arc<[u8]> = packet(900, 40, true, Some((1280, 720))).into();
        let out = rw.rewrite_shared(2, &b).expect("switched: rewritten");
        assert_eq!(pid_tl0(&out), (11, 2));
        assert_eq!(out[5..], b[5..]);
    }

    /// A packet with the T byte: TID and Y as Chrome sends them.
    fn temporal_packet(pid: u16, tl0: u8, tid: u8, sync: bool) -> Vec<u8> {
        vec![
            0x90,
            0xe0,
            0x80 | (pid >> 8) as u8,
            pid as u8,
            tl0,
            (tid << 6) | if sync { 0x20 } else { 0 },
            0x11,
            0,
            0,
        ]
    }

    #[test]
    fn the_descriptor_names_the_temporal_layer_and_its_sync_frames() {
        let d = descriptor(&temporal_packet(300, 4, 2, true)).expect("descriptor");
        assert_eq!(
            d,
            Descriptor {
                start: true,
                key: false,
                picture_id: Some(300),
                tid: Some(2),
                sync: true,
            }
        );
        let d = descriptor(&packet(7, 1, true, Some((320, 180)))).expect("descriptor");
        assert!(d.key && d.start && d.tid.is_none());
        assert_eq!(descriptor(&[0x90, 0xe0, 0x80]), None, "truncated");
        assert_eq!(descriptor(&[]), None);
    }

    #[test]
    fn skipped_pictures_leave_no_gap_in_picture_ids() {
        let mut rw = Vp8Rewriter::default();
        let mut out = Vec::new();
        // Base layer only: frames 0 and 4 of each eight pass, the rest are skipped.
        for n in 0..24u16 {
            let tid = [0, 2, 1, 2][usize::from(n % 4)];
            let mut p = temporal_packet(1000 + n, (n / 4) as u8, tid, false);
            if tid == 0 {
                rw.rewrite(9, &mut p);
                out.push(pid_tl0(&p));
            } else {
                rw.skip(9, &p);
            }
        }
        let pids: Vec<u16> = out.iter().map(|o| o.0).collect();
        assert_eq!(pids, (1000..1006).collect::<Vec<_>>());
        let tl0s: Vec<u8> = out.iter().map(|o| o.1).collect();
        assert_eq!(tl0s, (0..6).collect::<Vec<_>>());
    }

    proptest::proptest! {
        /// Whatever is skipped and whatever the layer switches, the pictures a subscriber
        /// gets are numbered one after another, and TL0PICIDX never goes back.
        #[test]
        fn picture_ids_stay_continuous_under_skips_and_switches(
            steps in proptest::collection::vec((0u8..3, proptest::bool::ANY), 1..300),
            starts in proptest::collection::vec(0u16..0x8000, 3),
        ) {
            let mut rw = Vp8Rewriter::default();
            let mut next = starts.clone();
            let mut tl0 = [0u8; 3];
            let mut source = 0usize;
            let mut last: Option<(u16, u8)> = None;
            for (i, (layer, pass)) in steps.iter().enumerate() {
                // Every tenth step may switch source (on a keyframe, as the slot does).
                let switch = i % 10 == 0 && usize::from(*layer) != source;
                let s = if switch { usize::from(*layer) } else { source };
                let pid = next[s];
                next[s] = (next[s] + 1) % 0x8000;
                let tid = if pid % 4 == 0 { 0 } else { 2 };
                if tid == 0 {
                    tl0[s] = tl0[s].wrapping_add(1);
                }
                let mut p = temporal_packet(pid, tl0[s], tid, false);
                if switch || tid == 0 || *pass {
                    source = s;
                    rw.rewrite(s as u64, &mut p);
                    let got = pid_tl0(&p);
                    if let Some((lp, lt)) = last {
                        proptest::prop_assert_eq!(got.0, (lp + 1) % 0x8000);
                        proptest::prop_assert!(got.1.wrapping_sub(lt) <= 1);
                    }
                    last = Some(got);
                } else {
                    rw.skip(s as u64, &p);
                }
            }
        }
    }

    #[test]
    fn malformed_payloads_are_left_alone() {
        let mut rw = Vp8Rewriter::default();
        for bad in [vec![], vec![0x80], vec![0x80, 0x80, 0x80], vec![0x80, 0x40]] {
            let mut p = bad.clone();
            rw.rewrite(1, &mut p);
            assert_eq!(p, bad);
        }
    }
}
