//! Several workers on one database (issue 4, item 2): three engines, each with its own connection pool as
//! three processes would have, share one store and one mock world and run a simulated week side by side.
//! The mock, which sees every outward write, must see each exactly once, and the cases must end exactly as
//! they end with a single worker. Run on an SQLite file and, when `SDU_TEST_POSTGRES` names a server, on a
//! fresh PostgreSQL database.

mod procs;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use adapters::{
    AdapterResult, Bin, ConsentReceipt, ConsentService, ELicense, IdempotencyKey, Iin, Msisdn,
    Permit, RepliesPage, Sdu, SduReceipt, SduRecord, SentSms, SmsGateway,
};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use mock_registries::{Mock, SentSmsView, StateView};
use sdu::clock::ManualClock;
use sdu::config::Config;
use sdu::engine::{Engine, IngestMode, Systems};
use sdu::store::{Store, from_ms};

/// Organisations in the synthetic world: enough for every outcome and for heads shared by several
/// organisations.
const ORGS: u64 = 500;
const SEED: u64 = 4;

// ---- databases ------------------------------------------------------------------------------------------

/// A database made for one test, removed when it ends.
struct FreshDb {
    url: String,
    drop_pg: Option<(String, String)>,
}

impl FreshDb {
    fn sqlite(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "sdu-workers-{name}-{}-{}.db",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        Self {
            url: format!("sqlite://{}", path.display()),
            drop_pg: None,
        }
    }

