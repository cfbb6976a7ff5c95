//! A province's year of link history (issue 17): 270 sites in a weekly two-hour meeting,
//! sampled every 10 s and kept 365 days, written as the bridge writes it (a row per
//! participant and minute, a tick's rows in one transaction). Prints the store's size and
//! how long a meeting's report and a site's 30-day page take, on SQLite and, when
//! `CAUHOP_TEST_POSTGRES_URL` is set, on PostgreSQL. Targets: ≤ 1 GiB, ≤ 200 ms.
//!
//! `cargo bench -p cauhop-bench --bench history` for the year; under `cargo test` a
//! couple of small meetings on SQLite only, so the bench itself stays working.

use std::collections::BTreeMap;
use std::time::{Duration, Instant as Clock};

use cauhop_signaling::report::{self, MeetingHead, ReportOptions};
use cauhop_store::Instant;
use cauhop_store::link_history::{Grade, LinkChunk, LinkSample};
use cauhop_store::model::{NewAttendance, NewMeeting, NewSite, SiteKind};
use cauhop_store::{Backend, Store};

struct Size {
    sites: usize,
    meetings: i64,
    minutes: i64,
}

const STEP_S: i64 = 10;
const WEEK: i64 = 7 * 86_400;

/// A small generator, so every run writes the same year.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }
}

fn sample(rng: &mut Lcg, at: i64, weak: bool) -> LinkSample {
    let r = rng.next();
    let cut = weak && r.is_multiple_of(97);
    LinkSample {
        at: Instant(at),
        down_kbps: if weak { 150 + r % 200 } else { 600 + r % 900 },
        up_kbps: if cut { 0 } else { 60 + r % 300 },
        loss_down: Some((r % 40) as f32 / 400.0),
        loss_up: Some((r % 30) as f32 / 400.0),
        rtt_ms: Some(40 + r % (if weak { 600 } else { 80 })),
        jitter_ms: Some(r % 40),
        height: if weak { 180 } else { 360 },
        audio_only: weak && r.is_multiple_of(5),
        muted: !r.is_multiple_of(3),
        heard: !cut,
        connected: !cut,
        uplink: Some(if weak { Grade::Weak } else { Grade::Good }),
    }
}

