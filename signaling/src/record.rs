//! The meeting's record: while a meeting whose settings say `record` has anyone in it,
//! the voices its subscribers are forwarded (`SfuHandle::record`) are decoded, summed
//! every 20 ms and encoded again into one Ogg/Opus file (`cauhop_audio`), beside a JSON
//! file of its floor turns (the chapters of the playback); and each floor turn's picture
//! and voice, as the floor holder sent them (no transcoding), go into a WebM file of
//! their own (`record_turn.rs`).
//!
//! Files live under `<records dir>/<meeting id>/`, named by their start in Vietnam time.
//! The file is written a page (a second) at a time, so a crash loses at most the last
//! few seconds. When the disk's free space falls below the configured minimum the record
//! stops cleanly and the chairs are told. Every page shows a recording mark while on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cauhop_audio::FRAME;
use cauhop_audio::mix::Mix;
use cauhop_audio::ogg_opus::OggOpusWriter;
use cauhop_protocol::ServerMsg;
use cauhop_sfu::rtp::vp8_frames::Vp8Frames;
use cauhop_sfu::{ParticipantId, Recorded};
use cauhop_store::Instant;
use opus_rs::{Application, OpusEncoder};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::AppState;
use crate::record_turn::TurnWriter;

/// Where records go and how long they are kept (`[record]` in the bridge's config).
#[derive(Debug, Clone)]
pub struct RecordOptions {
    pub dir: PathBuf,
    /// Records older than this many days are deleted (0: kept for ever).
    pub keep_days: u32,
    /// A record stops when its disk has less free space than this.
    pub min_free_bytes: u64,
}

/// The record's encoder: speech for the minutes, mono, 24 kbit/s (about 11 MB an hour).
const BITRATE: i32 = 24_000;
/// Voice packets waiting for the recorder: 10 s of three voices.
const QUEUE: usize = 1500;
/// How often the free space is looked at.
const DISK_EVERY: Duration = Duration::from_secs(10);

/// A floor turn: the chapters of the record's playback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// Seconds from the start of the record.
    pub at_s: f64,
    /// Who had the floor ("name — site"); `None`: the floor was taken back.
    pub who: Option<String>,
    /// The turn's picture and voice (`<record>-t<n>.webm`), when the holder sent any.
    #[serde(default)]
    pub video: Option<String>,
}

/// What sits beside each record: `<name>.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordInfo {
    pub meeting_id: i64,
    pub title: String,
    /// RFC 3339.
    pub started_at: String,
    #[serde(default)]
    pub ended_at: Option<String>,
    #[serde(default)]
    pub seconds: f64,
    /// Why it stopped: `ended` (the room emptied or the meeting ended), `setting`,
    /// `disk_full`, `failed`. Absent while recording, or after a crash.
    #[serde(default)]
    pub stopped: Option<String>,
    #[serde(default)]
    pub turns: Vec<Turn>,
}

#[derive(Debug, thiserror::Error)]
enum RecordError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("opus: {0}")]
    Opus(&'static str),
}

enum Ctl {
    /// The floor changed: its holder, and how the chapters name them.
    Floor(Option<ParticipantId>, Option<String>),
    Stop(&'static str),
}

struct Recorder {
    ctl: mpsc::UnboundedSender<Ctl>,
    since: Instant,
}

/// The records being made, by room.
#[derive(Default)]
pub struct Recorders {
    live: Mutex<HashMap<String, Recorder>>,
}

impl Recorders {
    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Recorder>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `recording` message a page joining `room` is told, while a record runs.
    pub fn snapshot(&self, room: &str) -> Option<ServerMsg> {
        self.live().get(room).map(|r| ServerMsg::Recording {
            on: true,
            since: Some(r.since.rfc3339()),
            reason: None,
        })
    }

    /// Records being made now.
    pub fn count(&self) -> usize {
        self.live().len()
    }

    pub fn is_on(&self, room: &str) -> bool {
        self.live().contains_key(room)
    }

