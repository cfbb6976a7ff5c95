//! Packet-level pieces: codec setup, keyframe detection, RTP and VP8 rewriting,
//! temporal layer selection, RED.

pub(crate) mod codecs;
pub mod keyframe;
pub mod red;
pub mod rewrite;
pub mod temporal;
pub mod vp8;
pub mod vp8_frames;
