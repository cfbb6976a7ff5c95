//! Where a meeting is in its day: scheduled → lobby → open → closing → closed.
//!
//! Pure functions of `now`; the server ticks a [`Scheduler`] once a second and acts on the
//! transitions it returns (warn the room, close it). Tests drive the same code with
//! simulated time.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::recurrence::{Rule, Window, occurrences};
use crate::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// The lobby opens this many seconds before the start: sites connect and test.
    pub lobby_before_secs: i64,
    /// Participants are warned this many seconds before the end.
    pub warn_before_secs: i64,
    /// The room stays open this long after the end, unless the chair ends it.
    pub grace_secs: i64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            lobby_before_secs: 15 * 60,
            warn_before_secs: 5 * 60,
            grace_secs: 10 * 60,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Before the lobby opens: nobody can join yet.
    Scheduled,
    /// Sites can connect and check their audio and video; the meeting has not started.
    Lobby,
    Open,
    /// Near or past the end, inside the grace period: participants have been warned.
    Closing,
    Closed,
}

impl Phase {
    pub fn admits(self) -> bool {
        matches!(self, Phase::Lobby | Phase::Open | Phase::Closing)
    }
}

/// The times the scheduler needs of one meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingTimes {
    pub id: i64,
    pub first: Window,
    pub rule: Option<Rule>,
    /// The chair moved the end of the running occurrence to this instant.
    pub extended_until: Option<Instant>,
    /// The chair ended the running occurrence at this instant.
    pub ended_at: Option<Instant>,
}

/// One occurrence with the instants at which its phase changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    pub window: Window,
    pub lobby_at: Instant,
    pub warn_at: Instant,
    pub close_at: Instant,
    pub ended_at: Option<Instant>,
}

impl Occurrence {
    pub fn phase(&self, now: Instant) -> Phase {
        if self.ended_at.is_some_and(|e| e <= now) || now >= self.close_at {
            Phase::Closed
        } else if now < self.lobby_at {
            Phase::Scheduled
        } else if now < self.window.start {
            Phase::Lobby
        } else if now < self.warn_at {
            Phase::Open
        } else {
            Phase::Closing
        }
    }

    /// The end participants are told: nominal end, or the extended one.
    pub fn ends_at(&self) -> Instant {
        self.window.end
    }
}

impl MeetingTimes {
    fn occurrence(&self, cfg: &ScheduleConfig, w: Window) -> Occurrence {
        // An extension belongs to the occurrence it was made in: after its start, and not
        // so far past its end that it reaches into the next one.
        let end = match self.extended_until {
            Some(e) if e > w.start && e > w.end && e.0 - w.end.0 < 12 * 3600 => e,
            _ => w.end,
        };
        let close_at = end.plus(cfg.grace_secs);
        let lobby_at = w.start.plus(-cfg.lobby_before_secs);
        let ended_at = self
            .ended_at
            .filter(|e| *e >= lobby_at && *e < close_at.max(end));
        Occurrence {
            window: Window {
                start: w.start,
                end,
            },
            lobby_at,
            // A meeting shorter than twice the warning is warned at half time, not at start.
            warn_at: end
                .plus(-cfg.warn_before_secs)
                .max(w.start.plus((end.0 - w.start.0) / 2)),
            close_at,
            ended_at,
        }
    }

    /// The occurrence that matters at `now`: the one whose lobby..close span holds `now`,
    /// else the next one to come, else the last one (a meeting that is over).
    pub fn current(&self, cfg: &ScheduleConfig, now: Instant) -> Option<Occurrence> {
        let reach = cfg.lobby_before_secs + cfg.grace_secs + 12 * 3600;
        let near = occurrences(
            self.first,
            self.rule.as_ref(),
            now.plus(-reach),
            now.plus(400 * 86_400),
        );
        let mut last = None;
        for w in near {
            let occ = self.occurrence(cfg, w);
            match occ.phase(now) {
                Phase::Closed if occ.close_at <= now || occ.ended_at.is_some() => {
                    last = Some(occ);
                }
                _ => return Some(occ),
            }
        }
        last
    }

    /// The occurrences within `horizon_secs` of the first one (all of them for COUNT rules).
    pub fn first_windows(&self, horizon_secs: i64) -> Vec<Window> {
        occurrences(
            self.first,
            self.rule.as_ref(),
            self.first.start,
            self.first.start.plus(horizon_secs),
        )
    }

    pub fn phase(&self, cfg: &ScheduleConfig, now: Instant) -> Phase {
        self.current(cfg, now)
            .map_or(Phase::Closed, |occ| occ.phase(now))
    }
}

/// A phase change of one occurrence, for the server to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub meeting: i64,
    pub occurrence: Occurrence,
    pub from: Phase,
    pub to: Phase,
}

/// Remembers each meeting's last phase and reports changes.
#[derive(Debug, Default)]
pub struct Scheduler {
    cfg: ScheduleConfig,
    seen: HashMap<i64, (Instant, Phase)>,
}

impl Scheduler {
    pub fn new(cfg: ScheduleConfig) -> Self {
        Self {
            cfg,
            seen: HashMap::new(),
        }
    }

    pub fn config(&self) -> &ScheduleConfig {
        &self.cfg
    }