    /// `None` (after saying so) when `SDU_TEST_POSTGRES` is not set.
    async fn postgres() -> Option<Self> {
        let server = procs::postgres_server()?;
        use sqlx::Executor;
        let name = format!("sdu_workers_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&server)
            .await
            .expect("SDU_TEST_POSTGRES must name a running server");
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create a test database");
        admin.close().await;
        Some(Self {
            url: sdu::scenario::replace_database(&server, &name),
            drop_pg: Some((server, name)),
        })
    }

    async fn remove(self) {
        match self.drop_pg {
            Some((server, name)) => {
                use sqlx::Executor;
                if let Ok(admin) = sqlx::PgPool::connect(&server).await {
                    let _ = admin
                        .execute(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .await;
                }
            }
            None => {
                let path = self.url.trim_start_matches("sqlite://");
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{path}{suffix}"));
                }
            }
        }
    }
}

// ---- every outward write, as the workers sent it ----------------------------------------------------------

/// The idempotency key of every write request any worker sent, in order, repeats included.
#[derive(Clone, Default)]
struct Writes(Arc<Mutex<Vec<String>>>);

impl Writes {
    fn push(&self, key: &IdempotencyKey) {
        self.0.lock().unwrap().push(key.0.clone());
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// A system client that notes the key of each write it sends, then sends it.
struct Noted<T: ?Sized> {
    inner: Arc<T>,
    writes: Writes,
}

#[async_trait]
impl SmsGateway for Noted<dyn SmsGateway> {
    async fn send(&self, key: &IdempotencyKey, to: &Msisdn, text: &str) -> AdapterResult<SentSms> {
        self.writes.push(key);
        self.inner.send(key, to, text).await
    }
    async fn replies(&self, cursor: Option<&str>, limit: u32) -> AdapterResult<RepliesPage> {
        self.inner.replies(cursor, limit).await
    }
}

#[async_trait]
impl ConsentService for Noted<dyn ConsentService> {
    async fn record(
        &self,
        key: &IdempotencyKey,
        iin: &Iin,
        bin: &Bin,
        purpose: &str,
    ) -> AdapterResult<ConsentReceipt> {
        self.writes.push(key);
        self.inner.record(key, iin, bin, purpose).await
    }
}

#[async_trait]
impl ELicense for Noted<dyn ELicense> {
    async fn permits(&self, bin: &Bin, service: &str) -> AdapterResult<Vec<Permit>> {
        self.inner.permits(bin, service).await
    }
    async fn reissue(
        &self,
        key: &IdempotencyKey,
        permit_id: &str,
        bin: &Bin,
        holder_name: &str,
    ) -> AdapterResult<Permit> {
        self.writes.push(key);
        self.inner.reissue(key, permit_id, bin, holder_name).await
    }
}

#[async_trait]
impl Sdu for Noted<dyn Sdu> {
    async fn write_back(
        &self,
        key: &IdempotencyKey,
        record: &SduRecord,
    ) -> AdapterResult<SduReceipt> {
        self.writes.push(key);
        self.inner.write_back(key, record).await
    }
}

fn noted_systems(config: &Config, writes: &Writes) -> Systems {
    let mut systems = Systems::http(config, |_| {}).expect("HTTP clients");
    systems.sms = Arc::new(Noted {
        inner: systems.sms,
        writes: writes.clone(),
    });
    systems.consent = Arc::new(Noted {
        inner: systems.consent,
        writes: writes.clone(),
    });
    systems.e_license = Arc::new(Noted {
        inner: systems.e_license,
        writes: writes.clone(),
    });
    systems.sdu = Arc::new(Noted {
        inner: systems.sdu,
        writes: writes.clone(),
    });
    systems
}

// ---- the simulated week -----------------------------------------------------------------------------------

/// Everything a week leaves behind, for comparison.
struct Week {
    /// Per case key: status, then stage or reason, then the SMS sent.
    cases: BTreeMap<String, (String, Option<String>, i64)>,
    sent: Vec<SentSmsView>,
    state: StateView,
    requests: BTreeMap<String, u64>,
    writes: Vec<String>,
}

impl Week {
    fn outcome_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for (status, detail, _) in self.cases.values() {
            let key = match detail {
                Some(d) => format!("{status}/{d}"),
                None => status.clone(),
            };
            *counts.entry(key).or_default() += 1;
        }
        counts
    }

    fn case_keys_ending(&self, status: &str) -> Vec<&str> {
        self.cases
            .iter()
            .filter(|(_, (s, _, _))| s == status)
            .map(|(k, _)| k.as_str())
            .collect()
    }
}

/// How a head answers the offer of a case: "1" for most, "2" for some, silence for the rest, decided by
/// the case key so that every run answers alike.
fn answer_of(sms_key: &str) -> Option<&'static str> {
    let case_key = sms_key.rsplit_once(":sms:").map_or(sms_key, |(k, _)| k);
    let h = case_key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    match h % 20 {
        0..15 => Some("1"),
        15..17 => Some("2"),
        _ => None,
    }
}

/// Every worker runs one daemon tick at the same simulated instant, side by side.
async fn tick_all(engines: &[Arc<Engine>]) {
    let ticks: Vec<_> = engines
        .iter()
        .map(|e| {
            let e = Arc::clone(e);
            tokio::spawn(async move { e.pass(IngestMode::Nightly).await })
        })
        .collect();
    for tick in ticks {
        let report = tick.await.expect("tick task").expect("tick");
        assert!(report.ingest_error.is_none(), "{:?}", report.ingest_error);
    }
}

/// A week of the synthetic world, from 01:00 on the first day, with `workers` engines on `db_url`. The
/// clock stops at every instant where something is due (each nightly ingest, each due case); after each
/// tick the heads answer the first SMS that went out.
async fn week(db_url: &str, workers: usize) -> Week {
    let start = mock_registries::synthetic_epoch() + Duration::hours(1);
    let until = start + Duration::days(7);
    let mock = Mock::synthetic(ORGS, SEED);
    mock.set_now(start);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = mock.spawn(listener).await.unwrap();
    let config = Config {
        base_url: format!("http://{addr}"),
        // Small claims, so that the workers share each instant's cases between them.
        concurrency: 4,
        ..Config::default()
    };
    let clock = ManualClock::new(start);
    let writes = Writes::default();
    let mut engines = Vec::new();
    for _ in 0..workers {
        let store = Store::open(db_url).await.expect("open the store");
        let systems = noted_systems(&config, &writes);
        let engine = Engine::new(store, systems, Arc::new(clock.clone()), config.clone()).unwrap();
        engines.push(Arc::new(engine));
    }

    let mut answered: HashSet<String> = HashSet::new();
    let mut now = start;
    loop {
        clock.set(now);
        mock.set_now(now);
        tick_all(&engines).await;
        loop {
            let offers: Vec<SentSmsView> = mock
                .sent_sms()
                .into_iter()
                .filter(|s| s.idempotency_key.ends_with(":sms:1"))
                .filter(|s| answered.insert(s.idempotency_key.clone()))
                .collect();
            if offers.is_empty() {
                break;
            }
            for offer in offers {
                if let Some(text) = answer_of(&offer.idempotency_key) {
                    mock.sms_reply(&offer.to, text);
                }
            }
            tick_all(&engines).await;
        }
        if now >= until {
            break;
        }
        let mut next = until.min(engines[0].next_ingest_after(now).unwrap());
        if let Some(due) = engines[0].store.next_due().await.unwrap() {
            next = next.min(ceil_minute(from_ms(due)));
        }
        now = next.max(now + Duration::minutes(1)).min(until);
    }

    let mut cases = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = engines[0].store.cases_page(after, 200).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.id;
        for c in page {
            let detail = if c.status == "open" {
                c.stage
            } else {
                c.reason
            };
            cases.insert(c.case_key, (c.status, detail, c.attempt));
        }
    }
    Week {
        cases,
        sent: mock.sent_sms(),
        state: mock.state(),
        requests: mock.call_counts(),
        writes: writes.all(),
    }
}

