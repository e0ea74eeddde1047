//! HTTP clients of the external systems, over the wire API of `docs/API.md`.
//!
//! Every system client (`HttpLegalEntities`, `HttpELicense`, …) is a thin shell around one shared
//! `SystemClient` (in `client.rs`), so that the behaviour every call needs is written once:
//!
//! - **Limits per attempt.** Each attempt first takes a permit of the client's semaphore
//!   ([`HttpSettings::max_concurrency`]), then waits on its rate limiter ([`HttpSettings::rate_limit_per_sec`],
//!   `limit::RateLimit`: a GCRA pacer from `governor` at 97.5 % of the limit, then a hard cap of the limit
//!   (less one in 200, one at least) within any window of one second plus 20 ms, so that the system never
//!   *receives* more than the limit in one second even when requests sent apart arrive together), then
//!   sends. Retries queue like any other request, so neither limit can be exceeded by a storm of retries.
//! - **Timeouts.** [`HttpSettings::timeout`] bounds each attempt from connecting to the last byte of the body.
//! - **Retries.** Only transient failures are retried (connection errors, timeouts, `5xx`, `429`, a body that
//!   is not JSON or is too large), at most [`RetryPolicy::max_attempts`] attempts in all, with exponential
//!   backoff and full jitter. A `429` is retried no sooner than its `Retry-After` says; when that is longer
//!   than [`RetryPolicy::max_backoff`] the call gives up at once with a transient error, and the orchestrator
//!   tries again at a later tick. (A `Retry-After` on a `5xx` is not waited for: docs/API.md promises it on
//!   `429` only, and the usual backoff already spaces the retries.) Writes carry an `Idempotency-Key` header, the same on every attempt, so a
//!   retried write is applied once.
//! - **Bounded bodies.** Bodies are read chunk by chunk and abandoned once they pass
//!   [`HttpSettings::max_body_bytes`] (a transient "response too large"): a runaway upstream cannot make us
//!   buffer it.
//! - **Error mapping** ([`AdapterError`](crate::AdapterError)): `404` is `Absent` (lookups turn it into
//!   `Ok(None)`); other `4xx` are `Permanent`; a body that is not JSON at all is `Transient`; JSON whose content
//!   is wrong (a missing field, a wrong type, an identifier with a bad control digit, a record about someone
//!   else) is `InvalidData` and is never retried.
//! - **Decoding in two steps.** A body is first parsed into a `serde_json::Value` (failure: transient), then
//!   decoded field by field (`decode.rs`; failure: invalid data). The second step is written by hand rather
//!   than with `#[derive(Deserialize)]` because serde's messages quote the offending value, which may be a
//!   person's IIN, name or phone number; ours name the field and the expected type only.
//! - **No personal data in logs or errors.** Spans carry the `system` field only; events name the operation
//!   (`"person"`), never the URL, which holds IINs. Messages taken from an upstream's error body have every
//!   long digit run masked.
//! - **Statistics.** Each call (all its attempts) is recorded in a lock-free [`CallStats`] that the client
//!   exposes through `stats()`, for benchmarks and metrics.
//! - **Observation.** A [`CallObserver`] in the settings hears of each call's latency and outcome, each
//!   failed attempt with its [`FailureKind`], and each wait on the rate limiter: the orchestrator turns these
//!   into its metrics without this crate depending on a metrics library.

mod client;
mod decode;
mod limit;
mod stats;

mod civil_registry;
mod consent;
mod e_license;
mod individuals;
mod legal_entities;
mod mobile_base;
mod sdu;
mod sms;

use std::sync::Arc;
use std::time::Duration;

pub use civil_registry::HttpCivilRegistry;
pub use consent::HttpConsentService;
pub use e_license::HttpELicense;
pub use individuals::HttpIndividuals;
pub use legal_entities::HttpLegalEntities;
pub use mobile_base::HttpMobileBase;
pub use sdu::HttpSdu;
pub use sms::HttpSmsGateway;
pub use stats::{CallStats, StatsSnapshot};

/// Why one attempt failed, as finely as the client can tell: a label for metrics and the operator's view
/// of failing systems (an `Absent` answer is not a failure and has no kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// No answer within [`HttpSettings::timeout`].
    Timeout,
    /// The connection could not be made.
    Connect,
    /// `429 Too Many Requests`.
    RateLimited,
    /// A `5xx` status.
    ServerError,
    /// Any other transient failure: a body that is not JSON, too large or cut short.
    Transient,
    /// A refusal for good: a `4xx` other than `404` and `429`, or a request that could not be built.
    Permanent,
    /// Well-formed JSON with wrong content.
    InvalidData,
}

impl FailureKind {
    /// The kind of an adapter error when nothing finer is known; `None` for `Absent`, which is an answer.
    pub fn of(error: &crate::AdapterError) -> Option<Self> {
        match error {
            crate::AdapterError::Absent { .. } => None,
            crate::AdapterError::Transient { .. } => Some(Self::Transient),
            crate::AdapterError::Permanent { .. } => Some(Self::Permanent),
            crate::AdapterError::InvalidData { .. } => Some(Self::InvalidData),
        }
    }

    /// The label: `timeout`, `connect`, `rate_limited`, `server_error`, `transient`, `permanent`,
    /// `invalid_data`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::RateLimited => "rate_limited",
            Self::ServerError => "server_error",
            Self::Transient => "transient",
            Self::Permanent => "permanent",
            Self::InvalidData => "invalid_data",
        }
    }
}

