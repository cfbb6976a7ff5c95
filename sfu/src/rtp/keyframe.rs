//! Keyframe detection on RTP payloads, without depacketizing.
//!
//! The SFU starts a subscriber's video (and, later, switches simulcast layers) only on a
//! keyframe, so that the first frame a decoder sees is decodable. Only the first packet
//! of a keyframe is recognised; the packets that follow it are forwarded because the
//! stream has started. Malformed payloads are simply "not a keyframe".

/// Video codecs the SFU forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    H264,
    /// Forwarded without keyframe gating (every packet counts as a start point).
    Other,
}

/// True if this RTP payload starts a keyframe.
pub fn is_keyframe_start(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => vp8_keyframe_start(payload),
        VideoCodec::H264 => h264_keyframe(payload),
        VideoCodec::Other => true,
    }
}

/// RFC 7741: payload descriptor, then (at partition start) the VP8 frame tag whose
/// lowest bit is 0 on a key frame.
fn vp8_keyframe_start(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    let extended = b0 & 0x80 != 0;
    let start = b0 & 0x10 != 0;
    let partition = b0 & 0x07;
    if !start || partition != 0 {
        return false;
    }
    let mut i = 1;
    if extended {
        let Some(&x) = p.get(i) else { return false };
        i += 1;
        if x & 0x80 != 0 {
            // PictureID: 7 or 15 bits, M flag says which.
            let Some(&pid) = p.get(i) else { return false };
            i += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // TID/Y/KEYIDX
        }
    }
    p.get(i).is_some_and(|tag| tag & 0x01 == 0)
}

/// RFC 6184: an IDR slice or SPS, alone, in a STAP-A, or at the start of an FU-A.
fn h264_keyframe(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    match b0 & 0x1f {
        5 | 7 => true,
        24 => {
            let mut i = 1;
            while i + 2 < p.len() {
                let size = usize::from(u16::from_be_bytes([p[i], p[i + 1]]));
                let Some(&nal) = p.get(i + 2) else {
                    return false;
                };
                if matches!(nal & 0x1f, 5 | 7) {
                    return true;
                }
                i += 2 + size;
            }
            false
        }
        28 => p
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && matches!(fu & 0x1f, 5 | 7)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_simple_descriptor() {
        assert!(is_keyframe_start(VideoCodec::Vp8, &[0x10, 0x50, 0x2a]));
        assert!(!is_keyframe_start(VideoCodec::Vp8, &[0x10, 0x51, 0x2a]));
        // Not the start of a partition: continuation of a frame.
        assert!(!is_keyframe_start(VideoCodec::Vp8, &[0x00, 0x50]));
    }

    #[test]
    fn vp8_extended_descriptor_with_picture_id() {
        // X=1; I=1 L=1 T=1; 15-bit picture id; tl0picidx; tid; frame tag (key).
        let key = [0x90, 0xe0, 0x80 | 0x12, 0x34, 0x07, 0x20, 0x10];
        assert!(is_keyframe_start(VideoCodec::Vp8, &key));
        let delta = [0x90, 0xe0, 0x80 | 0x12, 0x34, 0x07, 0x20, 0x11];
        assert!(!is_keyframe_start(VideoCodec::Vp8, &delta));
        // Truncated descriptors are not keyframes and do not panic.
        for n in 0..key.len() {
            let _ = is_keyframe_start(VideoCodec::Vp8, &key[..n]);
        }
        assert!(!is_keyframe_start(VideoCodec::Vp8, &key[..6]));
    }

    #[test]
    fn h264_single_stap_and_fu() {
        assert!(is_keyframe_start(VideoCodec::H264, &[0x65, 0x88]));
        assert!(is_keyframe_start(VideoCodec::H264, &[0x67, 0x42]));
        assert!(!is_keyframe_start(VideoCodec::H264, &[0x41, 0x9a]));
        // STAP-A with SPS + PPS.
        let stap = [0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce];
        assert!(is_keyframe_start(VideoCodec::H264, &stap));
        // STAP-A with a non-IDR slice only.
        assert!(!is_keyframe_start(
            VideoCodec::H264,
            &[0x78, 0x00, 0x02, 0x41, 0x9a]
        ));
        // FU-A start of IDR vs continuation.
        assert!(is_keyframe_start(VideoCodec::H264, &[0x7c, 0x85, 0x00]));
        assert!(!is_keyframe_start(VideoCodec::H264, &[0x7c, 0x05, 0x00]));
        // Truncated STAP-A sizes run off the end safely.
        assert!(!is_keyframe_start(
            VideoCodec::H264,
            &[0x78, 0xff, 0xff, 0x41]
        ));
    }
}
