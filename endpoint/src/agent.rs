//! The agent's control loop: follow the schedule, hold the meeting session (signaling and
//! media, `session.rs`), rejoin after any loss, report health, back off on every failure.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::backoff::Backoff;
use crate::bridge::{BridgeClient, BridgeError};
use crate::check::{self, Plan, Verdict, judge};
use crate::follower::{Action, check_due, decide};
use crate::media::MediaConfig;
use crate::session::{End, Session, join};

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub bridge: String,
    pub key: String,
    /// How often the schedule is fetched while all is well.
    pub poll: Duration,
    pub health_every: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Longest wait between attempts to get back into a meeting that is on: a room must
    /// not sit out a meeting because the bridge restarted a minute ago.
    pub rejoin_max: Duration,
    pub media: MediaConfig,
    /// Run link checks at all (on by default).
    pub link_check: bool,
    /// Run the link check when a meeting starts within this (and at start-up)...
    pub check_lead: Duration,
    /// ...unless the last one is younger than this.
    pub check_max_age: Duration,
    pub check_plan: Plan,
    /// What the agent trusts in the bridge's certificate (`None`: the public web's roots).
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl AgentConfig {
    pub fn new(bridge: &str, key: &str) -> Self {
        Self {
            bridge: bridge.to_owned(),
            key: key.to_owned(),
            poll: Duration::from_secs(10),
            health_every: Duration::from_secs(5),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            rejoin_max: Duration::from_secs(5),
            media: MediaConfig::default(),
            link_check: true,
            check_lead: Duration::from_secs(15 * 60),
            check_max_age: Duration::from_secs(30 * 60),
            check_plan: Plan::default(),
            tls: None,
        }
    }
}

/// What the agent is doing, for its health report, its log and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentStatus {
    pub state: &'static str,
    pub meeting: Option<i64>,
    /// Our participant id in the current (or last) meeting session.
    pub participant: Option<String>,
    /// Times the bridge refused the key (wrong or revoked); each is followed by a backoff.
    pub key_refusals: u32,
    pub waits: Vec<Duration>,
    pub last_error: Option<String>,
    /// Sessions lost and rejoined (link drops, bridge restarts).
    pub rejoins: u32,
    /// Media paths recovered by an ICE restart inside a session.
    pub ice_restarts: u32,
    /// `udp`, or `tcp` once media goes over TCP to the bridge's web port (configured,
    /// or chosen because UDP never got through).
    pub media_over: &'static str,
    /// The last link check: verdict and figures, as reported to the bridge.
    pub link_check: Option<serde_json::Value>,
}

fn set(status: &Mutex<AgentStatus>, f: impl FnOnce(&mut AgentStatus)) {
    let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut s);
}

