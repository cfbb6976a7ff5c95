//! Recurrence rules: the subset of RFC 5545 `RRULE` that meeting calendars use.
//!
//! `FREQ=DAILY|WEEKLY|MONTHLY`, `INTERVAL`, `COUNT`, `UNTIL`, and `BYDAY` for weekly rules.
//! Occurrences keep the local (Vietnam) wall-clock time of the first one; a monthly rule on
//! the 31st skips months without one, as RFC 5545 says.

use std::str::FromStr;

use chrono::{Datelike, Days, Months, NaiveDate, NaiveDateTime, TimeZone, Weekday};

use crate::time::{Instant, vn};

/// Iteration cap: a rule with neither COUNT nor UNTIL is expanded only inside the window
/// asked for, and this bounds the work for absurd windows.
const MAX_STEPS: u32 = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freq {
    Daily,
    Weekly,
    Monthly,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub freq: Freq,
    pub interval: u32,
    pub count: Option<u32>,
    pub until: Option<Instant>,
    pub by_day: Vec<Weekday>,
}

/// One meeting occurrence: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    pub start: Instant,
    pub end: Instant,
}

impl Window {
    pub fn overlaps(&self, other: &Window) -> bool {
        self.start < other.end && other.start < self.end
    }
}

fn weekday(code: &str) -> Option<Weekday> {
    Some(match code {
        "MO" => Weekday::Mon,
        "TU" => Weekday::Tue,
        "WE" => Weekday::Wed,
        "TH" => Weekday::Thu,
        "FR" => Weekday::Fri,
        "SA" => Weekday::Sat,
        "SU" => Weekday::Sun,
        _ => return None,
    })
}

fn parse_until(v: &str) -> Result<Instant, String> {
    let bad = || format!("UNTIL={v}: expected YYYYMMDD or YYYYMMDDTHHMMSSZ");
    if v.len() == 8 {
        // A date alone means the whole local day.
        let d = NaiveDate::parse_from_str(v, "%Y%m%d").map_err(|_| bad())?;
        let end = d.and_hms_opt(23, 59, 59).ok_or_else(bad)?;
        let t = vn().from_local_datetime(&end).single().ok_or_else(bad)?;
        return Ok(Instant(t.timestamp()));
    }
    let t = NaiveDateTime::parse_from_str(v, "%Y%m%dT%H%M%SZ").map_err(|_| bad())?;
    Ok(Instant(t.and_utc().timestamp()))
}

impl FromStr for Rule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().trim_start_matches("RRULE:");
        let mut freq = None;
        let mut rule = Rule {
            freq: Freq::Weekly,
            interval: 1,
            count: None,
            until: None,
            by_day: Vec::new(),
        };
        for part in s.split(';').filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not KEY=VALUE"))?;
            match k {
                "FREQ" => {
                    freq = Some(match v {
                        "DAILY" => Freq::Daily,
                        "WEEKLY" => Freq::Weekly,
                        "MONTHLY" => Freq::Monthly,
                        _ => {
                            return Err(format!(
                                "FREQ={v} is not supported (DAILY, WEEKLY, MONTHLY)"
                            ));
                        }
                    })
                }
                "INTERVAL" => {
                    rule.interval = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=366).contains(n))
                        .ok_or_else(|| format!("INTERVAL={v}: expected 1-366"))?
                }
                "COUNT" => {
                    rule.count = Some(
                        v.parse()
                            .ok()
                            .filter(|n| (1..=10_000).contains(n))
                            .ok_or_else(|| format!("COUNT={v}: expected 1-10000"))?,
                    )
                }
                "UNTIL" => rule.until = Some(parse_until(v)?),
                "BYDAY" => {
                    for d in v.split(',') {
                        rule.by_day
                            .push(weekday(d).ok_or_else(|| format!("BYDAY: '{d}' is not MO..SU"))?);
                    }
                }
                _ => return Err(format!("{k} is not supported")),
            }
        }
        rule.freq = freq.ok_or("FREQ is required")?;
        if !rule.by_day.is_empty() && rule.freq != Freq::Weekly {
            return Err("BYDAY is supported with FREQ=WEEKLY only".into());
        }
        if rule.count.is_some() && rule.until.is_some() {
            return Err("COUNT and UNTIL cannot both be given".into());
        }
        rule.by_day.sort_by_key(|d| d.num_days_from_monday());
        rule.by_day.dedup();
        Ok(rule)
    }
}

