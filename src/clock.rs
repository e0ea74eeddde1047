//! The only place that reads the wall clock. Everything else takes time from a [`Clock`], so scenarios and
//! tests run on simulated time (`--now`, the scenario runner's manual clock).
//!
//! `clippy.toml` forbids `Utc::now`, `SystemTime::now`, `Instant::now` and the type [`SystemClock`]
//! everywhere else: the real clock reaches the rest only as a `dyn Clock`, from [`wall`].

// The real clock is defined here, derives included.
#![allow(clippy::disallowed_types)]

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// A source of "now".
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned reading of the wall clock
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The real wall clock, shared: for what other processes must be able to judge (claims and their
/// expiry), which simulated time must never touch.
pub fn wall() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// A clock that reads whatever it was last set to: for `--now`, tests and the scenario runner.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    /// A clock stopped at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(now)))
    }

    /// Moves the clock to `now`.
    pub fn set(&self, now: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = now;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}

/// The monotonic clock, for durations only (step latency in [`crate::telemetry`]): never simulated, since a
/// latency is a property of this process, not of business time.
#[allow(clippy::disallowed_methods)] // the one sanctioned reading of the monotonic clock
pub fn monotonic() -> std::time::Instant {
    std::time::Instant::now()
}
