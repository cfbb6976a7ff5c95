//! The meeting report: who was in it and how each site's link behaved, built from the
//! attendance records and the link samples (`link_history.rs`). Plain functions of what
//! the store gave; the API (`api/reports.rs`) serves them as JSON, CSV and a printable
//! page.
//!
//! A site "could not be heard or seen" when, for longer than the report's threshold, it
//! was cut off (nothing at all came from it), not heard (its microphone open, and no
//! voice packet came), or on audio only (its link carried no picture). Each stretch is
//! counted per device of the site: a kiosk cut off while the same commune's browser was
//! heard is listed with the kiosk's name.

use std::collections::BTreeMap;
use std::time::Duration;

use cauhop_store::Instant;
use cauhop_store::link_history::{LinkChunk, LinkSample};
use cauhop_store::model::Attendance;
use serde::Serialize;

/// How reports are made (`[report]` in the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportOptions {
    /// A stretch this long or longer is named in the report.
    pub after: Duration,
    /// The office's letterhead on the printed report; lines separated by `\n`.
    pub letterhead: String,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            after: Duration::from_secs(60),
            letterhead: String::new(),
        }
    }
}

/// What went wrong with a site's link for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trouble {
    /// Nothing at all came from it.
    CutOff,
    /// Its microphone was open and no voice came.
    Unheard,
    /// Its link carried the voices and no picture.
    AudioOnly,
}

impl Trouble {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CutOff => "cut_off",
            Self::Unheard => "unheard",
            Self::AudioOnly => "audio_only",
        }
    }

    fn of(self, s: &LinkSample) -> bool {
        let cut = s.cut_off();
        match self {
            Self::CutOff => cut,
            Self::Unheard => !cut && !s.muted && !s.heard,
            Self::AudioOnly => !cut && s.audio_only,
        }
    }

    const ALL: [Self; 3] = [Self::CutOff, Self::Unheard, Self::AudioOnly];
}

/// One stretch of trouble.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Stretch {
    pub trouble: Trouble,
    #[schema(value_type = String)]
    pub from: Instant,
    pub seconds: u32,
    /// The device (the name it joined with).
    pub device: String,
}

/// A point of a site's chart: the samples of one bucket of time.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Point {
    /// Seconds from the first sample of the meeting.
    pub t: u32,
    pub down_kbps: u32,
    pub up_kbps: u32,
    /// Worst loss of the bucket, percent (what it received, what it sent).
    pub loss_down_pct: Option<f32>,
    pub loss_up_pct: Option<f32>,
    /// Share of the bucket cut off, and on audio only (0..1).
    pub cut_off: f32,
    pub audio_only: f32,
}

/// A link's figures over some samples: the mean rates of what came (stretches cut off
/// left out), the mean loss in percent, the median round trip.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Figures {
    pub down_kbps: Option<u32>,
    pub up_kbps: Option<u32>,
    pub loss_down_pct: Option<f32>,
    pub loss_up_pct: Option<f32>,
    pub rtt_ms: Option<u32>,
}

impl Figures {
    fn of(samples: &[&LinkSample]) -> Self {
        let live: Vec<&&LinkSample> = samples.iter().filter(|s| !s.cut_off()).collect();
        let pct = |f: fn(&LinkSample) -> Option<f32>| {
            mean(samples.iter().filter_map(|s| f(s)).map(f64::from))
                .map(|x| ((x * 1000.0).round() / 10.0) as f32)
        };
        let mut rtts: Vec<u32> = samples.iter().filter_map(|s| s.rtt_ms).collect();
        rtts.sort_unstable();
        Self {
            down_kbps: mean(live.iter().map(|s| f64::from(s.down_kbps))).map(|x| x as u32),
            up_kbps: mean(live.iter().map(|s| f64::from(s.up_kbps))).map(|x| x as u32),
            loss_down_pct: pct(|s| s.loss_down),
            loss_up_pct: pct(|s| s.loss_up),
            rtt_ms: rtts.get(rtts.len() / 2).copied(),
        }
    }
}

