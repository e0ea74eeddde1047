//! Opening each backend's pool, and the helpers that shape the store's multi-row statements.

use std::str::FromStr;

use anyhow::{Context, Result};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// Opens an SQLite pool: the file is created 0600 (it holds personal data), WAL, a busy timeout.
pub async fn open_sqlite(url: &str, wait: super::StoreOptions) -> Result<sqlx::SqlitePool> {
    let options = SqliteConnectOptions::from_str(url)
        .with_context(|| "invalid SQLite URL")?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(wait.sqlite_busy_timeout)
        .foreign_keys(true)
        // A checkpoint every 10,000 WAL pages (40 MiB) rather than SQLite's 1,000: the pages the steps keep
        // rewriting (the due index, the ends of the history and outbox) are copied into the database once
        // per checkpoint however often they changed, and each checkpoint costs an fsync. The WAL file is
        // disk, not memory; its index in shared memory grows by 32 KiB per 4,096 pages.
        .pragma("wal_autocheckpoint", "10000")
        // Statement journals in memory: a multi-row update journals every page it changes, past 64 KiB
        // in a temporary file, whose writes were a tenth of SQLite's thread (docs/BENCHMARKS.md). They
        // last one statement.
        .pragma("temp_store", "memory")
        // Rows come back from SQLite's thread through a bounded channel: at the default 50 a claim of 512
        // rows stops that thread ten times to wait for the engine's thread to take them, two wake-ups
        // each; 1,024 holds the rows of a claim at the default concurrency (2 × 256).
        .row_buffer_size(1024);
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    if !in_memory {
        create_private_file(options.get_filename())?;
    }
    let pool = SqlitePoolOptions::new()
        // One connection. An in-memory database lives in one anyway. For a file: SQLite writes one
        // transaction at a time, and the engine saves many steps per transaction; a second connection lets a
        // claim run beside a commit only to wait in SQLite's busy handler (which sleeps in steps of
        // milliseconds), it empties the other's page cache at each of its commits, and it costs a thread, a
        // page cache and a malloc arena (docs/BENCHMARKS.md has the figures).
        .max_connections(1)
        // A ping before every acquire is one more round trip to the connection's thread per query; a broken
        // connection shows as an error of the query itself anyway.
        .test_before_acquire(false)
        .acquire_timeout(wait.acquire_timeout)
        .connect_with(options)
        .await
        .with_context(|| format!("cannot open SQLite database {}", options_display(url)))?;
    Ok(pool)
}

fn options_display(url: &str) -> &str {
    url
}

#[cfg(unix)]
fn create_private_file(path: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        return Ok(());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .or_else(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Ok(())
            } else {
                Err(e)
            }
        })
        .with_context(|| format!("cannot create database file {}", path.display()))
}

#[cfg(not(unix))]
fn create_private_file(_path: &std::path::Path) -> Result<()> {
    Ok(())
}

/// Opens a PostgreSQL pool.
///
/// No ping before each acquire: after a server restart each pooled connection fails one query, and sqlx
/// pings a connection when it comes back to the pool and closes it if the ping fails, so a broken
/// connection is never handed out twice; the engine retries the failed operation (`store::is_transient`).
/// New connections to a server that is still starting are retried by sqlx until `acquire_timeout`.
pub async fn open_postgres(url: &str, wait: super::StoreOptions) -> Result<sqlx::PgPool> {
    PgPoolOptions::new()
        .max_connections(16)
        .test_before_acquire(false)
        .acquire_timeout(wait.acquire_timeout)
        .connect(url)
        .await
        .context("cannot connect to PostgreSQL")
}

/// Most rows per multi-row statement: far below either backend's limit on parameters.
pub(crate) const ROWS_PER_STATEMENT: usize = 64;

/// The largest power of two not above `n` (at least 1) and not above [`ROWS_PER_STATEMENT`]: rows are sent
/// in groups of 64, 32, …, 1, so that each kind of statement has only seven shapes, each prepared once per
/// connection and kept in its statement cache.
pub(crate) fn group_size(n: usize) -> usize {
    let n = n.clamp(1, ROWS_PER_STATEMENT);
    1 << (usize::BITS - 1 - n.leading_zeros())
}

/// `items` cut into groups of [`group_size`].
pub(crate) fn groups<T>(mut items: &[T]) -> Vec<&[T]> {
    let mut out = Vec::new();
    while !items.is_empty() {
        let (head, tail) = items.split_at(group_size(items.len()));
        out.push(head);
        items = tail;
    }
    out
}

