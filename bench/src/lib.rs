//! `cauhop-load`: many real WebRTC clients in one process, driving cauhop or Janus with
//! the same media, and measuring what the SFU costs and how fast it forwards.
//!
//! Pure parts (the stamp in every packet, the per-stream ledger, the delay histogram)
//! are unit-tested; the IO (peers, SFU adapters, processes) lives at the edges.

pub mod book;
pub mod cauhop_target;
pub mod child;
pub mod histogram;
pub mod janus;
pub mod peer;
pub mod proc_stat;
pub mod report;
pub mod scenario;
pub mod stamp;