/// One site (or one participant without a site) in the report.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SiteReport {
    pub site_id: Option<i64>,
    /// The site's name (a participant's own name when it has no site).
    pub site: String,
    /// The names its devices joined with.
    pub devices: Vec<String>,
    #[schema(value_type = Option<String>)]
    pub first_joined: Option<Instant>,
    #[schema(value_type = Option<String>)]
    pub last_left: Option<Instant>,
    /// Minutes any of its devices was in.
    pub minutes: i64,
    /// Joins after its first (a device reconnecting, a second device).
    pub rejoins: usize,
    pub samples: usize,
    #[serde(flatten)]
    pub link: Figures,
    /// Seconds of each trouble, all stretches (short ones too).
    pub cut_off_s: u32,
    pub unheard_s: u32,
    pub audio_only_s: u32,
    /// The stretches as long as the threshold or longer.
    pub stretches: Vec<Stretch>,
    pub chart: Vec<Point>,
}

/// A meeting's report.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MeetingReport {
    pub meeting_id: i64,
    pub title: String,
    #[schema(value_type = String)]
    pub starts_at: Instant,
    pub letterhead: Vec<String>,
    /// The threshold, seconds.
    pub after_s: u32,
    /// Seconds between samples.
    pub step_s: u32,
    /// Seconds per chart point.
    pub bucket_s: u32,
    pub sites: Vec<SiteReport>,
    /// The sites that could not be heard or seen, worst first: (site, stretches).
    pub troubled: Vec<String>,
}

/// The meeting as the report names it.
pub struct MeetingHead<'a> {
    pub id: i64,
    pub title: &'a str,
    pub starts_at: Instant,
}

