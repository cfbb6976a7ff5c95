//! Instants as the store keeps them (UTC seconds) and as people read them (Vietnam time).
//!
//! Viet Nam has kept UTC+7 without daylight saving since 1975, so a fixed offset is the
//! exact `Asia/Ho_Chi_Minh` rule for every date a meeting can have; no tz database needed.

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub const VN_OFFSET_SECS: i32 = 7 * 3600;

pub fn vn() -> FixedOffset {
    FixedOffset::east_opt(VN_OFFSET_SECS).expect("+07:00 is a valid offset")
}

/// A UTC instant in whole seconds. JSON: RFC 3339 text, written in +07:00, read in any offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(pub i64);

impl Instant {
    pub fn now() -> Self {
        Self(Utc::now().timestamp())
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| Self(t.timestamp()))
            .map_err(|e| format!("expected an RFC 3339 time like 2026-12-01T14:00:00+07:00 ({e})"))
    }

    pub fn vn(self) -> DateTime<FixedOffset> {
        vn().timestamp_opt(self.0, 0)
            .single()
            .unwrap_or_else(|| vn().timestamp_opt(0, 0).single().expect("epoch exists"))
    }

    pub fn rfc3339(self) -> String {
        self.vn().to_rfc3339()
    }

    /// "14:00 26/11/2026": how a Vietnamese notice writes a time.
    pub fn vn_clock(self) -> String {
        self.vn().format("%H:%M %d/%m/%Y").to_string()
    }

    pub fn plus(self, secs: i64) -> Self {
        Self(self.0.saturating_add(secs))
    }
}

impl std::fmt::Display for Instant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

impl Serialize for Instant {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}

impl<'de> Deserialize<'de> for Instant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Instant {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::DateTime,
            )))
            .examples(["2026-12-01T14:00:00+07:00"])
            .into()
    }
}
impl utoipa::ToSchema for Instant {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_any_offset_writes_vietnam_time() {
        let t = Instant::parse("2026-12-01T07:00:00Z").expect("valid");
        assert_eq!(t.rfc3339(), "2026-12-01T14:00:00+07:00");
        assert_eq!(t.vn_clock(), "14:00 01/12/2026");
        assert!(Instant::parse("tomorrow").is_err());
    }
}
