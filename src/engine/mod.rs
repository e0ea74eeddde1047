//! The runner: claims due cases, performs what the decision core asks through the adapters, and records
//! each step in one guarded transaction. It holds no rule: every decision (what a due case needs, what a
//! finding, a reply, an accepted SMS or an error does to it) is a transition of [`crate::case`].
//!
//! Crash safety: every outward write carries an idempotency key derived from the case and step
//! (`{case_key}:{step}`), and the step is recorded only after the write returned. A process killed in
//! between repeats the write on restart with the same key, which the external system answers with its
//! first result: nothing is done twice, nothing is lost.
//!
//! One job per file: [`systems`] (the clients and the checks), [`ingest`] (the rename feed and the nightly
//! slot), [`replies`] (the reply feed and matching), [`drain`] (the claim loop and the group commit),
//! [`steps`] (one case's steps), [`retry`] (riding through database faults).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::case::{Settings, Window};
use crate::clock::Clock;
use crate::config::Config;
use crate::store::{self, CaseStore, IngestReport, Store};

mod drain;
mod ingest;
mod liveness;
pub mod pause;
mod replies;
mod retry;
mod steps;
mod systems;

pub use liveness::LIVENESS_EVERY;
use retry::retrying;
pub use systems::{Finding, Systems, gather};

/// Meta key of the rename feed cursor.
pub const RENAMES_CURSOR: &str = "renames_cursor";
/// Meta key of the reply feed cursor.
pub const REPLIES_CURSOR: &str = "replies_cursor";
/// Meta key of the last nightly ingest slot done (RFC 3339).
pub const LAST_INGEST_SLOT: &str = "last_ingest_slot";
/// Meta key of the claim on a nightly slot being ingested (`slot|wall-clock expiry ms`).
pub const INGEST_CLAIM: &str = "ingest_claim";

/// When a pass ingests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestMode {
    /// Read the rename feed now (`sdu run`).
    Now,
    /// Only when a nightly slot has passed since the last ingest, catch-up included (the daemon's tick).
    Nightly,
}

/// What one pass did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PassReport {
    /// Ingest, when one ran and succeeded.
    pub ingest: Option<IngestReport>,
    /// Why the ingest failed, if it did (it is retried at the next tick).
    pub ingest_error: Option<String>,
    /// Replies newly stored.
    pub replies_stored: u64,
    /// Why reading replies failed, if it did.
    pub replies_error: Option<String>,
    /// Case steps recorded.
    pub steps: u64,
}

/// The orchestrator: store, systems, clocks and settings.
pub struct Engine<S: CaseStore = Store> {
    /// The case store.
    pub store: S,
    /// The external systems.
    pub systems: Systems,
    /// Business time (simulated in scenarios and with `--now`).
    pub clock: Arc<dyn Clock>,
    /// Real time, for claims that other processes must be able to judge (leases): never simulated.
    pub wall: Arc<dyn Clock>,
    /// Settings.
    pub config: Config,
    /// What the decision core reads: the service, its timers, the SMS window and language.
    settings: Settings,
    owner: String,
    steps: AtomicU64,
    stop: std::sync::OnceLock<tokio_util::sync::CancellationToken>,
    /// The nightly-slot claim this worker last took and has not given up yet (`INGEST_CLAIM`'s value): left
    /// behind by an attempt that failed on a database fault, it is no obstacle to this worker's retry.
    ingest_claim: std::sync::Mutex<Option<String>>,
    /// Set by [`Engine::drain`] when the store failed: the cases still waiting in the batch are not started
    /// (their outward writes could not be recorded), and the pass retries them once the store answers.
    store_failed: AtomicBool,
    /// Called after every recorded step, for progress displays.
    pub on_step: Option<Arc<dyn Fn(u64) + Send + Sync>>,
    /// This worker's mark of life, taken at its first drain ([`liveness`]).
    worker_lock: tokio::sync::OnceCell<store::WorkerLock>,
    /// When this worker last looked for the claims of workers that are gone.
    liveness_checked: std::sync::Mutex<Option<DateTime<Utc>>>,
    /// The SMS pause switch as last read from the store ([`pause`]).
    sms_paused: AtomicBool,
}

impl<S: CaseStore> Engine<S> {
    /// An engine on the real wall clock; its worker name (in claims) is new for each engine.
    pub fn new(store: S, systems: Systems, clock: Arc<dyn Clock>, config: Config) -> Result<Self> {
        Self::with_wall_clock(store, systems, clock, crate::clock::wall(), config)
    }

