use sqlx::Row;
use sqlx::any::AnyRow;

use crate::model::{AuditAction, AuditEntry, NewAuditEntry, Page, Paged};
use crate::{Instant, Result, Store, StoreError};

const COLUMNS: &str = "id, at, actor_id, actor, action, target_kind, target_id, detail, client";

/// A detail longer than this is cut: an entry says what changed, it is not a copy of it.
const MAX_DETAIL: usize = 16_000;

/// Which entries to read; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    pub actor_id: Option<i64>,
    pub from: Option<Instant>,
    pub to: Option<Instant>,
}

fn entry(row: &AnyRow) -> Result<AuditEntry> {
    let action: String = row.try_get("action")?;
    let detail: String = row.try_get("detail")?;
    Ok(AuditEntry {
        id: row.try_get("id")?,
        at: Instant(row.try_get("at")?),
        actor_id: row.try_get("actor_id")?,
        actor: row.try_get("actor")?,
        action: AuditAction::parse(&action).ok_or_else(|| StoreError::invalid("action", action))?,
        target_kind: row.try_get("target_kind")?,
        target_id: row.try_get("target_id")?,
        // A detail cut at MAX_DETAIL is no longer JSON: shown as the text it is.
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
        client: row.try_get("client")?,
    })
}

impl Store {
    /// Append one entry, stamped now.
    pub async fn record_audit(&self, e: &NewAuditEntry) -> Result<AuditEntry> {
        let mut detail = e.detail.to_string();
        if detail.len() > MAX_DETAIL {
            let cut = (0..=MAX_DETAIL)
                .rev()
                .find(|i| detail.is_char_boundary(*i))
                .unwrap_or(0);
            detail.truncate(cut);
            detail.push('…');
        }
        let row = sqlx::query(&format!(
            "INSERT INTO audit_log (at, actor_id, actor, action, target_kind, target_id, detail, \
             client) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
        ))
        .bind(Instant::now().0)
        .bind(e.actor.person_id)
        .bind(&e.actor.name)
        .bind(e.action.as_str())
        .bind(e.action.target_kind())
        .bind(&e.target_id)
        .bind(detail)
        .bind(e.actor.client.as_deref())
        .fetch_one(&self.pool)
        .await?;
        entry(&row)
    }

    /// Entries newest first.
    pub async fn audit_log(&self, f: &AuditFilter, page: Page) -> Result<Paged<AuditEntry>> {
        let filter = "($3 = '' OR target_kind = $3) AND ($4 = '' OR target_id = $4) \
                      AND ($5 = 0 OR actor_id = $5) AND at >= $6 AND at < $7";
        let kind = f.target_kind.clone().unwrap_or_default();
        let target = f.target_id.clone().unwrap_or_default();
        let actor = f.actor_id.unwrap_or(0);
        let from = f.from.unwrap_or(Instant(i64::MIN)).0;
        let to = f.to.unwrap_or(Instant(i64::MAX)).0;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_log WHERE {filter} ORDER BY id DESC LIMIT $1 OFFSET $2"
        ))
        .bind(page.limit)
        .bind(page.offset)
        .bind(&kind)
        .bind(&target)
        .bind(actor)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        let total: (i64,) = sqlx::query_as(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE $1 = $1 AND $2 = $2 AND {filter}"
        ))
        .bind(0i64)
        .bind(0i64)
        .bind(&kind)
        .bind(&target)
        .bind(actor)
        .bind(from)
        .bind(to)
        .fetch_one(&self.pool)
        .await?;
        Ok(Paged {
            items: rows.iter().map(entry).collect::<Result<_>>()?,
            total: total.0,
            limit: page.limit,
            offset: page.offset,
        })
    }
}
