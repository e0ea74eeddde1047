//! Chaos soak: a transient upstream failure never ends a case (docs/RULES.md §1) and no outward write is done twice (§2.11), at
//! volume. The engine runs in-process against a synthetic mock world on 127.0.0.1, on a simulated clock
//! that visits every instant at which the daemon would act (each nightly ingest, each tick at which a case
//! is due or a failed ingest is retried, each reply), skipping idle time as the scenario runner does. Heads
//! answer a deterministic subset of the SMS. The world is played twice: once without faults, once with a
//! fault on every system at rate 0.2, the mode rotating over systems and days so that every system meets
//! every mode (`unavailable`, `error`, `slow`, `malformed`). Both plays must end with the same outcome
//! counts and the same number of SMS, consents, re-issued permits and SDU records, each written once.
//!
//! The default test plays 300 organisations, on a new in-memory SQLite database per play and, when
//! `SDU_TEST_POSTGRES` names a server, again on a new PostgreSQL database per play;
//! `cargo test --release --test chaos -- --ignored --nocapture` plays 10,000 on SQLite (minutes; figures in
//! docs/RELIABILITY.md). `SDU_CHAOS_ORGS` overrides the size of the long play.

mod procs;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use adapters::http::RetryPolicy;
use adapters::{AdapterResult, Bin, LegalEntities, Organization, RenamesPage};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mock_registries::{Fault, FaultMode, Mock, Scenario, SystemName, synthetic_epoch};
use procs::TestDb;
use sdu::clock::ManualClock;
use sdu::config::Config;
use sdu::engine::{Engine, Systems};
use sdu::store::{Store, from_ms, ms};

/// The fault modes, in rotation order.
const MODES: [FaultMode; 4] = [
    FaultMode::Unavailable,
    FaultMode::Error,
    FaultMode::Slow,
    FaultMode::Malformed,
];

/// What one play ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ending {
    /// Cases per `status/stage-or-reason`.
    outcomes: BTreeMap<String, i64>,
    /// SMS the gateway accepted.
    sms: usize,
    /// Consents recorded.
    consents: usize,
    /// Permits re-issued.
    permits: usize,
    /// SDU records written.
    sdu_records: usize,
}

/// Figures of one play, printed.
#[derive(Debug, Default)]
struct Figures {
    instants: u64,
    replies: u64,
    transient_events: i64,
    simulated_days: i64,
}

/// FNV-1a, for a stable choice per phone and offer.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The answer to the `nth` SMS a number received, and how long after it: the choice depends on the number
/// and the position only, so it does not matter which of a head's organisations the SMS was about.
fn answer(phone: &str, nth: u32) -> Option<(&'static str, chrono::Duration)> {
    match fnv(&format!("{phone}#{nth}")) % 10 {
        0..=3 => Some(("1", chrono::Duration::minutes(30))),
        4 | 5 => Some(("2", chrono::Duration::hours(2))),
        6 => Some(("ok", chrono::Duration::minutes(10))),
        _ => None,
    }
}

/// The first tick boundary at or after `t`.
fn ceil_to_tick(t: DateTime<Utc>, tick: Duration) -> DateTime<Utc> {
    let step = tick.as_millis().max(1) as i64;
    let v = ms(t);
    from_ms(v.div_euclid(step) * step + if v.rem_euclid(step) == 0 { 0 } else { step })
}

/// Where the plays keep their cases.
enum Backend {
    /// A new in-memory SQLite database for each engine.
    SqliteMemory,
    /// A new database for each engine on the PostgreSQL server this URL names.
    Postgres(String),
}

/// The database of one engine.
enum PlayDb {
    SqliteMemory,
    Postgres(TestDb),
}

impl Backend {
    /// `SDU_TEST_POSTGRES`, or `None` after printing the skip line.
    fn postgres() -> Option<Self> {
        procs::postgres_server().map(Self::Postgres)
    }

    async fn fresh(&self, tag: &str) -> PlayDb {
        match self {
            Self::SqliteMemory => PlayDb::SqliteMemory,
            Self::Postgres(server) => PlayDb::Postgres(TestDb::postgres(server, tag).await),
        }
    }
}

