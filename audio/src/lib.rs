//! Opus audio shared by the bridge and the room agent, all pure Rust (`opus-rs`, `ogg`):
//! a test tone ([`tone`]), the sum of many voices ([`mix`]) and Ogg/Opus files
//! ([`ogg_opus`], RFC 7845) for the meeting's record.

pub mod mix;
pub mod ogg_opus;
pub mod tone;

/// Every stream here is 48 kHz mono, as WebRTC's Opus is.
pub const SAMPLE_RATE: u32 = 48_000;
/// 20 ms: the frame size browsers use.
pub const FRAME: usize = 960;
