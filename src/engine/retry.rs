//! Riding through database faults: a part of a pass that failed because the case store was away (a
//! connection cut by a server restart, a server still starting, SQLite busy past its timeout) is done
//! again after a back-off, until the store answers or has failed for `database_retry_for` in a row.
//!
//! Doing a part again is safe: each store change is one transaction, and a step is recorded only after its
//! outward write returned, so a failed attempt recorded each step whole or not at all, and a step not
//! recorded repeats its write under the same idempotency key. Before each retry the worker lets go of its
//! claims: once the failed part has returned no case is in hand, and a case claimed by the failed attempt
//! would otherwise wait for its claim to expire (`lease`).

use std::time::Duration;

use chrono::{DateTime, Utc};

use anyhow::Result;
use tracing::{info, warn};

use super::Engine;
use crate::store::{self, CaseStore};

/// Evaluates `$op` (an expression giving a future of `anyhow::Result<T>`), again after each transient
/// database fault, as [`StoreRetry`] decides; gives the final `Result<T>`. A macro rather than a function
/// taking a closure: the closure would have to borrow the caller's state anew for each attempt, and the
/// pass future must stay `Send`.
macro_rules! retrying {
    ($engine:expr, $op:expr) => {{
        let mut retry = $crate::engine::retry::StoreRetry::new($engine);
        loop {
            match retry.after($op.await).await {
                Ok(Some(value)) => break Ok(value),
                Ok(None) => {}
                Err(e) => break Err(e),
            }
        }
    }};
}
pub(crate) use retrying;

/// The state of one retried part: since when the store fails, the next back-off, the attempts.
pub(crate) struct StoreRetry<'a, S: CaseStore> {
    engine: &'a Engine<S>,
    failing_since: Option<DateTime<Utc>>,
    backoff: Duration,
    attempts: u32,
}

impl<'a, S: CaseStore> StoreRetry<'a, S> {
    pub(crate) fn new(engine: &'a Engine<S>) -> Self {
        Self {
            engine,
            failing_since: None,
            backoff: Duration::from_millis(100),
            attempts: 0,
        }
    }

    /// What to do after an attempt: `Ok(Some(value))` when it succeeded, `Ok(None)` to try again (after the
    /// back-off, the worker's claims released), `Err` when it failed otherwise, or the store has failed for
    /// `database_retry_for` in a row, or the engine is stopping. The back-off starts at 100 ms and doubles
    /// up to 5 s; a shutdown request ends the waiting at once.
    pub(crate) async fn after<T>(&mut self, result: Result<T>) -> Result<Option<T>> {
        let mut error = match result {
            Ok(value) => {
                if self.attempts > 0 {
                    info!(attempts = self.attempts, "the case store answers again");
                }
                return Ok(Some(value));
            }
            Err(e) => e,
        };
        let engine = self.engine;
        loop {
            if !store::is_transient(&error) {
                return Err(error);
            }
            self.attempts += 1;
            let now = engine.wall.now();
            let since = *self.failing_since.get_or_insert(now);
            let elapsed = (now - since).to_std().unwrap_or_default();
            if elapsed >= engine.config.database_retry_for || engine.stopping() {
                let failed_for = Duration::from_secs(elapsed.as_secs());
                return Err(error.context(format!(
                    "the case store failed for {} in a row ({} attempts); nothing is lost, a later pass \
                     carries on",
                    humantime::format_duration(failed_for),
                    self.attempts
                )));
            }
            warn!(
                attempt = self.attempts,
                retry_in_ms = self.backoff.as_millis() as u64,
                "the case store failed, retrying: {error:#}"
            );
            match engine.stop.get() {
                Some(stop) => {
                    tokio::select! {
                        _ = tokio::time::sleep(self.backoff) => {}
                        _ = stop.cancelled() => {}
                    }
                }
                None => tokio::time::sleep(self.backoff).await,
            }
            if engine.stopping() {
                return Err(error.context("stopped while waiting for the case store"));
            }
            self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
            match engine.store.release_all_of(&engine.owner).await {
                Ok(_) => return Ok(None),
                Err(e) => error = e.into(),
            }
        }
    }
}
