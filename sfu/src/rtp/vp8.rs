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

/// The size of a keyframe whose first packet this is (RFC 6386 9.1: frame tag, start
/// code 9d 01 2a, then 14-bit width and height).
pub fn keyframe_size(p: &[u8]) -> Option<(u16, u16)> {
    let b0 = *p.first()?;
    // S=1 and partition 0: the frame header follows the descriptor.
    if b0 & 0x10 == 0 || b0 & 0x07 != 0 {
        return None;
    }
    let f = fields(p)?;
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let x = p[1];
        i = 2;
        if let Some((_, long)) = f.picture_id {
            i += if long { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1;
        }
        if x & 0x30 != 0 {
            i += 1;
        }
    }
    let h = p.get(i..i + 10)?;
    if h[0] & 0x01 != 0 || h[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u16::from_le_bytes([h[6], h[7]]) & 0x3fff;
    let ht = u16::from_le_bytes([h[8], h[9]]) & 0x3fff;
    Some((w, ht))
}

/// Keeps one subscriber's PictureID and TL0PICIDX continuous across source switches.
#[derive(Debug, Default)]
pub struct Vp8Rewriter {
    source: Option<u64>,
    pid_offset: u16,
    tl0_offset: u8,
    last_pid: Option<u16>,
    last_tl0: Option<u8>,
}

impl Vp8Rewriter {
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
            let out = read_pid(payload, loc).wrapping_add(self.pid_offset) % modulo;
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
