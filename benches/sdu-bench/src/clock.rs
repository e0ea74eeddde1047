//! The benchmark's one reading of the monotonic clock: wall time of phases, samplers and the capacity
//! loop (the engine itself runs on the simulated [`sdu::clock::ManualClock`]).

use std::time::Instant;

/// The current instant of the monotonic clock.
#[allow(clippy::disallowed_methods)] // the benchmark measures real time: the one sanctioned reading
pub fn now() -> Instant {
    Instant::now()
}
