use sqlx::Row;

use crate::model::Person;
use crate::people::person;
use crate::{Instant, Result, Store, secret_hash};

/// A logged-in admin's session as the server checks it on each request.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub person: Person,
    pub csrf: String,
    pub expires_at: Instant,
}

impl Store {
    /// Store a session under the hash of its token (the cookie value).
    pub async fn create_session(
        &self,
        token: &str,
        person_id: i64,
        csrf: &str,
        expires_at: Instant,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO admin_sessions (token_hash, person_id, csrf, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(secret_hash(token))
        .bind(person_id)
        .bind(csrf)
        .bind(expires_at.0)
        .execute(&self.pool)
        .await?;
        // Expired sessions are swept on each login rather than by a timer.
        sqlx::query("DELETE FROM admin_sessions WHERE expires_at < $1")
            .bind(Instant::now().0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn session(&self, token: &str, now: Instant) -> Result<Option<SessionRow>> {
        let row = sqlx::query(
            "SELECT p.id, p.username, p.display_name, p.role, p.site_id, s.csrf, s.expires_at \
             FROM admin_sessions s JOIN people p ON p.id = s.person_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(secret_hash(token))
        .bind(now.0)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(SessionRow {
            person: person(&row)?,
            csrf: row.try_get("csrf")?,
            expires_at: Instant(row.try_get("expires_at")?),
        }))
    }

    pub async fn delete_session(&self, token: &str) -> Result<()> {
        sqlx::query("DELETE FROM admin_sessions WHERE token_hash = $1")
            .bind(secret_hash(token))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
