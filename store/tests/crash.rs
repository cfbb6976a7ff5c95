//! Crash test: a child process writes meetings in a loop and is killed with SIGKILL at
//! random moments; after each kill every meeting it reported as committed is there and
//! SQLite's integrity check passes.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant as WallClock};

use cauhop_store::model::{Invitation, MeetingRole, NewMeeting, NewSite, SiteKind};
use cauhop_store::{Instant, Store};
use rand::Rng;

const CHILD_ENV: &str = "CAUHOP_CRASH_CHILD_DB";

/// In the child (the same test binary, re-run with this test's name): write until killed.
#[tokio::test]
async fn crash_child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return; // an ordinary test run: nothing to do
    };
    let store = Store::open(&path).await.expect("open");
    let province = match store
        .sites(None, Default::default())
        .await
        .expect("sites")
        .items
        .first()
    {
        Some(s) => s.id,
        None => {
            store
                .create_site(&NewSite {
                    code: "P".into(),
                    name: "Tỉnh".into(),
                    kind: SiteKind::Province,
                    parent_id: None,
                    down_kbps: 1000,
                    up_kbps: 1000,
                })
                .await
                .expect("site")
                .id
        }
    };
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        let start = Instant::now().plus(86_400 + (i as i64) * 60);
        let m = store
            .create_meeting(
                &NewMeeting {
                    title: format!("Họp số {i}"),
                    agenda: "x".repeat(500),
                    starts_at: start,
                    ends_at: start.plus(30),
                    rrule: None,
                    chair_site_id: province,
                    roster: vec![Invitation {
                        site_id: province,
                        person_id: None,
                        role: MeetingRole::Chair,
                    }],
                },
                None,
            )
            .await
            .expect("write");
        // Reported only after the commit returned.
        writeln!(out, "committed {}", m.id).expect("stdout");
        out.flush().expect("flush");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_writer_loses_nothing_committed() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("crash.db");
    let db = db.to_str().expect("utf-8").to_owned();
    let exe = std::env::current_exe().expect("test binary");
    let mut rng = rand::rng();
    let mut committed: Vec<i64> = Vec::new();
    for round in 0..6 {
        let mut child = Command::new(&exe)
            .args([
                "crash_child_writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| {
                    l.strip_prefix("committed ")
                        .and_then(|n| n.parse::<i64>().ok())
                })
                .collect::<Vec<_>>()
        });
        let wait = Duration::from_millis(rng.random_range(150..900));
        let t = WallClock::now();
        while t.elapsed() < wait {
            std::thread::sleep(Duration::from_millis(10));
        }
        child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
        let _ = child.wait();
        let got = reader.join().expect("reader");
        committed.extend(&got);

        let store = Store::open(&db).await.expect("reopen after kill");
        assert_eq!(
            store.integrity_check().await.expect("check"),
            "ok",
            "round {round}"
        );
        for id in &committed {
            let m = store
                .meeting(*id)
                .await
                .unwrap_or_else(|e| panic!("round {round}: committed meeting {id} lost: {e}"));
            assert_eq!(m.roster.len(), 1, "meeting {id} kept its roster");
        }
        let total = store.count_meetings().await.expect("count");
        assert!(total as usize >= committed.len());
        eprintln!(
            "round {round}: killed after {wait:?}; {} committed this round, {} in all, {total} stored",
            got.len(),
            committed.len()
        );
        store.close().await;
    }
    assert!(
        committed.len() > 10,
        "the writer made progress ({} meetings)",
        committed.len()
    );
}
