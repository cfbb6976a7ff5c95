use sqlx::Row;
use sqlx::any::AnyRow;

use crate::model::{JoinLink, MeetingRole};
use crate::{Instant, Result, Store, StoreError};

const COLUMNS: &str = "jti, meeting_id, site_id, person_id, role, expires_at, revoked_at";

fn link(row: &AnyRow) -> Result<JoinLink> {
    let role: String = row.try_get("role")?;
    Ok(JoinLink {
        jti: row.try_get("jti")?,
        meeting_id: row.try_get("meeting_id")?,
        site_id: row.try_get("site_id")?,
        person_id: row.try_get("person_id")?,
        role: MeetingRole::parse(&role).ok_or_else(|| StoreError::invalid("role", role))?,
        expires_at: Instant(row.try_get("expires_at")?),
        revoked_at: row.try_get::<Option<i64>, _>("revoked_at")?.map(Instant),
    })
}

impl Store {
    /// Record a join link before its token is handed out, so it can be listed and revoked.
    pub async fn create_link(&self, l: &JoinLink) -> Result<JoinLink> {
        let row = sqlx::query(&format!(
            "INSERT INTO join_links (jti, meeting_id, site_id, person_id, role, expires_at, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
        ))
        .bind(&l.jti)
        .bind(l.meeting_id)
        .bind(l.site_id)
        .bind(l.person_id)
        .bind(l.role.as_str())
        .bind(l.expires_at.0)
        .bind(Instant::now().0)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| StoreError::from_db(e, "site_id"))?;
        link(&row)
    }

    pub async fn link(&self, jti: &str) -> Result<Option<JoinLink>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM join_links WHERE jti = $1"))
            .bind(jti)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(link).transpose()
    }

    pub async fn links(&self, meeting_id: i64) -> Result<Vec<JoinLink>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM join_links WHERE meeting_id = $1 ORDER BY created_at, jti"
        ))
        .bind(meeting_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(link).collect()
    }

    pub async fn revoke_link(&self, jti: &str, at: Instant) -> Result<JoinLink> {
        let row = sqlx::query(&format!(
            "UPDATE join_links SET revoked_at = COALESCE(revoked_at, $1) WHERE jti = $2 \
             RETURNING {COLUMNS}"
        ))
        .bind(at.0)
        .bind(jti)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::not_found("join link", jti))?;
        link(&row)
    }
}
