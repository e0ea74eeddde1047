//! Prometheus metrics (docs/OPERATIONS.md) and the operator's view of the systems failing now.
//!
//! The instrumentation points record through the `metrics` facade, which costs next to nothing until
//! [`install`] sets the process's recorder (`metrics-exporter-prometheus`, without an HTTP listener of its
//! own: the operator API serves [`render`]'s text behind its authentication). Counts of cases are not
//! counted as they change but read from the case store at each scrape, so that they are right whichever
//! worker moved the cases and after a restart.
//!
//! No label holds personal data: labels are system names, failure kinds, step names, case statuses and
//! their stage or reason, all from fixed lists.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use adapters::AdapterError;
use adapters::http::{CallObserver, FailureKind};
use anyhow::Result;
use chrono::{DateTime, Utc};
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::case::Due;
use crate::clock::Clock;
use crate::engine::{Engine, LAST_INGEST_SLOT};
use crate::store::CaseStore;

/// How far back [`failing_systems`] counts errors.
pub const FAILING_WINDOW: Duration = Duration::from_secs(5 * 60);

/// Histogram buckets of the latencies, in seconds: from a fast local answer to a call that used up its
/// retries and backoffs (10 s timeout by default).
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Installs the Prometheus recorder for the whole process, once; later calls return the same handle.
///
/// Should another recorder already be installed (a test harness's, say), the metrics go there and the
/// handle returned renders only the families described here, empty.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".into()),
                    &LATENCY_BUCKETS,
                )
                .expect("the buckets are not empty");
            let handle = match builder.install_recorder() {
                Ok(handle) => handle,
                Err(e) => {
                    tracing::warn!("metrics: another recorder is installed, sdu's stay empty: {e}");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            };
            describe();
            handle
        })
        .clone()
}

/// The help text of every family.
fn describe() {
    describe_gauge!(
        "sdu_cases",
        "Cases in the store by status (open, or the outcome) and detail (the stage of an open case, the reason of an ended one); read at scrape time"
    );
    describe_histogram!(
        "sdu_step_duration_seconds",
        metrics::Unit::Seconds,
        "Time of one case step by step (check, send, consent, reissue, write_back, decided), its upstream calls included, the save excluded"
    );
    describe_histogram!(
        "sdu_upstream_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time of one call to an external system, all its attempts and backoffs included, by system and outcome (ok, absent, error)"
    );
    describe_counter!(
        "sdu_upstream_errors_total",
        "Failed attempts of calls to an external system, by system and kind (timeout, connect, rate_limited, server_error, transient, permanent, invalid_data); a retried call counts each failed attempt"
    );
    describe_histogram!(
        "sdu_rate_limiter_wait_duration_seconds",
        metrics::Unit::Seconds,
        "How long a request the configured rate limit of a system held back (1 ms or more) waited, by system: its _count is the number of waits"
    );
    describe_gauge!(
        "sdu_last_ingest_success_timestamp_seconds",
        metrics::Unit::Seconds,
        "Unix time of the last successful ingest of the rename feed by this process; before one, the nightly slot last marked done in the store"
    );
    describe_gauge!(
        "sdu_last_ingest_age_seconds",
        metrics::Unit::Seconds,
        "Seconds since sdu_last_ingest_success_timestamp_seconds, at scrape time"
    );
    describe_gauge!(
        "sdu_ingest_overdue",
        "1 when a nightly ingest slot has passed and is not done yet (a failed ingest waiting for its retry), else 0"
    );
    describe_counter!(
        "sdu_replies_unmatched_total",
        "Stored SMS replies that changed no case, by reason (invalid: not an answer of the service; no_offer: no open offer on that number)"
    );
    describe_counter!(
        "sdu_sms_sent_total",
        "Offer and reminder SMS the gateway accepted"
    );
    describe_counter!(
        "sdu_sms_parts_sent_total",
        "SMS parts of the accepted SMS, counted from the text sent (the official Kazakh text is 11 UCS-2 parts)"
    );
    describe_gauge!(
        "sdu_sms_paused",
        "1 while the operator's SMS pause switch is on, else 0"
    );
}