/// `count` parameters from number `first`: `$3, $4, …` for PostgreSQL, `?, ?, …` for SQLite, whose
/// anonymous parameters sqlx binds by position (a numbered one costs SQLite a search by name per
/// parameter, which grows with the square of their number).
pub(crate) fn params(numbered: bool, first: usize, count: usize) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(count * 5);
    for k in 0..count {
        if k > 0 {
            s.push_str(", ");
        }
        if numbered {
            let _ = write!(s, "${}", first + k);
        } else {
            s.push('?');
        }
    }
    s
}

/// The text of one shape of a multi-row statement: `build` makes it the first time the shape (`name`, the
/// backend's parameter style, `rows`) is asked for, and the text is kept for the life of the process. The
/// shapes are few (`rows` is one of [`group_size`]'s powers of two, or below [`ROWS_PER_STATEMENT`]), and
/// building one afresh for every statement was 7 % of the engine's instructions on PostgreSQL
/// (`callgrind`, docs/BENCHMARKS.md): the 64-row guarded update alone is 1,600 formatted parameters.
pub(crate) fn shaped(
    name: &'static str,
    numbered: bool,
    rows: usize,
    build: impl FnOnce() -> String,
) -> std::sync::Arc<str> {
    type Shapes = std::collections::HashMap<(&'static str, bool, usize), std::sync::Arc<str>>;
    static SHAPES: std::sync::LazyLock<std::sync::Mutex<Shapes>> =
        std::sync::LazyLock::new(Default::default);
    // A panic while the lock is held cannot leave a half-built entry: the entry is inserted whole.
    let mut shapes = SHAPES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    std::sync::Arc::clone(
        shapes
            .entry((name, numbered, rows))
            .or_insert_with(|| build().into()),
    )
}

/// `(…), (…), …`: `rows` tuples of `cols` parameters, numbered from 1.
pub(crate) fn tuples(numbered: bool, rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", params(numbered, 1 + r * cols, cols)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The claim of due cases (`claim_due`), with the backend's row-locking clause (PostgreSQL skips rows
/// another worker is claiming; SQLite has one writer anyway).
macro_rules! claim_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE cases SET lease_owner = $1, lease_until = $2 WHERE id IN (SELECT id FROM cases \
             WHERE status = 'open' AND due_at <= $3 AND (lease_until IS NULL OR lease_until < $4) \
             ORDER BY due_at, id LIMIT $5",
            $lock,
            ") RETURNING *"
        )
    };
}
pub(crate) use claim_sql;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_go_in_groups_of_powers_of_two_largest_first() {
        let items: Vec<u32> = (0..100).collect();
        let sizes: Vec<usize> = groups(&items).iter().map(|g| g.len()).collect();
        assert_eq!(sizes, vec![64, 32, 4]);
        assert!(groups::<u32>(&[]).is_empty());
        assert_eq!(group_size(1), 1);
        assert_eq!(group_size(63), 32);
        assert_eq!(group_size(1000), 64);
    }

    #[test]
    fn a_shape_is_built_once_and_shapes_are_kept_apart() {
        let built = std::cell::Cell::new(0);
        let make = |rows| {
            shaped("imp::tests", true, rows, || {
                built.set(built.get() + 1);
                format!("INSERT INTO t VALUES {}", tuples(true, rows, 2))
            })
        };
        assert_eq!(&*make(2), "INSERT INTO t VALUES ($1, $2), ($3, $4)");
        assert_eq!(&*make(2), "INSERT INTO t VALUES ($1, $2), ($3, $4)");
        assert_eq!(built.get(), 1);
        assert_eq!(&*make(1), "INSERT INTO t VALUES ($1, $2)");
        assert_eq!(built.get(), 2);
        let anonymous = shaped("imp::tests", false, 1, || tuples(false, 1, 2));
        assert_eq!(&*anonymous, "(?, ?)");
    }

    #[test]
    fn parameters_are_numbered_for_postgres_and_anonymous_for_sqlite() {
        assert_eq!(tuples(true, 2, 2), "($1, $2), ($3, $4)");
        assert_eq!(tuples(false, 2, 2), "(?, ?), (?, ?)");
        assert_eq!(params(true, 3, 2), "$3, $4");
    }
}
