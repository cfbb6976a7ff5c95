//! Participants a chair removed from a meeting, so their credential stays out of it.

use crate::model::NewRemoval;
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
}
