//! The room agent's decisions, free of IO: which meeting to be in given the room's
//! schedule, when to run the link check, and how long to wait before retrying.
//! `agent` is the control loop and `bridge` the device API; WebRTC media (the `webrtc`
//! crate, Opus through `opus-rs`) is the next piece.

pub mod agent;
pub mod backoff;
pub mod bridge;
pub mod follower;

pub use backoff::Backoff;
pub use follower::{Action, Phase, Slot, check_due, decide};
