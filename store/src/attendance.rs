use sqlx::Row;
use sqlx::any::AnyRow;

use crate::model::{Attendance, NewAttendance};
use crate::{Instant, Result, Store};

const COLUMNS: &str =
    "id, meeting_id, site_id, person_id, endpoint_id, display_name, joined_at, left_at";

fn attendance(row: &AnyRow, now: Instant) -> Result<Attendance> {
    let joined_at = Instant(row.try_get("joined_at")?);
    let left_at = row.try_get::<Option<i64>, _>("left_at")?.map(Instant);
    Ok(Attendance {
        id: row.try_get("id")?,
        meeting_id: row.try_get("meeting_id")?,
        site_id: row.try_get("site_id")?,
        person_id: row.try_get("person_id")?,
        endpoint_id: row.try_get("endpoint_id")?,
        display_name: row.try_get("display_name")?,
        joined_at,
        left_at,
        seconds: (left_at.unwrap_or(now).0 - joined_at.0).max(0),
    })
}

impl Store {
    pub async fn start_attendance(&self, a: &NewAttendance, at: Instant) -> Result<i64> {
        let row: (i64,) = sqlx::query_as(
            "INSERT INTO attendance (meeting_id, site_id, person_id, endpoint_id, display_name, \
             joined_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(a.meeting_id)
        .bind(a.site_id)
        .bind(a.person_id)
        .bind(a.endpoint_id)
        .bind(&a.display_name)
        .bind(at.0)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.0)
    }

    pub async fn end_attendance(&self, id: i64, at: Instant) -> Result<()> {
        sqlx::query("UPDATE attendance SET left_at = $1 WHERE id = $2 AND left_at IS NULL")
            .bind(at.0)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Close records left open by a crash or a kill: they end when the server last ran.
    pub async fn close_dangling_attendance(&self, at: Instant) -> Result<u64> {
        let r = sqlx::query("UPDATE attendance SET left_at = $1 WHERE left_at IS NULL")
            .bind(at.0)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    pub async fn attendance(&self, meeting_id: i64) -> Result<Vec<Attendance>> {
        let now = Instant::now();
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM attendance WHERE meeting_id = $1 ORDER BY joined_at, id"
        ))
        .bind(meeting_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| attendance(r, now)).collect()
    }
}
