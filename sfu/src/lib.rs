//! cauhop's selective forwarding unit, on str0m in RTP mode.
//!
//! Layers, as in quinn, with every import pointing down:
//! - `io/`: the only place that touches tokio, sockets and the clock (`driver.rs`), and
//!   the handle signaling talks through (`handle.rs`: join, offer, answer, view, floor,
//!   leave, stats).
//! - [`room`]: the sans-IO room core (`handle_input`-style methods with `now`, and
//!   `poll_output`), which the driver and the simulated testkit ([`sim`]) both drive.
//! - `peer/`: one str0m `Rtc` per participant, split by side: `publish.rs`,
//!   `subscribe.rs` (its fixed slots and their negotiation), `forward.rs`.
//! - [`policy`] and [`rtp`]: pure decisions (slots, allocation, speaker, estimates,
//!   layer pausing) and packet rewriting, time passed in, unit-tested on their own.
//!
//! Payloads are forwarded as received (shared `Arc<[u8]>`, never copied per subscriber);
//! only RTP header fields are rewritten per subscriber.

mod config;
mod error;
mod fixed_hash;
#[cfg(test)]
mod hostile_input_tests;
mod ice_ufrag;
mod io;
mod peer;
pub mod policy;
pub mod probe;
pub mod room;
pub mod rtp;
#[cfg(any(test, feature = "bench"))]
#[doc(hidden)]
pub mod sim;
#[cfg(test)]
mod sim_tests;
mod types;
#[cfg(any(test, feature = "bench"))]
#[doc(hidden)]
pub mod vp8_shape;

pub use config::SfuConfig;
pub use error::SfuError;
#[cfg(feature = "bench")]
#[doc(hidden)]
pub use io::batch::SendBatch;
pub use io::driver::start;
pub use io::handle::SfuHandle;
pub use io::tcp::{FirstBytes, classify as classify_first_bytes};
pub use types::{
    AUDIO_SLOTS, Forwarding, JoinOptions, OfferOutcome, ParticipantId, PeerStats, Recorded,
    RecordedAudio, RecordedVideo, SfuEvent, SfuStats, SlotMap, Totals, TrackKind, VIDEO_SLOTS,
    VideoSlot, ViewHints,
};