fn ceil_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    let ms = t.timestamp_millis();
    from_ms((ms + 59_999).div_euclid(60_000) * 60_000)
}

/// The assertions of every multi-worker week: each outward write happened once, and the week ended as a
/// single worker's does.
fn assert_once_and_as_one(many: &Week, one: &Week) {
    // Every write request any worker sent carries a key no other request carried.
    let mut seen = HashSet::new();
    let repeated: Vec<&String> = many.writes.iter().filter(|k| !seen.insert(*k)).collect();
    assert!(
        repeated.is_empty(),
        "write requests sent twice: {repeated:?}"
    );

    // The SMS gateway accepted each key once, and one SMS per attempt of each case.
    let keys: HashSet<&str> = many
        .sent
        .iter()
        .map(|s| s.idempotency_key.as_str())
        .collect();
    assert_eq!(keys.len(), many.sent.len(), "an SMS key accepted twice");
    let attempts: i64 = many.cases.values().map(|(_, _, a)| a).sum();
    assert_eq!(many.sent.len() as i64, attempts);
    assert!(
        many.sent.len() > 100,
        "the week sent too few SMS to prove anything"
    );

    // One consent and one SDU record per re-issued case, each written by one request.
    let reissued = many.case_keys_ending("reissued");
    assert!(reissued.len() > 50, "too few re-issues to prove anything");
    let consent_keys: HashSet<String> = many
        .state
        .consents
        .iter()
        .map(|c| c.idempotency_key.clone())
        .collect();
    let sdu_keys: HashSet<String> = many
        .state
        .sdu_records
        .iter()
        .map(|r| r.idempotency_key.clone())
        .collect();
    let want_consents: HashSet<String> = reissued.iter().map(|k| format!("{k}:consent")).collect();
    let want_sdu: HashSet<String> = reissued.iter().map(|k| format!("{k}:sdu")).collect();
    assert_eq!(many.state.consents.len(), reissued.len());
    assert_eq!(consent_keys, want_consents);
    assert_eq!(many.state.sdu_records.len(), reissued.len());
    assert_eq!(sdu_keys, want_sdu);
    assert_eq!(many.requests["consent"], reissued.len() as u64);
    assert_eq!(many.requests["sdu"], reissued.len() as u64);

    // Every permit re-issued was re-issued once, by a case of its organisation that ended re-issued.
    let reissue_writes: Vec<&String> = many
        .writes
        .iter()
        .filter(|k| k.contains(":reissue:"))
        .collect();
    let reissued_permits: Vec<_> = many
        .state
        .permits
        .iter()
        .filter_map(|p| p.idempotency_key.as_ref().map(|k| (p, k)))
        .collect();
    assert_eq!(reissued_permits.len(), reissue_writes.len());
    let reissued_set: HashSet<&str> = reissued.iter().copied().collect();
    for (permit, key) in &reissued_permits {
        let (case_key, permit_id) = key.split_once(":reissue:").expect("a re-issue key");
        assert_eq!(permit_id, permit.permit_id);
        assert!(
            reissued_set.contains(case_key),
            "{key} is not of a re-issued case"
        );
    }

    // And the cases ended exactly as with one worker.
    assert_eq!(many.outcome_counts(), one.outcome_counts());
    assert_eq!(many.cases, one.cases);
    assert_eq!(many.sent.len(), one.sent.len());
    assert_eq!(many.state.consents.len(), one.state.consents.len());
}

