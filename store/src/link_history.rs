//! Each participant's link during meetings, as the bridge sampled it: kept packed, a
//! minute or so of one attendance's samples to a row, so that a province's year of
//! weekly meetings (270 sites, two hours, a sample every 10 s: about ten million
//! samples) stays in a few hundred megabytes and a meeting's report reads a few
//! thousand rows.
//!
//! A row's `samples` is a version byte, the sampling step in seconds, then 14 bytes per
//! sample (little-endian): its offset from the row's `start_at` in seconds (u16), down and up kbit/s (u16 each, saturating), loss down and up in half percent
//! (u8 each, 255: not known), round trip in ms (u16, 0xFFFF: not known), jitter in ms
//! (u8, 255: not known), the height of the picture received (u16, 0: none) and flags
//! (u8: audio only, muted, heard, connected, and the uplink's grade in two bits).

use sqlx::Row;

use crate::{Instant, Result, Store, StoreError};

const VERSION: u8 = 1;
const SAMPLE_BYTES: usize = 14;

const AUDIO_ONLY: u8 = 1;
const MUTED: u8 = 2;
const HEARD: u8 = 4;
const CONNECTED: u8 = 8;
const GRADE_SHIFT: u8 = 4;

/// How the bridge graded a participant's uplink (loss and jitter of what it sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grade {
    Good,
    Weak,
    Bad,
}

impl Grade {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "good" => Some(Self::Good),
            "weak" => Some(Self::Weak),
            "bad" => Some(Self::Bad),
            _ => None,
        }
    }

    fn bits(g: Option<Self>) -> u8 {
        match g {
            None => 0,
            Some(Self::Good) => 1,
            Some(Self::Weak) => 2,
            Some(Self::Bad) => 3,
        }
    }

    fn from_bits(b: u8) -> Option<Self> {
        match b & 3 {
            1 => Some(Self::Good),
            2 => Some(Self::Weak),
            3 => Some(Self::Bad),
            _ => None,
        }
    }
}

/// One participant's link over one sampling step.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LinkSample {
    pub at: Instant,
    /// What the bridge sent it, and what it sent the bridge (every byte: media, RTCP,
    /// STUN), in kbit/s.
    pub down_kbps: u32,
    pub up_kbps: u32,
    /// Fractions 0..1: of what the bridge sent it (its reports), of what it sent.
    pub loss_down: Option<f32>,
    pub loss_up: Option<f32>,
    pub rtt_ms: Option<u32>,
    /// Of what it sends (its voice's, when it sends one).
    pub jitter_ms: Option<u32>,
    /// The largest picture it was sent (0: none).
    pub height: u16,
    /// Its link carried audio only (the bridge's allocator left the pictures out).
    pub audio_only: bool,
    /// Its microphone was off (by itself or by the chair): silence is not a link fault.
    pub muted: bool,
    /// Audio packets came from it.
    pub heard: bool,
    /// Its media path was up (ICE connected).
    pub connected: bool,
    pub uplink: Option<Grade>,
}

impl LinkSample {
    /// Nothing at all came from it: its link is cut (both ways, as a rule).
    pub fn cut_off(&self) -> bool {
        !self.connected || self.up_kbps == 0
    }
}

/// Some consecutive samples of one attendance (one participant's time in a meeting).
#[derive(Debug, Clone, PartialEq)]
pub struct LinkChunk {
    pub attendance_id: i64,
    pub meeting_id: i64,
    pub site_id: Option<i64>,
    /// The sampling step, seconds.
    pub step_s: u8,
    pub samples: Vec<LinkSample>,
}

fn half_percent(f: Option<f32>) -> u8 {
    f.map_or(255, |f| (f.clamp(0.0, 1.0) * 200.0).round() as u8)
}

fn fraction(b: u8) -> Option<f32> {
    (b != 255).then(|| f32::from(b.min(200)) / 200.0)
}

fn sat16(v: u32) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

/// Pack `samples` (in time order, within 18 hours of `start`).
pub fn encode(start: Instant, step_s: u8, samples: &[LinkSample]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + samples.len() * SAMPLE_BYTES);
    out.push(VERSION);
    out.push(step_s);
    for s in samples {
        let offset = (s.at.0 - start.0).clamp(0, i64::from(u16::MAX));
        out.extend_from_slice(&(offset as u16).to_le_bytes());
        out.extend_from_slice(&sat16(s.down_kbps).to_le_bytes());
        out.extend_from_slice(&sat16(s.up_kbps).to_le_bytes());
        out.push(half_percent(s.loss_down));
        out.push(half_percent(s.loss_up));
        let rtt = s.rtt_ms.map_or(u16::MAX, |r| sat16(r).min(u16::MAX - 1));
        out.extend_from_slice(&rtt.to_le_bytes());
        out.push(s.jitter_ms.map_or(255, |j| j.min(254) as u8));
        out.extend_from_slice(&s.height.to_le_bytes());
        let mut flags = Grade::bits(s.uplink) << GRADE_SHIFT;
        for (on, bit) in [
            (s.audio_only, AUDIO_ONLY),
            (s.muted, MUTED),
            (s.heard, HEARD),
            (s.connected, CONNECTED),
        ] {
            if on {
                flags |= bit;
            }
        }
        out.push(flags);
    }
    out
}

