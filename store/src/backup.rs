use std::path::Path;

use crate::{Backend, Result, Store, StoreError};

impl Store {
    /// Write a consistent copy of a SQLite store to `dest` while the server keeps running:
    /// `VACUUM INTO` reads one snapshot (WAL readers never block the writer) and writes a
    /// compact file that opens as a store by itself. PostgreSQL has `pg_dump` for this.
    pub async fn backup_to(&self, dest: &Path) -> Result<u64> {
        if self.backend() != Backend::Sqlite {
            return Err(StoreError::invalid(
                "database_url",
                "backup of PostgreSQL is pg_dump's job: pg_dump -Fc DBNAME > FILE",
            ));
        }
        if dest.exists() {
            return Err(StoreError::invalid(
                "file",
                format!("{} exists; choose a new file name", dest.display()),
            ));
        }
        let target = dest
            .to_str()
            .ok_or_else(|| StoreError::invalid("file", "the backup path must be valid UTF-8"))?;
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(&self.pool)
            .await?;
        Ok(std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0))
    }
}
