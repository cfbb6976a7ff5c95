use sqlx::Row;
use sqlx::any::AnyRow;

use crate::model::{NewSite, Page, Paged, Site, SiteKind};
use crate::{Instant, Result, Store, StoreError};

const COLUMNS: &str = "id, code, name, kind, parent_id, down_kbps, up_kbps";

fn site(row: &AnyRow) -> Result<Site> {
    let kind: String = row.try_get("kind")?;
    Ok(Site {
        id: row.try_get("id")?,
        code: row.try_get("code")?,
        name: row.try_get("name")?,
        kind: SiteKind::parse(&kind).ok_or_else(|| StoreError::invalid("kind", kind))?,
        parent_id: row.try_get("parent_id")?,
        down_kbps: row.try_get("down_kbps")?,
        up_kbps: row.try_get("up_kbps")?,
    })
}

impl Store {
    async fn validate_site(&self, s: &NewSite, id: Option<i64>) -> Result<()> {
        Self::check_len("code", &s.code, 32)?;
        Self::check_len("name", &s.name, 128)?;
        for (field, v) in [("down_kbps", s.down_kbps), ("up_kbps", s.up_kbps)] {
            if !(16..=10_000_000).contains(&v) {
                return Err(StoreError::invalid(field, "expected 16-10000000 kbit/s"));
            }
        }
        match (s.kind.parent_kind(), s.parent_id) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(StoreError::invalid("parent_id", "a province has no parent")),
            (Some(want), None) => Err(StoreError::invalid(
                "parent_id",
                format!("a {} needs a parent {}", s.kind.as_str(), want.as_str()),
            )),
            (Some(want), Some(pid)) => {
                if Some(pid) == id {
                    return Err(StoreError::invalid(
                        "parent_id",
                        "a site cannot be its own parent",
                    ));
                }
                let parent = self
                    .site(pid)
                    .await
                    .map_err(|_| StoreError::invalid("parent_id", format!("no site {pid}")))?;
                if parent.kind != want {
                    return Err(StoreError::invalid(
                        "parent_id",
                        format!(
                            "the parent of a {} must be a {}, site {pid} is a {}",
                            s.kind.as_str(),
                            want.as_str(),
                            parent.kind.as_str()
                        ),
                    ));
                }
                Ok(())
            }
        }
    }

    pub async fn create_site(&self, s: &NewSite) -> Result<Site> {
        self.validate_site(s, None).await?;
        let row = sqlx::query(&format!(
            "INSERT INTO sites (code, name, kind, parent_id, down_kbps, up_kbps, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
        ))
        .bind(s.code.trim())
        .bind(s.name.trim())
        .bind(s.kind.as_str())
        .bind(s.parent_id)
        .bind(s.down_kbps)
        .bind(s.up_kbps)
        .bind(Instant::now().0)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| StoreError::from_db(e, "code"))?;
        site(&row)
    }

    pub async fn update_site(&self, id: i64, s: &NewSite) -> Result<Site> {
        let old = self.site(id).await?;
        self.validate_site(s, Some(id)).await?;
        if old.kind != s.kind && self.count_children(id).await? > 0 {
            return Err(StoreError::Conflict {
                field: "kind".into(),
                reason: "the site has sites under it; move them first".into(),
            });
        }
        let row = sqlx::query(&format!(
            "UPDATE sites SET code = $1, name = $2, kind = $3, parent_id = $4, down_kbps = $5, \
             up_kbps = $6 WHERE id = $7 RETURNING {COLUMNS}"
        ))
        .bind(s.code.trim())
        .bind(s.name.trim())
        .bind(s.kind.as_str())
        .bind(s.parent_id)
        .bind(s.down_kbps)
        .bind(s.up_kbps)
        .bind(id)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| StoreError::from_db(e, "code"))?;
        site(&row)
    }

    async fn count_children(&self, id: i64) -> Result<i64> {
        let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sites WHERE parent_id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        Ok(n.0)
    }

    pub async fn site(&self, id: i64) -> Result<Site> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM sites WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::not_found("site", id))?;
        site(&row)
    }

    /// Sites in tree order of ids; `under` limits to a district and its communes.
    pub async fn sites(&self, under: Option<i64>, page: Page) -> Result<Paged<Site>> {
        self.paged("sites", COLUMNS, "id", under, page, site).await
    }

    pub async fn delete_site(&self, id: i64) -> Result<()> {
        self.delete_by_id(
            "sites",
            "site",
            id,
            "the site still has sites, endpoints, people or meetings",
        )
        .await
    }

    /// The district a site belongs to (itself for a district; none for the province).
    pub async fn district_of(&self, site_id: i64) -> Result<Option<i64>> {
        let s = self.site(site_id).await?;
        Ok(match s.kind {
            SiteKind::Province => None,
            SiteKind::District => Some(s.id),
            SiteKind::Commune => s.parent_id,
        })
    }
}