    /// Compare every meeting's phase at `now` with the last tick. A meeting seen for the
    /// first time reports nothing (a restart must not re-warn a running meeting) unless it
    /// is already past its lobby, which a meeting created or edited at short notice can be.
    pub fn tick(&mut self, now: Instant, meetings: &[MeetingTimes]) -> Vec<Transition> {
        let mut out = Vec::new();
        for m in meetings {
            let Some(occ) = m.current(&self.cfg, now) else {
                continue;
            };
            let phase = occ.phase(now);
            let key = occ.window.start;
            match self.seen.insert(m.id, (key, phase)) {
                Some((k, from)) if k == key && from == phase => {}
                Some((k, from)) if k == key => out.push(Transition {
                    meeting: m.id,
                    occurrence: occ,
                    from,
                    to: phase,
                }),
                // A new occurrence of a recurring meeting starts from `Scheduled`.
                Some(_) if phase != Phase::Scheduled => out.push(Transition {
                    meeting: m.id,
                    occurrence: occ,
                    from: Phase::Scheduled,
                    to: phase,
                }),
                _ => {}
            }
        }
        // Forget meetings no longer listed (deleted, or long over).
        let listed: std::collections::HashSet<i64> = meetings.iter().map(|m| m.id).collect();
        self.seen.retain(|id, _| listed.contains(id));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60;

    fn meeting(start: i64, minutes: i64) -> MeetingTimes {
        MeetingTimes {
            id: 1,
            first: Window {
                start: Instant(start),
                end: Instant(start + minutes * MIN),
            },
            rule: None,
            extended_until: None,
            ended_at: None,
        }
    }

    #[test]
    fn phases_follow_the_clock() {
        let cfg = ScheduleConfig::default(); // lobby 15 min, warn 5 min, grace 10 min
        let m = meeting(100_000, 60);
        let at = |off: i64| m.phase(&cfg, Instant(100_000 + off));
        assert_eq!(at(-16 * MIN), Phase::Scheduled);
        assert_eq!(at(-15 * MIN), Phase::Lobby);
        assert_eq!(at(0), Phase::Open);
        assert_eq!(at(54 * MIN), Phase::Open);
        assert_eq!(at(55 * MIN), Phase::Closing);
        assert_eq!(at(69 * MIN), Phase::Closing);
        assert_eq!(at(70 * MIN), Phase::Closed);
        assert!(!Phase::Scheduled.admits() && Phase::Lobby.admits() && !Phase::Closed.admits());
    }

    #[test]
    fn scheduler_reports_each_transition_once_in_simulated_time() {
        let cfg = ScheduleConfig {
            lobby_before_secs: 60,
            warn_before_secs: 30,
            grace_secs: 20,
        };
        let mut s = Scheduler::new(cfg);
        let m = [meeting(1_000, 2)]; // 1000..1120
        let mut log = Vec::new();
        for now in (800..1_300).step_by(1) {
            for t in s.tick(Instant(now), &m) {
                log.push((now, t.from, t.to));
            }
        }
        assert_eq!(
            log,
            [
                (940, Phase::Scheduled, Phase::Lobby),
                (1_000, Phase::Lobby, Phase::Open),
                (1_090, Phase::Open, Phase::Closing),
                (1_140, Phase::Closing, Phase::Closed),
            ]
        );
    }

    #[test]
    fn restart_mid_meeting_does_not_re_announce() {
        let mut s = Scheduler::new(ScheduleConfig::default());
        let m = [meeting(1_000, 60)];
        assert!(s.tick(Instant(1_500), &m).is_empty());
        assert!(s.tick(Instant(1_501), &m).is_empty());
    }

    #[test]
    fn chair_extends_and_ends() {
        let cfg = ScheduleConfig {
            lobby_before_secs: 0,
            warn_before_secs: 60,
            grace_secs: 0,
        };
        let mut m = meeting(0, 10); // 0..600
        m.extended_until = Some(Instant(900));
        assert_eq!(m.phase(&cfg, Instant(700)), Phase::Open);
        assert_eq!(m.phase(&cfg, Instant(850)), Phase::Closing);
        assert_eq!(m.phase(&cfg, Instant(900)), Phase::Closed);
        m.ended_at = Some(Instant(300));
        assert_eq!(m.phase(&cfg, Instant(299)), Phase::Open);
        assert_eq!(m.phase(&cfg, Instant(300)), Phase::Closed);
    }

    #[test]
    fn recurring_meeting_reopens_next_week_after_the_chair_ended_it() {
        let cfg = ScheduleConfig::default();
        let mut m = meeting(0, 60);
        m.rule = Some("FREQ=WEEKLY".parse().expect("rule"));
        m.ended_at = Some(Instant(30 * MIN));
        assert_eq!(
            m.phase(&cfg, Instant(31 * MIN)),
            Phase::Scheduled,
            "next week's occurrence"
        );
        let week = 7 * 86_400;
        assert_eq!(m.phase(&cfg, Instant(week + MIN)), Phase::Open);
        let occ = m.current(&cfg, Instant(week + MIN)).expect("occurrence");
        assert_eq!(occ.window.start, Instant(week));
        // Transitions of a later occurrence are reported as a fresh start.
        let mut s = Scheduler::new(cfg);
        let ms = [m];
        s.tick(Instant(week - 20 * MIN), &ms);
        let t = s.tick(Instant(week - 10 * MIN), &ms);
        assert_eq!(t.len(), 1);
        assert_eq!((t[0].from, t[0].to), (Phase::Scheduled, Phase::Lobby));
    }
}