/// Run until `shutdown` flips to true.
pub async fn run(
    cfg: AgentConfig,
    status: Arc<Mutex<AgentStatus>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let client = match &cfg.tls {
        Some(tls) => BridgeClient::with_tls(&cfg.bridge, &cfg.key, tls.clone()),
        None => BridgeClient::new(&cfg.bridge, &cfg.key),
    };
    let mut backoff = Backoff::new(cfg.backoff_base, cfg.backoff_max);
    let mut rejoin = Backoff::new(cfg.backoff_base, cfg.rejoin_max);
    let mut session: Option<Session> = None;
    // The meeting we were in when the session was lost: retried quickly, not at the
    // schedule's polling pace.
    let mut lost: Option<i64> = None;
    let mut last_health = tokio::time::Instant::now() - cfg.health_every;
    let mut rates = Rates::default();
    let mut last_check: Option<i64> = None;
    // ICE restarts of sessions already over; the running one's are in its view.
    let mut restarts_before = 0;
    let mut checking: Option<tokio::task::JoinHandle<()>> = None;
    // Sessions in a row whose media never started over UDP; at `UDP_TRIES` the agent
    // carries its media over TCP to the bridge's HTTPS port from then on.
    let mut udp_failures = 0;
    let mut media = cfg.media.clone();
    set(&status, |s| {
        s.state = "starting";
        s.media_over = if media.media_tcp.is_some() {
            "tcp"
        } else {
            "udp"
        };
    });
    loop {
        if let Some(end) = session.as_ref().and_then(Session::ended) {
            if let Some(s) = session.take() {
                restarts_before += s.view.borrow().ice_restarts;
                if let End::Lost(why) = &end {
                    warn!(meeting = s.meeting, "session lost ({why}); rejoining");
                    lost = Some(s.meeting);
                    let never_connected = s.view.borrow().media == "connecting";
                    if let Some(tcp) =
                        tcp_fallback(&media, &cfg.bridge, never_connected, &mut udp_failures)
                    {
                        warn!(
                            %tcp,
                            "media never got through over UDP in {UDP_TRIES} sessions: \
                             carrying it over TCP to the bridge's web port from now on \
                             (ask the IT officer to open UDP to the bridge's media port)"
                        );
                        media.media_tcp = Some(tcp);
                        set(&status, |st| st.media_over = "tcp");
                    }
                }
            }
            set(&status, |s| {
                s.state = if lost.is_some() { "rejoining" } else { "idle" };
                s.meeting = None;
            });
        }
        if let Some(s) = &session {
            let v = s.view.borrow();
            set(&status, |st| {
                st.state = media_state(v.media);
                st.ice_restarts = restarts_before + v.ice_restarts;
            });
        }
        let schedule = client.schedule().await;
        if schedule.is_err() && lost.is_some() {
            // The bridge itself is restarting: keep the short rejoin pace.
            let w = rejoin.next(rand::random());
            if let Err(e) = &schedule {
                warn!("bridge unreachable while rejoining: {e}");
            }
            set(&status, |s| s.waits.push(w));
            if sleep_or_shutdown(w, &mut shutdown).await {
                return;
            }
            continue;
        }
        let wait = match schedule {
            Ok(list) => {
                backoff.reset();
                let slots: Vec<_> = list.iter().map(|m| m.slot()).collect();
                let mut wait = cfg.poll;
                let now = chrono::Utc::now().timestamp();
                let due = cfg.link_check
                    && (last_check.is_none()
                        || check_due(
                            now,
                            &slots,
                            last_check,
                            cfg.check_lead.as_secs() as i64,
                            cfg.check_max_age.as_secs() as i64,
                        ));
                if due && session.is_none() && checking.as_ref().is_none_or(|t| t.is_finished()) {
                    last_check = Some(now);
                    checking = Some(tokio::spawn(link_check(
                        client.clone(),
                        cfg.media.media_via,
                        cfg.check_plan,
                        status.clone(),
                    )));
                }
                let action = decide(session.as_ref().map(|s| s.meeting), &slots);
                if !matches!(action, Action::Join(id) if Some(id) == lost) {
                    lost = None;
                }
                match action {
                    Action::Stay => {
                        if session.is_none() {
                            set(&status, |s| s.state = "idle");
                        }
                    }
                    Action::Leave => {
                        if let Some(s) = session.take() {
                            info!(meeting = s.meeting, "meeting closed: leaving");
                            s.leave();
                        }
                        set(&status, |s| {
                            s.state = "idle";
                            s.meeting = None;
                        });
                    }
                    Action::Join(id) => {
                        set(&status, |s| s.state = "joining");
                        match join(&client.ws_url(), client.key(), id, &media, client.tls()).await {
                            Ok(s) => {
                                let participant = s.view.borrow().participant.clone();
                                info!(meeting = id, %participant, "joined the meeting");
                                session = Some(s);
                                if lost.take().is_some() {
                                    set(&status, |st| st.rejoins += 1);
                                }
                                rejoin.reset();
                                set(&status, |st| {
                                    st.state = "connecting";
                                    st.meeting = Some(id);
                                    st.participant = Some(participant);
                                });
                                wait = Duration::from_millis(500);
                            }
                            Err(e) => {
                                warn!(meeting = id, "cannot join: {e:#}");
                                wait = if lost.is_some() {
                                    rejoin.next(rand::random())
                                } else {
                                    backoff.next(rand::random())
                                };
                                set(&status, |s| {
                                    s.waits.push(wait);
                                    s.last_error = Some(format!("{e:#}"));
                                });
                            }
                        }
                    }
                }
                wait
            }
            Err(BridgeError::Unauthorized) => {
                error!(
                    "the bridge refused this device's key; ask the district IT officer for a new one"
                );
                let w = backoff.next(rand::random());
                set(&status, |s| {
                    s.state = "refused";
                    s.key_refusals += 1;
                    s.waits.push(w);
                    s.last_error = Some(BridgeError::Unauthorized.to_string());
                });
                w
            }
            Err(e) => {
                warn!("{e}");
                let w = backoff.next(rand::random());
                set(&status, |s| {
                    s.state = "offline";
                    s.waits.push(w);
                    s.last_error = Some(e.to_string());
                });
                w
            }
        };
        if last_health.elapsed() >= cfg.health_every {
            last_health = tokio::time::Instant::now();
            let report = {
                let s = status.lock().unwrap_or_else(|e| e.into_inner());
                let mut r = serde_json::json!({
                    "version": env!("CARGO_PKG_VERSION"),
                    "state": s.state,
                    "meeting": s.meeting,
                    "rejoins": s.rejoins,
                    "media_over": s.media_over,
                });
                if let Some(c) = &s.link_check {
                    r["link_check"] = c.clone();
                }
                if let Some(sess) = &session {
                    let v = sess.view.borrow();
                    let (send_kbps, recv_kbps) = rates.update(&sess.counters);
                    r["media"] = serde_json::json!({
                        "state": v.media,
                        "send_kbps": send_kbps,
                        "recv_kbps": recv_kbps,
                        "rtt_ms": v.link.rtt_ms.map(|x| x.round()),
                        "loss": v.link.loss,
                        "ice_restarts": v.ice_restarts,
                    });
                } else {
                    rates = Rates::default();
                }
                r
            };
            if let Err(e) = client.health(&report).await {
                warn!("health report not delivered: {e}");
            }
        }
        if sleep_or_shutdown(wait.min(cfg.health_every), &mut shutdown).await {
            if let Some(s) = session.take() {
                s.leave();
            }
            return;
        }
    }
}