/// Stretches of each trouble in `samples` (one device's, in time order), however short:
/// consecutive samples with the trouble, no further apart than one and a half steps.
pub fn stretches(samples: &[LinkSample], step_s: u32, device: &str) -> Vec<Stretch> {
    let step = i64::from(step_s.max(1));
    let mut out = Vec::new();
    for trouble in Trouble::ALL {
        let mut run: Option<(Instant, Instant)> = None;
        let close = |run: Option<(Instant, Instant)>, out: &mut Vec<Stretch>| {
            if let Some((from, to)) = run {
                out.push(Stretch {
                    trouble,
                    from,
                    seconds: u32::try_from(to.0 - from.0 + step).unwrap_or(u32::MAX),
                    device: device.to_owned(),
                });
            }
        };
        for s in samples {
            let on = trouble.of(s);
            run = match (run, on) {
                (Some((from, to)), true) if (s.at.0 - to.0) * 2 <= step * 3 => Some((from, s.at)),
                (r, true) => {
                    close(r, &mut out);
                    Some((s.at, s.at))
                }
                (r, false) => {
                    close(r, &mut out);
                    None
                }
            };
        }
        close(run, &mut out);
    }
    out.sort_by_key(|s| (s.from, s.trouble));
    out
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// Points of a chart of `samples` (the site's, in time order), `bucket_s` apart from
/// `origin`.
fn chart(samples: &[&LinkSample], origin: Instant, bucket_s: u32) -> Vec<Point> {
    let mut buckets: BTreeMap<u32, Vec<&LinkSample>> = BTreeMap::new();
    for s in samples {
        let t = u32::try_from((s.at.0 - origin.0).max(0)).unwrap_or(u32::MAX);
        buckets
            .entry(t / bucket_s.max(1) * bucket_s.max(1))
            .or_default()
            .push(s);
    }
    buckets
        .into_iter()
        .map(|(t, v)| {
            let n = v.len() as f32;
            let worst = |f: fn(&LinkSample) -> Option<f32>| {
                v.iter()
                    .filter_map(|s| f(s))
                    .fold(None, |m: Option<f32>, x| Some(m.map_or(x, |m| m.max(x))))
                    .map(|x| (x * 1000.0).round() / 10.0)
            };
            Point {
                t,
                down_kbps: mean(v.iter().map(|s| f64::from(s.down_kbps))).unwrap_or(0.0) as u32,
                up_kbps: mean(v.iter().map(|s| f64::from(s.up_kbps))).unwrap_or(0.0) as u32,
                loss_down_pct: worst(|s| s.loss_down),
                loss_up_pct: worst(|s| s.loss_up),
                cut_off: v.iter().filter(|s| s.cut_off()).count() as f32 / n,
                audio_only: v.iter().filter(|s| !s.cut_off() && s.audio_only).count() as f32 / n,
            }
        })
        .collect()
}

/// Build the report of `meeting` from its attendance, its link samples and the names of
/// the sites (`site_names`); `opts` gives the threshold and the letterhead.
pub fn build(
    meeting: MeetingHead<'_>,
    attendance: &[Attendance],
    chunks: &[LinkChunk],
    site_names: &BTreeMap<i64, String>,
    opts: &ReportOptions,
) -> MeetingReport {
    let after_s = u32::try_from(opts.after.as_secs()).unwrap_or(u32::MAX);
    let step_s = chunks.first().map_or(10, |c| u32::from(c.step_s.max(1)));
    // Each attendance's samples, in time order.
    let mut by_attendance: BTreeMap<i64, Vec<&LinkSample>> = BTreeMap::new();
    for c in chunks {
        by_attendance
            .entry(c.attendance_id)
            .or_default()
            .extend(c.samples.iter());
    }
    for v in by_attendance.values_mut() {
        v.sort_by_key(|s| s.at);
    }
    let origin = chunks
        .iter()
        .filter_map(|c| c.samples.first().map(|s| s.at))
        .min()
        .unwrap_or(meeting.starts_at);
    let end = chunks
        .iter()
        .filter_map(|c| c.samples.last().map(|s| s.at))
        .max()
        .unwrap_or(origin);
    // About 120 points a chart, whole minutes once the meeting is long enough.
    let span = u32::try_from((end.0 - origin.0).max(0)).unwrap_or(u32::MAX);
    let bucket_s = match span / 120 {
        0 => step_s,
        b if b < 60 => b.div_ceil(step_s) * step_s,
        b => b.div_ceil(60) * 60,
    };
    // Sites by id, then participants without a site by name.
    let mut groups: BTreeMap<(u8, i64, String), Vec<&Attendance>> = BTreeMap::new();
    for a in attendance {
        let key = match a.site_id {
            Some(id) => (0, id, String::new()),
            None => (1, 0, a.display_name.clone()),
        };
        groups.entry(key).or_default().push(a);
    }
    let mut sites = Vec::new();
    for ((_, _, own_name), rows) in groups {
        let site_id = rows[0].site_id;
        let site = match site_id {
            Some(id) => site_names
                .get(&id)
                .cloned()
                .unwrap_or_else(|| format!("#{id}")),
            None => own_name,
        };
        let mut devices: Vec<String> = rows.iter().map(|r| r.display_name.clone()).collect();
        devices.sort();
        devices.dedup();
        let mut samples: Vec<&LinkSample> = Vec::new();
        let mut found = Vec::new();
        for r in &rows {
            let mine = by_attendance.get(&r.id).map(Vec::as_slice).unwrap_or(&[]);
            samples.extend(mine);
            let owned: Vec<LinkSample> = mine.iter().map(|s| (*s).clone()).collect();
            found.extend(stretches(&owned, step_s, &r.display_name));
        }
        samples.sort_by_key(|s| s.at);
        found.sort_by_key(|s| (s.from, s.trouble));
        let total = |t: Trouble| {
            found
                .iter()
                .filter(|s| s.trouble == t)
                .map(|s| s.seconds)
                .sum()
        };
        sites.push(SiteReport {
            site_id: rows[0].site_id,
            site,
            devices,
            first_joined: rows.iter().map(|r| r.joined_at).min(),
            last_left: if rows.iter().any(|r| r.left_at.is_none()) {
                None
            } else {
                rows.iter().filter_map(|r| r.left_at).max()
            },
            minutes: covered_minutes(&rows),
            rejoins: rows.len().saturating_sub(1),
            samples: samples.len(),
            link: Figures::of(&samples),
            cut_off_s: total(Trouble::CutOff),
            unheard_s: total(Trouble::Unheard),
            audio_only_s: total(Trouble::AudioOnly),
            stretches: found.into_iter().filter(|s| s.seconds >= after_s).collect(),
            chart: chart(&samples, origin, bucket_s),
        });
    }
    let mut troubled: Vec<&SiteReport> = sites.iter().filter(|s| !s.stretches.is_empty()).collect();
    troubled.sort_by_key(|s| std::cmp::Reverse(s.stretches.iter().map(|x| x.seconds).sum::<u32>()));
    let troubled = troubled.into_iter().map(|s| s.site.clone()).collect();
    MeetingReport {
        meeting_id: meeting.id,
        title: meeting.title.to_owned(),
        starts_at: meeting.starts_at,
        letterhead: opts
            .letterhead
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        after_s,
        step_s,
        bucket_s,
        sites,
        troubled,
    }
}

/// Minutes at least one of `rows` was in (two devices at once count once).
fn covered_minutes(rows: &[&Attendance]) -> i64 {
    let mut spans: Vec<(i64, i64)> = rows
        .iter()
        .map(|r| (r.joined_at.0, r.joined_at.0 + r.seconds))
        .collect();
    spans.sort_unstable();
    let (mut total, mut reach) = (0i64, i64::MIN);
    for (from, to) in spans {
        let from = from.max(reach);
        if to > from {
            total += to - from;
            reach = to;
        }
    }
    (total + 30) / 60
}

/// One meeting of a site's last weeks (its page).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SiteMeeting {
    pub meeting_id: i64,
    pub title: String,
    #[schema(value_type = String)]
    pub from: Instant,
    pub minutes: u32,
    #[serde(flatten)]
    pub link: Figures,
    pub cut_off_s: u32,
    pub unheard_s: u32,
    pub audio_only_s: u32,
}