/// Hears what a client does, for metrics: called on the request's own task, so it must be quick. Every
/// method has an empty default. Only the system's name and figures are passed, never a URL or a body,
/// which hold personal data.
pub trait CallObserver: Send + Sync + std::fmt::Debug {
    /// A call finished, all its attempts and backoffs included, after `elapsed`; `error` is what the
    /// caller gets (`Absent` included: it is an answer, see [`FailureKind::of`]).
    fn call_done(
        &self,
        system: &'static str,
        elapsed: Duration,
        error: Option<&crate::AdapterError>,
    ) {
        let _ = (system, elapsed, error);
    }

    /// One attempt of a call failed (a retried call reports each failed attempt).
    fn attempt_failed(&self, system: &'static str, kind: FailureKind) {
        let _ = (system, kind);
    }

    /// The rate limiter held a request back for `waited` before it could be sent.
    fn rate_limited(&self, system: &'static str, waited: Duration) {
        let _ = (system, waited);
    }
}

/// How a client retries transient failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (`1` disables retries; `0` counts as `1`).
    pub max_attempts: u32,
    /// Ceiling of the first backoff; each later one doubles it, up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Ceiling of any backoff, and the longest `Retry-After` a call waits for before giving up.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Three attempts, backoff ceilings of 200 ms then 400 ms, never above 5 s.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// One attempt only: every failure is returned as it comes.
    pub fn no_retries() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The ceiling of the backoff before retry number `retry` (1 for the first retry):
    /// `initial_backoff * 2^(retry-1)`, capped at `max_backoff`. The actual wait is drawn uniformly from
    /// zero to this ceiling ("full jitter"), so that clients failing together do not retry together.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Settings of one system's client (docs/RULES.md §5: one section per external system).
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The system's own base URL, its path prefix included, e.g. `http://127.0.0.1:8080/e_license`.
    pub base_url: String,
    /// Bound on one attempt, from connecting to the end of the body.
    pub timeout: Duration,
    /// Requests per second, spaced evenly (no burst); `None` for no limit.
    pub rate_limit_per_sec: Option<u32>,
    /// Requests in flight at once.
    pub max_concurrency: usize,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// A response body longer than this is abandoned as a transient "response too large".
    pub max_body_bytes: usize,
    /// Where the client records its calls; `None` gives the client statistics of its own. Pass the same
    /// `Arc` to several clients to add their calls up.
    pub stats: Option<Arc<CallStats>>,
    /// Who hears of each call, failed attempt and rate-limiter wait (the orchestrator's metrics); `None`
    /// for nobody.
    pub observer: Option<Arc<dyn CallObserver>>,
}

impl Default for HttpSettings {
    /// `http://127.0.0.1:8080`, 10 s timeout, no rate limit, 16 requests in flight, the default
    /// [`RetryPolicy`], 1 MiB bodies, no observer.
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:8080".to_owned(),
            timeout: Duration::from_secs(10),
            rate_limit_per_sec: None,
            max_concurrency: 16,
            retry: RetryPolicy::default(),
            max_body_bytes: 1024 * 1024,
            stats: None,
            observer: None,
        }
    }
}

impl HttpSettings {
    /// Default settings for `system` served under the one base URL of all systems, as `mock-registries`
    /// serves them: `for_system("http://h:8080/", "sms")` has base URL `http://h:8080/sms`.
    pub fn for_system(base_url_of_all_systems: &str, system: &str) -> Self {
        Self {
            base_url: format!(
                "{}/{}",
                base_url_of_all_systems.trim_end_matches('/'),
                system.trim_matches('/')
            ),
            ..Self::default()
        }
    }
}

/// Defines one system's client type: a named shell around the shared [`client::SystemClient`].
macro_rules! system_client {
    ($(#[$doc:meta])* $ty:ident, $system:literal) => {
        $(#[$doc])*
        pub struct $ty {
            inner: $crate::http::client::SystemClient,
        }

        impl $ty {
            /// A client with these settings. Fails (as `Permanent`, status 0) only when the settings are
            /// unusable: a base URL that does not parse, a zero rate limit or concurrency.
            pub fn new(settings: $crate::http::HttpSettings) -> $crate::AdapterResult<Self> {
                Ok(Self {
                    inner: $crate::http::client::SystemClient::new($system, settings)?,
                })
            }

            /// The statistics of this client's calls.
            pub fn stats(&self) -> std::sync::Arc<$crate::http::CallStats> {
                self.inner.stats()
            }

            /// The settings the client was built with.
            pub fn settings(&self) -> &$crate::http::HttpSettings {
                self.inner.settings()
            }
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("base_url", &self.inner.settings().base_url)
                    .finish_non_exhaustive()
            }
        }
    };
}
pub(crate) use system_client;

/// A lookup's answer: a `404` (`Absent`) becomes `Ok(None)`.
fn found<T>(result: crate::AdapterResult<T>) -> crate::AdapterResult<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(crate::AdapterError::Absent { .. }) => Ok(None),
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_system_appends_the_prefix_once() {
        assert_eq!(
            HttpSettings::for_system("http://h:8080/", "sms").base_url,
            "http://h:8080/sms"
        );
        assert_eq!(
            HttpSettings::for_system("http://h:8080", "e_license").base_url,
            "http://h:8080/e_license"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_ceiling() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(1),
        };
        assert_eq!(policy.backoff_ceiling(1), Duration::from_millis(200));
        assert_eq!(policy.backoff_ceiling(2), Duration::from_millis(400));
        assert_eq!(policy.backoff_ceiling(3), Duration::from_millis(800));
        assert_eq!(policy.backoff_ceiling(4), Duration::from_secs(1));
        assert_eq!(policy.backoff_ceiling(40), Duration::from_secs(1));
    }
}
