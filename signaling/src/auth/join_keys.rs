//! The keys join links are signed with, kept outside the store.
//!
//! A key in the store is a key in every backup, and anyone holding a backup could sign a
//! link. So the keys live in a file of their own beside the store (created on first run,
//! mode 0600), or come from `CAUHOP_JOIN_KEY` (for a container or for several bridges
//! that must accept each other's links). The file holds one key per line, `<kid>
//! <secret>`; the first signs new links, the others only verify, so rotating (`cauhop
//! keys rotate`) keeps the links already sent working until they expire, and `--drop-old`
//! ends them at once.

use std::fmt;
use std::io::Write;
use std::path::Path;

use cauhop_store::random_secret;
use thiserror::Error;

/// Shorter secrets are refused: HS256 wants at least its 256-bit output size.
pub const MIN_SECRET_CHARS: usize = 32;

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("cannot read join-link keys from {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write join-link keys to {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("join-link key file {path} line {line}: {why}")]
    Format {
        path: String,
        line: usize,
        why: &'static str,
    },
    #[error("join-link key file {path} holds no key")]
    Empty { path: String },
    #[error("CAUHOP_JOIN_KEY must be at least {MIN_SECRET_CHARS} characters")]
    ShortEnv,
    #[error("cannot move the old join-link key out of the store: {0}")]
    Store(#[from] cauhop_store::StoreError),
}

/// Where versions before keys moved out kept the join-link key.
pub const LEGACY_SETTING: &str = "join_link_key";

/// Move a key an older version kept in the store out of it: into the key file (to verify
/// the links it signed until they expire), then deleted from the store, in that order so
/// a crash between loses nothing. With no file (the key from the environment) it is
/// only deleted: the links it signed must be issued again. Returns the keys to use.
pub async fn move_out_of_store(
    store: &cauhop_store::Store,
    keys: JoinKeys,
    file: Option<&Path>,
) -> Result<JoinKeys, KeyError> {
    let Some(legacy) = store.setting(LEGACY_SETTING).await? else {
        return Ok(keys);
    };
    let keys = match file {
        Some(path) if keys.all().iter().all(|k| k.secret != legacy) => {
            let keys = keys.with_legacy(legacy);
            keys.save(path)?;
            tracing::warn!(
                file = %path.display(),
                "the join-link key was kept in the store (and so in every backup); moved to \
                 the key file to verify the links it signed. Once those meetings are over: \
                 `cauhop keys rotate --drop-old`"
            );
            keys
        }
        Some(_) => keys,
        None => {
            tracing::warn!(
                "the join-link key kept in the store was deleted: links issued before this \
                 version must be issued again (the key now comes from CAUHOP_JOIN_KEY)"
            );
            keys
        }
    };
    store.take_setting(LEGACY_SETTING).await?;
    Ok(keys)
}

/// One signing key and the id a token names it by (the JWT `kid` header).
#[derive(Clone, PartialEq, Eq)]
pub struct JoinKey {
    pub kid: String,
    pub secret: String,
}

impl fmt::Debug for JoinKey {
    // Never print a secret, not even in a debug log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinKey({})", self.kid)
    }
}

impl JoinKey {
    pub fn generate() -> Self {
        Self {
            kid: random_secret(6),
            secret: random_secret(32),
        }
    }
}

/// The current key (first) and the older ones that still verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinKeys {
    keys: Vec<JoinKey>,
}

impl JoinKeys {
    /// One fresh random key, kept nowhere: for tests and throwaway bridges.
    pub fn ephemeral() -> Self {
        Self {
            keys: vec![JoinKey::generate()],
        }
    }

    /// The key from `CAUHOP_JOIN_KEY`.
    pub fn from_env_secret(secret: &str) -> Result<Self, KeyError> {
        let secret = secret.trim();
        if secret.chars().count() < MIN_SECRET_CHARS {
            return Err(KeyError::ShortEnv);
        }
        Ok(Self {
            keys: vec![JoinKey {
                kid: "env".into(),
                secret: secret.to_owned(),
            }],
        })
    }

    pub fn current(&self) -> &JoinKey {
        // Never empty: every constructor puts one key in, `parse` refuses none.
        &self.keys[0]
    }

    pub fn all(&self) -> &[JoinKey] {
        &self.keys
    }

    pub fn find(&self, kid: &str) -> Option<&JoinKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// A new current key; the old ones verify only, or are dropped with `drop_old`.
    pub fn rotated(&self, drop_old: bool) -> Self {
        let mut keys = vec![JoinKey::generate()];
        if !drop_old {
            keys.extend(self.keys.iter().cloned());
        }
        Self { keys }
    }

    /// A key that signed links before keys moved out of the store: kept to verify them.
    pub fn with_legacy(mut self, secret: String) -> Self {
        self.keys.push(JoinKey {
            kid: "store".into(),
            secret,
        });
        self
    }

