//! The room agent's decisions, free of IO: which meeting to be in given the room's
//! schedule, when to run the link check, and how long to wait before retrying.
//! `agent` is the control loop, `bridge` the device API and `media` the WebRTC side (the
//! `webrtc` crate; the test tone through the pure-Rust `opus-rs`).

pub mod agent;
pub mod backoff;
pub mod bridge;
pub mod check;
pub mod follower;
pub mod ivf;
pub mod media;
pub mod mixer;
pub mod session;
pub mod settings;
pub mod tcp_tunnel;
pub mod tls;

pub use backoff::Backoff;
pub use follower::{Action, Phase, Slot, check_due, decide};