/// Refreshes the gauges read from the store (cases, the last ingest) and renders every metric in the
/// Prometheus text format. Installs the recorder if [`install`] was not called yet.
pub async fn render<S: CaseStore>(engine: &Engine<S>) -> Result<String> {
    let handle = install();
    refresh_cases(&engine.summary().await?);
    let now = engine.wall.now();
    // Read into a local first: the guard of a `match` scrutinee would be held across the store's await.
    let in_process = *last_ingest().lock().expect("not poisoned");
    let last = match in_process {
        Some(at) => Some(at),
        None => engine
            .store
            .meta(LAST_INGEST_SLOT)
            .await?
            .and_then(|text| DateTime::parse_from_rfc3339(&text).ok())
            .map(|at| at.with_timezone(&Utc)),
    };
    if let Some(last) = last {
        gauge!("sdu_last_ingest_success_timestamp_seconds").set(unix_seconds(last));
        gauge!("sdu_last_ingest_age_seconds").set(unix_seconds(now) - unix_seconds(last));
    }
    gauge!("sdu_ingest_overdue").set(f64::from(u8::from(engine.ingest_overdue().await?)));
    gauge!("sdu_sms_paused").set(f64::from(u8::from(SMS_PAUSED.load(Ordering::Relaxed))));
    Ok(handle.render())
}

/// Sets the `sdu_cases` gauges from the store's summary (`status` or `status/detail` → count); a label
/// set that was shown before and has no case now goes to zero rather than keeping its last value.
fn refresh_cases(summary: &std::collections::BTreeMap<String, i64>) {
    static SHOWN: Mutex<BTreeSet<(String, String)>> = Mutex::new(BTreeSet::new());
    let mut shown = SHOWN.lock().expect("not poisoned");
    let labelled: Vec<((String, String), i64)> = summary
        .iter()
        .map(|(key, count)| {
            let labels = match key.split_once('/') {
                Some((status, detail)) => (status.to_owned(), detail.to_owned()),
                None => (key.clone(), String::new()),
            };
            (labels, *count)
        })
        .collect();
    let now: BTreeSet<(String, String)> = labelled.iter().map(|(l, _)| l.clone()).collect();
    for (status, detail) in shown.difference(&now) {
        gauge!("sdu_cases", "status" => status.clone(), "detail" => detail.clone()).set(0.0);
    }
    for ((status, detail), count) in labelled {
        gauge!("sdu_cases", "status" => status, "detail" => detail).set(count as f64);
    }
    shown.extend(now);
}

fn unix_seconds(at: DateTime<Utc>) -> f64 {
    at.timestamp_millis() as f64 / 1000.0
}

/// The state of the operator's SMS pause switch, as [`set_sms_paused`] last set it.
static SMS_PAUSED: AtomicBool = AtomicBool::new(false);

/// Shows the SMS pause switch as `sdu_sms_paused` (1 paused, 0 not). Called by whoever flips the switch;
/// this does not pause anything itself.
pub fn set_sms_paused(paused: bool) {
    SMS_PAUSED.store(paused, Ordering::Relaxed);
    gauge!("sdu_sms_paused").set(f64::from(u8::from(paused)));
}

fn last_ingest() -> &'static Mutex<Option<DateTime<Utc>>> {
    static LAST: Mutex<Option<DateTime<Utc>>> = Mutex::new(None);
    &LAST
}

/// A read of the rename feed went to its end and every page was stored, at wall-clock `at`.
pub fn ingest_succeeded(at: DateTime<Utc>) {
    *last_ingest().lock().expect("not poisoned") = Some(at);
    gauge!("sdu_last_ingest_success_timestamp_seconds").set(unix_seconds(at));
}

/// The gateway accepted an SMS of `text`: counts it and its parts, by the same count as the data product
/// ([`crate::sms::encoding`]).
pub fn sms_sent(text: &str) {
    counter!("sdu_sms_sent_total").increment(1);
    counter!("sdu_sms_parts_sent_total").increment(crate::sms::encoding(text).segments as u64);
}

/// A stored reply changed no case: `invalid` (not an answer of the service) or `no_offer`.
pub fn reply_unmatched(reason: &'static str) {
    counter!("sdu_replies_unmatched_total", "reason" => reason).increment(1);
}

/// Times one case step from its start until dropped, into `sdu_step_duration_seconds{step}`.
#[derive(Debug)]
pub struct StepTimer {
    step: &'static str,
    started: Instant,
}

impl StepTimer {
    /// Starts timing the step the decision core asked for.
    pub fn start(due: &Due) -> Self {
        let step = match due {
            Due::Decided(_) => "decided",
            Due::Check => "check",
            Due::Send { .. } => "send",
            Due::RecordConsent => "consent",
            Due::Reissue { .. } => "reissue",
            Due::WriteBack => "write_back",
        };
        Self {
            step,
            started: crate::clock::monotonic(),
        }
    }
}

