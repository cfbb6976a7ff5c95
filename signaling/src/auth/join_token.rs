//! Signed join links: a JWT (HS256, keys outside the store: `join_keys.rs`) naming the
//! meeting, the site, optionally the person, the role and the expiry. The `jti` is
//! recorded in the store with the same fields, so a link can be listed and revoked, and
//! admission checks the claims against that record: a valid signature alone admits
//! no one.

use super::join_keys::JoinKeys;
use cauhop_store::Instant;
use cauhop_store::model::MeetingRole;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinClaims {
    pub jti: String,
    /// Meeting id.
    pub mid: i64,
    /// Site id.
    pub site: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
    pub role: MeetingRole,
    pub exp: i64,
    pub iat: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    Expired { at: Instant },
    Invalid(String),
}

pub struct JoinTokens {
    /// The signing key's id (the `kid` header) and key.
    signer: (String, EncodingKey),
    verifiers: Vec<(String, DecodingKey)>,
}

impl JoinTokens {
    pub fn new(keys: &JoinKeys) -> Self {
        let current = keys.current();
        Self {
            signer: (
                current.kid.clone(),
                EncodingKey::from_secret(current.secret.as_bytes()),
            ),
            verifiers: keys
                .all()
                .iter()
                .map(|k| (k.kid.clone(), DecodingKey::from_secret(k.secret.as_bytes())))
                .collect(),
        }
    }

    pub fn issue(&self, claims: &JoinClaims) -> Result<String, String> {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.signer.0.clone());
        jsonwebtoken::encode(&header, claims, &self.signer.1).map_err(|e| e.to_string())
    }

    /// Check the signature, then the expiry against `now` (explicit, for tests).
    pub fn verify(&self, token: &str, now: Instant) -> Result<JoinClaims, TokenError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_exp = false;
        v.required_spec_claims.clear();
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        // Links from before key ids (signed with the store's key) name none: try each key.
        let candidates = self
            .verifiers
            .iter()
            .filter(|(kid, _)| header.kid.as_ref().is_none_or(|want| want == kid));
        let mut last = TokenError::Invalid("signed with a key this bridge does not hold".into());
        let mut verified = None;
        for (_, key) in candidates {
            match jsonwebtoken::decode::<JoinClaims>(token, key, &v) {
                Ok(d) => {
                    verified = Some(d);
                    break;
                }
                Err(e) => last = TokenError::Invalid(e.to_string()),
            }
        }
        let data = verified.ok_or(last)?;
        if data.claims.exp <= now.0 {
            return Err(TokenError::Expired {
                at: Instant(data.claims.exp),
            });
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> JoinClaims {
        JoinClaims {
            jti: "j1".into(),
            mid: 7,
            site: 3,
            pid: None,
            role: MeetingRole::Participant,
            exp,
            iat: 0,
        }
    }

    fn key(kid: &str, c: char) -> JoinKeys {
        JoinKeys::from_env_secret(&c.to_string().repeat(40))
            .expect("key")
            .with_kid(kid)
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let t = JoinTokens::new(&key("k1", 'a'));
        let tok = t.issue(&claims(100)).expect("issue");
        assert_eq!(t.verify(&tok, Instant(99)), Ok(claims(100)));
        assert_eq!(
            t.verify(&tok, Instant(100)),
            Err(TokenError::Expired { at: Instant(100) })
        );
    }

    #[test]
    fn forged_or_altered_tokens_are_invalid() {
        let k1 = key("k1", 'a');
        let tok = JoinTokens::new(&k1).issue(&claims(100)).expect("issue");
        assert!(matches!(
            JoinTokens::new(&key("k2", 'b')).verify(&tok, Instant(0)),
            Err(TokenError::Invalid(_))
        ));
        // The same key id with another secret (a guessed or leaked id) is no key.
        assert!(matches!(
            JoinTokens::new(&key("k1", 'b')).verify(&tok, Instant(0)),
            Err(TokenError::Invalid(_))
        ));
        let mut parts: Vec<String> = tok.split('.').map(String::from).collect();
        parts[1] = parts[1].replace('A', "B");
        let altered = parts.join(".");
        assert!(JoinTokens::new(&k1).verify(&altered, Instant(0)).is_err());
        assert!(JoinTokens::new(&k1).verify("garbage", Instant(0)).is_err());
    }

    #[test]
    fn after_a_rotation_old_links_verify_until_the_old_key_is_dropped() {
        let old = key("old", 'a');
        let tok = JoinTokens::new(&old).issue(&claims(100)).expect("issue");
        let rotated = old.rotated(false);
        let t = JoinTokens::new(&rotated);
        assert_eq!(t.verify(&tok, Instant(0)), Ok(claims(100)));
        let fresh = t.issue(&claims(100)).expect("issue");
        assert!(JoinTokens::new(&old).verify(&fresh, Instant(0)).is_err());
        let dropped = rotated.rotated(true);
        assert!(JoinTokens::new(&dropped).verify(&tok, Instant(0)).is_err());
    }

    #[test]
    fn a_link_from_before_key_ids_verifies_with_the_legacy_key() {
        let legacy = "l".repeat(40);
        let enc = EncodingKey::from_secret(legacy.as_bytes());
        let tok = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(100), &enc)
            .expect("encode");
        let keys = JoinKeys::ephemeral().with_legacy(legacy);
        assert_eq!(
            JoinTokens::new(&keys).verify(&tok, Instant(0)),
            Ok(claims(100))
        );
        assert!(
            JoinTokens::new(&JoinKeys::ephemeral())
                .verify(&tok, Instant(0))
                .is_err()
        );
    }
}
