//! The room agent's decisions, free of IO: which meeting to be in given the room's
//! schedule, when to run the link check, and how long to wait before retrying.
//! The binary (WebRTC media on the `webrtc` crate, the control loop) builds on these.

pub mod backoff;
pub mod follower;

pub use backoff::Backoff;
pub use follower::{Action, Phase, Slot, check_due, decide};