impl Drop for StepTimer {
    fn drop(&mut self) {
        histogram!("sdu_step_duration_seconds", "step" => self.step)
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// A system that failed recently, for the operator's dashboard: no personal data, only the system, the
/// kind of its last failure and counts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailingSystem {
    /// The system's configuration name (`e_license`, `sms`, …).
    pub system: &'static str,
    /// The kind of its last failed attempt (`timeout`, `server_error`, …, see [`FailureKind::as_str`]).
    pub kind: &'static str,
    /// When its last attempt failed (wall clock).
    pub last_error_at: DateTime<Utc>,
    /// Failed attempts within [`FAILING_WINDOW`] before `now`.
    pub errors_last_5m: usize,
    /// When a call to it last succeeded (an `Absent` answer included), if one did since the process
    /// started: later than `last_error_at` means it answers again.
    pub last_ok_at: Option<DateTime<Utc>>,
}

/// What the tracker keeps about one system.
#[derive(Debug, Default)]
struct Health {
    last_kind: Option<FailureKind>,
    /// The instants of the failed attempts within the window, oldest first.
    errors: VecDeque<DateTime<Utc>>,
    last_ok_at: Option<DateTime<Utc>>,
}

/// At most this many failure instants are kept per system: past it, a storm of failures is counted as
/// this many (the dashboard needs "many", not the exact figure, and memory stays bounded).
const MAX_KEPT: usize = 100_000;

/// Every system that had a failed attempt within [`FAILING_WINDOW`] before `now` (the wall clock), by name.
pub fn failing_systems(now: DateTime<Utc>) -> Vec<FailingSystem> {
    let window = chrono::Duration::from_std(FAILING_WINDOW).expect("five minutes");
    let health = health().lock().expect("not poisoned");
    let mut out: Vec<FailingSystem> = health
        .iter()
        .filter_map(|(system, h)| {
            let recent = h
                .errors
                .iter()
                .filter(|at| **at > now - window && **at <= now)
                .count();
            Some(FailingSystem {
                system,
                kind: h.last_kind?.as_str(),
                last_error_at: *h.errors.back()?,
                errors_last_5m: recent,
                last_ok_at: h.last_ok_at,
            })
            .filter(|f| f.errors_last_5m > 0)
        })
        .collect();
    out.sort_by_key(|f| f.system);
    out
}

fn health() -> &'static Mutex<HashMap<&'static str, Health>> {
    static HEALTH: OnceLock<Mutex<HashMap<&'static str, Health>>> = OnceLock::new();
    HEALTH.get_or_init(Default::default)
}

/// The observer every HTTP client of [`crate::engine::Systems::http`] reports to: the upstream metrics and
/// the tracker of [`failing_systems`], on the real wall clock.
pub fn observer() -> Arc<dyn CallObserver> {
    static OBSERVER: OnceLock<Arc<dyn CallObserver>> = OnceLock::new();
    OBSERVER
        .get_or_init(|| {
            Arc::new(Observer {
                wall: crate::clock::wall(),
            })
        })
        .clone()
}

/// Records what the clients report.
struct Observer {
    wall: Arc<dyn Clock>,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("telemetry::Observer")
    }
}

impl CallObserver for Observer {
    fn call_done(&self, system: &'static str, elapsed: Duration, error: Option<&AdapterError>) {
        let outcome = match error {
            None => "ok",
            Some(AdapterError::Absent { .. }) => "absent",
            Some(_) => "error",
        };
        histogram!("sdu_upstream_request_duration_seconds", "system" => system, "outcome" => outcome)
            .record(elapsed.as_secs_f64());
        if outcome != "error" {
            let now = self.wall.now();
            health()
                .lock()
                .expect("not poisoned")
                .entry(system)
                .or_default()
                .last_ok_at = Some(now);
        }
    }

    fn attempt_failed(&self, system: &'static str, kind: FailureKind) {
        counter!("sdu_upstream_errors_total", "system" => system, "kind" => kind.as_str())
            .increment(1);
        let now = self.wall.now();
        let window = chrono::Duration::from_std(FAILING_WINDOW).expect("five minutes");
        let mut health = health().lock().expect("not poisoned");
        let h = health.entry(system).or_default();
        h.last_kind = Some(kind);
        while h.errors.front().is_some_and(|at| *at <= now - window) {
            h.errors.pop_front();
        }
        if h.errors.len() >= MAX_KEPT {
            h.errors.pop_front();
        }
        h.errors.push_back(now);
    }

    fn rate_limited(&self, system: &'static str, waited: Duration) {
        histogram!("sdu_rate_limiter_wait_duration_seconds", "system" => system)
            .record(waited.as_secs_f64());
    }
}