impl PlayDb {
    fn url(&self) -> &str {
        match self {
            Self::SqliteMemory => "sqlite::memory:",
            Self::Postgres(db) => &db.url,
        }
    }

    /// Closes the engine's store and drops the database.
    async fn remove(self, engine: Engine) {
        match engine.store {
            Store::Sqlite(p) => p.close().await,
            Store::Postgres(p) => p.close().await,
        }
        if let Self::Postgres(db) = self {
            db.remove().await;
        }
    }
}

/// The engine on the store at `database`, against `mock` served on 127.0.0.1, with `tweak` applied to the
/// systems (retries happen in simulated time, through the case back-off, not inside one instant).
async fn engine(
    mock: &Mock,
    now: DateTime<Utc>,
    database: &str,
    tweak: impl FnOnce(Systems) -> Systems,
) -> (Engine, ManualClock) {
    mock.set_now(now);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = mock.spawn(listener).await.expect("the mock serves");
    let config = Config {
        base_url: format!("http://{addr}"),
        ..Config::default()
    };
    let systems = Systems::http(&config, |s| {
        s.retry = RetryPolicy::no_retries();
        s.timeout = Duration::from_secs(30);
    })
    .expect("clients");
    let store = Store::open(database).await.expect("store");
    let clock = ManualClock::new(now);
    let engine =
        Engine::new(store, tweak(systems), Arc::new(clock.clone()), config).expect("engine");
    (engine, clock)
}

/// Every system gets a fault at rate 0.2; the mode moves on by one each simulated day.
fn set_faults(mock: &Mock, day: i64) {
    for (i, system) in SystemName::ALL.iter().enumerate() {
        let mode = MODES[(i + day as usize) % MODES.len()];
        mock.set_fault(Fault {
            system: *system,
            mode,
            rate: 0.2,
            delay_ms: if mode == FaultMode::Slow { 20 } else { 0 },
        });
    }
}

/// Plays `n` synthetic organisations from the epoch (00:00 local on 2 November) until every case has ended
/// (at most 40 simulated days: a head of three organisations takes three offers of up to six days each),
/// on a new database of `backend`.
async fn play(n: u64, seed: u64, faults: bool, backend: &Backend) -> (Ending, Figures) {
    let mock = Mock::synthetic(n, seed);
    let start = synthetic_epoch();
    let cap = start + chrono::Duration::days(40);
    let db = backend.fresh("chaos").await;
    let (engine, clock) = engine(&mock, start, db.url(), |s| s).await;
    let tick = engine.config.tick;
    let mut figures = Figures::default();
    // Replies to come: (when, sequence) -> (from, text).
    let mut replies: BTreeMap<(DateTime<Utc>, u64), (String, &'static str)> = BTreeMap::new();
    let mut per_phone: HashMap<String, u32> = HashMap::new();
    let mut seen = 0;
    let mut fault_day = -1;

    // The daemon starts at the epoch: the first ingest is the night's 02:00.
    engine.nightly_if_due().await.expect("baseline");
    let mut now = start;
    loop {
        clock.set(now);
        mock.set_now(now);
        figures.instants += 1;
        let day = (now - start).num_days();
        if faults && day != fault_day {
            set_faults(&mock, day);
            fault_day = day;
        }
        while let Some(entry) = replies.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (from, text) = entry.remove();
            mock.sms_reply(&from, text);
            figures.replies += 1;
        }

        let mut retry_next_tick = engine.nightly_if_due().await.is_err();
        retry_next_tick |= engine.poll_replies().await.is_err();
        let (_, deferred) = engine.handle_replies().await.expect("replies");
        engine.drain().await.expect("drain");
        if deferred > 0 {
            engine.handle_replies().await.expect("replies");
            engine.drain().await.expect("drain");
        }
        retry_next_tick |= engine.ingest_overdue().await.expect("ingest state");

        let sent = mock.sent_sms();
        for sms in &sent[seen..] {
            let nth = per_phone.entry(sms.to.clone()).or_default();
            *nth += 1;
            if let Some((text, after)) = answer(&sms.to, *nth) {
                let seq = replies.len() as u64 + figures.replies;
                replies.insert((sms.accepted_at + after, seq), (sms.to.clone(), text));
            }
        }
        seen = sent.len();

        let next_due = engine.store.next_due().await.expect("next due");
        let ingested = engine
            .store
            .meta(sdu::engine::LAST_INGEST_SLOT)
            .await
            .expect("meta")
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .is_some_and(|slot| slot > start);
        if (ingested && next_due.is_none() && replies.is_empty() && !retry_next_tick) || now >= cap
        {
            break;
        }
        let mut next = cap;
        if let Some((at, _)) = replies.keys().next() {
            next = next.min(*at);
        }
        if let Some(due) = next_due {
            next = next.min(ceil_to_tick(from_ms(due), tick));
        }
        next = next.min(engine.next_ingest_after(now).expect("cron"));
        if retry_next_tick {
            next = next.min(ceil_to_tick(now + chrono::Duration::milliseconds(1), tick));
        }
        now = next.max(now + chrono::Duration::milliseconds(1));
    }
    figures.simulated_days = (now - start).num_days();

    let ending = check(&engine, &mock).await;
    figures.transient_events = procs::scalar(
        &engine.store,
        "SELECT COUNT(*) FROM case_events WHERE kind = 'transient'",
    )
    .await;
    db.remove(engine).await;
    (ending, figures)
}