    #[cfg(test)]
    pub(crate) fn with_kid(mut self, kid: &str) -> Self {
        self.keys[0].kid = kid.to_owned();
        self
    }

    fn parse(path: &str, text: &str) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why| KeyError::Format {
                path: path.to_owned(),
                line: n + 1,
                why,
            };
            let mut parts = line.split_whitespace();
            let (Some(kid), Some(secret), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(bad("want `<kid> <secret>`"));
            };
            if secret.chars().count() < MIN_SECRET_CHARS {
                return Err(bad("secret shorter than 32 characters"));
            }
            keys.push(JoinKey {
                kid: kid.to_owned(),
                secret: secret.to_owned(),
            });
        }
        if keys.is_empty() {
            return Err(KeyError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(Self { keys })
    }

    fn render(&self) -> String {
        let mut out = String::from(
            "# cauhop join-link signing keys: the first signs, the others only verify.\n\
             # Keep this file out of backups that leave the server; `cauhop keys rotate`.\n",
        );
        for k in &self.keys {
            out.push_str(&format!("{} {}\n", k.kid, k.secret));
        }
        out
    }

    /// Read the key file; `Ok(None)` when there is none yet.
    pub fn load(path: &Path) -> Result<Option<Self>, KeyError> {
        let shown = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&shown, &text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(KeyError::Read {
                path: shown,
                source,
            }),
        }
    }

    /// Write the key file readable by its owner only, replacing any old one at once
    /// (a temporary file renamed over it, so a crash leaves the old or the new).
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let err = |source| KeyError::Write {
            path: path.display().to_string(),
            source,
        };
        let tmp = path.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(err)?;
        f.write_all(self.render().as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }
}

/// Is the file readable by anyone but its owner? (Then it is not a secret.)
pub fn too_open(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_file_loads_back_owner_only_and_rotation_keeps_old_keys_verifying() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("join.keys");
        assert_eq!(JoinKeys::load(&path).expect("no file is fine"), None);
        let keys = JoinKeys::ephemeral();
        keys.save(&path).expect("save");
        assert!(!too_open(&path), "created owner-only");
        assert_eq!(JoinKeys::load(&path).expect("load"), Some(keys.clone()));

        let rotated = keys.rotated(false);
        assert_ne!(rotated.current(), keys.current());
        assert!(rotated.find(&keys.current().kid).is_some());
        rotated.save(&path).expect("save rotated");
        assert_eq!(JoinKeys::load(&path).expect("load"), Some(rotated.clone()));
        let dropped = rotated.rotated(true);
        assert_eq!(dropped.all().len(), 1);
        assert!(dropped.find(&keys.current().kid).is_none());
    }

    #[tokio::test]
    async fn an_old_key_in_the_store_moves_to_the_file_and_leaves_the_store() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let store = cauhop_store::Store::open(&url).await.expect("store");
        let legacy = "o".repeat(43);
        store
            .put_setting(LEGACY_SETTING, &legacy)
            .await
            .expect("put");
        let path = dir.path().join("join.keys");
        let keys = JoinKeys::ephemeral();
        let moved = move_out_of_store(&store, keys.clone(), Some(&path))
            .await
            .expect("move");
        assert_eq!(
            moved.current(),
            keys.current(),
            "the file's key still signs"
        );
        assert!(moved.all().iter().any(|k| k.secret == legacy));
        assert_eq!(JoinKeys::load(&path).expect("load"), Some(moved.clone()));
        assert_eq!(store.setting(LEGACY_SETTING).await.expect("read"), None);
        // The next start finds nothing to move and keeps the file's keys.
        let again = move_out_of_store(&store, moved.clone(), Some(&path))
            .await
            .expect("again");
        assert_eq!(again, moved);
    }

    #[test]
    fn bad_files_and_short_secrets_are_refused_with_the_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("join.keys");
        std::fs::write(&path, "# only a comment\n").expect("write");
        assert!(matches!(JoinKeys::load(&path), Err(KeyError::Empty { .. })));
        std::fs::write(&path, "k1 short\n").expect("write");
        let e = JoinKeys::load(&path).expect_err("short secret");
        assert!(e.to_string().contains("line 1"), "{e}");
        std::fs::write(&path, "k1\n").expect("write");
        assert!(matches!(
            JoinKeys::load(&path),
            Err(KeyError::Format { line: 1, .. })
        ));
        assert!(JoinKeys::from_env_secret("too-short").is_err());
        assert!(JoinKeys::from_env_secret(&"x".repeat(40)).is_ok());
        let keys = JoinKeys::ephemeral();
        let shown = format!("{keys:?}");
        assert!(
            !shown.contains(&keys.current().secret),
            "debug output names the key, never the secret: {shown}"
        );
    }
}
