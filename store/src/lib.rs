//! cauhop's store: sites, people, endpoints, meetings, join links and attendance, on
//! SQLite (a file, WAL mode, the default) or PostgreSQL, through sqlx with migrations;
//! and the scheduling rules (`schedule`), which are pure and tested in simulated time.
//!
//! Every write is one transaction; the same queries run on both backends (times are
//! UTC seconds, flags are integers), so the same tests cover both.

mod attendance;
mod audit;
mod backup;
mod chair;
mod db;
mod endpoints;
mod error;
pub mod link_history;
mod links;
mod meetings;
pub mod model;
mod people;

pub mod schedule;
mod sessions;
mod sites;
pub mod time;

pub use audit::AuditFilter;
pub use db::{Backend, Store, create_scratch_database};
pub use error::StoreError;
pub use meetings::MeetingFilter;
pub use sessions::SessionRow;
pub use time::Instant;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// SHA-256 of a secret, hex: device keys and session tokens are stored only this way, so a
/// copy of the database does not let anyone in.
pub fn secret_hash(secret: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random URL-safe secret of `bytes` bytes of entropy.
pub fn random_secret(bytes: usize) -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}