async fn three_workers_against_one(many_db: FreshDb, one_db: FreshDb) {
    let many = week(&many_db.url, 3).await;
    let one = week(&one_db.url, 1).await;
    many_db.remove().await;
    one_db.remove().await;
    assert_eq!(many.cases.len() as u64, ORGS, "one case per rename");
    assert_once_and_as_one(&many, &one);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_workers_on_one_sqlite_file_write_everything_once_and_end_as_one_worker_would() {
    three_workers_against_one(FreshDb::sqlite("many"), FreshDb::sqlite("one")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_workers_on_one_postgres_database_write_everything_once_and_end_as_one_worker_would()
{
    let Some(many) = FreshDb::postgres().await else {
        return;
    };
    let one = FreshDb::postgres().await.expect("the same server");
    three_workers_against_one(many, one).await;
}

// ---- the nightly ingest ----------------------------------------------------------------------------------

/// Three workers reach each of three nightly slots at the same moment: each night exactly one of them
/// ingests, and the first night's ingest opens one case per rename.
async fn one_ingest_per_night(db: FreshDb) {
    let start = mock_registries::synthetic_epoch() + Duration::hours(1);
    let mock = Mock::synthetic(ORGS, SEED);
    mock.set_now(start);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = mock.spawn(listener).await.unwrap();
    let config = Config {
        base_url: format!("http://{addr}"),
        ..Config::default()
    };
    let clock = ManualClock::new(start);
    let mut engines = Vec::new();
    for _ in 0..3 {
        let store = Store::open(&db.url).await.unwrap();
        let systems = Systems::http(&config, |_| {}).unwrap();
        engines.push(Arc::new(
            Engine::new(store, systems, Arc::new(clock.clone()), config.clone()).unwrap(),
        ));
    }
    // The daemons start at 01:00: that is the baseline, nothing is ingested yet.
    assert!(engines[0].nightly_if_due().await.unwrap().is_none());

    let mut opened_per_night = Vec::new();
    for night in 0..3 {
        let slot = start + Duration::hours(1) + Duration::days(night);
        clock.set(slot);
        mock.set_now(slot);
        let calls: Vec<_> = engines
            .iter()
            .map(|e| {
                let e = Arc::clone(e);
                tokio::spawn(async move { e.nightly_if_due().await })
            })
            .collect();
        let mut reports = Vec::new();
        for call in calls {
            if let Some(report) = call.await.unwrap().unwrap() {
                reports.push(report);
            }
        }
        assert_eq!(reports.len(), 1, "night {night}: {reports:?}");
        opened_per_night.push(reports[0].opened);
        // A later look in the same night finds nothing due.
        for e in &engines {
            assert!(e.nightly_if_due().await.unwrap().is_none());
        }
    }
    assert_eq!(opened_per_night, vec![ORGS, 0, 0]);
    let summary = engines[0].summary().await.unwrap();
    assert_eq!(summary.values().sum::<i64>() as u64, ORGS);
    drop(engines);
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_nightly_ingest_runs_once_when_three_workers_reach_its_slot_together_on_sqlite() {
    one_ingest_per_night(FreshDb::sqlite("nightly")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_nightly_ingest_runs_once_when_three_workers_reach_its_slot_together_on_postgres() {
    let Some(db) = FreshDb::postgres().await else {
        return;
    };
    one_ingest_per_night(db).await;
}
