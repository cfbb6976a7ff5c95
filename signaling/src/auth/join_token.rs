//! Signed join links: a JWT (HS256, key kept in the store) naming the meeting, the site,
//! optionally the person, the role and the expiry. The `jti` is recorded in the store so a
//! link can be listed and revoked; the signature means nothing else needs looking up to
//! reject a forged or altered one.

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
    enc: EncodingKey,
    dec: DecodingKey,
}

impl JoinTokens {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            enc: EncodingKey::from_secret(secret),
            dec: DecodingKey::from_secret(secret),
        }
    }

    pub fn issue(&self, claims: &JoinClaims) -> Result<String, String> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.enc)
            .map_err(|e| e.to_string())
    }

    /// Check the signature, then the expiry against `now` (explicit, for tests).
    pub fn verify(&self, token: &str, now: Instant) -> Result<JoinClaims, TokenError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_exp = false;
        v.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<JoinClaims>(token, &self.dec, &v)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
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

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let t = JoinTokens::new(b"k1");
        let tok = t.issue(&claims(100)).expect("issue");
        assert_eq!(t.verify(&tok, Instant(99)), Ok(claims(100)));
        assert_eq!(
            t.verify(&tok, Instant(100)),
            Err(TokenError::Expired { at: Instant(100) })
        );
    }

    #[test]
    fn forged_or_altered_tokens_are_invalid() {
        let tok = JoinTokens::new(b"k1").issue(&claims(100)).expect("issue");
        assert!(matches!(
            JoinTokens::new(b"k2").verify(&tok, Instant(0)),
            Err(TokenError::Invalid(_))
        ));
        let mut parts: Vec<String> = tok.split('.').map(String::from).collect();
        parts[1] = parts[1].replace('A', "B");
        let altered = parts.join(".");
        assert!(JoinTokens::new(b"k1").verify(&altered, Instant(0)).is_err());
        assert!(
            JoinTokens::new(b"k1")
                .verify("garbage", Instant(0))
                .is_err()
        );
    }
}
