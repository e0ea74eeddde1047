//! The mock's only readings of the real clocks: the default "now" of a mock nobody has set a clock on, and
//! the arrival instants its per-second request peaks are counted over.

use std::time::Instant;

use chrono::{DateTime, Utc};

/// The wall clock: the mock's default "now", until a test or the scenario runner sets one.
#[allow(clippy::disallowed_methods)] // the mock's one sanctioned reading of the wall clock
pub(crate) fn wall_clock() -> DateTime<Utc> {
    Utc::now()
}

/// The monotonic clock: when a request arrived, for the per-second peaks.
#[allow(clippy::disallowed_methods)] // the mock's one sanctioned reading of the monotonic clock
pub(crate) fn monotonic() -> Instant {
    Instant::now()
}
