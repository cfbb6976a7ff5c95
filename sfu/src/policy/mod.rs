//! Pure decisions: no IO, no clock read, each with its own unit tests on simulated time.

pub mod allocator;
pub mod budget;
pub mod congestion;
pub mod estimate;
pub mod frame_rate;
pub mod layers;
pub mod quality;
pub mod rate;
pub mod slots;
pub mod speaker;
pub mod throttle;
