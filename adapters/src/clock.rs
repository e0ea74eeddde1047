//! The adapters' only reading of the monotonic clock: call latencies (the statistics) and the rate limit's
//! one-second window. No wall-clock time is read here; the orchestrator's "now" comes from its own clock.

use std::time::Instant;

/// The current instant of the monotonic clock.
#[allow(clippy::disallowed_methods)] // the adapters' one sanctioned reading of the monotonic clock
pub(crate) fn now() -> Instant {
    Instant::now()
}
