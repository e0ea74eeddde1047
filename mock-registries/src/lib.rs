//! Mock registries: every external system of docs/RULES.md §7 served over HTTP, on one port, each under its own
//! path prefix (`/legal_entities`, `/e_license`, `/individuals`, `/civil_registry`, `/mobile_base`, `/sms`,
//! `/consent`, `/sdu`), plus the control endpoints of docs/RULES.md §4 and an OpenAPI document at `/openapi.json`.
//!
//! The data comes either from a scenario file's `registries` section ([`Mock::from_registries`]) or from a
//! lazily generated synthetic world ([`Mock::synthetic`], see [`synthetic`]). Writes (SMS, consent,
//! re-issue, SDU write-back) are deduplicated by their `Idempotency-Key`, as real gateways do. Faults
//! (`unavailable`, `error`, `slow`, `malformed`) are drawn from a seeded RNG, so a run is repeatable.
//!
//! The same [`Mock`] is used in-process by the orchestrator's scenario runner and by tests (which call the
//! methods below and [`Mock::spawn`] it on `127.0.0.1:0`), and by the `mock-registries` binary.

// The hand-written OpenAPI document is one large `serde_json::json!` literal.
#![recursion_limit = "256"]

pub mod openapi;
pub mod scenario;
pub mod synthetic;
pub mod views;

mod clock;
mod dims;
mod http;
mod world;

pub use scenario::*;
pub use synthetic::{MAX_SYNTHETIC_ORGS, synthetic_epoch};
pub use views::*;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::synthetic::SyntheticWorld;
use crate::world::{Base, Data, FixtureBase, World};

/// Default page size of the rename and reply feeds.
pub const DEFAULT_PAGE: u64 = 500;
/// Largest page size of the rename and reply feeds.
pub const MAX_PAGE: u64 = 5000;

/// The mock: all eight systems' data, their writes, the clock and the faults. Cheap to clone (one `Arc`);
/// every clone sees the same state.
#[derive(Clone)]
pub struct Mock {
    inner: Arc<Inner>,
}

struct Inner {
    base: Base,
    /// Overlay and writes. Held only for short, synchronous sections (never across an `.await`).
    data: RwLock<Data>,
    /// `None` = the wall clock.
    clock: RwLock<Option<DateTime<Utc>>>,
    faults: Mutex<Faults>,
    counts: [AtomicU64; 8],
    /// Per system, the arrivals of the last second and the most seen in any one second.
    peaks: [Mutex<Peak>; 8],
}

/// The most requests that arrived within any one second (a sliding window over the arrival instants), so that
/// a rate limit can be checked where it matters: at the server, exactly, rather than from counters sampled
/// by the client.
#[derive(Default)]
struct Peak {
    /// Arrivals of the second before the latest one.
    window: std::collections::VecDeque<std::time::Instant>,
    most: u64,
}

impl Peak {
    fn arrive(&mut self, now: std::time::Instant) {
        while self
            .window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= std::time::Duration::from_secs(1))
        {
            self.window.pop_front();
        }
        self.window.push_back(now);
        self.most = self.most.max(self.window.len() as u64);
    }
}

struct Faults {
    active: BTreeMap<SystemName, Fault>,
    rng: ChaCha8Rng,
}

