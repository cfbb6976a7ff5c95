use sqlx::Row;
use sqlx::any::AnyRow;

use crate::model::{Endpoint, EndpointWithKey, NewEndpoint, Page, Paged};
use crate::{Instant, Result, Store, StoreError, random_secret, secret_hash};

const COLUMNS: &str = "id, site_id, name, key_hint, revoked, last_seen, health";

fn endpoint(row: &AnyRow) -> Result<Endpoint> {
    let health: Option<String> = row.try_get("health")?;
    Ok(Endpoint {
        id: row.try_get("id")?,
        site_id: row.try_get("site_id")?,
        name: row.try_get("name")?,
        key_hint: row.try_get("key_hint")?,
        revoked: row.try_get::<i64, _>("revoked")? != 0,
        last_seen: row.try_get::<Option<i64>, _>("last_seen")?.map(Instant),
        health: health.and_then(|h| serde_json::from_str(&h).ok()),
    })
}

/// Device keys carry a recognisable prefix so a key pasted in the wrong place is obvious.
fn new_key() -> (String, String, String) {
    let key = format!("chd_{}", random_secret(24));
    let hint = key.chars().take(10).collect();
    let hash = secret_hash(&key);
    (key, hint, hash)
}

impl Store {
    pub async fn create_endpoint(&self, e: &NewEndpoint) -> Result<EndpointWithKey> {
        Self::check_len("name", &e.name, 128)?;
        self.site(e.site_id)
            .await
            .map_err(|_| StoreError::invalid("site_id", format!("no site {}", e.site_id)))?;
        let (key, hint, hash) = new_key();
        let row = sqlx::query(&format!(
            "INSERT INTO endpoints (site_id, name, key_hash, key_hint, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
        ))
        .bind(e.site_id)
        .bind(e.name.trim())
        .bind(hash)
        .bind(hint)
        .bind(Instant::now().0)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| StoreError::from_db(e, "site_id"))?;
        Ok(EndpointWithKey {
            endpoint: endpoint(&row)?,
            key,
        })
    }

    /// Issue a new key; the old one stops working at once.
    pub async fn rotate_endpoint_key(&self, id: i64) -> Result<EndpointWithKey> {
        let (key, hint, hash) = new_key();
        let row = sqlx::query(&format!(
            "UPDATE endpoints SET key_hash = $1, key_hint = $2, revoked = 0 WHERE id = $3 \
             RETURNING {COLUMNS}"
        ))
        .bind(hash)
        .bind(hint)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::not_found("endpoint", id))?;
        Ok(EndpointWithKey {
            endpoint: endpoint(&row)?,
            key,
        })
    }

    pub async fn revoke_endpoint(&self, id: i64) -> Result<Endpoint> {
        let row = sqlx::query(&format!(
            "UPDATE endpoints SET revoked = 1 WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::not_found("endpoint", id))?;
        endpoint(&row)
    }

    pub async fn endpoint(&self, id: i64) -> Result<Endpoint> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM endpoints WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::not_found("endpoint", id))?;
        endpoint(&row)
    }

    /// The endpoint a device key belongs to, if the key is current and not revoked.
    pub async fn endpoint_by_key(&self, key: &str) -> Result<Option<Endpoint>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM endpoints WHERE key_hash = $1 AND revoked = 0"
        ))
        .bind(secret_hash(key))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(endpoint).transpose()
    }

    pub async fn endpoints(&self, district: Option<i64>, page: Page) -> Result<Paged<Endpoint>> {
        self.paged("endpoints", COLUMNS, "site_id", district, page, endpoint)
            .await
    }

    pub async fn record_endpoint_health(
        &self,
        id: i64,
        health: &serde_json::Value,
        now: Instant,
    ) -> Result<()> {
        sqlx::query("UPDATE endpoints SET health = $1, last_seen = $2 WHERE id = $3")
            .bind(health.to_string())
            .bind(now.0)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_endpoint(&self, id: i64) -> Result<()> {
        self.delete_by_id(
            "endpoints",
            "endpoint",
            id,
            "the endpoint is still referred to",
        )
        .await
    }
}