/// What holds at the end of any play; returns the counts to compare.
async fn check(engine: &Engine, mock: &Mock) -> Ending {
    let outcomes = engine.summary().await.expect("summary");
    let open: i64 = outcomes
        .iter()
        .filter(|(k, _)| k.starts_with("open"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(open, 0, "cases still open at the end: {outcomes:?}");

    let sent = mock.sent_sms();
    let keys: BTreeSet<&str> = sent.iter().map(|s| s.idempotency_key.as_str()).collect();
    assert_eq!(keys.len(), sent.len(), "an SMS key accepted twice");
    let state = mock.state();
    let consents: BTreeSet<&str> = state
        .consents
        .iter()
        .map(|c| c.idempotency_key.as_str())
        .collect();
    assert_eq!(consents.len(), state.consents.len(), "a consent twice");
    let records: BTreeSet<&str> = state
        .sdu_records
        .iter()
        .map(|r| r.idempotency_key.as_str())
        .collect();
    assert_eq!(
        records.len(),
        state.sdu_records.len(),
        "an SDU record twice"
    );
    let reissued = outcomes.get("reissued").copied().unwrap_or(0) as usize;
    assert_eq!(
        state.sdu_records.len(),
        reissued,
        "one SDU record per re-issued case"
    );
    assert_eq!(
        state.consents.len(),
        reissued,
        "one consent per re-issued case"
    );
    let permits = state
        .permits
        .iter()
        .filter(|p| p.idempotency_key.is_some())
        .count();
    Ending {
        outcomes,
        sms: sent.len(),
        consents: state.consents.len(),
        permits,
        sdu_records: state.sdu_records.len(),
    }
}

/// Plays `n` organisations without and with faults, each on a new database of `backend` (`label`), and
/// compares the endings.
async fn faults_change_no_outcome(n: u64, seed: u64, backend: &Backend, label: &str) {
    let started = procs::now();
    let (calm, calm_figures) = play(n, seed, false, backend).await;
    let calm_wall = started.elapsed();
    let started = procs::now();
    let (stormy, stormy_figures) = play(n, seed, true, backend).await;
    let stormy_wall = started.elapsed();
    println!(
        "chaos on {label}, {n} organisations, seed {seed}: {} SMS, {} consents, {} permits re-issued, {} SDU records; \
         outcomes {:?}",
        calm.sms, calm.consents, calm.permits, calm.sdu_records, calm.outcomes
    );
    println!(
        "  without faults: {} simulated instants over {} days, {} replies, {} transient failures, {:.1} s",
        calm_figures.instants,
        calm_figures.simulated_days,
        calm_figures.replies,
        calm_figures.transient_events,
        calm_wall.as_secs_f64()
    );
    println!(
        "  with faults:    {} simulated instants over {} days, {} replies, {} transient failures, {:.1} s",
        stormy_figures.instants,
        stormy_figures.simulated_days,
        stormy_figures.replies,
        stormy_figures.transient_events,
        stormy_wall.as_secs_f64()
    );
    assert_eq!(
        calm_figures.transient_events, 0,
        "no fault, no transient failure"
    );
    assert!(
        stormy_figures.transient_events > 0,
        "the faults were not felt: the play tested nothing"
    );
    assert_eq!(stormy, calm, "faults changed the outcome");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_organisations_end_the_same_with_every_fault_at_rate_one_in_five() {
    faults_change_no_outcome(300, 7, &Backend::SqliteMemory, "SQLite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_organisations_on_postgres_end_the_same_with_every_fault_at_rate_one_in_five()
{
    let Some(backend) = Backend::postgres() else {
        return;
    };
    faults_change_no_outcome(300, 7, &backend, "PostgreSQL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 10,000 organisations, run with --release"]
async fn ten_thousand_organisations_end_the_same_with_every_fault_at_rate_one_in_five() {
    let n = std::env::var("SDU_CHAOS_ORGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    faults_change_no_outcome(n, 7, &Backend::SqliteMemory, "SQLite").await;
}

/// The legal-entity registry, slower to answer about one organisation.
struct SlowAbout {
    inner: Arc<dyn LegalEntities>,
    bin: &'static str,
    delay: Duration,
}

#[async_trait]
impl LegalEntities for SlowAbout {
    async fn renames(&self, cursor: Option<&str>, limit: u32) -> AdapterResult<RenamesPage> {
        self.inner.renames(cursor, limit).await
    }

    async fn organization(&self, bin: &Bin) -> AdapterResult<Option<Organization>> {
        if bin.as_str() == self.bin {
            tokio::time::sleep(self.delay).await;
        }
        self.inner.organization(bin).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_earlier_rename_gets_the_first_offer_even_when_its_checks_finish_last() {
    the_earlier_rename_gets_the_first_offer(&Backend::SqliteMemory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_earlier_rename_gets_the_first_offer_on_postgres_even_when_its_checks_finish_last() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    the_earlier_rename_gets_the_first_offer(&backend).await;
}

async fn the_earlier_rename_gets_the_first_offer(backend: &Backend) {
    // One head, two organisations: B renamed at 08:00, A at 12:00 (scenario 20). The registry answers
    // about B half a second late, so A's checks finish first while B is still being checked.
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/20-one-offer-per-phone-rename-order.yaml"
    );
    let scenario = Scenario::load(std::path::Path::new(file)).expect("scenario 20");
    let mock = Mock::from_registries(&scenario.registries, 1);
    let ten = DateTime::parse_from_rfc3339("2026-11-02T10:00:00+05:00")
        .expect("time")
        .with_timezone(&Utc);
    let db = backend.fresh("chaos_order").await;
    let (engine, _clock) = engine(&mock, ten, db.url(), |mut s| {
        s.legal_entities = Arc::new(SlowAbout {
            inner: s.legal_entities,
            bin: "130340564292",
            delay: Duration::from_millis(500),
        });
        s
    })
    .await;

    engine
        .pass(sdu::engine::IngestMode::Now)
        .await
        .expect("one pass");

    let b = engine.store.cases_of("130340564292").await.expect("B");
    let a = engine.store.cases_of("190740720167").await.expect("A");
    assert_eq!(
        (b[0].stage.as_deref(), b[0].attempt),
        (Some("awaiting_reply"), 1),
        "B, renamed first, holds the offer"
    );
    assert_eq!(
        (a[0].stage.as_deref(), a[0].attempt),
        (Some("queued"), 0),
        "A waits for B's offer to end"
    );
    let sent = mock.sent_sms();
    assert_eq!(sent.len(), 1, "one SMS to the shared number");
    assert!(sent[0].idempotency_key.starts_with(&b[0].case_key));
    db.remove(engine).await;
}
