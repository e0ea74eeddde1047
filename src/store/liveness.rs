//! Whether the worker that holds a claim is still alive, told by something the operating system or the
//! database ends together with the process: a killed worker's claims are taken over at once instead of
//! after its whole `lease`.
//!
//! - SQLite: each worker holds an exclusive OS file lock on `<database>.workers/<worker>`; the kernel drops
//!   it when the process dies, however it dies. Another worker that can take the lock knows the owner is
//!   gone. A clean exit removes the file; the file of a worker that died stays, a few bytes, as the sign.
//! - PostgreSQL: each worker holds a session advisory lock, keyed by its name, on a connection of its own;
//!   the server drops it when that session ends (the process killed, its socket closed). Another worker
//!   that can take the same lock, at once releasing it, knows the owner is gone.
//!
//! An in-memory SQLite database lives in one process: there is no other worker to judge.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use sqlx::Connection as _;

use super::Store;

/// This worker's mark of life, held as long as the value lives.
#[derive(Debug)]
pub enum WorkerLock {
    /// The locked file (the lock goes with the descriptor).
    File(File, PathBuf),
    /// The session holding the advisory lock.
    Session(Box<sqlx::PgConnection>),
    /// Nothing to hold: one process only.
    None,
}

impl Drop for WorkerLock {
    fn drop(&mut self) {
        if let WorkerLock::File(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The advisory-lock key of a worker: the first eight bytes of the SHA-256 of its name.
fn key(owner: &str) -> i64 {
    let digest = Sha256::digest(owner.as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("eight bytes"))
}

/// The folder of the workers' lock files beside an SQLite database file (none for one in memory).
fn lock_dir(file: &Path) -> Option<PathBuf> {
    let text = file.to_string_lossy();
    if text.is_empty() || text.contains(":memory:") || text.starts_with("file:") {
        return None;
    }
    let mut dir = file.as_os_str().to_owned();
    dir.push(".workers");
    Some(PathBuf::from(dir))
}

/// A worker's name as a file name (it is `pid-uuid`, but a name from elsewhere must not escape the folder).
fn file_of(dir: &Path, owner: &str) -> PathBuf {
    let safe: String = owner
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(safe)
}

impl Store {
    /// Takes this worker's mark of life (see the module's doc); keep it as long as the worker may claim.
    pub async fn hold_worker_lock(&self, owner: &str) -> Result<WorkerLock> {
        match self {
            Store::Sqlite(pool) => {
                let Some(dir) = lock_dir(pool.connect_options().get_filename()) else {
                    return Ok(WorkerLock::None);
                };
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                let path = file_of(&dir, owner);
                let file = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                file.try_lock()
                    .with_context(|| format!("cannot lock {}", path.display()))?;
                Ok(WorkerLock::File(file, path))
            }
            Store::Postgres(pool) => {
                let mut session = sqlx::PgConnection::connect_with(&pool.connect_options())
                    .await
                    .context("cannot open the worker's liveness session")?;
                sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(key(owner))
                    .execute(&mut session)
                    .await?;
                Ok(WorkerLock::Session(Box::new(session)))
            }
        }
    }

    /// Whether `owner` still holds its mark of life: `Some(false)` only when it is certainly gone.
    pub async fn worker_alive(&self, owner: &str) -> Result<Option<bool>> {
        match self {
            Store::Sqlite(pool) => {
                let Some(dir) = lock_dir(pool.connect_options().get_filename()) else {
                    return Ok(None);
                };
                let path = file_of(&dir, owner);
                let Ok(file) = OpenOptions::new().write(true).open(&path) else {
                    // A worker of a version without lock files, or one whose file was removed: unknown.
                    return Ok(None);
                };
                match file.try_lock() {
                    // The file stays: it is what tells the next one asking that this worker is gone (a claim
                    // on the nightly ingest still names it after its case claims are taken over).
                    Ok(()) => Ok(Some(false)),
                    Err(std::fs::TryLockError::WouldBlock) => Ok(Some(true)),
                    Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
                }
            }
            Store::Postgres(pool) => {
                // Taken and given back in one statement, on one pooled session: true means nobody held it.
                let free: bool = sqlx::query_scalar(
                    "SELECT pg_try_advisory_lock($1) AND pg_advisory_unlock($1)",
                )
                .bind(key(owner))
                .fetch_one(pool)
                .await?;
                Ok(Some(!free))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_files_sit_beside_a_file_database_and_not_for_one_in_memory() {
        assert_eq!(
            lock_dir(Path::new("/tmp/x/sdu.db")),
            Some(PathBuf::from("/tmp/x/sdu.db.workers"))
        );
        assert_eq!(lock_dir(Path::new(":memory:")), None);
        assert_eq!(
            file_of(Path::new("d"), "12-ab/../x"),
            PathBuf::from("d/12-ab____x")
        );
        assert_ne!(key("a"), key("b"));
    }
}