/// A site's meetings from its samples (`chunks`, oldest first), newest first; `title`
/// names a meeting.
pub fn site_meetings(chunks: &[LinkChunk], title: impl Fn(i64) -> String) -> Vec<SiteMeeting> {
    let mut by_meeting: BTreeMap<i64, Vec<&LinkChunk>> = BTreeMap::new();
    for c in chunks {
        by_meeting.entry(c.meeting_id).or_default().push(c);
    }
    let mut out: Vec<SiteMeeting> = by_meeting
        .into_iter()
        .map(|(id, cs)| {
            let step_s = cs.first().map_or(10, |c| u32::from(c.step_s.max(1)));
            let mut samples: Vec<&LinkSample> = cs.iter().flat_map(|c| &c.samples).collect();
            samples.sort_by_key(|s| s.at);
            let mut seconds = [0u32; 3];
            let mut per_attendance: BTreeMap<i64, Vec<LinkSample>> = BTreeMap::new();
            for c in &cs {
                per_attendance
                    .entry(c.attendance_id)
                    .or_default()
                    .extend(c.samples.iter().cloned());
            }
            for v in per_attendance.values_mut() {
                v.sort_by_key(|s| s.at);
                for s in stretches(v, step_s, "") {
                    seconds[s.trouble as usize] += s.seconds;
                }
            }
            SiteMeeting {
                meeting_id: id,
                title: title(id),
                from: samples.first().map_or(Instant(0), |s| s.at),
                minutes: (samples.len() as u32 * step_s + 30) / 60,
                link: Figures::of(&samples),
                cut_off_s: seconds[Trouble::CutOff as usize],
                unheard_s: seconds[Trouble::Unheard as usize],
                audio_only_s: seconds[Trouble::AudioOnly as usize],
            }
        })
        .collect();
    out.sort_by_key(|m| std::cmp::Reverse(m.from));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(at: i64) -> LinkSample {
        LinkSample {
            at: Instant(at),
            down_kbps: 600,
            up_kbps: 80,
            loss_down: Some(0.01),
            loss_up: Some(0.0),
            rtt_ms: Some(200),
            height: 360,
            heard: true,
            connected: true,
            ..LinkSample::default()
        }
    }

    fn cut(at: i64) -> LinkSample {
        LinkSample {
            up_kbps: 0,
            heard: false,
            ..ok(at)
        }
    }

    fn attendance(id: i64, site: Option<i64>, name: &str, from: i64, to: i64) -> Attendance {
        Attendance {
            id,
            meeting_id: 5,
            site_id: site,
            person_id: None,
            endpoint_id: None,
            display_name: name.into(),
            joined_at: Instant(from),
            left_at: Some(Instant(to)),
            seconds: to - from,
        }
    }

    #[test]
    fn a_stretch_lasts_from_its_first_sample_to_one_step_past_its_last() {
        // 10 s samples: fine, 20 s cut off (two samples), fine, muted silence, unheard.
        let mut v: Vec<LinkSample> = (0..4).map(|i| ok(i * 10)).collect();
        v.extend([cut(40), cut(50)]);
        v.push(ok(60));
        v.push(LinkSample {
            muted: true,
            heard: false,
            ..ok(70)
        });
        v.push(LinkSample {
            heard: false,
            audio_only: true,
            ..ok(80)
        });
        let s = stretches(&v, 10, "Xã A");
        assert_eq!(
            s.iter()
                .map(|x| (x.trouble, x.from.0, x.seconds))
                .collect::<Vec<_>>(),
            [
                (Trouble::CutOff, 40, 20),
                (Trouble::Unheard, 80, 10),
                (Trouble::AudioOnly, 80, 10)
            ],
            "a muted site's silence is no trouble"
        );
        // A gap in the samples (the site left) ends a stretch.
        let gap = [cut(0), cut(10), cut(60), cut(70), cut(80)];
        let s = stretches(&gap, 10, "Xã A");
        assert_eq!(
            s.iter().map(|x| (x.from.0, x.seconds)).collect::<Vec<_>>(),
            [(0, 20), (60, 30)]
        );
    }

    #[test]
    fn the_report_names_the_site_cut_off_longer_than_the_threshold_and_not_the_others() {
        let names: BTreeMap<i64, String> =
            [(1, "Xã Tả Van".to_owned()), (2, "Xã Bản Hồ".to_owned())].into();
        let rows = [
            attendance(10, Some(1), "Tả Van (máy phòng họp)", 0, 600),
            attendance(11, Some(2), "Bản Hồ", 0, 300),
            attendance(12, Some(2), "Bản Hồ", 320, 600),
            attendance(13, None, "Khách", 0, 600),
        ];
        let chunk = |attendance_id, site_id, samples: Vec<LinkSample>| LinkChunk {
            attendance_id,
            meeting_id: 5,
            site_id,
            step_s: 10,
            samples,
        };
        // Tả Van is cut off from 100 s to 190 s (90 s); Bản Hồ for 30 s; the guest never.
        let tv: Vec<LinkSample> = (0..60)
            .map(|i| {
                if (10..19).contains(&i) {
                    cut(i * 10)
                } else {
                    ok(i * 10)
                }
            })
            .collect();
        let bh: Vec<LinkSample> = (0..60)
            .map(|i| {
                if (3..6).contains(&i) {
                    cut(i * 10)
                } else {
                    ok(i * 10)
                }
            })
            .collect();
        let chunks = [
            chunk(10, Some(1), tv[..30].to_vec()),
            chunk(10, Some(1), tv[30..].to_vec()),
            chunk(11, Some(2), bh[..30].to_vec()),
            chunk(12, Some(2), bh[32..].to_vec()),
            chunk(13, None, (0..60).map(|i| ok(i * 10)).collect()),
        ];
        let r = build(
            MeetingHead {
                id: 5,
                title: "Giao ban tuần",
                starts_at: Instant(0),
            },
            &rows,
            &chunks,
            &names,
            &ReportOptions {
                after: Duration::from_secs(60),
                letterhead: "UBND TỈNH LÀO CAI\n  VĂN PHÒNG \n".into(),
            },
        );
        assert_eq!(r.letterhead, ["UBND TỈNH LÀO CAI", "VĂN PHÒNG"]);
        assert_eq!(r.troubled, ["Xã Tả Van"]);
        let tv = &r.sites[0];
        assert_eq!((tv.site.as_str(), tv.cut_off_s), ("Xã Tả Van", 90));
        assert_eq!(tv.stretches.len(), 1);
        assert_eq!((tv.stretches[0].from.0, tv.stretches[0].seconds), (100, 90));
        assert_eq!(tv.stretches[0].device, "Tả Van (máy phòng họp)");
        let bh = &r.sites[1];
        assert_eq!((bh.cut_off_s, bh.stretches.len(), bh.rejoins), (30, 0, 1));
        assert_eq!(bh.minutes, 10, "580 s in, rounded");
        assert_eq!(r.sites[2].site, "Khách");
        // The averages leave out what was cut off; the chart covers the meeting.
        assert_eq!((tv.link.down_kbps, tv.link.up_kbps), (Some(600), Some(80)));
        assert_eq!(r.bucket_s, 10);
        assert_eq!(tv.chart.len(), 60);
        assert!(tv.chart[12].cut_off > 0.99 && tv.chart[30].cut_off == 0.0);
    }

    #[test]
    fn a_site_s_page_sums_each_meeting() {
        let chunk = |meeting_id, attendance_id, from: i64, cut_from: i64| LinkChunk {
            attendance_id,
            meeting_id,
            site_id: Some(1),
            step_s: 10,
            samples: (0..12)
                .map(|i| {
                    let at = from + i * 10;
                    if at >= cut_from { cut(at) } else { ok(at) }
                })
                .collect(),
        };
        let weeks = [
            chunk(7, 70, 0, i64::MAX),
            chunk(8, 80, 604_800, 604_800 + 60),
        ];
        let m = site_meetings(&weeks, |id| format!("Giao ban {id}"));
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].meeting_id, m[0].cut_off_s, m[0].minutes), (8, 60, 2));
        assert_eq!((m[1].title.as_str(), m[1].cut_off_s), ("Giao ban 7", 0));
    }
}