async fn fill(store: &Store, size: &Size) -> anyhow::Result<(Vec<i64>, Vec<(i64, Instant)>)> {
    let province = store
        .create_site(&NewSite {
            code: "P".into(),
            name: "Tỉnh".into(),
            kind: SiteKind::Province,
            parent_id: None,
            down_kbps: 10_000,
            up_kbps: 10_000,
        })
        .await?;
    // The province, its districts (18 for 270 sites), the rest communes.
    let mut sites = vec![province.id];
    let districts = (size.sites / 15).max(1);
    for i in 1..size.sites {
        let district = i <= districts;
        let s = store
            .create_site(&NewSite {
                code: format!("X{i:03}"),
                name: format!("Điểm {i:03}"),
                kind: if district {
                    SiteKind::District
                } else {
                    SiteKind::Commune
                },
                parent_id: Some(if district {
                    province.id
                } else {
                    sites[1 + i % districts]
                }),
                down_kbps: 384,
                up_kbps: 128,
            })
            .await?;
        sites.push(s.id);
    }
    let now = Instant::now().0;
    let mut rng = Lcg(17);
    let mut meetings = Vec::new();
    for k in 0..size.meetings {
        let start = now - (size.meetings - k) * WEEK;
        // The store takes no meeting already over: each is booked ahead (its row's
        // times are not what the report reads), its samples timed a week apart.
        let booked = now + 86_400 + k * 3 * 3600;
        let m = store
            .create_meeting(
                &NewMeeting {
                    title: format!("Giao ban tuần {}", k + 1),
                    agenda: String::new(),
                    starts_at: Instant(booked),
                    ends_at: Instant(booked + size.minutes * 60),
                    rrule: None,
                    chair_site_id: province.id,
                    roster: vec![],
                },
                None,
            )
            .await?;
        let mut attendance = Vec::new();
        for &site in &sites {
            let id = store
                .start_attendance(
                    &NewAttendance {
                        meeting_id: m.id,
                        site_id: Some(site),
                        person_id: None,
                        endpoint_id: None,
                        display_name: format!("site {site}"),
                    },
                    Instant(start),
                )
                .await?;
            store
                .end_attendance(id, Instant(start + size.minutes * 60))
                .await?;
            attendance.push((id, site));
        }
        // A minute at a time, every site's row in one transaction, as the sampler does.
        for minute in 0..size.minutes {
            let chunks: Vec<LinkChunk> = attendance
                .iter()
                .map(|&(attendance_id, site)| LinkChunk {
                    attendance_id,
                    meeting_id: m.id,
                    site_id: Some(site),
                    step_s: STEP_S as u8,
                    samples: (0..60 / STEP_S)
                        .map(|i| sample(&mut rng, start + minute * 60 + i * STEP_S, site % 3 == 0))
                        .collect(),
                })
                .collect();
            store.put_link_chunks(&chunks).await?;
        }
        meetings.push((m.id, Instant(start)));
    }
    Ok((sites, meetings))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn run(store: &Store, size: &Size) -> anyhow::Result<()> {
    let t0 = Clock::now();
    let (sites, meetings) = fill(store, size).await?;
    let filled = t0.elapsed();
    let bytes = store.size_bytes().await?;
    let samples = size.sites as i64 * size.meetings * size.minutes * 60 / STEP_S;
    let names: BTreeMap<i64, String> = sites.iter().map(|&s| (s, format!("Xã {s}"))).collect();
    let (last, starts_at) = *meetings
        .last()
        .ok_or_else(|| anyhow::anyhow!("no meeting"))?;
    let mut report_times = Vec::new();
    let mut troubled = 0;
    for _ in 0..5 {
        let t = Clock::now();
        let attendance = store.attendance(last).await?;
        let chunks = store.meeting_links(last).await?;
        let r = report::build(
            MeetingHead {
                id: last,
                title: "Giao ban",
                starts_at,
            },
            &attendance,
            &chunks,
            &names,
            &ReportOptions::default(),
        );
        let json = serde_json::to_vec(&r)?;
        report_times.push(t.elapsed());
        troubled = r.troubled.len();
        assert_eq!(r.sites.len(), size.sites);
        assert!(json.len() > 1000);
    }
    let mut page_times = Vec::new();
    let since = Instant(Instant::now().0 - 30 * 86_400);
    let mut page_rows = 0;
    for i in 0..5 {
        let site = sites[(i * 37) % sites.len()];
        let t = Clock::now();
        let chunks = store.site_links(site, since).await?;
        let page = report::site_meetings(&chunks, |id| format!("#{id}"));
        page_times.push(t.elapsed());
        page_rows = page.len();
    }
    let (report_ms, page_ms) = (
        median(report_times).as_secs_f64() * 1000.0,
        median(page_times).as_secs_f64() * 1000.0,
    );
    println!(
        "| {:?} | {} | {} | {} | {} | {:.1} MiB | {:.1} B | {:.0} ms ({} troubled) | {:.0} ms ({} meetings) | {:.0} s |",
        store.backend(),
        size.sites,
        size.meetings,
        size.minutes,
        samples,
        bytes as f64 / (1024.0 * 1024.0),
        bytes as f64 / samples as f64,
        report_ms,
        troubled,
        page_ms,
        page_rows,
        filled.as_secs_f64()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let size = if full {
        Size {
            sites: 270,
            meetings: 52,
            minutes: 120,
        }
    } else {
        Size {
            sites: 20,
            meetings: 2,
            minutes: 10,
        }
    };
    println!(
        "| store | sites | meetings | minutes each | samples | store size | per sample | a meeting's report (median of 5) | a site's 30 days | writing took |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("history.db");
    let sqlite = Store::open(path.to_str().unwrap_or("history.db")).await?;
    run(&sqlite, &size).await?;
    if full && let Ok(base) = std::env::var("CAUHOP_TEST_POSTGRES_URL") {
        let url = cauhop_store::create_scratch_database(&base, "cauhop_history").await?;
        let pg = Store::open(&url).await?;
        assert_eq!(pg.backend(), Backend::Postgres);
        run(&pg, &size).await?;
    }
    Ok(())
}
