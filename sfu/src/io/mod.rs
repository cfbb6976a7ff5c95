//! The IO edge: tokio tasks, sockets, timers, and the handle signaling holds.

// Public for the send bench only (`SendBatch`, re-exported under `bench`).
#[cfg_attr(not(feature = "bench"), allow(unreachable_pub))]
pub(crate) mod batch;
pub(crate) mod driver;
pub(crate) mod handle;
pub(crate) mod tcp;
