//! Double booking: a site's room endpoint can be in one meeting at a time.

use super::recurrence::{Rule, Window, occurrences};
use crate::time::Instant;

/// How far ahead an open-ended recurring meeting is checked for conflicts.
pub const HORIZON_SECS: i64 = 2 * 366 * 86_400;

/// A meeting as the overlap check sees it.
#[derive(Debug, Clone)]
pub struct Booking {
    pub id: i64,
    pub first: Window,
    pub rule: Option<Rule>,
}

impl Booking {
    /// From the first start to the last end (open-ended rules: the check horizon).
    pub fn span(&self) -> (Instant, Instant) {
        let end = match &self.rule {
            None => self.first.end,
            Some(r) => match r.until {
                Some(u) => u.plus(self.first.end.0 - self.first.start.0),
                None => self.first.start.plus(HORIZON_SECS),
            },
        };
        (self.first.start, end)
    }

    pub fn windows_within(&self, from: Instant, to: Instant) -> Vec<Window> {
        occurrences(self.first, self.rule.as_ref(), from, to)
    }
}

/// The first occurrence of `new` that overlaps an occurrence of one of `existing`, with
/// the booking it collides with and that booking's colliding window.
pub fn first_conflict<'a>(
    new: &Booking,
    existing: impl IntoIterator<Item = &'a Booking>,
) -> Option<(&'a Booking, Window)> {
    let (from, to) = new.span();
    let mine = new.windows_within(from, to);
    let mut best: Option<(&Booking, Window, Window)> = None;
    for other in existing {
        if other.id == new.id {
            continue;
        }
        let theirs = other.windows_within(from, to);
        // Both lists are sorted: walk them together.
        let (mut i, mut j) = (0, 0);
        while i < mine.len() && j < theirs.len() {
            if mine[i].overlaps(&theirs[j]) {
                if best
                    .as_ref()
                    .is_none_or(|b| (mine[i].start, theirs[j].start) < (b.1.start, b.2.start))
                {
                    best = Some((other, mine[i], theirs[j]));
                }
                break;
            }
            if mine[i].end <= theirs[j].end {
                i += 1;
            } else {
                j += 1;
            }
        }
    }
    best.map(|(b, _, w)| (b, w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn booking(id: i64, start: i64, len: i64, rule: Option<&str>) -> Booking {
        Booking {
            id,
            first: Window {
                start: Instant(start),
                end: Instant(start + len),
            },
            rule: rule.map(|r| r.parse().expect("rule")),
        }
    }

    #[test]
    fn touching_meetings_do_not_conflict() {
        let a = booking(1, 0, 3600, None);
        let b = booking(2, 3600, 3600, None);
        assert!(first_conflict(&b, [&a]).is_none());
        let c = booking(3, 3599, 10, None);
        let (hit, w) = first_conflict(&c, [&a, &b]).expect("conflict");
        assert_eq!(hit.id, 1);
        assert_eq!(w.start, Instant(0));
    }

    #[test]
    fn weekly_meeting_conflicts_with_a_one_off_months_later() {
        let week = 7 * 86_400;
        let weekly = booking(1, 0, 3600, Some("FREQ=WEEKLY"));
        let one_off = booking(2, 20 * week + 1800, 3600, None);
        let (hit, w) = first_conflict(&one_off, [&weekly]).expect("conflict");
        assert_eq!(hit.id, 1);
        assert_eq!(w.start, Instant(20 * week));
        let between = booking(3, 20 * week + 86_400, 3600, None);
        assert!(first_conflict(&between, [&weekly]).is_none());
    }

    #[test]
    fn the_earliest_conflict_is_reported_and_self_is_ignored() {
        let a = booking(1, 10_000, 100, None);
        let b = booking(2, 5_000, 100, None);
        let new = booking(9, 0, 20_000, None);
        let (hit, _) = first_conflict(&new, [&a, &b, &new]).expect("conflict");
        assert_eq!(hit.id, 2);
    }
}
