//! cauhop's selective forwarding unit, on str0m in RTP mode.
//!
//! Layers, as in quinn: pure decisions ([`rewrite`], [`keyframe`], [`throttle`]) take time
//! as an argument and know nothing of sockets; [`peer`] wraps one str0m `Rtc` per
//! participant and turns its events into forwarding actions; the driver (`driver.rs`) is
//! the only place that touches tokio, sockets and the clock. Signaling talks to the SFU
//! only through [`SfuHandle`]: join, offer, answer, ready, leave, stats.
//!
//! Payloads are forwarded as received (shared `Arc<[u8]>`, never copied per subscriber);
//! only RTP header fields are rewritten per subscriber.

pub mod allocator;
pub mod budget;
mod codecs;
mod config;
pub mod congestion;
mod driver;
mod error;
mod handle;
#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod harness;
pub mod keyframe;
mod peer;
pub mod probe;
pub mod quality;
pub mod rate;
pub mod red;
pub mod rewrite;
pub mod speaker;
pub mod throttle;
pub mod vp8;

pub use config::SfuConfig;
pub use driver::start;
pub use error::SfuError;
pub use handle::{
    Forwarding, JoinOptions, OfferOutcome, ParticipantId, PeerStats, SfuEvent, SfuHandle, SfuStats,
    TrackKind, ViewHints,
};
