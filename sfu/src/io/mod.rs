//! The IO edge: tokio tasks, sockets, timers, and the handle signaling holds.

pub(crate) mod driver;
pub(crate) mod handle;
