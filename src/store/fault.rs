//! Which database errors are worth waiting out.
//!
//! Every store operation is one transaction, and a step is recorded only after its outward write returned
//! (the write carries an idempotency key), so a database error loses nothing: repeating the operation is
//! always safe. What differs is whether repeating it can help. A server restarting, a connection cut,
//! SQLite's write lock held past the busy timeout, a pool that could not get a connection in time: these
//! pass, and the engine retries them ([`is_transient`]). A decoding error or a constraint the engine does
//! not expect would fail again the same way; those are reported at once.

use sqlx::error::DatabaseError;

/// A store operation left out because the one just before it failed with a transient fault (no use
/// waiting for the database once per operation): transient itself.
#[derive(Debug, thiserror::Error)]
#[error("not attempted, the case store had just failed: {0}")]
pub struct NotAttempted(pub String);

/// The store's typed error in `error`, once a [`super::CaseStore`] operation failed.
fn typed(error: &anyhow::Error) -> Option<&super::StoreError> {
    error.chain().find_map(|cause| cause.downcast_ref())
}

/// Whether `error` comes from the case store (its typed error, or its database driver).
pub fn is_store_error(error: &anyhow::Error) -> bool {
    typed(error).is_some()
        || error
            .chain()
            .any(|cause| cause.is::<sqlx::Error>() || cause.is::<NotAttempted>())
}

/// Whether `error` is a database fault that passes by itself: connection lost or refused, server shutting
/// down or starting up, SQLite busy or locked, no pooled connection in time, a deadlock or serialization
/// failure between workers.
pub fn is_transient(error: &anyhow::Error) -> bool {
    if let Some(typed) = typed(error) {
        return typed.is_transient();
    }
    error.chain().any(|cause| {
        cause.is::<NotAttempted>()
            || cause
                .downcast_ref::<sqlx::Error>()
                .is_some_and(is_transient_sqlx)
    })
}

/// Whether `error` is a conflict between transactions (a PostgreSQL deadlock or serialization failure): the
/// database works, and the same changes made one at a time would most likely go through.
pub fn is_conflict(error: &anyhow::Error) -> bool {
    if let Some(typed) = typed(error) {
        return typed.is_conflict();
    }
    error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<sqlx::Error>(),
            Some(sqlx::Error::Database(db)) if db.code().is_some_and(|c| c == "40001" || c == "40P01")
        )
    })
}

fn is_transient_sqlx(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(db) => is_transient_code(db.as_ref()),
        _ => false,
    }
}

/// SQLite result codes (primary code in the low byte of the extended one) and PostgreSQL SQLSTATEs.
fn is_transient_code(db: &dyn DatabaseError) -> bool {
    let Some(code) = db.code() else { return false };
    if let Ok(sqlite) = code.parse::<i32>() {
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes (BUSY_SNAPSHOT, …).
        return matches!(sqlite & 0xff, 5 | 6);
    }
    // Class 08: connection exception; 57P01..57P03: admin shutdown, crash shutdown, cannot connect now;
    // class 53: insufficient resources (too many connections); 40001 / 40P01: serialization failure,
    // deadlock; 55P03: lock not available.
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            &*code,
            "57P01" | "57P02" | "57P03" | "40001" | "40P01" | "55P03"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_connection_and_a_pool_timeout_are_transient() {
        let io = anyhow::Error::from(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert!(is_store_error(&io) && is_transient(&io));
        let timeout = anyhow::Error::from(sqlx::Error::PoolTimedOut).context("claiming cases");
        assert!(is_store_error(&timeout) && is_transient(&timeout));
    }

    #[test]
    fn an_operation_left_out_after_a_fault_is_transient() {
        let e = anyhow::Error::from(NotAttempted("connection reset".into()));
        assert!(is_store_error(&e) && is_transient(&e));
    }

    #[test]
    fn a_decoding_error_is_a_store_error_but_not_transient() {
        let e = anyhow::Error::from(sqlx::Error::ColumnNotFound("stage".into()));
        assert!(is_store_error(&e));
        assert!(!is_transient(&e));
        assert!(!is_transient(&anyhow::Error::from(sqlx::Error::PoolClosed)));
    }

    #[tokio::test]
    async fn sqlite_busy_is_transient_and_a_constraint_error_is_not() {
        use sqlx::{ConnectOptions, Connection, Executor};
        let dir = std::env::temp_dir().join(format!("sdu-fault-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.join("f.db"))
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let mut holder = options.clone().connect().await.unwrap();
        holder
            .execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .await
            .unwrap();
        let mut other = options
            .busy_timeout(std::time::Duration::ZERO)
            .connect()
            .await
            .unwrap();
        holder.execute("BEGIN EXCLUSIVE").await.unwrap();
        let busy = anyhow::Error::from(
            other
                .execute("INSERT INTO t (id) VALUES (1)")
                .await
                .unwrap_err(),
        );
        assert!(is_store_error(&busy) && is_transient(&busy), "{busy:#}");
        holder.execute("COMMIT").await.unwrap();
        other
            .execute("INSERT INTO t (id) VALUES (1)")
            .await
            .unwrap();
        let duplicate = anyhow::Error::from(
            other
                .execute("INSERT INTO t (id) VALUES (1)")
                .await
                .unwrap_err(),
        );
        assert!(is_store_error(&duplicate) && !is_transient(&duplicate));
        holder.close().await.unwrap();
        other.close().await.unwrap();
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn an_error_of_another_system_is_not_a_store_error() {
        let e = anyhow::anyhow!("e_license: 503").context("reading the rename feed");
        assert!(!is_store_error(&e));
        assert!(!is_transient(&e));
    }
}
