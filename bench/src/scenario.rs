//! The scenarios, and one run of a scenario against one SFU: join everyone, warm up,
//! measure, stop publishing, drain, and close every ledger against what was published.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::book::{NOT_FORWARDED_US, Tally};
use crate::cauhop_target::CauhopTarget;
use crate::janus::JanusTarget;
use crate::peer::{CAMERA, Participant, PeerSpec, RunShared};
use crate::proc_stat;
use crate::report::Report;
use crate::stamp::AUDIO;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// N sites, each sending camera and microphone and receiving the others.
    Meeting,
    /// 1-3 publishers (the province chair) to N receive-only sites.
    Broadcast,
    /// N sites with microphones only, a few of them speaking.
    Audio,
    /// The province's meeting (cauhop only): the chair and three more speakers taking
    /// 20 s turns, everyone with a three-layer camera, the silent microphones with DTX,
    /// every site showing its slots as the page does (a main tile and six thumbnails).
    Province,
}

#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub kind: Kind,
    /// Sites: everyone in `meeting` and `audio`, the receivers in `broadcast`.
    pub n: usize,
    /// Publishers in `broadcast`; speaking sites in `audio` (ignored in `meeting`).
    pub publishers: usize,
}

/// Loud enough to be the speaker; the others send silence, as a muted browser does.
const SPEAKING: u8 = 30;
const SILENT: u8 = 127;

/// One participant of a scenario.
#[derive(Debug, Clone)]
pub struct Role {
    /// The number its stamps carry, from 1.
    pub number: u32,
    pub spec: PeerSpec,
    /// Publishers it receives (Janus subscribes to feeds by name; cauhop sends what its
    /// allocation chooses from the whole room).
    pub follows: Vec<u32>,
    /// Publishers it shows large (top layer); the rest as thumbnails (lowest layer).
    /// cauhop's allocator decides this itself (speaker large, last-N thumbnails); Janus
    /// clients ask for it, so they are told the same.
    pub large: Vec<u32>,
}

impl Role {
    pub fn publishes(&self) -> bool {
        self.spec.audio.is_some() || !self.spec.layers.is_empty()
    }

    pub fn subscribes(&self) -> bool {
        !self.follows.is_empty()
    }
}

impl Scenario {
    pub fn label(&self) -> String {
        match self.kind {
            Kind::Meeting => format!("meeting {}×{}", self.n, self.n),
            Kind::Broadcast => format!("broadcast {}→{}", self.publishers.max(1), self.n),
            Kind::Audio => format!("audio {} ({} speaking)", self.n, self.speakers()),
            Kind::Province => format!("province {}", self.n),
        }
    }

    fn speakers(&self) -> usize {
        self.publishers.clamp(1, self.n.max(1))
    }

