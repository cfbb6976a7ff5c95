//! Seeding benchmark: what a whole province costs the store and the API.
//!
//! 1 province, 18 districts, 250 communes, 300 room endpoints, 268 officials and district
//! admins, and a year of weekly meetings (the province's Monday meeting with every site,
//! each district's weekly meeting with its communes), with a join link and an attendance
//! record per invited site. Then API latencies over real HTTP on loopback.
//!
//! `cargo bench -p cauhop-tests --bench province` runs it in full (SQLite, and PostgreSQL
//! when `CAUHOP_TEST_POSTGRES_URL` is set); under `cargo test` it runs a tiny smoke size.

use std::time::{Duration, Instant as Wall};

use cauhop_signaling::Options;
use cauhop_store::model::*;
use cauhop_store::{Instant, Store};
use cauhop_tests::api::{Api, As};
use cauhop_tests::bridge::Bridge;
use serde_json::json;

struct Size {
    districts: usize,
    communes: usize,
    endpoints: usize,
    weeks: i64,
    samples: usize,
}

const FULL: Size = Size {
    districts: 18,
    communes: 250,
    endpoints: 300,
    weeks: 52,
    samples: 200,
};
const SMOKE: Size = Size {
    districts: 2,
    communes: 6,
    endpoints: 8,
    weeks: 2,
    samples: 5,
};
const WEEK: i64 = 7 * 86_400;