fn system_index(s: SystemName) -> usize {
    SystemName::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

impl Mock {
    fn new(base: Base, seed: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                base,
                data: RwLock::new(Data::default()),
                clock: RwLock::new(None),
                faults: Mutex::new(Faults {
                    active: BTreeMap::new(),
                    rng: ChaCha8Rng::seed_from_u64(seed),
                }),
                counts: Default::default(),
                peaks: Default::default(),
            }),
        }
    }

    /// A mock serving a scenario file's `registries` section; `seed` seeds the fault RNG.
    pub fn from_registries(registries: &Registries, seed: u64) -> Mock {
        Self::new(Base::Fixture(Box::new(FixtureBase::new(registries))), seed)
    }

    /// A synthetic world of `n` renamed organisations generated lazily from `(seed, index)`, renamed in
    /// the 24 hours before [`synthetic_epoch`]; `seed` also seeds the fault RNG.
    ///
    /// # Panics
    /// If `n` exceeds [`MAX_SYNTHETIC_ORGS`]; use [`Mock::try_synthetic`] to get an error instead.
    pub fn synthetic(n: u64, seed: u64) -> Mock {
        match Self::try_synthetic(n, seed) {
            Ok(mock) => mock,
            Err(e) => panic!("{e}"),
        }
    }

    /// As [`Mock::synthetic`], with an error when `n` is too large.
    pub fn try_synthetic(n: u64, seed: u64) -> Result<Mock, String> {
        Self::synthetic_with_epoch(n, seed, synthetic_epoch())
    }

    /// As [`Mock::try_synthetic`], with the renames spread over the 24 hours before `epoch` instead.
    pub fn synthetic_with_epoch(n: u64, seed: u64, epoch: DateTime<Utc>) -> Result<Mock, String> {
        let world = SyntheticWorld::new(n, seed, epoch)?;
        Ok(Self::new(Base::Synthetic(world), seed))
    }

    /// Every system under its prefix, the control endpoints and `/openapi.json`.
    pub fn router(&self) -> axum::Router {
        http::router(self.clone())
    }

    /// Serves [`Mock::router`] on `listener` in a background tokio task; returns the bound address.
    pub async fn spawn(&self, listener: tokio::net::TcpListener) -> std::io::Result<SocketAddr> {
        let addr = listener.local_addr()?;
        let router = self.router();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "mock-registries server stopped");
            }
        });
        Ok(addr)
    }

    // ---- clock -----------------------------------------------------------------------------------

    /// Sets the simulated clock; from now on [`Mock::now`] returns `now` until set again.
    pub fn set_now(&self, now: DateTime<Utc>) {
        *self
            .inner
            .clock
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(now);
    }

    /// The mock's clock: the simulated instant if one was set, else the wall clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner
            .clock
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .unwrap_or_else(clock::wall_clock)
    }

    // ---- scenario events -------------------------------------------------------------------------

    /// A head answers: the reply joins the gateway's reply feed, received at the mock's now. Returns its
    /// message id (`r-1`, `r-2`, ...).
    pub fn sms_reply(&self, from: &str, text: &str) -> String {
        self.push_reply(from, text).message_id
    }

    /// As [`Mock::sms_reply`], returning the whole reply as the feed will show it.
    pub fn push_reply(&self, from: &str, text: &str) -> ReplyView {
        let now = self.now();
        let mut data = self.write();
        let reply = ReplyView {
            message_id: format!("r-{}", data.replies.len() + 1),
            from: from.to_string(),
            text: text.to_string(),
            received_at: now,
        };
        data.replies.push(reply.clone());
        reply
    }

    /// A scenario `rename` event: the organisation's current name becomes `to` and the rename (from the old
    /// name, at `at`) joins the feed. An unknown BIN is logged and ignored; see [`Mock::try_rename`].
    pub fn rename(&self, bin: &str, to: &str, at: DateTime<Utc>) {
        if let Err(e) = self.try_rename(bin, to, at) {
            tracing::warn!(error = %e, "rename ignored");
        }
    }

    /// As [`Mock::rename`], with an error when no organisation has this BIN.
    pub fn try_rename(&self, bin: &str, to: &str, at: DateTime<Utc>) -> Result<(), String> {
        let now = self.now();
        let mut data = self.write();
        data.rename(&self.inner.base, bin, to, at, now)
    }

    /// A scenario `update` event: replaces or adds the record with the same key (`bin`, `permit_id` or
    /// `iin`) in that system. An update of an organisation keeps its rename history; renames it lists that
    /// the feed does not hold yet are added.
    pub fn update(
        &self,
        system: SystemName,
        record: serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), String> {
        let now = self.now();
        let mut data = self.write();
        data.update(&self.inner.base, system, record, now)
    }

    // ---- faults ----------------------------------------------------------------------------------

    /// Switches a fault on for one system, replacing its previous one.
    pub fn set_fault(&self, fault: Fault) {
        self.faults().active.insert(fault.system, fault);
    }

    /// Clears every fault.
    pub fn clear_faults(&self) {
        self.faults().active.clear();
    }

    /// Clears one system's fault.
    pub fn clear_fault(&self, system: SystemName) {
        self.faults().active.remove(&system);
    }

    /// The faults switched on, by system.
    pub fn active_faults(&self) -> Vec<Fault> {
        self.faults().active.values().copied().collect()
    }

    /// Whether this request to `system` is hit by its fault: one draw of the seeded RNG per request to a
    /// system that has a fault.
    pub(crate) fn draw_fault(&self, system: SystemName) -> Option<Fault> {
        let mut faults = self.faults();
        let fault = faults.active.get(&system).copied()?;
        let x: f64 = faults.rng.random();
        (x < fault.rate).then_some(fault)
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.inner
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    // ---- what was written ------------------------------------------------------------------------

    /// Every SMS the gateway accepted, in order (a repeated key is accepted once).
    pub fn sent_sms(&self) -> Vec<SentSmsView> {
        self.read().sent.clone()
    }

    /// Every reply the gateway received, in order.
    pub fn replies(&self) -> Vec<ReplyView> {
        self.read().replies.clone()
    }

    /// Permits, SDU records and consents as they stand, each with the idempotency key it was written with.
    pub fn state(&self) -> StateView {
        let data = self.read();
        StateView {
            permits: data.world(&self.inner.base).all_permits(),
            sdu_records: data.sdu.clone(),
            consents: data.consents.clone(),
        }
    }

    /// Requests served per system (every request to a system's prefix, faulted or not).
    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        SystemName::ALL
            .iter()
            .map(|s| {
                (
                    s.as_str().to_string(),
                    self.inner.counts[system_index(*s)].load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    pub(crate) fn count_call(&self, system: SystemName) {
        let i = system_index(system);
        self.inner.counts[i].fetch_add(1, Ordering::Relaxed);
        self.inner.peaks[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .arrive(crate::clock::monotonic());
    }

    /// Per system, the most requests that arrived within any one second (a window `(t - 1 s, t]`) since the
    /// mock started.
    pub fn call_peaks(&self) -> BTreeMap<String, u64> {
        SystemName::ALL
            .iter()
            .map(|s| {
                let peak = self.inner.peaks[system_index(*s)]
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .most;
                (s.as_str().to_string(), peak)
            })
            .collect()
    }

    // ---- reads, in-process (the same answers as the HTTP endpoints) -------------------------------

    /// A page of the rename feed from `cursor` (an offset as decimal text; `None` = the start): at most
    /// `limit` renames with `at <= now`, and the cursor to pass next.
    pub fn renames(&self, cursor: Option<&str>, limit: u64) -> Result<RenamesPageView, String> {
        let offset = parse_cursor(cursor)?;
        let now = self.now();
        let data = self.read();
        let (renames, next) =
            data.world(&self.inner.base)
                .feed_page(offset, limit.clamp(1, MAX_PAGE), now);
        Ok(RenamesPageView {
            renames,
            next_cursor: next.to_string(),
        })
    }

    /// An organisation by BIN (as the path gives it).
    pub fn organization(&self, bin: &str) -> Option<OrganizationView> {
        self.with_world(|w| w.org(bin))
    }

    /// An organisation's permits, of one service or of all.
    pub fn permits(&self, bin: &str, service: Option<&str>) -> Vec<PermitRecord> {
        self.with_world(|w| {
            w.permits_of(bin)
                .into_iter()
                .map(|s| s.record)
                .filter(|p| service.is_none_or(|s| p.service == s))
                .collect()
        })
    }

    /// A person in the individuals registry.
    pub fn person(&self, iin: &str) -> Option<PersonRecord> {
        self.with_world(|w| w.person(iin))
    }

    /// A person's civil-registry record.
    pub fn civil_record(&self, iin: &str) -> Option<CivilRecord> {
        self.with_world(|w| w.civil(iin))
    }

    /// The number registered for an IIN.
    pub fn mobile_number(&self, iin: &str) -> Option<MobileRecord> {
        self.with_world(|w| w.mobile(iin))
    }

    fn with_world<T>(&self, f: impl FnOnce(&World<'_>) -> T) -> T {
        let data = self.read();
        f(&data.world(&self.inner.base))
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Data> {
        self.inner
            .data
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Data> {
        self.inner
            .data
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn base(&self) -> &Base {
        &self.inner.base
    }
}

/// Parses a feed cursor: absent or empty = the start; otherwise a decimal offset (one past the end of any
/// feed, however large, simply gives an empty page).
pub(crate) fn parse_cursor(cursor: Option<&str>) -> Result<u64, String> {
    match cursor {
        None | Some("") => Ok(0),
        Some(c) if c.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(c.parse::<u64>().unwrap_or(u64::MAX))
        }
        Some(c) => Err(format!("cursor `{c}` is not one this feed issued")),
    }
}

#[cfg(test)]
mod peak_tests {
    use std::time::Duration;

    use super::Peak;

    #[test]
    fn the_peak_is_the_most_arrivals_within_any_one_second() {
        let start = crate::clock::monotonic();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut peak = Peak::default();
        // Five in the first 400 ms, three more by 999 ms: eight within one second.
        for ms in [0, 100, 200, 300, 400, 700, 800, 999] {
            peak.arrive(at(ms));
        }
        assert_eq!(peak.most, 8);
        // At 1000 ms the arrival at 0 is a full second old and leaves the window: still eight, not nine.
        peak.arrive(at(1000));
        assert_eq!(peak.most, 8);
        // A quiet spell, then four close together: the peak of the busy second stays.
        for ms in [5000, 5001, 5002, 5003] {
            peak.arrive(at(ms));
        }
        assert_eq!(peak.most, 8);
        assert_eq!(peak.window.len(), 4, "only the last second is kept");
    }
}
