//! Helpers shared by the adapters' test binaries.
#![allow(dead_code)]

/// The monotonic clock, for the tests' own timing (deadlines, elapsed times): the test crate's one
/// sanctioned reading of it.
#[allow(clippy::disallowed_methods)] // tests time real processes and servers
pub fn now() -> std::time::Instant {
    std::time::Instant::now()
}