    pub fn roles(&self) -> Vec<Role> {
        let camera = |level| PeerSpec {
            audio: Some(level),
            layers: CAMERA.to_vec(),
            ..PeerSpec::default()
        };
        let level = |i: usize, speakers: usize| if i < speakers { SPEAKING } else { SILENT };
        match self.kind {
            Kind::Meeting => {
                let all: Vec<u32> = (1..=self.n as u32).collect();
                (0..self.n)
                    .map(|i| Role {
                        number: i as u32 + 1,
                        spec: camera(level(i, 1)),
                        follows: all.iter().copied().filter(|&n| n != i as u32 + 1).collect(),
                        large: vec![1],
                    })
                    .collect()
            }
            Kind::Broadcast => {
                let p = self.publishers.clamp(1, 3);
                let pubs: Vec<u32> = (1..=p as u32).collect();
                let mut roles: Vec<Role> = (0..p)
                    .map(|i| Role {
                        number: i as u32 + 1,
                        spec: camera(level(i, 1)),
                        follows: Vec::new(),
                        large: Vec::new(),
                    })
                    .collect();
                roles.extend((0..self.n).map(|i| Role {
                    number: (p + i) as u32 + 1,
                    spec: PeerSpec::default(),
                    follows: pubs.clone(),
                    large: pubs.clone(),
                }));
                roles
            }
            Kind::Audio => {
                let s = self.speakers();
                (0..self.n)
                    .map(|i| Role {
                        number: i as u32 + 1,
                        spec: PeerSpec {
                            audio: Some(level(i, s)),
                            ..PeerSpec::default()
                        },
                        // Janus has no voice selection: its clients subscribe to the
                        // speakers, or every site would receive N-1 streams.
                        // A speaker hears the other speakers; alone, it follows nobody.
                        follows: (1..=s as u32).filter(|&n| n != i as u32 + 1).collect(),
                        large: Vec::new(),
                    })
                    .collect()
            }
            Kind::Province => {
                let all: Vec<u32> = (1..=self.n as u32).collect();
                // The page's default layout: thumbnails 146 px tall, the main tile twice
                // that (web-client/app.js, sendView).
                let view = std::iter::once(292).chain([146; 6]).collect::<Vec<u16>>();
                let speakers = 4.min(self.n) as u32;
                (0..self.n)
                    .map(|i| {
                        let number = i as u32 + 1;
                        let speaker = (i as u32) < speakers;
                        Role {
                            number,
                            spec: PeerSpec {
                                audio: Some(if speaker { SPEAKING } else { SILENT }),
                                layers: CAMERA.to_vec(),
                                turn: speaker.then_some((i as u32, speakers)),
                                dtx: true,
                                view: view.clone(),
                            },
                            follows: all.iter().copied().filter(|&n| n != number).collect(),
                            large: vec![1],
                        }
                    })
                    .collect()
            }
        }
    }
}

/// Joining happens in two passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Publish,
    Subscribe,
}

pub enum Target {
    Cauhop(CauhopTarget),
    Janus(JanusTarget),
}

impl Target {
    pub fn name(&self) -> &'static str {
        match self {
            Target::Cauhop(_) => "cauhop",
            Target::Janus(_) => "janus 1.1.2",
        }
    }

    pub fn pid(&self) -> u32 {
        match self {
            Target::Cauhop(t) => t.pid,
            Target::Janus(t) => t.pid,
        }
    }

    /// Where a client's sockets bind: for cauhop its own loopback address per site (the
    /// bridge limits joins per address, as it should for 100 communes on 100 links).
    fn client_ip(&self, loopback: IpAddr, number: u32) -> IpAddr {
        match self {
            Target::Cauhop(_) if loopback == IpAddr::from([127, 0, 0, 1]) => {
                IpAddr::from([127, 0, (number / 200) as u8, (number % 200) as u8 + 10])
            }
            Target::Cauhop(_) => loopback,
            Target::Janus(_) => IpAddr::from(crate::janus::MEDIA_IP),
        }
    }

    async fn connect(
        &self,
        role: &Role,
        phase: Phase,
        me: Arc<Participant>,
        run: Arc<RunShared>,
        ip: IpAddr,
    ) -> anyhow::Result<(Vec<tokio::task::JoinHandle<()>>, u64)> {
        let ip = self.client_ip(ip, role.number);
        match self {
            // One peer connection does both: publishers join first, then the others.
            Target::Cauhop(t) => {
                if role.publishes() == (phase == Phase::Publish) {
                    t.connect(role, me, run, ip).await
                } else {
                    Ok((Vec::new(), 0))
                }
            }
            Target::Janus(t) => t.connect(role, phase, me, run, ip).await,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub warmup: Duration,
    pub duration: Duration,
    /// After publishing stops, how long packets in flight (and repairs) may take.
    pub drain: Duration,
    pub ip: IpAddr,
    /// Participants joining at once.
    pub parallel: usize,
    /// Print progress on stderr.
    pub progress: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            warmup: Duration::from_secs(8),
            duration: Duration::from_secs(20),
            drain: Duration::from_millis(1500),
            ip: IpAddr::from([127, 0, 0, 1]),
            parallel: 10,
            progress: true,
        }
    }
}

