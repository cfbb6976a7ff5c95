//! Webhooks (`[webhooks]`): the bridge tells another system (the province's IT desk, a
//! chat bot) when a meeting starts and ends, when a site joins or leaves, and when an
//! invited site is still not in some minutes after the start.
//!
//! Each event is a JSON POST to every configured URL, signed with HMAC-SHA256 over
//! `timestamp.body` (`X-Cauhop-Signature: sha256=<hex>`, `X-Cauhop-Timestamp`), and retried
//! with doubling waits when the receiver fails. Each URL gets the events in the order
//! they happened, from a queue of its own; a receiver that failed an event to the last
//! retry gets one try per event until it answers again, so a dead one drains its queue
//! rather than falling ever further behind. Never in the meeting's way: a full queue
//! drops (counted and logged) rather than waits.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cauhop_store::Instant;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::AppState;

/// Events waiting to go out (to all URLs, then to each); more are dropped (and
/// counted) rather than held.
const QUEUE: usize = 1024;

/// How webhooks are sent (`[webhooks]` in the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookOptions {
    /// Where every event is posted (none: no webhooks).
    pub urls: Vec<String>,
    /// The HMAC key the receiver checks signatures with.
    pub secret: String,
    /// An invited site not in this long after the meeting's start is reported.
    pub unreachable_after: Duration,
    /// The first retry waits this long, each next one twice as long.
    pub retry_after: Duration,
    /// Tries per event and URL, the first included.
    pub attempts: u32,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            secret: String::new(),
            unreachable_after: Duration::from_secs(300),
            retry_after: Duration::from_secs(2),
            attempts: 6,
        }
    }
}

/// One event, as it is posted.
#[derive(Debug, Clone)]
struct Event {
    kind: &'static str,
    at: Instant,
    data: Value,
}

/// The bridge's side of the queue.
pub struct Webhooks {
    tx: Option<mpsc::Sender<Event>>,
    rx: Mutex<Option<mpsc::Receiver<Event>>>,
    pub dropped: AtomicU64,
    /// Meetings whose absent sites were reported already (once per meeting session).
    checked: Mutex<HashSet<(i64, Instant)>>,
}

impl Webhooks {
    pub fn new(opts: &WebhookOptions) -> Self {
        let (tx, rx) = if opts.urls.is_empty() {
            (None, None)
        } else {
            let (tx, rx) = mpsc::channel(QUEUE);
            (Some(tx), Some(rx))
        };
        Self {
            tx,
            rx: Mutex::new(rx),
            dropped: AtomicU64::new(0),
            checked: Mutex::new(HashSet::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queue `kind` with `data`; never waits.
    pub fn send(&self, kind: &'static str, data: Value) {
        let Some(tx) = &self.tx else { return };
        let event = Event {
            kind,
            at: Instant::now(),
            data,
        };
        if tx.try_send(event).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                warn!(dropped = n, "webhook queue full: events dropped");
            }
        }
    }
}

/// The signature of `body` sent at `timestamp` (seconds): hex HMAC-SHA256 over
/// `"{timestamp}.{body}"`, as the receiver recomputes it.
pub fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        // HMAC takes a key of any length; this does not happen.
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The waits before each retry: `first`, then twice as long each time, at most a
/// minute apart; `attempts - 1` of them.
pub fn backoff(first: Duration, attempts: u32) -> Vec<Duration> {
    (1..attempts.max(1))
        .map(|i| {
            first
                .saturating_mul(1 << (i - 1).min(16))
                .min(Duration::from_secs(60))
        })
        .collect()
}

/// Post `event` to `url`, retried `attempts - 1` times; whether it was taken.
async fn deliver(
    http: &reqwest::Client,
    opts: &WebhookOptions,
    url: &str,
    event: &Event,
    attempts: u32,
) -> bool {
    let body = json!({
        "event": event.kind,
        "at": event.at,
        "data": event.data,
    })
    .to_string();
    let waits = backoff(opts.retry_after, attempts);
    for attempt in 0..=waits.len() {
        let now = Instant::now().0;
        let sent = http
            .post(url)
            .header("content-type", "application/json")
            .header("x-cauhop-event", event.kind)
            .header("x-cauhop-timestamp", now.to_string())
            .header(
                "x-cauhop-signature",
                format!("sha256={}", sign(&opts.secret, now, &body)),
            )
            .body(body.clone())
            .send()
            .await;
        let why = match sent {
            Ok(r) if r.status().is_success() => return true,
            Ok(r) => format!("answered {}", r.status()),
            Err(e) => format!("unreachable: {e}"),
        };
        match waits.get(attempt) {
            Some(wait) => {
                info!(%url, event = event.kind, attempt = attempt + 1, "webhook not delivered ({why}); retrying in {wait:?}");
                tokio::time::sleep(*wait).await;
            }
            None => {
                warn!(%url, event = event.kind, attempts = attempt + 1, "webhook given up: {why}")
            }
        }
    }
    false
}

/// One URL's deliveries, in order.
async fn lane(
    http: reqwest::Client,
    opts: Arc<WebhookOptions>,
    url: String,
    mut rx: mpsc::Receiver<Event>,
) {
    let mut failing = false;
    while let Some(event) = rx.recv().await {
        let attempts = if failing { 1 } else { opts.attempts };
        let taken = deliver(&http, &opts, &url, &event, attempts).await;
        if taken && failing {
            info!(%url, "webhook receiver answers again");
        }
        failing = !taken;
    }
}

/// Send what is queued, for as long as the bridge runs.
pub async fn run(state: Arc<AppState>) {
    let rx = state
        .webhooks
        .rx
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    let Some(mut rx) = rx else { return };
    let opts = Arc::new(state.options.webhooks.clone());
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            warn!("webhooks off: {e}");
            return;
        }
    };
    let lanes: Vec<mpsc::Sender<Event>> = opts
        .urls
        .iter()
        .map(|url| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(lane(http.clone(), opts.clone(), url.clone(), rx));
            tx
        })
        .collect();
    // Absent sites are looked for a few times within the wait they are given.
    let mut check = tokio::time::interval(
        (opts.unreachable_after / 4).clamp(Duration::from_secs(1), Duration::from_secs(15)),
    );
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            event = rx.recv() => {
                let Some(event) = event else { return };
                for tx in &lanes {
                    if tx.try_send(event.clone()).is_err() {
                        let n = state.webhooks.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                        if n.is_power_of_two() {
                            warn!(dropped = n, "a webhook receiver is too far behind: events dropped");
                        }
                    }
                }
            }
            _ = check.tick() => absent_sites(&state).await,
            _ = shutdown.changed() => return,
        }
    }
}