    /// [`Engine::new`] with the wall clock given (tests).
    pub fn with_wall_clock(
        store: S,
        systems: Systems,
        clock: Arc<dyn Clock>,
        wall: Arc<dyn Clock>,
        config: Config,
    ) -> Result<Self> {
        let settings = Settings {
            service: config.service.clone(),
            language: config.sms_language.code().to_owned(),
            reminder_after: config.reminder_after,
            expire_after: config.expire_after,
            window: Window {
                start: config.sms_window.start,
                end: config.sms_window.end,
                tz: config.tz()?,
            },
        };
        let owner = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
        Ok(Self {
            store,
            systems,
            clock,
            wall,
            config,
            settings,
            owner,
            steps: AtomicU64::new(0),
            stop: std::sync::OnceLock::new(),
            ingest_claim: std::sync::Mutex::new(None),
            store_failed: AtomicBool::new(false),
            on_step: None,
            worker_lock: tokio::sync::OnceCell::new(),
            liveness_checked: std::sync::Mutex::new(None),
            sms_paused: AtomicBool::new(false),
        })
    }

    /// Stops claiming new work once `token` is cancelled (the step in hand still completes).
    pub fn stop_on(&self, token: tokio_util::sync::CancellationToken) {
        let _ = self.stop.set(token);
    }

    fn stopping(&self) -> bool {
        self.stop.get().is_some_and(|t| t.is_cancelled())
    }

    /// The wall clock in milliseconds, and the expiry of a claim taken now.
    fn lease_from_now(&self) -> (i64, i64) {
        let wall = store::ms(self.wall.now());
        (wall, wall + self.config.lease.as_millis() as i64)
    }

    /// One pass: ingest (always for `sdu run`, when a nightly slot is due for the daemon), read and apply
    /// replies, then drive every due case as far as it goes now.
    ///
    /// A transient database fault (a lost connection, a server restarting, SQLite busy) does not end the pass:
    /// the part that failed is done again after a back-off, for up to `database_retry_for` of failures in a
    /// row, and only then does the pass fail (see [`retry`]). An upstream system that is down
    /// fails only its part: the ingest or the reply poll waits for the next pass, a case waits for its retry.
    pub async fn pass(&self, ingest: IngestMode) -> Result<PassReport> {
        let mut report = PassReport::default();
        let steps_before = self.steps.load(Ordering::Relaxed);
        let mut opened = IngestReport::default();
        let ingested = match ingest {
            IngestMode::Now => {
                retrying!(self, self.ingest_into(&mut opened)).map(|()| Some(opened))
            }
            IngestMode::Nightly => retrying!(self, self.nightly_if_due()),
        };
        match ingested {
            Ok(r) => report.ingest = r,
            Err(e) if store::is_store_error(&e) => return Err(e),
            Err(e) => report.ingest_error = Some(format!("{e:#}")),
        }
        let mut stored = 0;
        match retrying!(self, self.poll_replies_into(&mut stored)) {
            Ok(()) => {}
            Err(e) if store::is_store_error(&e) => return Err(e),
            Err(e) => report.replies_error = Some(format!("{e:#}")),
        }
        report.replies_stored = stored;
        let (_, deferred) = retrying!(self, self.handle_replies())?;
        retrying!(self, self.drain())?;
        if deferred > 0 {
            // The sends those replies waited for are recorded now.
            retrying!(self, self.handle_replies())?;
            retrying!(self, self.drain())?;
        }
        // Counted by the engine, so that steps recorded by an attempt that failed later are counted too.
        report.steps = self.steps.load(Ordering::Relaxed) - steps_before;
        Ok(report)
    }

    /// The next scheduled ingest instant after `now`.
    pub fn next_ingest_after(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
        let tz = self.config.tz()?;
        let next = self
            .config
            .cron()?
            .find_next_occurrence(&now.with_timezone(&tz), false)?;
        Ok(next.with_timezone(&Utc))
    }

    /// Counts of cases per status and stage or reason.
    pub async fn summary(&self) -> Result<BTreeMap<String, i64>> {
        let mut out = BTreeMap::new();
        for row in self.store.summary().await? {
            let key = match row.detail {
                Some(d) => format!("{}/{}", row.status, d),
                None => row.status,
            };
            *out.entry(key).or_default() += row.count;
        }
        Ok(out)
    }
}

#[cfg(all(test, feature = "mock"))]
mod tests;
