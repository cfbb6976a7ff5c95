//! Packet-level pieces: codec setup, keyframe detection, RTP and VP8 rewriting, RED.

pub(crate) mod codecs;
pub mod keyframe;
pub mod red;
pub mod rewrite;
pub mod vp8;
