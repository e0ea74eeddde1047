//! Per-system call statistics, cheap enough to record on every call.
//!
//! Counters are relaxed atomics and latencies go into a fixed log-linear histogram of atomic buckets (eight
//! buckets per power of two of microseconds, so a quantile is off by at most 1/16 of its value), so
//! recording never takes a lock and never allocates.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::AdapterError;

/// Sub-buckets per power of two: 2^3 = 8.
const SUB_BITS: u32 = 3;
const SUB: u64 = 1 << SUB_BITS;
/// Values below `SUB` µs get a bucket each; then `SUB` buckets for each exponent from `SUB_BITS` to 63.
const BUCKETS: usize = (SUB + (64 - SUB_BITS as u64) * SUB) as usize;

fn bucket_of(micros: u64) -> usize {
    if micros < SUB {
        return micros as usize;
    }
    let exp = 63 - micros.leading_zeros();
    let sub = (micros >> (exp - SUB_BITS)) & (SUB - 1);
    (SUB + u64::from(exp - SUB_BITS) * SUB + sub) as usize
}

/// The smallest and largest value (µs) that fall into bucket `index`.
fn bucket_bounds(index: usize) -> (u64, u64) {
    let index = index as u64;
    if index < SUB {
        return (index, index);
    }
    let exp = (index - SUB) / SUB + u64::from(SUB_BITS);
    let sub = (index - SUB) % SUB;
    let width = 1u64 << (exp - u64::from(SUB_BITS));
    let low = (SUB + sub) << (exp - u64::from(SUB_BITS));
    (low, low.saturating_add(width - 1))
}

/// Statistics of one client's calls; share it with `Arc`.
///
/// A *call* is one trait method invocation with all its attempts; its latency runs from the call to its
/// result, waits for the rate limiter, the semaphore and backoffs included.
pub struct CallStats {
    calls: AtomicU64,
    errors: AtomicU64,
    transient_errors: AtomicU64,
    absent: AtomicU64,
    attempts: AtomicU64,
    total_micros: AtomicU64,
    max_micros: AtomicU64,
    buckets: Box<[AtomicU64]>,
}

impl Default for CallStats {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for CallStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

/// A consistent-enough copy of [`CallStats`] at one instant (each counter is read once, without a lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// Calls finished.
    pub calls: u64,
    /// Calls that ended in an error (`Absent` is an answer, not an error).
    pub errors: u64,
    /// Of those, the transient ones.
    pub transient_errors: u64,
    /// Calls answered with "absent" (404).
    pub absent: u64,
    /// HTTP attempts made; `attempts - calls` is the number of retries.
    pub attempts: u64,
    /// Mean latency of a call.
    pub mean: Duration,
    /// Median latency.
    pub p50: Duration,
    /// 90th percentile latency.
    pub p90: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Longest call.
    pub max: Duration,
}

impl CallStats {
    /// Empty statistics.
    pub fn new() -> Self {
        Self {
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            transient_errors: AtomicU64::new(0),
            absent: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
            total_micros: AtomicU64::new(0),
            max_micros: AtomicU64::new(0),
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Records one finished call: its latency, how many attempts it made, and its error if any.
    pub fn record(&self, latency: Duration, attempts: u32, error: Option<&AdapterError>) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.calls.fetch_add(1, Relaxed);
        self.attempts.fetch_add(u64::from(attempts), Relaxed);
        match error {
            None => {}
            Some(AdapterError::Absent { .. }) => {
                self.absent.fetch_add(1, Relaxed);
            }
            Some(e) => {
                self.errors.fetch_add(1, Relaxed);
                if e.is_transient() {
                    self.transient_errors.fetch_add(1, Relaxed);
                }
            }
        }
        self.total_micros.fetch_add(micros, Relaxed);
        self.max_micros.fetch_max(micros, Relaxed);
        self.buckets[bucket_of(micros)].fetch_add(1, Relaxed);
    }

    /// Calls finished so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Relaxed)
    }

    /// The latency below which a fraction `q` (0.0..=1.0) of calls finished, within 1/16 of its value;
    /// zero when nothing was recorded.
    pub fn quantile(&self, q: f64) -> Duration {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return Duration::ZERO;
        }
        // The rank of the wanted call, 1-based: the smallest rank r with r >= q * total.
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (index, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let (low, high) = bucket_bounds(index);
                let mid = low + (high - low) / 2;
                return Duration::from_micros(mid.min(self.max_micros.load(Relaxed)));
            }
        }
        Duration::from_micros(self.max_micros.load(Relaxed))
    }

    /// A copy of every figure.
    pub fn snapshot(&self) -> StatsSnapshot {
        let calls = self.calls.load(Relaxed);
        let total = self.total_micros.load(Relaxed);
        StatsSnapshot {
            calls,
            errors: self.errors.load(Relaxed),
            transient_errors: self.transient_errors.load(Relaxed),
            absent: self.absent.load(Relaxed),
            attempts: self.attempts.load(Relaxed),
            mean: Duration::from_micros(total.checked_div(calls).unwrap_or(0)),
            p50: self.quantile(0.50),
            p90: self.quantile(0.90),
            p99: self.quantile(0.99),
            max: Duration::from_micros(self.max_micros.load(Relaxed)),
        }
    }

    /// Forgets everything recorded (e.g. after a benchmark's warm-up). Calls finishing meanwhile may be
    /// partly counted.
    pub fn reset(&self) {
        for counter in [
            &self.calls,
            &self.errors,
            &self.transient_errors,
            &self.absent,
            &self.attempts,
            &self.total_micros,
            &self.max_micros,
        ] {
            counter.store(0, Relaxed);
        }
        for bucket in self.buckets.iter() {
            bucket.store(0, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_inside_its_bucket() {
        for micros in (0..5000).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let index = bucket_of(micros);
            assert!(index < BUCKETS, "{micros}");
            let (low, high) = bucket_bounds(index);
            assert!(
                low <= micros && micros <= high,
                "{micros} not in {low}..={high}"
            );
        }
    }

    #[test]
    fn quantiles_are_within_a_sixteenth() {
        let stats = CallStats::new();
        for ms in 1..=1000 {
            stats.record(Duration::from_millis(ms), 1, None);
        }
        let close = |got: Duration, want_ms: f64| {
            let got = got.as_secs_f64() * 1000.0;
            assert!(
                (got - want_ms).abs() <= want_ms / 16.0,
                "{got} vs {want_ms}"
            );
        };
        close(stats.quantile(0.5), 500.0);
        close(stats.quantile(0.99), 990.0);
        let snap = stats.snapshot();
        assert_eq!(snap.calls, 1000);
        assert_eq!(snap.max, Duration::from_millis(1000));
        close(snap.mean, 500.5);
    }

    #[test]
    fn errors_and_absent_answers_are_counted_apart() {
        let stats = CallStats::new();
        let transient = AdapterError::Transient {
            system: "sms",
            detail: "x".into(),
        };
        stats.record(Duration::from_millis(1), 3, Some(&transient));
        stats.record(
            Duration::from_millis(1),
            1,
            Some(&AdapterError::Absent { system: "sms" }),
        );
        stats.record(Duration::from_millis(1), 1, None);
        let snap = stats.snapshot();
        assert_eq!(
            (
                snap.calls,
                snap.errors,
                snap.transient_errors,
                snap.absent,
                snap.attempts
            ),
            (3, 1, 1, 1, 5)
        );
        stats.reset();
        assert_eq!(stats.snapshot(), StatsSnapshot::default());
    }
}