/// Occurrences of a meeting whose first occurrence is `first`, that intersect `[from, to)`,
/// in order. Without a rule the meeting has exactly one occurrence.
pub fn occurrences(first: Window, rule: Option<&Rule>, from: Instant, to: Instant) -> Vec<Window> {
    let mut out = Vec::new();
    let Some(rule) = rule else {
        if first.overlaps(&Window {
            start: from,
            end: to,
        }) {
            out.push(first);
        }
        return out;
    };
    let duration = first.end.0 - first.start.0;
    let local = first.start.vn().naive_local();
    let (date, clock) = (local.date(), local.time());
    let mut produced = 0u32;
    let mut emit = |d: NaiveDate, out: &mut Vec<Window>| -> bool {
        // Returns false once the rule is exhausted or we are past `to`.
        let Some(t) = vn().from_local_datetime(&d.and_time(clock)).single() else {
            return true;
        };
        let start = Instant(t.timestamp());
        if start < first.start {
            return true;
        }
        if rule.count.is_some_and(|c| produced >= c) || rule.until.is_some_and(|u| start > u) {
            return false;
        }
        if start >= to {
            return false;
        }
        produced += 1;
        let w = Window {
            start,
            end: start.plus(duration),
        };
        if w.end > from {
            out.push(w);
        }
        true
    };
    for k in 0..MAX_STEPS {
        let step = k * rule.interval;
        let more = match rule.freq {
            Freq::Daily => match date.checked_add_days(Days::new(step.into())) {
                Some(d) => emit(d, &mut out),
                None => false,
            },
            Freq::Monthly => {
                let Some(month_start) = date
                    .with_day(1)
                    .and_then(|d| d.checked_add_months(Months::new(step)))
                else {
                    break;
                };
                match month_start.with_day(date.day()) {
                    Some(d) => emit(d, &mut out),
                    None => true, // no 31st this month: skipped, not counted
                }
            }
            Freq::Weekly => {
                let monday = date - Days::new(date.weekday().num_days_from_monday().into());
                let Some(week) = monday.checked_add_days(Days::new(u64::from(step) * 7)) else {
                    break;
                };
                let days: Vec<Weekday> = if rule.by_day.is_empty() {
                    vec![date.weekday()]
                } else {
                    rule.by_day.clone()
                };
                days.iter()
                    .all(|wd| emit(week + Days::new(wd.num_days_from_monday().into()), &mut out))
            }
        };
        if !more {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Instant {
        Instant::parse(s).expect("test time")
    }

    fn first(start: &str, minutes: i64) -> Window {
        let s = t(start);
        Window {
            start: s,
            end: s.plus(minutes * 60),
        }
    }

    fn starts(ws: &[Window]) -> Vec<String> {
        ws.iter().map(|w| w.start.rfc3339()).collect()
    }

    #[test]
    fn single_meeting_has_one_occurrence() {
        let w = first("2026-12-01T14:00:00+07:00", 60);
        assert_eq!(occurrences(w, None, Instant(0), Instant(i64::MAX)), vec![w]);
        assert!(occurrences(w, None, w.end, w.end.plus(10)).is_empty());
    }

    #[test]
    fn weekly_keeps_local_time_and_counts() {
        let rule: Rule = "FREQ=WEEKLY;COUNT=3".parse().expect("rule");
        let w = first("2026-12-28T08:00:00+07:00", 90);
        let occ = occurrences(w, Some(&rule), Instant(0), Instant(i64::MAX));
        assert_eq!(
            starts(&occ),
            [
                "2026-12-28T08:00:00+07:00",
                "2027-01-04T08:00:00+07:00",
                "2027-01-11T08:00:00+07:00"
            ]
        );
        assert_eq!(occ[1].end.0 - occ[1].start.0, 90 * 60);
    }

    #[test]
    fn monthly_on_the_31st_skips_short_months() {
        let rule: Rule = "FREQ=MONTHLY;UNTIL=20270630".parse().expect("rule");
        let w = first("2027-01-31T14:00:00+07:00", 60);
        let occ = occurrences(w, Some(&rule), Instant(0), Instant(i64::MAX));
        assert_eq!(
            starts(&occ),
            [
                "2027-01-31T14:00:00+07:00",
                "2027-03-31T14:00:00+07:00",
                "2027-05-31T14:00:00+07:00"
            ]
        );
    }

    #[test]
    fn weekly_by_day_across_a_month_boundary() {
        // Mondays and Thursdays, every second week.
        let rule: Rule = "FREQ=WEEKLY;INTERVAL=2;BYDAY=TH,MO;COUNT=5"
            .parse()
            .expect("rule");
        let w = first("2026-11-26T09:00:00+07:00", 60); // a Thursday
        let occ = occurrences(w, Some(&rule), Instant(0), Instant(i64::MAX));
        assert_eq!(
            starts(&occ),
            [
                "2026-11-26T09:00:00+07:00",
                "2026-12-07T09:00:00+07:00",
                "2026-12-10T09:00:00+07:00",
                "2026-12-21T09:00:00+07:00",
                "2026-12-24T09:00:00+07:00"
            ]
        );
    }

    #[test]
    fn open_ended_rule_is_expanded_inside_the_window_only() {
        let rule: Rule = "FREQ=DAILY".parse().expect("rule");
        let w = first("2026-01-01T08:00:00+07:00", 30);
        let occ = occurrences(
            w,
            Some(&rule),
            t("2026-03-01T00:00:00+07:00"),
            t("2026-03-04T00:00:00+07:00"),
        );
        assert_eq!(occ.len(), 3);
        assert_eq!(occ[0].start.rfc3339(), "2026-03-01T08:00:00+07:00");
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        for (rule, words) in [
            ("FREQ=YEARLY", "FREQ=YEARLY"),
            ("INTERVAL=2", "FREQ is required"),
            ("FREQ=DAILY;BYDAY=MO", "BYDAY"),
            ("FREQ=WEEKLY;BYDAY=XX", "XX"),
            ("FREQ=WEEKLY;COUNT=0", "COUNT"),
            ("FREQ=WEEKLY;UNTIL=tomorrow", "UNTIL"),
            ("FREQ=WEEKLY;BYMONTH=1", "BYMONTH"),
        ] {
            let err = rule.parse::<Rule>().expect_err(rule);
            assert!(err.contains(words), "{rule}: {err}");
        }
    }
}