/// Run `scenario` against `target` and report.
pub async fn run(target: &Target, scenario: &Scenario, opt: &RunOptions) -> anyhow::Result<Report> {
    if scenario.kind == Kind::Province && matches!(target, Target::Janus(_)) {
        bail!("the province scenario runs against cauhop only: Janus has no slots to fill");
    }
    let roles = scenario.roles();
    let run = RunShared::new();
    let people: Vec<Arc<Participant>> = roles
        .iter()
        .map(|r| {
            Arc::new(Participant {
                number: r.number,
                ..Participant::default()
            })
        })
        .collect();
    let say = |s: String| {
        if opt.progress {
            eprintln!("  [{}] {s}", target.name());
        }
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut pcs = 0;
    let mut problems = Vec::new();
    // Publishers first, all of them up before anyone subscribes: Janus subscribers name
    // the feeds they want, and Janus offers a feed only once its media flows.
    for phase in [Phase::Publish, Phase::Subscribe] {
        let mut joined = 0;
        for batch in roles.chunks(opt.parallel.max(1)) {
            let joins = batch.iter().map(|r| {
                let i = (r.number - 1) as usize;
                target.connect(r, phase, people[i].clone(), run.clone(), opt.ip)
            });
            for r in futures_util::future::join_all(joins).await {
                let (t, n) = r?;
                joined += usize::from(n > 0);
                tasks.extend(t);
                pcs += n;
            }
            // Each wave's handshakes finish before the next starts, as sites trickle in
            // before a meeting; 300 DTLS handshakes at once on two cores time out.
            if let Err(e) = wait_connected(&people, pcs, target.name()).await {
                problems.push(e.to_string());
            }
        }
        say(format!("{phase:?}: {joined} joined"));
    }
    let up: u64 = people
        .iter()
        .map(|p| p.connected.load(Ordering::Relaxed))
        .sum();
    if up == 0 {
        bail!("{}: no peer connection came up", target.name());
    }
    // A site whose handshake failed is a finding of the run, not the end of it: the
    // others are measured, and the report says how many never came up.
    if let Err(e) = wait_connected(&people, pcs, target.name()).await {
        problems.push(e.to_string());
    }
    let setup = started.elapsed();
    say(format!(
        "{pcs} peer connections up in {setup:.1?}; warming up {:?}",
        opt.warmup
    ));
    tokio::time::sleep(opt.warmup).await;

    let pid = target.pid();
    let me = std::process::id();
    let (cpu0, gen0) = (proc_stat::cpu_seconds(pid)?, proc_stat::cpu_seconds(me)?);
    let t0 = Instant::now();
    run.measuring.store(true, Ordering::Relaxed);
    say(format!("measuring {:?}", opt.duration));
    tokio::time::sleep(opt.duration).await;
    run.measuring.store(false, Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    let (cpu1, gen1) = (proc_stat::cpu_seconds(pid)?, proc_stat::cpu_seconds(me)?);
    let (rss, peak) = proc_stat::memory_kib(pid)?;

    run.publishing.store(false, Ordering::Relaxed);
    tokio::time::sleep(opt.drain).await;
    let _ = run.stop.send(true);
    for t in &tasks {
        t.abort();
    }

    let mut report = Report {
        sfu: target.name().into(),
        scenario: scenario.label(),
        secs,
        setup_secs: setup.as_secs_f64(),
        forwarded_packets: run.rx_packets.load(Ordering::Relaxed),
        forwarded_bytes: run.rx_bytes.load(Ordering::Relaxed),
        sfu_cpu_secs: cpu1 - cpu0,
        generator_cpu_secs: gen1 - gen0,
        rss_kib: rss,
        peak_rss_kib: peak,
        p50_us: run.delay.quantile(0.5),
        p99_us: run.delay.quantile(0.99),
        max_us: run.delay.max(),
        audio_us: (
            run.audio_delay.quantile(0.5),
            run.audio_delay.quantile(0.99),
            run.audio_delay.max(),
        ),
        video_us: (
            run.video_delay.quantile(0.5),
            run.video_delay.quantile(0.99),
            run.video_delay.max(),
        ),
        m_lines: run.m_lines.load(Ordering::Relaxed),
        ..Report::default()
    };
    report.problems = problems;
    settle_books(&people, &mut report);
    Ok(report)
}

/// Wait until `pcs` peer connections are up.
async fn wait_connected(people: &[Arc<Participant>], pcs: u64, sfu: &str) -> anyhow::Result<()> {
    let connected = || {
        people
            .iter()
            .map(|p| p.connected.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let settled = || {
        connected()
            + people
                .iter()
                .map(|p| p.never_up.load(Ordering::Relaxed))
                .sum::<u64>()
    };
    let wait = Duration::from_secs(30);
    let until = Instant::now() + wait;
    while settled() < pcs {
        if Instant::now() > until {
            bail!(
                "{sfu}: only {} of {pcs} peer connections up after {wait:?}",
                connected()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if connected() < pcs {
        bail!(
            "{sfu}: {} of {pcs} peer connections failed to come up",
            pcs - connected()
        );
    }
    Ok(())
}

/// Close every ledger against the publishers' counts and add them up.
fn settle_books(people: &[Arc<Participant>], report: &mut Report) {
    let by_number = |n: u32| people.iter().find(|p| p.number == n);
    let mut tally = Tally::default();
    for p in people {
        report.own += p.own.load(Ordering::Relaxed);
        report.foreign += p.foreign.load(Ordering::Relaxed);
        if p.failed.load(Ordering::Relaxed) {
            report
                .problems
                .push(format!("participant {} lost its session", p.number));
        }
        let Ok(mut books) = p.books.lock() else {
            continue;
        };
        for (&(sender, stream), book) in books.iter_mut() {
            let Some(publisher) = by_number(sender) else {
                report.problems.push(format!(
                    "{} received from unknown sender {sender}",
                    p.number
                ));
                continue;
            };
            let s = usize::from(stream).min(3);
            let published = publisher.sent[s].load(Ordering::Relaxed);
            let last_sent = publisher.last_sent_us[s].load(Ordering::Relaxed);
            if published == 0 {
                report.problems.push(format!(
                    "{} received stream {stream} of {sender}, which published none",
                    p.number
                ));
                continue;
            }
            // Still forwarded at the end: whatever did not arrive after the last packet
            // received was lost.
            if book
                .last_sent_us()
                .is_some_and(|t| last_sent.saturating_sub(t) <= NOT_FORWARDED_US)
            {
                book.close((published - 1) as u32);
            }
            let t = book.tally();
            if t.received + t.lost != t.expected {
                report.problems.push(format!(
                    "{} from {sender}/{stream}: {} received + {} lost != {} expected",
                    p.number, t.received, t.lost, t.expected
                ));
            }
            if t.received > published || book.last().is_some_and(|l| u64::from(l) >= published) {
                report.problems.push(format!(
                    "{} from {sender}/{stream}: received beyond the {published} published",
                    p.number
                ));
            }
            if t.lost > report.worst.1.lost {
                report.worst = (format!("{} from {sender}/{stream}", p.number), t);
            }
            if stream == AUDIO {
                report.audio += t;
            } else {
                report.video += t;
            }
            tally += t;
        }
    }
    report.published = people
        .iter()
        .flat_map(|p| p.sent.iter())
        .map(|c| c.load(Ordering::Relaxed))
        .sum();
    report.total = tally;
    if report.own > 0 {
        report.problems.push(format!(
            "{} packets of their own media came back",
            report.own
        ));
    }
    if report.foreign > 0 {
        report
            .problems
            .push(format!("{} packets without a stamp", report.foreign));
    }
    if report.p50_us == Some(0) {
        report.problems.push("delay p50 is 0 µs".into());
    }
}