/// Unpack what [`encode`] packed: the step and the samples.
pub fn decode(start: Instant, bytes: &[u8]) -> std::result::Result<(u8, Vec<LinkSample>), String> {
    let [version, step, body @ ..] = bytes else {
        return Err("shorter than its header".into());
    };
    if *version != VERSION {
        return Err(format!("version {version}, not {VERSION}"));
    }
    if body.len() % SAMPLE_BYTES != 0 {
        return Err(format!("{} bytes of samples", body.len()));
    }
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let samples = body
        .chunks_exact(SAMPLE_BYTES)
        .map(|b| {
            let rtt = u16_at(b, 8);
            let flags = b[13];
            LinkSample {
                at: Instant(start.0 + i64::from(u16_at(b, 0))),
                down_kbps: u32::from(u16_at(b, 2)),
                up_kbps: u32::from(u16_at(b, 4)),
                loss_down: fraction(b[6]),
                loss_up: fraction(b[7]),
                rtt_ms: (rtt != u16::MAX).then_some(u32::from(rtt)),
                jitter_ms: (b[10] != 255).then_some(u32::from(b[10])),
                height: u16_at(b, 11),
                audio_only: flags & AUDIO_ONLY != 0,
                muted: flags & MUTED != 0,
                heard: flags & HEARD != 0,
                connected: flags & CONNECTED != 0,
                uplink: Grade::from_bits(flags >> GRADE_SHIFT),
            }
        })
        .collect();
    Ok((*step, samples))
}

fn chunk(row: &sqlx::any::AnyRow) -> Result<LinkChunk> {
    let start = Instant(row.try_get("start_at")?);
    let bytes: Vec<u8> = row.try_get("samples")?;
    let (step_s, samples) = decode(start, &bytes)
        .map_err(|e| StoreError::invalid("link_samples", format!("unreadable row: {e}")))?;
    Ok(LinkChunk {
        attendance_id: row.try_get("attendance_id")?,
        meeting_id: row.try_get("meeting_id")?,
        site_id: row.try_get("site_id")?,
        step_s,
        samples,
    })
}

const COLUMNS: &str = "attendance_id, meeting_id, site_id, start_at, samples";

impl Store {
    /// Keep some attendances' samples, in one transaction (a tick of the sampler writes
    /// a row for each participant of a province's meeting at once); a chunk without
    /// samples is skipped.
    pub async fn put_link_chunks(&self, chunks: &[LinkChunk]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for c in chunks {
            let Some(start) = c.samples.first().map(|s| s.at) else {
                continue;
            };
            sqlx::query(
                "INSERT INTO link_samples (attendance_id, meeting_id, site_id, start_at, \
                 samples) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(c.attendance_id)
            .bind(c.meeting_id)
            .bind(c.site_id)
            .bind(start.0)
            .bind(encode(start, c.step_s, &c.samples))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every sample kept of a meeting, oldest first.
    pub async fn meeting_links(&self, meeting_id: i64) -> Result<Vec<LinkChunk>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM link_samples WHERE meeting_id = $1 ORDER BY start_at"
        ))
        .bind(meeting_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(chunk).collect()
    }

    /// A site's samples since `since`, oldest first.
    pub async fn site_links(&self, site_id: i64, since: Instant) -> Result<Vec<LinkChunk>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM link_samples WHERE site_id = $1 AND start_at >= $2 \
             ORDER BY start_at"
        ))
        .bind(site_id)
        .bind(since.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(chunk).collect()
    }

    /// Forget samples older than `before`; how many rows went.
    pub async fn prune_link_history(&self, before: Instant) -> Result<u64> {
        let r = sqlx::query("DELETE FROM link_samples WHERE start_at < $1")
            .bind(before.0)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_come_back_as_they_were_kept_within_the_packing_s_precision() {
        let start = Instant(1_800_000_000);
        let a = LinkSample {
            at: start,
            down_kbps: 812,
            up_kbps: 95,
            loss_down: Some(0.125),
            loss_up: None,
            rtt_ms: Some(420),
            jitter_ms: Some(31),
            height: 360,
            audio_only: false,
            muted: true,
            heard: false,
            connected: true,
            uplink: Some(Grade::Weak),
        };
        let b = LinkSample {
            at: Instant(start.0 + 10),
            down_kbps: 90_000, // beyond u16: saturates
            up_kbps: 0,
            loss_down: None,
            loss_up: Some(1.0),
            rtt_ms: None,
            jitter_ms: Some(900),
            height: 0,
            audio_only: true,
            muted: false,
            heard: true,
            connected: false,
            uplink: None,
        };
        let bytes = encode(start, 10, &[a.clone(), b.clone()]);
        assert_eq!(bytes.len(), 2 + 2 * SAMPLE_BYTES);
        let (step, back) = decode(start, &bytes).expect("decodes");
        assert_eq!(step, 10);
        assert_eq!(back[0], a);
        assert_eq!(
            back[1],
            LinkSample {
                down_kbps: 65_535,
                jitter_ms: Some(254),
                ..b
            }
        );
        assert!(back[1].cut_off() && !back[0].cut_off());
    }

    #[test]
    fn a_damaged_row_is_an_error_not_a_panic() {
        let start = Instant(0);
        assert!(decode(start, &[]).is_err());
        assert!(decode(start, &[9, 10]).is_err());
        assert!(decode(start, &[VERSION, 10, 1, 2, 3]).is_err());
        assert_eq!(decode(start, &[VERSION, 10]), Ok((10, vec![])));
    }
}
