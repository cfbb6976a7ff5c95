use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor};
use tracing::info;

use crate::model::{Page, Paged};
use crate::{Result, StoreError};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The store: a pool over one database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: AnyPool,
    backend: Backend,
    sqlite_path: Option<String>,
}

/// Accept `postgres://…`, `sqlite://path`, `sqlite:path` or a plain file path.
fn normalise(url: &str) -> (Backend, String, Option<String>) {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return (Backend::Postgres, url.to_owned(), None);
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let file = path.split('?').next().unwrap_or(path).to_owned();
    let url = if path.contains('?') {
        format!("sqlite://{path}")
    } else {
        format!("sqlite://{path}?mode=rwc")
    };
    (Backend::Sqlite, url, Some(file))
}

impl Store {
    /// Open (creating a SQLite file if needed) and bring the schema up to date.
    pub async fn open(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let (backend, url, sqlite_path) = normalise(url);
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 10 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // FULL: a committed meeting survives power loss, not only a crash.
                        conn.execute(
                            "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                             PRAGMA synchronous = FULL;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        if backend == Backend::Sqlite {
            // Persistent in the file: readers (and `cauhop backup`) never block the writer.
            pool.execute("PRAGMA journal_mode = WAL").await?;
            // Every meeting, person and session is in these files: not for other users.
            if let Some(path) = &sqlite_path {
                for suffix in ["", "-wal", "-shm"] {
                    let p = format!("{path}{suffix}");
                    crate::backup::restrict_to_owner(std::path::Path::new(&p));
                }
            }
        }
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await?;
        info!(?backend, "store ready");
        Ok(Self {
            pool,
            backend,
            sqlite_path,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn sqlite_path(&self) -> Option<&str> {
        self.sqlite_path.as_deref()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// `PRAGMA integrity_check` on SQLite ("ok" when sound); PostgreSQL reports "ok".
    pub async fn integrity_check(&self) -> Result<String> {
        if self.backend != Backend::Sqlite {
            return Ok("ok".into());
        }
        let row: (String,) = sqlx::query_as("PRAGMA integrity_check")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.0)
    }

    /// Bytes the database takes: SQLite's pages (the WAL not counted; it is folded back at
    /// checkpoints), or PostgreSQL's `pg_database_size`.
    pub async fn size_bytes(&self) -> Result<i64> {
        let sql = match self.backend {
            Backend::Sqlite => {
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
            }
            Backend::Postgres => "SELECT pg_database_size(current_database())",
        };
        let row: (i64,) = sqlx::query_as(sql).fetch_one(&self.pool).await?;
        Ok(row.0)
    }

    pub async fn setting(&self, key: &str) -> Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.0))
    }

    /// Read and delete a setting, in one transaction: a secret an older version kept
    /// in the store is moved out of it (and so out of every later backup).
    pub async fn take_setting(&self, key: &str) -> Result<Option<String>> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(String,)> = sqlx::query_as("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM settings WHERE key = $1")
            .bind(key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(row.map(|r| r.0))
    }

    /// Write a setting (tests of the move out of the store use it to stand in for an
    /// older version's store).
    pub async fn put_setting(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query("DELETE FROM settings WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2)")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// One page of `table` in id order with the total count. With `district`, only rows
    /// whose `site_col` is that district or one of its communes.
    pub(crate) async fn paged<T>(
        &self,
        table: &str,
        columns: &str,
        site_col: &str,
        district: Option<i64>,
        page: Page,
        row: fn(&AnyRow) -> Result<T>,
    ) -> Result<Paged<T>> {
        let filter = match district {
            Some(_) => format!(
                "WHERE {site_col} IN (SELECT id FROM sites WHERE id = $3 OR parent_id = $3)"
            ),
            // Keeps the parameter count the same on both paths.
            None => "WHERE $3 = $3".to_owned(),
        };
        let bind = district.unwrap_or(0);
        let rows = sqlx::query(&format!(
            "SELECT {columns} FROM {table} {filter} ORDER BY id LIMIT $1 OFFSET $2"
        ))
        .bind(page.limit)
        .bind(page.offset)
        .bind(bind)
        .fetch_all(&self.pool)
        .await?;
        let total: (i64,) = sqlx::query_as(&format!(
            "SELECT COUNT(*) FROM {table} {}",
            filter.replace("$3", "$1")
        ))
        .bind(bind)
        .fetch_one(&self.pool)
        .await?;
        Ok(Paged {
            items: rows.iter().map(row).collect::<Result<_>>()?,
            total: total.0,
            limit: page.limit,
            offset: page.offset,
        })
    }

    /// Delete one row by id; a row still referred to is a `Conflict` saying `in_use`.
    pub(crate) async fn delete_by_id(
        &self,
        table: &str,
        entity: &'static str,
        id: i64,
        in_use: &str,
    ) -> Result<()> {
        let r = sqlx::query(&format!("DELETE FROM {table} WHERE id = $1"))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| match StoreError::from_db(e, "id") {
                StoreError::Conflict { field, .. } => StoreError::Conflict {
                    field,
                    reason: in_use.to_owned(),
                },
                other => other,
            })?;
        if r.rows_affected() == 0 {
            return Err(StoreError::not_found(entity, id));
        }
        Ok(())
    }

    pub(crate) fn check_len(field: &str, value: &str, max: usize) -> Result<()> {
        let n = value.trim().chars().count();
        if n == 0 {
            return Err(StoreError::invalid(field, "must not be empty"));
        }
        if n > max {
            return Err(StoreError::invalid(
                field,
                format!("at most {max} characters"),
            ));
        }
        Ok(())
    }
}

/// For tests and benches: a fresh, empty database on the PostgreSQL server at `base_url`
/// (named `prefix` + random suffix); returns its URL.
pub async fn create_scratch_database(base_url: &str, prefix: &str) -> Result<String> {
    sqlx::any::install_default_drivers();
    let name = format!(
        "{prefix}_{}",
        crate::random_secret(8)
            .to_lowercase()
            .replace(['-', '_'], "x")
    );
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(base_url)
        .await?;
    pool.execute(format!("CREATE DATABASE {name}").as_str())
        .await?;
    pool.close().await;
    let (head, _) = base_url.rsplit_once('/').unwrap_or((base_url, ""));
    Ok(format!("{head}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths() {
        assert_eq!(normalise("postgres://u@h/db").0, Backend::Postgres);
        let (b, url, file) = normalise("data/cauhop.db");
        assert_eq!(b, Backend::Sqlite);
        assert_eq!(url, "sqlite://data/cauhop.db?mode=rwc");
        assert_eq!(file.as_deref(), Some("data/cauhop.db"));
        assert_eq!(
            normalise("sqlite:///tmp/x.db").1,
            "sqlite:///tmp/x.db?mode=rwc"
        );
    }
}