/// Report, once per meeting session, the invited sites still not in
/// `unreachable_after` past the start of a meeting in progress.
async fn absent_sites(state: &AppState) {
    let after = i64::try_from(state.options.webhooks.unreachable_after.as_secs()).unwrap_or(0);
    let now = Instant::now();
    for (room, meeting_id) in state.registry.open_meetings() {
        let Ok(m) = state.store.meeting(meeting_id).await else {
            continue;
        };
        let Some(occ) = m.times().current(&state.schedule, now) else {
            continue;
        };
        let session = occ.window.start;
        if now.0 < session.0 + after || occ.phase(now) == cauhop_store::schedule::Phase::Closed {
            continue;
        }
        let first = {
            let mut checked = state
                .webhooks
                .checked
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            // Sessions over for a day are not checked again: forget them.
            checked.retain(|(_, started)| now.0 - started.0 < 2 * 86_400);
            checked.insert((meeting_id, session))
        };
        if !first {
            continue;
        }
        let present = state.registry.present_sites(&room);
        let names = crate::api::reports::site_names(state)
            .await
            .unwrap_or_default();
        for i in m.roster.iter().filter(|i| i.person_id.is_none()) {
            if present.contains(&i.site_id) {
                continue;
            }
            state.webhooks.send(
                "site.unreachable",
                json!({
                    "meeting_id": meeting_id,
                    "title": m.title,
                    "site_id": i.site_id,
                    "site": names.get(&i.site_id).cloned().unwrap_or_default(),
                    "minutes_since_start": (now.0 - session.0) / 60,
                }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // As Python's hmac computes it (a receiver's own check).
        let s = sign("bí mật", 1_796_605_200, r#"{"event":"meeting.started"}"#);
        assert_eq!(
            s,
            "3528313c168c94678c4e4d1f1c910de6758bbb4d04c942dd03792cfa5261b3bc"
        );
        assert_ne!(
            s,
            sign("bí mật", 1_796_605_201, r#"{"event":"meeting.started"}"#)
        );
        assert_ne!(
            s,
            sign("khác", 1_796_605_200, r#"{"event":"meeting.started"}"#)
        );
    }

    #[test]
    fn retries_wait_twice_as_long_each_time_up_to_a_minute() {
        let w = backoff(Duration::from_secs(2), 6);
        assert_eq!(
            w.iter().map(Duration::as_secs).collect::<Vec<_>>(),
            [2, 4, 8, 16, 32]
        );
        assert_eq!(
            backoff(Duration::from_secs(20), 5)[3],
            Duration::from_secs(60)
        );
        assert!(backoff(Duration::from_secs(1), 1).is_empty());
    }

    #[test]
    fn a_full_queue_drops_rather_than_waits() {
        let w = Webhooks::new(&WebhookOptions {
            urls: vec!["http://127.0.0.1:9/".into()],
            ..WebhookOptions::default()
        });
        for _ in 0..QUEUE + 5 {
            w.send("site.joined", json!({}));
        }
        assert_eq!(w.dropped.load(Ordering::Relaxed), 5);
        let off = Webhooks::new(&WebhookOptions::default());
        off.send("site.joined", json!({}));
        assert!(!off.enabled());
    }
}
