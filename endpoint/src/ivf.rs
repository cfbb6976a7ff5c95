//! IVF files (a 32-byte header, then frames each behind a 12-byte header): the agent's
//! file source and its built-in test pattern, looped.

use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum IvfError {
    #[error("not an IVF file (no DKIF signature)")]
    Signature,
    #[error("IVF codec {0:?} is not VP8; the bridge forwards VP8 from files")]
    Codec(String),
    #[error("IVF file truncated in frame {0}")]
    Truncated(usize),
    #[error("IVF file has no frames")]
    Empty,
    #[error("IVF file has no keyframe; a decoder could never start")]
    NoKeyframe,
}

#[derive(Debug, Clone)]
pub struct IvfFrame {
    pub data: Vec<u8>,
    pub keyframe: bool,
}

#[derive(Debug, Clone)]
pub struct Ivf {
    pub width: u16,
    pub height: u16,
    pub frame_interval: Duration,
    pub frames: Vec<IvfFrame>,
}

fn u16le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Ivf {
    pub fn parse(bytes: &[u8]) -> Result<Self, IvfError> {
        if bytes.len() < 32 || &bytes[..4] != b"DKIF" {
            return Err(IvfError::Signature);
        }
        let fourcc = &bytes[8..12];
        if fourcc != b"VP80" {
            return Err(IvfError::Codec(
                String::from_utf8_lossy(fourcc).into_owned(),
            ));
        }
        let header_len = usize::from(u16le(bytes, 6)).max(32);
        let (width, height) = (u16le(bytes, 12), u16le(bytes, 14));
        // Frame rate = rate / scale; guard against zeros in hand-made files.
        let (rate, scale) = (u32le(bytes, 16).max(1), u32le(bytes, 20).max(1));
        let frame_interval = Duration::from_secs_f64(f64::from(scale) / f64::from(rate))
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut frames = Vec::new();
        let mut at = header_len;
        while at < bytes.len() {
            if at + 12 > bytes.len() {
                return Err(IvfError::Truncated(frames.len()));
            }
            let len = u32le(bytes, at) as usize;
            let start = at + 12;
            let Some(data) = bytes.get(start..start.saturating_add(len)) else {
                return Err(IvfError::Truncated(frames.len()));
            };
            // VP8 frame tag: the low bit of the first byte is 0 on a keyframe.
            let keyframe = data.first().is_some_and(|b| b & 1 == 0);
            frames.push(IvfFrame {
                data: data.to_vec(),
                keyframe,
            });
            at = start + len;
        }
        if frames.is_empty() {
            return Err(IvfError::Empty);
        }
        if !frames.iter().any(|f| f.keyframe) {
            return Err(IvfError::NoKeyframe);
        }
        Ok(Self {
            width,
            height,
            frame_interval,
            frames,
        })
    }

    /// The built-in test pattern: 4 s of 320×180 at 15 frame/s, a keyframe every 2 s.
    pub fn test_pattern() -> Self {
        // The asset is checked by a unit test, so this cannot fail in a release.
        Self::parse(include_bytes!("../assets/testsrc.ivf")).unwrap_or_else(|_| Self {
            width: 0,
            height: 0,
            frame_interval: Duration::from_millis(66),
            frames: Vec::new(),
        })
    }

    /// The keyframe at or after `index`, wrapping: where to jump when a receiver asks for
    /// a keyframe.
    pub fn next_keyframe(&self, index: usize) -> usize {
        let n = self.frames.len();
        (0..n)
            .map(|i| (index + i) % n)
            .find(|&i| self.frames[i].keyframe)
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_pattern_parses() {
        let ivf = Ivf::parse(include_bytes!("../assets/testsrc.ivf")).expect("asset");
        assert_eq!((ivf.width, ivf.height), (320, 180));
        assert_eq!(ivf.frames.len(), 60);
        assert!(ivf.frames[0].keyframe && ivf.frames[30].keyframe);
        assert!(!ivf.frames[1].keyframe);
        assert_eq!(ivf.frame_interval.as_millis(), 66);
        assert_eq!(ivf.next_keyframe(5), 30);
        assert_eq!(ivf.next_keyframe(31), 0);
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        assert_eq!(
            Ivf::parse(b"hello").expect_err("refused"),
            IvfError::Signature
        );
        let mut h = b"DKIF\0\0\x20\0VP90".to_vec();
        h.resize(32, 0);
        assert_eq!(
            Ivf::parse(&h).expect_err("refused"),
            IvfError::Codec("VP90".into())
        );
        h[8..12].copy_from_slice(b"VP80");
        assert_eq!(Ivf::parse(&h).expect_err("refused"), IvfError::Empty);
        let mut t = h.clone();
        t.extend_from_slice(&[100, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(Ivf::parse(&t).expect_err("refused"), IvfError::Truncated(0));
        let mut d = h.clone();
        d.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(Ivf::parse(&d).expect_err("refused"), IvfError::NoKeyframe);
    }
}