    /// The floor changed in `room`: a chapter of its record, and a turn's video.
    pub fn note_floor(&self, room: &str, holder: Option<ParticipantId>, who: Option<String>) {
        if let Some(r) = self.live().get(room) {
            let _ = r.ctl.send(Ctl::Floor(holder, who));
        }
    }
}

/// A meeting's record directory.
pub fn meeting_dir(opts: &RecordOptions, meeting_id: i64) -> PathBuf {
    opts.dir.join(meeting_id.to_string())
}

/// Start `room`'s record if its meeting's settings ask for one and it is not running.
pub(crate) async fn start_if_wanted(state: &Arc<AppState>, room: &str, meeting_id: Option<i64>) {
    let (Some(opts), Some(id)) = (state.options.records.clone(), meeting_id) else {
        return;
    };
    if state.recorders.is_on(room) || state.registry.count_in(room) == 0 {
        return;
    }
    let wanted = match state.store.meeting_settings(id).await {
        Ok(s) => s.record,
        Err(e) => {
            warn!(
                meeting = id,
                "meeting settings not read; not recording: {e}"
            );
            return;
        }
    };
    if !wanted {
        return;
    }
    let title = state
        .store
        .meeting(id)
        .await
        .map(|m| m.title)
        .unwrap_or_default();
    let since = Instant::now();
    let dir = meeting_dir(&opts, id);
    // "20261203-091500": the start in Vietnam time, as the office reads it.
    let name = since.vn().format("%Y%m%d-%H%M%S").to_string();
    let (audio_tx, audio_rx) = mpsc::channel(QUEUE);
    let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
    {
        let mut live = state.recorders.live();
        if live.contains_key(room) {
            return;
        }
        live.insert(room.to_owned(), Recorder { ctl: ctl_tx, since });
    }
    let info = RecordInfo {
        meeting_id: id,
        title,
        started_at: since.rfc3339(),
        ..RecordInfo::default()
    };
    let job = Job {
        state: state.clone(),
        room: room.to_owned(),
        dir,
        name,
        info,
        min_free: opts.min_free_bytes,
    };
    if let Err(e) = state.sfu.record(room, Some(audio_tx)).await {
        warn!(meeting = id, "the media server cannot record: {e}");
        state.recorders.live().remove(room);
        return;
    }
    info!(meeting = id, "recording the meeting's audio");
    state.registry.broadcast(
        room,
        None,
        ServerMsg::Recording {
            on: true,
            since: Some(since.rfc3339()),
            reason: None,
        },
    );
    tokio::spawn(job.run(audio_rx, ctl_rx));
}

/// Stop `room`'s record (the room emptied, the meeting ended, its setting was turned
/// off); the task finishes the file.
pub(crate) fn stop(state: &AppState, room: &str, reason: &'static str) {
    if let Some(r) = state.recorders.live().remove(room) {
        let _ = r.ctl.send(Ctl::Stop(reason));
    }
}

struct Job {
    state: Arc<AppState>,
    room: String,
    dir: PathBuf,
    name: String,
    info: RecordInfo,
    min_free: u64,
}

impl Job {
    async fn run(
        mut self,
        mut audio: mpsc::Receiver<Recorded>,
        mut ctl: mpsc::UnboundedReceiver<Ctl>,
    ) {
        let reason = match self.record(&mut audio, &mut ctl).await {
            Ok(r) => r,
            Err(e) => {
                error!(room = %self.room, file = %self.ogg().display(), "record failed: {e}");
                "failed"
            }
        };
        // The media server stops copying, unless a new record of the room began.
        if !self.state.recorders.is_on(&self.room) {
            let _ = self.state.sfu.record(&self.room, None).await;
        }
        if reason != "ended" && reason != "setting" {
            // Stopped by itself: it is no longer in the live list for anyone to stop.
            self.state.recorders.live().remove(&self.room);
        }
        self.info.stopped = Some(reason.to_owned());
        self.info.ended_at = Some(Instant::now().rfc3339());
        if let Err(e) = self.write_info() {
            warn!(room = %self.room, "record's chapters not written: {e}");
        }
        info!(room = %self.room, file = %self.ogg().display(), seconds = self.info.seconds, reason, "record stopped");
        if reason != "ended" {
            let msg = ServerMsg::Recording {
                on: false,
                since: None,
                reason: Some(reason.to_owned()),
            };
            self.state.registry.broadcast(&self.room, None, msg);
        }
    }

    fn ogg(&self) -> PathBuf {
        self.dir.join(format!("{}.ogg", self.name))
    }

    fn write_info(&self) -> std::io::Result<()> {
        let path = self.dir.join(format!("{}.json", self.name));
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(&self.info).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(tmp, path)
    }

