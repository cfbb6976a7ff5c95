//! Short-lived TURN credentials for coturn's `use-auth-secret` (the "TURN REST API"
//! scheme): the bridge and coturn share a secret; a client's username is
//! `expiry:participant` and its password the base64 HMAC-SHA1 of that username under
//! the secret. coturn checks both without asking the bridge, and a credential copied out
//! of a page stops working at its expiry. No long-lived TURN password ever reaches a
//! browser.

use std::time::Duration;

use base64::Engine;
use cauhop_protocol::IceServer;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The bridge's TURN servers and the secret it shares with them.
#[derive(Clone)]
pub struct Turn {
    /// e.g. `turn:turn.example.gov.vn:3478?transport=udp`,
    /// `turns:turn.example.gov.vn:443?transport=tcp`.
    pub urls: Vec<String>,
    pub secret: String,
    /// How long a credential lives: longer than the longest meeting a page stays in.
    pub ttl: Duration,
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret, in logs or debug output.
        f.debug_struct("Turn")
            .field("urls", &self.urls)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Turn {
    /// The ICE server entry for `user`, valid from now.
    pub fn ice_server_now(&self, user: &str) -> IceServer {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.ice_server(user, now)
    }

    /// The ICE server entry for `user` at `now_unix` (seconds since 1970).
    pub fn ice_server(&self, user: &str, now_unix: u64) -> IceServer {
        let expiry = now_unix + self.ttl.as_secs();
        // coturn takes everything before the first ':' as the expiry; keep the rest free
        // of separators.
        let user: String = user
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        let username = format!("{expiry}:{user}");
        IceServer {
            urls: self.urls.clone(),
            credential: credential(&self.secret, &username),
            username,
        }
    }
}

/// base64(HMAC-SHA1(secret, username)), as coturn computes it.
pub fn credential(secret: &str, username: &str) -> String {
    let mut mac = match Hmac::<Sha1>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        // HMAC takes keys of any length; this cannot happen.
        Err(_) => return String::new(),
    };
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_is_coturns_hmac_of_the_username() {
        // From RFC 2202's HMAC-SHA1 test case 2 ("Jefe"), in base64.
        assert_eq!(
            credential("Jefe", "what do ya want for nothing?"),
            "7/zfauXrL6LSdBbV8YTfnCWafHk="
        );
        let turn = Turn {
            urls: vec!["turn:10.0.0.5:3478?transport=udp".into()],
            secret: "bi-mat-chung".into(),
            ttl: Duration::from_secs(3600),
        };
        let s = turn.ice_server("p17:x/y", 1_700_000_000);
        assert_eq!(s.username, "1700003600:p17xy");
        assert_eq!(s.credential, credential("bi-mat-chung", "1700003600:p17xy"));
        assert!(!format!("{turn:?}").contains("bi-mat-chung"));
    }
}