fn pct(mut v: Vec<Duration>, p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

fn db_bytes(store: &Store, dir: &std::path::Path) -> u64 {
    if store.sqlite_path().is_none() {
        return 0;
    }
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

async fn run(bridge: Bridge, size: &Size, dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    let store = bridge.store.clone();
    let backend = format!("{:?}", store.backend());
    let t0 = Wall::now();
    let site = |code: String, name: String, kind, parent| NewSite {
        code,
        name,
        kind,
        parent_id: parent,
        down_kbps: 384,
        up_kbps: 128,
    };
    let province = store
        .create_site(&site("P".into(), "Tỉnh".into(), SiteKind::Province, None))
        .await?;
    let mut districts = Vec::new();
    for d in 0..size.districts {
        districts.push(
            store
                .create_site(&site(
                    format!("D{d:02}"),
                    format!("Huyện {d}"),
                    SiteKind::District,
                    Some(province.id),
                ))
                .await?,
        );
    }
    let mut communes: Vec<Vec<Site>> = vec![Vec::new(); size.districts];
    for c in 0..size.communes {
        let d = c % size.districts;
        communes[d].push(
            store
                .create_site(&site(
                    format!("C{c:03}"),
                    format!("Xã {c}"),
                    SiteKind::Commune,
                    Some(districts[d].id),
                ))
                .await?,
        );
    }
    let all: Vec<&Site> = std::iter::once(&province)
        .chain(&districts)
        .chain(communes.iter().flatten())
        .collect();
    let hash =
        cauhop_signaling::auth::hash_password("mật-khẩu-dài-2026").map_err(anyhow::Error::msg)?;
    store
        .create_person(
            "tinh",
            "Quản trị tỉnh",
            PersonRole::ProvinceAdmin,
            None,
            Some(&hash),
        )
        .await?;
    for (d, s) in districts.iter().enumerate() {
        store
            .create_person(
                &format!("huyen{d}"),
                "Quản trị huyện",
                PersonRole::DistrictAdmin,
                Some(s.id),
                Some(&hash),
            )
            .await?;
    }
    for s in all.iter().skip(1 + size.districts) {
        store
            .create_person(
                &format!("canbo{}", s.id),
                "Cán bộ xã",
                PersonRole::Official,
                Some(s.id),
                None,
            )
            .await?;
    }
    let mut keys = Vec::new();
    for n in 0..size.endpoints {
        let s = all[n % all.len()];
        keys.push(
            store
                .create_endpoint(&NewEndpoint {
                    site_id: s.id,
                    name: format!("Phòng họp {n}"),
                })
                .await?
                .key,
        );
    }
    let seeded_tree = t0.elapsed();

    // A year of weekly meetings, from next Monday 08:00 (Vietnam time).
    let now = Instant::now();
    let monday = Instant(now.0 - (now.0 + 7 * 3600 + 3 * 86_400).rem_euclid(WEEK) + WEEK + 3600);
    let t1 = Wall::now();
    let mut meetings = Vec::new();
    let mut create_times = Vec::new();
    for w in 0..size.weeks {
        let start = monday.plus(w * WEEK);
        let roster: Vec<Invitation> = all
            .iter()
            .skip(1)
            .map(|s| Invitation {
                site_id: s.id,
                person_id: None,
                role: MeetingRole::Participant,
            })
            .collect();
        let t = Wall::now();
        meetings.push(
            store
                .create_meeting(
                    &NewMeeting {
                        title: format!("Giao ban tỉnh tuần {w}"),
                        agenda: "Báo cáo tình hình kinh tế - xã hội".into(),
                        starts_at: start,
                        ends_at: start.plus(2 * 3600),
                        rrule: None,
                        chair_site_id: province.id,
                        roster,
                    },
                    None,
                )
                .await?,
        );
        create_times.push(t.elapsed());
        for (d, ds) in districts.iter().enumerate() {
            // Districts meet Tuesday to Friday afternoons; the same weekday never shares sites.
            let s = start.plus((1 + (d as i64 % 4)) * 86_400 + 6 * 3600);
            let roster = communes[d]
                .iter()
                .map(|c| Invitation {
                    site_id: c.id,
                    person_id: None,
                    role: MeetingRole::Participant,
                })
                .collect();
            let t = Wall::now();
            meetings.push(
                store
                    .create_meeting(
                        &NewMeeting {
                            title: format!("Giao ban huyện {d} tuần {w}"),
                            agenda: String::new(),
                            starts_at: s,
                            ends_at: s.plus(2 * 3600),
                            rrule: None,
                            chair_site_id: ds.id,
                            roster,
                        },
                        None,
                    )
                    .await?,
            );
            create_times.push(t.elapsed());
        }
    }
    let seeded_meetings = t1.elapsed();
    let t2 = Wall::now();
    let mut links = 0;
    for m in &meetings {
        for (i, inv) in m.roster.iter().enumerate() {
            store
                .create_link(&JoinLink {
                    jti: format!("{}-{i}", m.id),
                    meeting_id: m.id,
                    site_id: inv.site_id,
                    person_id: None,
                    role: inv.role,
                    expires_at: m.ends_at.plus(3600),
                    revoked_at: None,
                })
                .await?;
            let a = store
                .start_attendance(
                    &NewAttendance {
                        meeting_id: m.id,
                        site_id: Some(inv.site_id),
                        person_id: None,
                        endpoint_id: None,
                        display_name: "Phòng họp".into(),
                    },
                    m.starts_at,
                )
                .await?;
            store.end_attendance(a, m.ends_at).await?;
            links += 1;
        }
    }
    let seeded_records = t2.elapsed();
    let invitations: usize = meetings.iter().map(|m| m.roster.len()).sum();
    let bytes = dir.map(|d| db_bytes(&store, d)).unwrap_or(0);

    println!(
        "\n## {backend}: seeded {} sites, {} endpoints, {} meetings, {} invitations, {} links + {} attendance rows",
        all.len(),
        size.endpoints,
        meetings.len(),
        invitations,
        links,
        links
    );
    println!("| step | time |\n|---|---|");
    println!(
        "| sites, people, endpoints | {:.2} s |",
        seeded_tree.as_secs_f64()
    );
    println!(
        "| meetings (each one transaction with its overlap check) | {:.2} s ({:.1} ms each, p99 {:.1} ms) |",
        seeded_meetings.as_secs_f64(),
        seeded_meetings.as_secs_f64() * 1000.0 / meetings.len() as f64,
        pct(create_times, 0.99)
    );
    println!(
        "| links + attendance | {:.2} s |",
        seeded_records.as_secs_f64()
    );
    println!(
        "| store size ({}) | {:.1} MiB |",
        if bytes > 0 {
            "SQLite pages"
        } else {
            "pg_database_size"
        },
        store.size_bytes().await? as f64 / 1_048_576.0
    );
    if bytes > 0 {
        println!(
            "| files on disk (db + WAL before checkpoint) | {:.1} MiB |",
            bytes as f64 / 1_048_576.0
        );
        let b = tempfile::tempdir()?;
        let file = b.path().join("backup.db");
        let t = Wall::now();
        let n = store.backup_to(&file).await?;
        println!(
            "| `cauhop backup` (VACUUM INTO) | {:.2} s, {:.1} MiB |",
            t.elapsed().as_secs_f64(),
            n as f64 / 1_048_576.0
        );
    }

    // API latency over HTTP on loopback.
    let api = Api::new(bridge.url(""));
    let admin = api.login("tinh", "mật-khẩu-dài-2026").await?;
    let district = api.login("huyen0", "mật-khẩu-dài-2026").await?;
    let device = As::Device(keys[keys.len() - 1].clone());
    let week_from = monday.plus(20 * WEEK.min(size.weeks * WEEK / 2));
    let mid = meetings[meetings.len() / 2].id;
    let q = |a: Instant, b: Instant| {
        format!("from={}&to={}", urlenc(&a.rfc3339()), urlenc(&b.rfc3339()))
    };
    let cases: Vec<(&str, As, reqwest::Method, String, Option<serde_json::Value>)> = vec![
        (
            "GET /meetings (province, one week)",
            admin.clone(),
            reqwest::Method::GET,
            format!("/api/v1/meetings?{}", q(week_from, week_from.plus(WEEK))),
            None,
        ),
        (
            "GET /meetings (district admin, one week)",
            district.clone(),
            reqwest::Method::GET,
            format!("/api/v1/meetings?{}", q(week_from, week_from.plus(WEEK))),
            None,
        ),
        (
            "GET /meetings?limit=100 (province, all)",
            admin.clone(),
            reqwest::Method::GET,
            "/api/v1/meetings?limit=100".into(),
            None,
        ),
        (
            "GET /meetings/{id} (roster of 268)",
            admin.clone(),
            reqwest::Method::GET,
            format!("/api/v1/meetings/{}", meetings[0].id),
            None,
        ),
        (
            "GET /sites?limit=500",
            admin.clone(),
            reqwest::Method::GET,
            "/api/v1/sites?limit=500".into(),
            None,
        ),
        (
            "GET /endpoints?limit=500",
            admin.clone(),
            reqwest::Method::GET,
            "/api/v1/endpoints?limit=500".into(),
            None,
        ),
        (
            "GET /device/schedule",
            device.clone(),
            reqwest::Method::GET,
            "/api/v1/device/schedule".into(),
            None,
        ),
        (
            "POST /meetings/{id}/links",
            admin.clone(),
            reqwest::Method::POST,
            format!("/api/v1/meetings/{mid}/links"),
            Some(json!({"site_id": meetings[meetings.len() / 2].roster[0].site_id})),
        ),
        (
            "GET /meetings/{id}/attendance?format=csv",
            admin.clone(),
            reqwest::Method::GET,
            format!("/api/v1/meetings/{}/attendance?format=csv", meetings[0].id),
            None,
        ),
    ];
    println!("\n| API call ({backend}) | p50 | p99 |\n|---|---|---|");
    for (name, who, method, path, body) in cases {
        let mut times = Vec::new();
        for _ in 0..size.samples {
            let t = Wall::now();
            let (s, v) = api.call(&who, method.clone(), &path, body.as_ref()).await?;
            times.push(t.elapsed());
            anyhow::ensure!(s < 300, "{name}: {s} {v}");
        }
        println!(
            "| {name} | {:.2} ms | {:.2} ms |",
            pct(times.clone(), 0.5),
            pct(times, 0.99)
        );
    }
    // Creating a meeting checks every site's endpoint against a year of bookings.
    let mut times = Vec::new();
    for n in 0..size.samples.min(50) {
        let s = monday.plus(size.weeks * WEEK + n as i64 * 86_400);
        let body = json!({"title": "Họp đột xuất", "starts_at": s, "ends_at": s.plus(3600), "chair_site_id": province.id,
            "roster": all.iter().skip(1).map(|x| json!({"site_id": x.id, "role": "participant"})).collect::<Vec<_>>()});
        let t = Wall::now();
        let (st, v) = api.post(&admin, "/api/v1/meetings", &body).await?;
        times.push(t.elapsed());
        anyhow::ensure!(st == 201, "{st} {v}");
    }
    println!(
        "| POST /meetings (all sites, overlap check) | {:.2} ms | {:.2} ms |",
        pct(times.clone(), 0.5),
        pct(times, 0.99)
    );
    Ok(())
}

fn urlenc(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let size = if full { &FULL } else { &SMOKE };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let store =
            Store::open(dir.path().join("cauhop.db").to_str().unwrap_or("cauhop.db")).await?;
        run(
            Bridge::start_on(store, Options::default(), None).await?,
            size,
            Some(dir.path()),
        )
        .await?;
        if let Ok(base) = std::env::var("CAUHOP_TEST_POSTGRES_URL") {
            let url = cauhop_store::create_scratch_database(&base, "cauhop_bench").await?;
            run(
                Bridge::start_on(Store::open(&url).await?, Options::default(), None).await?,
                size,
                None,
            )
            .await?;
        }
        Ok(())
    })
}