    /// Write until told to stop; returns why it stopped.
    async fn record(
        &mut self,
        audio: &mut mpsc::Receiver<Recorded>,
        ctl: &mut mpsc::UnboundedReceiver<Ctl>,
    ) -> Result<&'static str, RecordError> {
        std::fs::create_dir_all(&self.dir)?;
        if free_space(&self.dir) < self.min_free {
            return Ok("disk_full");
        }
        // A record of the same second (a room that emptied and filled again): another name.
        let mut file = std::fs::File::create_new(self.ogg());
        for n in 2..10 {
            if !matches!(&file, Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists) {
                break;
            }
            self.name = format!(
                "{}-{n}",
                self.name.split('-').take(2).collect::<Vec<_>>().join("-")
            );
            file = std::fs::File::create_new(self.ogg());
        }
        let file = file?;
        let tags = vec![
            format!("TITLE={}", self.info.title),
            format!("DATE={}", self.info.started_at),
            "ENCODER=cauhop".to_owned(),
        ];
        let mut out = OggOpusWriter::new(file, rand::random(), "cauhop", &tags)?;
        self.write_info()?;
        let mut encoder = OpusEncoder::new(cauhop_audio::SAMPLE_RATE as i32, 1, Application::Voip)
            .map_err(RecordError::Opus)?;
        encoder.bitrate_bps = BITRATE;
        let mut mix = Mix::new();
        let silence = vec![0f32; FRAME];
        let mut packet = vec![0u8; 1500];
        let start = tokio::time::Instant::now();
        let mut written: u64 = 0;
        // The floor turn being written to its own WebM file, with its holder.
        let mut turn: Option<(ParticipantId, TurnWriter, Vp8Frames)> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut disk = tokio::time::interval(DISK_EVERY);
        let reason = loop {
            tokio::select! {
                a = audio.recv() => match a {
                    Some(Recorded::Audio(a)) => {
                        mix.push(a.from.0, &a.opus);
                        if let Some((holder, w, _)) = &turn && *holder == a.from {
                            w.audio(&a.opus, start.elapsed());
                        }
                    }
                    Some(Recorded::Video(v)) => {
                        if let Some((holder, w, frames)) = &mut turn
                            && *holder == v.from
                            && let Some(f) = frames.push(v.seq, v.rtp_ts, v.marker, &v.payload)
                        {
                            w.video(f, start.elapsed());
                        }
                    }
                    None => break "ended",
                },
                _ = tick.tick() => {
                    // Frames by the clock, not by wake-ups: the file's length is the
                    // meeting's, whatever the scheduler did.
                    let due = (start.elapsed().as_millis() / 20) as u64;
                    while written < due {
                        let pcm = mix.tick().unwrap_or(&silence);
                        let n = encoder.encode(pcm, FRAME, &mut packet).map_err(RecordError::Opus)?;
                        out.write(&packet[..n])?;
                        written += 1;
                    }
                    self.info.seconds = out.duration().as_secs_f64();
                }
                _ = disk.tick() => {
                    if free_space(&self.dir) < self.min_free {
                        error!(room = %self.room, dir = %self.dir.display(), "disk nearly full: the record stops");
                        break "disk_full";
                    }
                }
                c = ctl.recv() => match c {
                    Some(Ctl::Floor(holder, who)) => {
                        // The last turn's file is finished (by its thread) as this one starts.
                        turn = None;
                        let video = holder.map(|h| {
                            let name = format!("{}-t{}.webm", self.name, self.info.turns.len() + 1);
                            turn = Some((h, TurnWriter::start(self.dir.join(&name), start.elapsed()), Vp8Frames::new()));
                            name
                        });
                        self.info.turns.push(Turn { at_s: out.duration().as_secs_f64(), who, video });
                        self.write_info()?;
                    }
                    Some(Ctl::Stop(why)) => break why,
                    None => break "ended",
                },
            }
        };
        drop(turn);
        let n = encoder
            .encode(&silence, FRAME, &mut packet)
            .map_err(RecordError::Opus)?;
        let file = out.finish(&packet[..n])?;
        self.info.seconds = (written + 1) as f64 * 0.02;
        file.sync_all()?;
        if mix.bad_packets > 0 {
            warn!(room = %self.room, bad = mix.bad_packets, "voice packets that did not decode were left out of the record");
        }
        Ok(reason)
    }
}

/// Free bytes on the disk holding `dir` (0 when it cannot be read: better stop than fill
/// a disk blind).
fn free_space(dir: &Path) -> u64 {
    fs4::available_space(dir).unwrap_or(0)
}

/// Delete records older than `keep_days`, now and every six hours.
pub async fn keep_pruned(opts: RecordOptions) {
    if opts.keep_days == 0 {
        return;
    }
    let mut every = tokio::time::interval(Duration::from_secs(6 * 3600));
    loop {
        every.tick().await;
        let keep = Duration::from_secs(u64::from(opts.keep_days) * 86_400);
        let dir = opts.dir.clone();
        match tokio::task::spawn_blocking(move || prune(&dir, keep, std::time::SystemTime::now()))
            .await
        {
            Ok(0) => {}
            Ok(n) => info!(files = n, keep_days = opts.keep_days, "old records deleted"),
            Err(e) => warn!("records not pruned: {e}"),
        }
    }
}

/// Delete the files under `dir`'s meeting folders last written more than `keep` before
/// `now`, and the folders left empty; returns how many files went.
pub fn prune(dir: &Path, keep: Duration, now: std::time::SystemTime) -> usize {
    let mut gone = 0;
    let Ok(meetings) = std::fs::read_dir(dir) else {
        return 0;
    };
    for m in meetings.flatten() {
        let Ok(files) = std::fs::read_dir(m.path()) else {
            continue;
        };
        for f in files.flatten() {
            let old = f
                .metadata()
                .and_then(|md| md.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > keep);
            if old && std::fs::remove_file(f.path()).is_ok() {
                gone += 1;
            }
        }
        // Only succeeds when empty.
        let _ = std::fs::remove_dir(m.path());
    }
    gone
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_records_go_and_recent_ones_stay() {
        let dir = tempfile::tempdir().expect("dir");
        let m = dir.path().join("7");
        std::fs::create_dir(&m).expect("meeting dir");
        std::fs::write(m.join("20260101-090000.ogg"), b"x").expect("write");
        let now = std::time::SystemTime::now();
        assert_eq!(prune(dir.path(), Duration::from_secs(86_400), now), 0);
        let later = now + Duration::from_secs(2 * 86_400);
        assert_eq!(prune(dir.path(), Duration::from_secs(86_400), later), 1);
        assert!(!m.exists(), "the empty meeting folder went too");
    }
}