/// Sessions in a row without media over UDP before the agent switches to TCP.
pub const UDP_TRIES: u32 = 2;

/// After a lost session: the TCP address to carry media to from now on, when UDP has
/// now failed `UDP_TRIES` times in a row and the bridge is reached over HTTPS (where it
/// takes ICE over TCP). A session that got media resets the count.
fn tcp_fallback(
    media: &MediaConfig,
    bridge: &str,
    never_connected: bool,
    failures: &mut u32,
) -> Option<std::net::SocketAddr> {
    if media.media_tcp.is_some() {
        return None;
    }
    if !never_connected {
        *failures = 0;
        return None;
    }
    *failures += 1;
    if *failures < UDP_TRIES {
        return None;
    }
    let url = reqwest::Url::parse(bridge).ok()?;
    if url.scheme() != "https" {
        return None;
    }
    let host = url.host_str()?.trim_matches(['[', ']']).to_owned();
    let port = url.port_or_known_default()?;
    use std::net::ToSocketAddrs;
    (host.as_str(), port).to_socket_addrs().ok()?.next()
}

/// Check the link and record the result for the health report (and the log).
async fn link_check(
    client: BridgeClient,
    via: Option<std::net::SocketAddr>,
    plan: Plan,
    status: Arc<Mutex<AgentStatus>>,
) {
    info!("checking the link to the bridge");
    let (verdict, report) = match check::run(&client, via, plan).await {
        Ok(f) => {
            let (v, why) = judge(&f);
            let mut r = serde_json::to_value(f).unwrap_or_default();
            r["verdict"] = serde_json::json!(v);
            r["reasons"] = serde_json::json!(why);
            (v, r)
        }
        Err(e) => (
            Verdict::NoGo,
            serde_json::json!({"verdict": Verdict::NoGo, "reasons": [e.to_string()]}),
        ),
    };
    let mut report = report;
    report["at"] = serde_json::json!(chrono::Utc::now().timestamp());
    match verdict {
        Verdict::Go => info!(%report, "link check: go"),
        Verdict::Weak => warn!(%report, "link check: weak (audio and small video)"),
        Verdict::NoGo => error!(%report, "link check: no-go; tell the district IT officer"),
    }
    set(&status, |s| s.link_check = Some(report));
}

/// True when the agent is told to stop.
async fn sleep_or_shutdown(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = shutdown.changed() => true,
    }
}

fn media_state(media: &'static str) -> &'static str {
    match media {
        "connected" => "in_meeting",
        "interrupted" | "restarting" => "reconnecting",
        _ => "connecting",
    }
}

/// Send and receive bitrates between two health reports.
#[derive(Default)]
struct Rates {
    last: Option<(tokio::time::Instant, u64, u64)>,
}

impl Rates {
    fn update(&mut self, c: &crate::media::MediaCounters) -> (u64, u64) {
        let now = tokio::time::Instant::now();
        let sent = c.bytes_sent.load(Ordering::Relaxed);
        let recv = c.bytes_received.load(Ordering::Relaxed);
        let out = match self.last {
            Some((t, s0, r0)) => {
                let secs = now.duration_since(t).as_secs_f64().max(0.001);
                let kbps = |d: u64| (d as f64 * 8.0 / 1000.0 / secs).round() as u64;
                (kbps(sent.saturating_sub(s0)), kbps(recv.saturating_sub(r0)))
            }
            None => (0, 0),
        };
        self.last = Some((now, sent, recv));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_goes_over_tcp_after_udp_never_got_through_twice() {
        let media = MediaConfig::default();
        let https = "https://127.0.0.1:8443";
        let mut failures = 0;
        assert_eq!(tcp_fallback(&media, https, true, &mut failures), None);
        // A session that got media in between starts the count again.
        assert_eq!(tcp_fallback(&media, https, false, &mut failures), None);
        assert_eq!(tcp_fallback(&media, https, true, &mut failures), None);
        assert_eq!(
            tcp_fallback(&media, https, true, &mut failures),
            Some(std::net::SocketAddr::from(([127, 0, 0, 1], 8443)))
        );
        // Plain http: the bridge takes no ICE over TCP there.
        let mut failures = 5;
        assert_eq!(
            tcp_fallback(&media, "http://127.0.0.1:8080", true, &mut failures),
            None
        );
        // Already over TCP: nothing to change.
        let tcp = MediaConfig {
            media_tcp: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 443))),
            ..MediaConfig::default()
        };
        assert_eq!(tcp_fallback(&tcp, https, true, &mut failures), None);
    }
}
