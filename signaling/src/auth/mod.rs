//! Credentials: admin passwords and sessions, signed join links, rate limits.

pub mod join_keys;
pub mod join_token;
pub mod password;
pub mod rate_limit;

pub use join_keys::{JoinKey, JoinKeys, KeyError};
pub use join_token::{JoinClaims, JoinTokens, TokenError};
pub use password::{hash_password, verify_password};
pub use rate_limit::RateLimiter;
