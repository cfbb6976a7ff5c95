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
        // Created empty and owner-only first (SQLite accepts an empty target): a backup
        // holds every meeting and person and is not for other users of the machine.
        create_owner_only(dest)
            .map_err(|e| StoreError::invalid("file", format!("cannot create {target}: {e}")))?;
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(&self.pool)
            .await?;
        Ok(std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0))
    }
}

/// An empty file readable and writable by its owner only.
pub(crate) fn create_owner_only(path: &Path) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path).map(drop)
}

/// Make an existing file owner-only (the store and its journal files).
pub(crate) fn restrict_to_owner(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path)
            && m.permissions().mode() & 0o077 != 0
            && let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        {
            tracing::warn!(file = %path.display(), "cannot make the store owner-only: {e}");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}
