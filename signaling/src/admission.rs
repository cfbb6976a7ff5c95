//! Who may enter which meeting: the seam the scheduler and access control take over.
//!
//! Today meetings are ad hoc: any well-formed meeting id opens a room, unless the operator
//! listed the allowed ids. The WebSocket handler asks only this trait, so replacing the
//! policy (roster, time window, signed links) changes no protocol code.

use std::collections::HashSet;

/// Why a join was refused; the text is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

pub trait Admission: Send + Sync + 'static {
    /// Decide whether `meeting` can be entered now.
    fn admit(&self, meeting: &str) -> Result<(), Refusal>;
}

/// Ad-hoc meetings: any id of 1–64 characters `[A-Za-z0-9_-]`, optionally from a fixed list.
#[derive(Debug, Default, Clone)]
pub struct AdHoc {
    allowed: Option<HashSet<String>>,
}

impl AdHoc {
    pub fn new(allowed: Option<Vec<String>>) -> Self {
        Self {
            allowed: allowed.map(|v| v.into_iter().collect()),
        }
    }
}

pub fn valid_meeting_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Admission for AdHoc {
    fn admit(&self, meeting: &str) -> Result<(), Refusal> {
        if !valid_meeting_id(meeting) {
            return Err(Refusal(
                "meeting id must be 1-64 letters, digits, '-' or '_'".into(),
            ));
        }
        match &self.allowed {
            Some(list) if !list.contains(meeting) => {
                Err(Refusal(format!("no meeting '{meeting}' on this bridge")))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_allow_list() {
        let open = AdHoc::new(None);
        assert!(open.admit("hop-tinh_2026").is_ok());
        assert!(open.admit("").is_err());
        assert!(open.admit("a b").is_err());
        assert!(open.admit(&"x".repeat(65)).is_err());
        let listed = AdHoc::new(Some(vec!["giao-ban".into()]));
        assert!(listed.admit("giao-ban").is_ok());
        assert!(listed.admit("other").is_err());
    }
}
