//! Following the room's schedule (`GET /api/v1/device/schedule`): be in the meeting whose
//! lobby is open, leave when it closes, never need a click.

use serde::Deserialize;

/// A meeting's phase as the bridge reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Scheduled,
    Lobby,
    Open,
    Closing,
    Closed,
}

impl Phase {
    pub fn admits(self) -> bool {
        matches!(self, Phase::Lobby | Phase::Open | Phase::Closing)
    }
}

/// One meeting of the room's schedule; times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub meeting: i64,
    pub phase: Phase,
    pub starts_at: i64,
    pub ends_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Join(i64),
    Leave,
    Stay,
}

/// What to do, in meeting `current` (or in none), given the schedule just fetched.
pub fn decide(current: Option<i64>, schedule: &[Slot]) -> Action {
    let open = |id: i64| schedule.iter().any(|s| s.meeting == id && s.phase.admits());
    match current {
        Some(id) if open(id) => Action::Stay,
        Some(_) => Action::Leave,
        None => schedule
            .iter()
            .filter(|s| s.phase.admits())
            .min_by_key(|s| (s.starts_at, s.meeting))
            .map_or(Action::Stay, |s| Action::Join(s.meeting)),
    }
}

/// Run the link check when the next meeting starts within `lead` seconds and the last
/// check is older than `max_age` seconds (or never ran), so the district's IT officer sees
/// a weak link before the chair does.
pub fn check_due(
    now: i64,
    schedule: &[Slot],
    last_check: Option<i64>,
    lead: i64,
    max_age: i64,
) -> bool {
    let soon = schedule
        .iter()
        .any(|s| s.phase == Phase::Scheduled && s.starts_at > now && s.starts_at - now <= lead);
    soon && last_check.is_none_or(|t| now - t > max_age)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(meeting: i64, phase: Phase, starts_at: i64) -> Slot {
        Slot {
            meeting,
            phase,
            starts_at,
            ends_at: starts_at + 3600,
        }
    }

    #[test]
    fn joins_the_open_meeting_stays_then_leaves() {
        let mut s = vec![slot(1, Phase::Scheduled, 1000)];
        assert_eq!(decide(None, &s), Action::Stay, "nothing open yet");
        s[0].phase = Phase::Lobby;
        assert_eq!(decide(None, &s), Action::Join(1));
        assert_eq!(decide(Some(1), &s), Action::Stay);
        s[0].phase = Phase::Closing;
        assert_eq!(decide(Some(1), &s), Action::Stay, "warned, still on");
        s[0].phase = Phase::Closed;
        assert_eq!(decide(Some(1), &s), Action::Leave);
        assert_eq!(decide(Some(1), &[]), Action::Leave, "meeting cancelled");
    }

    #[test]
    fn of_two_open_meetings_the_earlier_wins() {
        let s = [slot(7, Phase::Open, 2000), slot(5, Phase::Lobby, 3000)];
        assert_eq!(decide(None, &s), Action::Join(7));
    }

    #[test]
    fn the_link_check_runs_once_before_a_meeting() {
        let s = [slot(1, Phase::Scheduled, 10_000)];
        assert!(!check_due(8_000, &s, None, 1_200, 1_800), "too early");
        assert!(check_due(9_000, &s, None, 1_200, 1_800));
        assert!(
            !check_due(9_100, &s, Some(9_000), 1_200, 1_800),
            "just checked"
        );
        assert!(
            !check_due(10_100, &s, None, 1_200, 1_800),
            "already started"
        );
    }

    #[test]
    fn phases_parse_from_the_bridge_json() {
        let p: Vec<Phase> =
            serde_json::from_str(r#"["scheduled","lobby","open","closing","closed"]"#)
                .expect("phases");
        assert_eq!(p.iter().filter(|p| p.admits()).count(), 3);
    }
}
