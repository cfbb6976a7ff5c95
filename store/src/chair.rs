//! What a chair's actions leave in the store: participants removed from a meeting (so
//! their credential stays out of it), roll calls, and each meeting's settings for them.

use sqlx::Row;

use crate::model::{MeetingSettings, NewRemoval, RollCall, RollCallEntry, RollCallStatus};
use crate::{Instant, Result, Store};

impl Store {
    pub async fn record_removal(&self, r: &NewRemoval, at: Instant) -> Result<()> {
        sqlx::query(
            "INSERT INTO meeting_removals (meeting_id, site_id, person_id, endpoint_id, jti, \
             reason, removed_by, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(r.meeting_id)
        .bind(r.site_id)
        .bind(r.person_id)
        .bind(r.endpoint_id)
        .bind(r.jti.as_deref())
        .bind(&r.reason)
        .bind(&r.by)
        .bind(at.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The reason a credential was removed from `meeting_id` since `since`, if it was:
    /// the same join link, device key or named person.
    pub async fn removal(
        &self,
        meeting_id: i64,
        since: Instant,
        person_id: Option<i64>,
        endpoint_id: Option<i64>,
        jti: Option<&str>,
    ) -> Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT reason FROM meeting_removals WHERE meeting_id = $1 AND at >= $2 AND \
             ((jti IS NOT NULL AND jti = $3) OR (endpoint_id IS NOT NULL AND endpoint_id = $4) \
             OR (person_id IS NOT NULL AND person_id = $5)) ORDER BY at DESC LIMIT 1",
        )
        .bind(meeting_id)
        .bind(since.0)
        .bind(jti)
        .bind(endpoint_id)
        .bind(person_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.0))
    }

    /// Keep one roll call's result (one row per invited site), in one transaction.
    pub async fn record_roll_call(&self, meeting_id: i64, call: &RollCall) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for e in &call.sites {
            sqlx::query(
                "INSERT INTO roll_calls (meeting_id, called_at, site_id, status, confirmed_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(meeting_id)
            .bind(call.called_at.0)
            .bind(e.site_id)
            .bind(e.status.as_str())
            .bind(e.confirmed_at.map(|t| t.0))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every roll call of a meeting, oldest first.
    pub async fn roll_calls(&self, meeting_id: i64) -> Result<Vec<RollCall>> {
        let rows = sqlx::query(
            "SELECT called_at, site_id, status, confirmed_at FROM roll_calls \
             WHERE meeting_id = $1 ORDER BY called_at, id",
        )
        .bind(meeting_id)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<RollCall> = Vec::new();
        for r in rows {
            let called_at = Instant(r.try_get("called_at")?);
            let status: String = r.try_get("status")?;
            let entry = RollCallEntry {
                site_id: r.try_get("site_id")?,
                // The column's CHECK allows only these three.
                status: RollCallStatus::parse(&status).unwrap_or(RollCallStatus::Absent),
                confirmed_at: r.try_get::<Option<i64>, _>("confirmed_at")?.map(Instant),
            };
            match out.last_mut() {
                Some(c) if c.called_at == called_at => c.sites.push(entry),
                _ => out.push(RollCall {
                    called_at,
                    sites: vec![entry],
                }),
            }
        }
        Ok(out)
    }

    /// A meeting's settings (the defaults when none were set).
    pub async fn meeting_settings(&self, meeting_id: i64) -> Result<MeetingSettings> {
        let row: Option<(i64, i64, i64)> = sqlx::query_as(
            "SELECT record, self_unmute, floor_limit_s FROM meeting_settings WHERE meeting_id = $1",
        )
        .bind(meeting_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(
            row.map_or_else(MeetingSettings::default, |(r, u, l)| MeetingSettings {
                record: r != 0,
                self_unmute: u != 0,
                floor_limit_s: u32::try_from(l).unwrap_or(0),
            }),
        )
    }

    pub async fn put_meeting_settings(&self, meeting_id: i64, s: &MeetingSettings) -> Result<()> {
        sqlx::query(
            "INSERT INTO meeting_settings (meeting_id, record, self_unmute, floor_limit_s) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (meeting_id) DO UPDATE SET \
             record = excluded.record, self_unmute = excluded.self_unmute, \
             floor_limit_s = excluded.floor_limit_s",
        )
        .bind(meeting_id)
        .bind(i64::from(s.record))
        .bind(i64::from(s.self_unmute))
        .bind(i64::from(s.floor_limit_s))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Keep a meeting's live controls (JSON, the signaling's to read).
    pub async fn put_meeting_controls(
        &self,
        meeting_id: i64,
        state: &str,
        at: Instant,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO meeting_controls (meeting_id, state, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (meeting_id) DO UPDATE SET state = excluded.state, \
             updated_at = excluded.updated_at",
        )
        .bind(meeting_id)
        .bind(state)
        .bind(at.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A meeting's kept controls, if they were written since `since` (its session's
    /// opening: an earlier session's controls do not carry over).
    pub async fn meeting_controls(
        &self,
        meeting_id: i64,
        since: Instant,
    ) -> Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT state FROM meeting_controls WHERE meeting_id = $1 AND updated_at >= $2",
        )
        .bind(meeting_id)
        .bind(since.0)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.0))
    }
}
