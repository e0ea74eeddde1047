//! The case store's story, told once and run on both backends: SQLite in a private temporary file, and
//! PostgreSQL in a fresh database per test when `SDU_TEST_POSTGRES` names a server.
//!
//! Each chapter is an `async fn(Db)` below; `on_both_backends!` turns it into `sqlite::<chapter>` and
//! `postgres::<chapter>` tests.

mod procs;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use sdu::case::{Ending, Outcome, Stage, case_key};
use sdu::store::{
    CaseChange, CaseRow, IngestReport, NewCase, NewEvent, NewReply, OutboxEntry, ReplyStatus,
    Store, ms,
};
use serde_json::json;
use sqlx::Executor as _;

// ---------------------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------------------

/// A temporary folder removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path =
            std::env::temp_dir().join(format!("sdu-store-story-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).expect("create a temporary folder");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh store, and what to clean up after it.
struct Db {
    store: Store,
    /// The SQLite file's folder (removed on drop).
    dir: Option<TempDir>,
    /// PostgreSQL: the server's admin pool and the database to drop.
    pg: Option<(sqlx::PgPool, String)>,
}

impl Db {
    async fn sqlite() -> Self {
        let dir = TempDir::new();
        let url = format!("sqlite://{}", dir.path().join("cases.db").display());
        let store = Store::open(&url).await.expect("open the SQLite store");
        Self {
            store,
            dir: Some(dir),
            pg: None,
        }
    }

    async fn postgres() -> Option<Self> {
        let server = procs::postgres_server()?;
        let admin = sqlx::PgPool::connect(&server)
            .await
            .expect("SDU_TEST_POSTGRES names a reachable PostgreSQL server");
        let name = format!("sdu_store_story_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create a fresh database");
        let url = sdu::scenario::replace_database(&server, &name);
        let store = Store::open(&url).await.expect("open the PostgreSQL store");
        Some(Self {
            store,
            dir: None,
            pg: Some((admin, name)),
        })
    }

    async fn cleanup(self) {
        match self.store {
            Store::Sqlite(pool) => pool.close().await,
            Store::Postgres(pool) => pool.close().await,
        }
        if let Some((admin, name)) = self.pg {
            let _ = admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await;
        }
        drop(self.dir);
    }
}

/// Runs a chapter on a fresh store and cleans up whether it passed or panicked.
async fn run_chapter<F, Fut>(db: Db, chapter: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let outcome = tokio::spawn(chapter(db.store.clone())).await;
    db.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

macro_rules! on_both_backends {
    ($($chapter:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $chapter() {
                    super::run_chapter(super::Db::sqlite().await, super::$chapter).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $chapter() {
                    let Some(db) = super::Db::postgres().await else { return };
                    super::run_chapter(db, super::$chapter).await;
                }
            )*
        }
    };
}

on_both_backends!(
    ingest_opens_one_case_per_rename_and_a_repeated_rename_is_a_duplicate,
    a_rename_with_a_bad_bin_opens_a_case_that_has_already_ended,
    a_later_rename_supersedes_the_open_case_and_voids_its_offer,
    a_late_arriving_older_rename_ends_superseded_itself,
    renames_of_one_organisation_ingested_together_leave_only_the_last_open,
    claim_due_returns_due_cases_only_and_holds_them_until_the_lease_expires,
    the_claim_reads_due_cases_in_claim_order_without_sorting_them,
    the_claim_reads_in_claim_order_with_statistics_of_an_empty_table,
    a_save_applies_once_and_a_stale_change_changes_nothing,
    an_outward_write_is_recorded_once_per_idempotency_key,
    the_phone_slot_goes_to_one_case_only_in_rename_order,
    ending_a_case_frees_its_phone_and_wakes_the_next_queued_case,
    a_reply_seen_twice_is_stored_once_and_pending_replies_come_in_arrival_order,
    pending_replies_are_read_on_page_by_page_from_where_the_last_page_ended,
    the_event_log_refuses_updates_and_deletes,
    the_audit_is_clean_for_an_untouched_history,
    the_audit_reports_an_event_changed_after_it_was_written,
    the_audit_reports_an_event_removed_from_the_middle_of_a_chain,
    the_audit_reports_a_case_whose_last_event_was_removed,
);

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

const BIN_A: &str = "201140000017";
const BIN_B: &str = "190540043216";
const BIN_C: &str = "210840000983";
const PHONE: &str = "+77011234567";
const OTHER_PHONE: &str = "+77057654321";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("an RFC 3339 instant")
        .with_timezone(&Utc)
}

fn rename(bin: &str, at: &str, from: &str, to: &str) -> NewCase {
    NewCase {
        case_key: case_key(bin, t(at)),
        bin: bin.to_owned(),
        rename_at: t(at),
        from_name: from.to_owned(),
        to_name: to.to_owned(),
        ended: None,
    }
}

async fn ingest(store: &Store, renames: &[NewCase], now: &str) -> IngestReport {
    store
        .ingest(renames, "legal_entities.cursor", now, t(now))
        .await
        .expect("ingest")
}

async fn only_case_of(store: &Store, bin: &str) -> CaseRow {
    let mut cases = store.cases_of(bin).await.expect("cases_of");
    assert_eq!(cases.len(), 1, "one case of {bin}");
    cases.remove(0)
}

async fn reload(store: &Store, row: &CaseRow) -> CaseRow {
    store
        .case(row.id)
        .await
        .expect("read a case")
        .expect("the case exists")
}

/// A change of `row` made by `edit`, read at the row's current version.
fn change(row: &CaseRow, now: &str, edit: impl FnOnce(&mut CaseRow)) -> CaseChange {
    let mut next = row.clone();
    edit(&mut next);
    CaseChange {
        row: next,
        expected_version: row.version,
        events: vec![NewEvent::new("test_step", json!({"note": "a step"}))],
        outbox: vec![],
        reply: None,
        now: t(now),
    }
}

/// Moves a row to an open stage, as a saved transition would store it.
fn advance(r: &mut CaseRow, stage: Stage, due: Option<chrono::DateTime<chrono::Utc>>) {
    r.stage = Some(stage.as_str().to_owned());
    r.due_at = due.map(ms);
    r.retries = 0;
}

/// Ends a row, as a saved transition would store it.
fn end(r: &mut CaseRow, ending: &Ending, now: chrono::DateTime<chrono::Utc>) {
    r.status = ending.outcome.as_str().to_owned();
    r.reason = ending.reason.map(|x| x.as_str().to_owned());
    r.detail = Some(ending.detail.clone());
    r.stage = None;
    r.due_at = None;
    r.offer_phone = None;
    r.ended_at = Some(ms(now));
}

async fn save(store: &Store, change: &CaseChange) -> Option<String> {
    store.save(change).await.expect("save")
}

/// Makes a case `queued` for `phone`, due at `due` (`None`: waiting for a wake-up).
async fn queue(store: &Store, row: &CaseRow, phone: &str, due: Option<&str>, now: &str) -> CaseRow {
    let c = change(row, now, |r| {
        advance(r, Stage::Queued, due.map(t));
        r.phone = Some(phone.to_owned());
    });
    save(store, &c).await.expect("queue the case");
    reload(store, row).await
}

fn reply(id: &str, at: &str, text: &str) -> NewReply {
    NewReply {
        message_id: id.to_owned(),
        from_raw: PHONE.to_owned(),
        phone: Some(PHONE.to_owned()),
        text: text.to_owned(),
        received_at: t(at),
    }
}

/// Runs one statement of raw SQL on the store's own database; the error text if it was refused.
async fn raw(store: &Store, sqlite: &'static str, postgres: &'static str) -> Result<u64, String> {
    let done = match store {
        Store::Sqlite(p) => sqlx::query(sqlite)
            .execute(p)
            .await
            .map(|d| d.rows_affected()),
        Store::Postgres(p) => sqlx::query(postgres)
            .execute(p)
            .await
            .map(|d| d.rows_affected()),
    };
    done.map_err(|e| e.to_string())
}

/// 20,000 open cases all due at one instant, as after one ingest, written by SQL.
async fn insert_due_cases(store: &Store) {
    raw(
        store,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) \
         INSERT INTO cases (case_key, bin, rename_at, from_name, to_name, status, stage, due_at, created_at, updated_at) \
         SELECT 'k' || i, 'b' || i, 1, 'Old', 'New', 'open', 'checking', 1000, 1, 1 FROM n",
        "INSERT INTO cases (case_key, bin, rename_at, from_name, to_name, status, stage, due_at, created_at, updated_at) \
         SELECT 'k' || i, 'b' || i, 1, 'Old', 'New', 'open', 'checking', 1000, 1, 1 FROM generate_series(1, 20000) i",
    )
    .await
    .expect("insert the due cases");
}

async fn event_count(store: &Store) -> i64 {
    let count = match store {
        Store::Sqlite(p) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM case_events")
                .fetch_one(p)
                .await
        }
        Store::Postgres(p) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM case_events")
                .fetch_one(p)
                .await
        }
    };
    count.expect("count events")
}

/// One case with a history of three events: ingested, then a step of two events.
async fn case_with_three_events(store: &Store, bin: &str) -> CaseRow {
    ingest(
        store,
        &[rename(bin, "2026-11-01T10:00:00+05:00", "Old", "New")],
        "2026-11-02T02:00:00+05:00",
    )
    .await;
    let row = only_case_of(store, bin).await;
    let mut c = change(&row, "2026-11-02T02:00:01+05:00", |r| {
        advance(r, Stage::Queued, None)
    });
    c.events = vec![
        NewEvent::new("checked", json!({"permits": 1})),
        NewEvent::new("queued", json!({"phone": "+7******4567"})),
    ];
    save(store, &c).await.expect("the step is saved");
    reload(store, &row).await
}

// ---------------------------------------------------------------------------------------------------------
// Ingest and supersede
// ---------------------------------------------------------------------------------------------------------

async fn ingest_opens_one_case_per_rename_and_a_repeated_rename_is_a_duplicate(store: Store) {
    let renames = [
        rename(BIN_A, "2026-11-01T10:00:00+05:00", "Old A", "New A"),
        rename(BIN_B, "2026-11-01T11:00:00+05:00", "Old B", "New B"),
    ];

    let first = ingest(&store, &renames, "2026-11-02T02:00:00+05:00").await;
    let again = ingest(&store, &renames, "2026-11-03T02:00:00+05:00").await;

    assert_eq!(
        first,
        IngestReport {
            opened: 2,
            duplicates: 0,
            superseded: 0
        }
    );
    assert_eq!(
        again,
        IngestReport {
            opened: 0,
            duplicates: 2,
            superseded: 0
        }
    );
    let a = only_case_of(&store, BIN_A).await;
    assert_eq!(a.case_key, case_key(BIN_A, t("2026-11-01T10:00:00+05:00")));
    assert_eq!(
        (a.from_name.as_str(), a.to_name.as_str()),
        ("Old A", "New A")
    );
    assert_eq!(a.status, "open");
    assert_eq!(a.stage(), Some(Stage::Checking));
    assert_eq!(a.attempt, 0);
    assert_eq!(a.rename_at, ms(t("2026-11-01T10:00:00+05:00")));
    assert_eq!(
        a.due_at,
        Some(ms(t("2026-11-02T02:00:00+05:00"))),
        "a new case is due at once"
    );
    let events = store.events(a.id).await.unwrap();
    assert_eq!(events.len(), 1, "the repeat added no history");
    assert_eq!(events[0].kind, "ingested");
    assert_eq!(events[0].prev_hash, "");
    assert_eq!(a.last_hash, events[0].hash);
    only_case_of(&store, BIN_B).await;
    assert_eq!(
        store
            .meta("legal_entities.cursor")
            .await
            .unwrap()
            .as_deref(),
        Some("2026-11-03T02:00:00+05:00"),
        "the cursor moves with the ingest"
    );
}

async fn a_rename_with_a_bad_bin_opens_a_case_that_has_already_ended(store: Store) {
    let mut bad = rename("20114000001X", "2026-11-01T10:00:00+05:00", "Old", "New");
    bad.ended = Some(Ending::invalid_data("the BIN fails validation"));

    let report = ingest(&store, &[bad], "2026-11-02T02:00:00+05:00").await;

    assert_eq!(report.opened, 1);
    let case = only_case_of(&store, "20114000001X").await;
    assert_eq!(case.outcome(), Some(Outcome::Failed));
    assert_eq!(case.reason.as_deref(), Some("invalid_data"));
    assert_eq!((case.stage.as_deref(), case.due_at), (None, None));
    assert_eq!(case.ended_at, Some(ms(t("2026-11-02T02:00:00+05:00"))));
    assert_eq!(store.events(case.id).await.unwrap().len(), 1);
    let claimed = store
        .claim_due(t("2026-11-09T00:00:00+05:00"), 10, "w", 0, 1)
        .await
        .unwrap();
    assert!(claimed.is_empty(), "an ended case is never due");
}

async fn a_later_rename_supersedes_the_open_case_and_voids_its_offer(store: Store) {
    ingest(
        &store,
        &[rename(BIN_A, "2026-11-01T10:00:00+05:00", "Old", "Mid")],
        "2026-11-02T02:00:00+05:00",
    )
    .await;
    let first = only_case_of(&store, BIN_A).await;
    let queued = queue(
        &store,
        &first,
        PHONE,
        Some("2026-11-02T09:00:00+05:00"),
        "2026-11-02T02:00:01+05:00",
    )
    .await;
    assert!(store.take_offer_slot(&queued).await.unwrap());
    let awaiting = change(
        &reload(&store, &queued).await,
        "2026-11-02T09:00:00+05:00",
        |r| {
            advance(
                r,
                Stage::AwaitingReply,
                Some(t("2026-11-05T09:00:00+05:00")),
            );
            r.attempt = 1;
            r.first_sent_at = Some(ms(t("2026-11-02T09:00:00+05:00")));
        },
    );
    save(&store, &awaiting).await.expect("offer sent");

    let report = ingest(
        &store,
        &[rename(BIN_A, "2026-11-03T10:00:00+05:00", "Mid", "New")],
        "2026-11-04T02:00:00+05:00",
    )
    .await;

    assert_eq!(
        report,
        IngestReport {
            opened: 1,
            duplicates: 0,
            superseded: 1
        }
    );
    let cases = store.cases_of(BIN_A).await.unwrap();
    assert_eq!(cases.len(), 2);
    let (old, new) = (&cases[0], &cases[1]);
    assert_eq!(old.outcome(), Some(Outcome::Superseded));
    assert_eq!(old.stage, None);
    assert_eq!(old.due_at, None);
    assert_eq!(old.offer_phone, None, "the waiting offer is void");
    assert_eq!(old.ended_at, Some(ms(t("2026-11-04T02:00:00+05:00"))));
    let last = store.events(old.id).await.unwrap().pop().unwrap();
    assert_eq!(last.kind, "ended");
    assert_eq!(old.last_hash, last.hash);
    assert_eq!(new.status, "open");
    assert_eq!(new.to_name, "New");
    assert!(
        store.offer_holder(PHONE).await.unwrap().is_none(),
        "the superseded case no longer holds the phone"
    );
}

async fn a_late_arriving_older_rename_ends_superseded_itself(store: Store) {
    ingest(
        &store,
        &[rename(BIN_A, "2026-11-03T10:00:00+05:00", "Mid", "New")],
        "2026-11-04T02:00:00+05:00",
    )
    .await;

    let report = ingest(
        &store,
        &[rename(BIN_A, "2026-11-01T10:00:00+05:00", "Old", "Mid")],
        "2026-11-05T02:00:00+05:00",
    )
    .await;

    assert_eq!(
        report,
        IngestReport {
            opened: 1,
            duplicates: 0,
            superseded: 1
        }
    );
    let cases = store.cases_of(BIN_A).await.unwrap();
    let states: Vec<(&str, &str)> = cases
        .iter()
        .map(|c| (c.to_name.as_str(), c.status.as_str()))
        .collect();
    assert_eq!(
        states,
        [("Mid", "superseded"), ("New", "open")],
        "cases in rename order: the late older one ended, the newer one carries on"
    );
    assert_eq!(cases[1].stage(), Some(Stage::Checking));
    let late = store.events(cases[0].id).await.unwrap();
    let kinds: Vec<&str> = late.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["ingested", "ended"]);
    assert_eq!(cases[0].last_hash, late[1].hash);
}

async fn renames_of_one_organisation_ingested_together_leave_only_the_last_open(store: Store) {
    let report = ingest(
        &store,
        &[
            rename(BIN_A, "2026-11-01T09:00:00+05:00", "A0", "A1"),
            rename(BIN_A, "2026-11-01T12:00:00+05:00", "A1", "A2"),
            // Out of order in the feed: taken after the newer one, it is already out of date.
            rename(BIN_B, "2026-11-01T12:00:00+05:00", "B1", "B2"),
            rename(BIN_B, "2026-11-01T09:00:00+05:00", "B0", "B1"),
        ],
        "2026-11-02T02:00:00+05:00",
    )
    .await;

    assert_eq!(
        report,
        IngestReport {
            opened: 4,
            duplicates: 0,
            superseded: 2
        }
    );
    for (bin, newest) in [(BIN_A, "A2"), (BIN_B, "B2")] {
        let cases = store.cases_of(bin).await.unwrap();
        let states: Vec<(&str, &str)> = cases
            .iter()
            .map(|c| (c.to_name.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(states[1], (newest, "open"), "{bin}: {states:?}");
        assert_eq!(states[0].1, "superseded", "{bin}: {states:?}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Claims and guarded saves
// ---------------------------------------------------------------------------------------------------------

/// 20,000 open cases all due at one instant (as after one ingest): the claim must take the first 512 of them
/// in `(due_at, id)` order from an index, not read and sort all of them for each claim (on PostgreSQL an
/// index on `due_at` alone leaves ties in heap order: the checks of a 1,000,000-organisation run took 508 s
/// against 15 s at 100,000).
async fn the_claim_reads_due_cases_in_claim_order_without_sorting_them(store: Store) {
    insert_due_cases(&store).await;
    raw(&store, "ANALYZE", "ANALYZE cases")
        .await
        .expect("gather statistics");
    let plan = store.explain_claim().await.expect("explain the claim");
    assert!(
        plan.contains("cases_due_in_order"),
        "the claim uses the index in claim order:\n{plan}"
    );
    assert!(
        !plan.contains("TEMP B-TREE") && !plan.contains("Sort"),
        "the claim sorts the due cases:\n{plan}"
    );
}

/// The same with statistics taken while the table was empty (a backfill outran autovacuum, or the server
/// has it off): on PostgreSQL the planner, believing few cases due, chose a bitmap scan of every due case
/// and a sort, 1.2 s per claim at 900,000 open cases.
async fn the_claim_reads_in_claim_order_with_statistics_of_an_empty_table(store: Store) {
    raw(&store, "ANALYZE", "ANALYZE cases")
        .await
        .expect("gather statistics of the empty table");
    insert_due_cases(&store).await;
    let plan = store.explain_claim().await.expect("explain the claim");
    assert!(
        plan.contains("cases_due_in_order") && !plan.contains("Bitmap"),
        "the claim reads the index in claim order:\n{plan}"
    );
    assert!(
        !plan.contains("TEMP B-TREE") && !plan.contains("Sort"),
        "the claim sorts the due cases:\n{plan}"
    );
}

/// PostgreSQL only (SQLite's planner uses no statistics unless asked): once more rows of `cases` changed
/// than a tenth of those its statistics counted, a claim refreshes them, whether autovacuum runs or not
/// (the server of the tests has it off). The counts of other connections reach the statistics views up
/// to ten seconds late, so the claims repeat until they are seen.
#[tokio::test]
async fn postgres_a_claim_refreshes_statistics_gone_stale() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    run_chapter(db, |store| async move {
        let Store::Postgres(pool) = &store else {
            unreachable!("a PostgreSQL store")
        };
        insert_due_cases(&store).await;
        let analysed = || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT analyze_count + autoanalyze_count FROM pg_stat_user_tables WHERE relname = 'cases'",
            )
            .fetch_one(pool)
            .await
            .expect("read the statistics views")
        };
        let before = analysed().await;
        // 80 claims 250 ms apart: 20 s at least.
        let mut owner = 0;
        while analysed().await == before {
            assert!(
                owner < 80,
                "20,000 rows changed and no claim in 20 s refreshed the statistics"
            );
            owner += 1;
            store
                .claim_due(t("2026-11-02T02:00:00+05:00"), 1, &format!("w{owner}"), 1_000, 2_000)
                .await
                .expect("claim");
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        let estimate: f64 = sqlx::query_scalar("SELECT reltuples::float8 FROM pg_class WHERE relname = 'cases'")
            .fetch_one(pool)
            .await
            .expect("read pg_class");
        assert!(estimate > 10_000.0, "the statistics count the rows: {estimate}");
    })
    .await;
}

async fn claim_due_returns_due_cases_only_and_holds_them_until_the_lease_expires(store: Store) {
    ingest(
        &store,
        &[
            rename(BIN_A, "2026-11-01T10:00:00+05:00", "Old", "New"),
            rename(BIN_B, "2026-11-01T11:00:00+05:00", "Old", "New"),
            rename(BIN_C, "2026-11-01T12:00:00+05:00", "Old", "New"),
        ],
        "2026-11-02T02:00:00+05:00",
    )
    .await;
    let later = only_case_of(&store, BIN_C).await;
    queue(
        &store,
        &later,
        PHONE,
        Some("2026-11-02T09:00:00+05:00"),
        "2026-11-02T02:00:00+05:00",
    )
    .await;
    let now = t("2026-11-02T02:00:00+05:00");

    let first = store.claim_due(now, 10, "w1", 1_000, 2_000).await.unwrap();
    let while_held = store.claim_due(now, 10, "w2", 1_999, 3_000).await.unwrap();
    let after_expiry = store.claim_due(now, 10, "w2", 2_001, 3_000).await.unwrap();

    let bins = |rows: &[CaseRow]| rows.iter().map(|r| r.bin.clone()).collect::<Vec<_>>();
    assert_eq!(
        bins(&first),
        [BIN_A, BIN_B],
        "only the due cases, in due order"
    );
    assert!(first.iter().all(|r| r.lease_owner.as_deref() == Some("w1")));
    assert!(first.iter().all(|r| r.lease_until == Some(2_000)));
    assert!(while_held.is_empty(), "a claimed case is not claimed again");
    assert_eq!(
        bins(&after_expiry),
        [BIN_A, BIN_B],
        "an expired lease frees the case"
    );
    assert!(
        after_expiry
            .iter()
            .all(|r| r.lease_owner.as_deref() == Some("w2"))
    );

    // At 09:00 the queued case is due too; a limit caps the claim.
    let nine = t("2026-11-02T09:00:00+05:00");
    let one = store.claim_due(nine, 1, "w3", 5_000, 6_000).await.unwrap();
    assert_eq!(bins(&one), [BIN_A]);
    let rest = store.claim_due(nine, 10, "w4", 5_000, 6_000).await.unwrap();
    assert_eq!(bins(&rest), [BIN_B, BIN_C]);

    // A released case can be claimed at once.
    store.release(one[0].id).await.unwrap();
    let released = store.claim_due(nine, 10, "w5", 5_000, 6_000).await.unwrap();
    assert_eq!(bins(&released), [BIN_A]);
}

async fn a_save_applies_once_and_a_stale_change_changes_nothing(store: Store) {
    ingest(
        &store,
        &[rename(BIN_A, "2026-11-01T10:00:00+05:00", "Old", "New")],
        "2026-11-02T02:00:00+05:00",
    )
    .await;
    let now = t("2026-11-02T02:00:00+05:00");
    let claimed = store.claim_due(now, 10, "w1", 1_000, 2_000).await.unwrap();
    let read = claimed.into_iter().next().expect("the new case is due");
    store
        .store_replies(
            &[reply("m1", "2026-11-02T01:00:00+05:00", "1")],
            "sms.cursor",
            "1",
        )
        .await
        .unwrap();
    let reply_id = store.pending_replies(10).await.unwrap()[0].id;

    let mut fresh = change(&read, "2026-11-02T02:00:01+05:00", |r| {
        advance(r, Stage::Queued, Some(t("2026-11-02T09:00:00+05:00")));
        r.phone = Some(PHONE.to_owned());
    });
    fresh.outbox = vec![OutboxEntry {
        key: format!("{}:sms:1", read.case_key),
        kind: "sms",
        result: json!({"message_id": "g1"}),
    }];
    let mut stale = change(&read, "2026-11-02T02:00:02+05:00", |r| {
        end(
            r,
            &Ending::new(Outcome::Declined, None, "stale"),
            t("2026-11-02T02:00:02+05:00"),
        );
    });
    stale.outbox = vec![OutboxEntry {
        key: format!("{}:consent", read.case_key),
        kind: "consent",
        result: json!({}),
    }];
    stale.reply = Some((reply_id, ReplyStatus::Matched));

    let saved = save(&store, &fresh).await;
    let events_after_fresh = store.events(read.id).await.unwrap();
    let refused = save(&store, &stale).await;

    let head = saved.expect("the change made at the version read is applied");
    let now_row = reload(&store, &read).await;
    assert_eq!(now_row.version, read.version + 1);
    assert_eq!(now_row.stage(), Some(Stage::Queued));
    assert_eq!(now_row.last_hash, head);
    assert_eq!(
        (now_row.lease_owner.as_deref(), now_row.lease_until),
        (None, None),
        "a save lets go of the claim"
    );
    assert_eq!(events_after_fresh.len(), 2);
    assert_eq!(events_after_fresh[1].prev_hash, events_after_fresh[0].hash);

    assert_eq!(
        refused, None,
        "a change made at an older version is refused"
    );
    let after = reload(&store, &read).await;
    assert_eq!(after.version, now_row.version);
    assert_eq!(after.status, "open");
    assert_eq!(after.last_hash, head);
    assert_eq!(store.events(read.id).await.unwrap().len(), 2, "no event");
    assert_eq!(
        store.outbox_count(read.id, "consent").await.unwrap(),
        0,
        "no outbox"
    );
    assert_eq!(store.outbox_count(read.id, "sms").await.unwrap(), 1);
    assert_eq!(
        store.pending_replies(10).await.unwrap().len(),
        1,
        "the reply it carried is still pending"
    );
}

async fn an_outward_write_is_recorded_once_per_idempotency_key(store: Store) {
    ingest(
        &store,
        &[rename(BIN_A, "2026-11-01T10:00:00+05:00", "Old", "New")],
        "2026-11-02T02:00:00+05:00",
    )
    .await;
    let row = only_case_of(&store, BIN_A).await;
    let sms = OutboxEntry {
        key: format!("{}:sms:1", row.case_key),
        kind: "sms",
        result: json!({"message_id": "g1"}),
    };
    let mut first = change(&row, "2026-11-02T09:00:00+05:00", |_| {});
    first.outbox = vec![sms.clone()];
    save(&store, &first).await.expect("first save");
    let mut again = change(
        &reload(&store, &row).await,
        "2026-11-02T09:01:00+05:00",
        |_| {},
    );
    again.outbox = vec![sms];

    let saved = save(&store, &again).await;

    assert!(saved.is_some(), "the case change itself still applies");
    assert_eq!(store.outbox_count(row.id, "sms").await.unwrap(), 1);
}

// ---------------------------------------------------------------------------------------------------------
// One offer per phone
// ---------------------------------------------------------------------------------------------------------

/// Two organisations of one head; the later rename is ingested first, so ids and rename order differ.
async fn two_queued_cases_of_one_phone(store: &Store) -> (CaseRow, CaseRow) {
    let now = "2026-11-02T02:00:00+05:00";
    ingest(
        store,
        &[rename(BIN_B, "2026-11-01T12:00:00+05:00", "Old B", "New B")],
        now,
    )
    .await;
    ingest(
        store,
        &[rename(BIN_A, "2026-11-01T08:00:00+05:00", "Old A", "New A")],
        now,
    )
    .await;
    let later = only_case_of(store, BIN_B).await;
    let earlier = only_case_of(store, BIN_A).await;
    assert!(
        later.id < earlier.id,
        "arranged so that id order is not rename order"
    );
    let later = queue(store, &later, PHONE, Some("2026-11-02T09:00:00+05:00"), now).await;
    let earlier = queue(
        store,
        &earlier,
        PHONE,
        Some("2026-11-02T09:00:00+05:00"),
        now,
    )
    .await;
    (earlier, later)
}

async fn the_phone_slot_goes_to_one_case_only_in_rename_order(store: Store) {
    let (earlier, later) = two_queued_cases_of_one_phone(&store).await;
    ingest(
        &store,
        &[rename(BIN_C, "2026-11-01T13:00:00+05:00", "Old C", "New C")],
        "2026-11-02T02:00:00+05:00",
    )
    .await;
    let other = only_case_of(&store, BIN_C).await;
    let other = queue(
        &store,
        &other,
        OTHER_PHONE,
        None,
        "2026-11-02T02:00:00+05:00",
    )
    .await;

    let later_first_try = store.take_offer_slot(&later).await.unwrap();
    let earlier_try = store.take_offer_slot(&earlier).await.unwrap();
    let earlier_again = store
        .take_offer_slot(&reload(&store, &earlier).await)
        .await
        .unwrap();
    let later_second_try = store.take_offer_slot(&later).await.unwrap();
    let other_try = store.take_offer_slot(&other).await.unwrap();

    assert!(
        !later_first_try,
        "the later rename waits for the earlier one"
    );
    assert!(earlier_try, "the earlier rename gets the slot");
    assert!(!earlier_again, "a slot is taken once");
    assert!(!later_second_try, "the slot is held");
    assert!(other_try, "another phone's slot is independent");
    let holder = store.offer_holder(PHONE).await.unwrap().expect("a holder");
    assert_eq!(holder.id, earlier.id);
    assert_eq!(holder.offer_phone.as_deref(), Some(PHONE));
    assert_eq!(reload(&store, &later).await.offer_phone, None);
}

async fn ending_a_case_frees_its_phone_and_wakes_the_next_queued_case(store: Store) {
    let (earlier, later) = two_queued_cases_of_one_phone(&store).await;
    // The later case waits for a wake-up, not for a time.
    let later = {
        let c = change(&later, "2026-11-02T02:00:01+05:00", |r| r.due_at = None);
        save(&store, &c).await.expect("park the later case");
        reload(&store, &later).await
    };
    ingest(
        &store,
        &[rename(BIN_C, "2026-11-01T13:00:00+05:00", "Old C", "New C")],
        "2026-11-02T02:00:00+05:00",
    )
    .await;
    let bystander = only_case_of(&store, BIN_C).await;
    let bystander = queue(
        &store,
        &bystander,
        OTHER_PHONE,
        None,
        "2026-11-02T02:00:00+05:00",
    )
    .await;
    assert!(store.take_offer_slot(&earlier).await.unwrap());
    let holding = reload(&store, &earlier).await;
    let ended_at = "2026-11-02T12:30:00+05:00";

    let end = change(&holding, ended_at, |r| {
        end(
            r,
            &Ending::new(Outcome::Declined, None, "replied 2"),
            t(ended_at),
        );
    });
    save(&store, &end).await.expect("the case ends");

    assert!(
        store.offer_holder(PHONE).await.unwrap().is_none(),
        "the phone is free"
    );
    let woken = reload(&store, &later).await;
    assert_eq!(
        woken.due_at,
        Some(ms(t(ended_at))),
        "the next case is due now"
    );
    assert_eq!(
        reload(&store, &bystander).await.due_at,
        None,
        "a case of another phone sleeps on"
    );
    assert!(store.take_offer_slot(&woken).await.unwrap());
    let claimed = store.claim_due(t(ended_at), 10, "w", 1, 2).await.unwrap();
    assert_eq!(
        claimed.iter().map(|c| c.id).collect::<Vec<_>>(),
        [later.id],
        "the woken case is claimable at once"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------------------------

async fn a_reply_seen_twice_is_stored_once_and_pending_replies_come_in_arrival_order(store: Store) {
    let first_batch = [
        reply("m1", "2026-11-02T10:05:00+05:00", "1"),
        reply("m2", "2026-11-02T10:01:00+05:00", "2"),
        reply("m3", "2026-11-02T10:03:00+05:00", "yes"),
    ];
    let second_batch = [
        reply("m1", "2026-11-02T10:05:00+05:00", "1"),
        reply("m4", "2026-11-02T10:00:00+05:00", " 1 "),
    ];

    let stored_first = store
        .store_replies(&first_batch, "sms.cursor", "c1")
        .await
        .unwrap();
    let stored_second = store
        .store_replies(&second_batch, "sms.cursor", "c2")
        .await
        .unwrap();

    assert_eq!(stored_first, 3);
    assert_eq!(stored_second, 1, "m1 was already stored");
    assert_eq!(
        store.meta("sms.cursor").await.unwrap().as_deref(),
        Some("c2")
    );
    let pending = store.pending_replies(10).await.unwrap();
    let ids: Vec<&str> = pending.iter().map(|r| r.message_id.as_str()).collect();
    assert_eq!(
        ids,
        ["m4", "m2", "m3", "m1"],
        "in order of arrival at the gateway"
    );
    assert!(pending.iter().all(|r| r.status == "pending"));
    assert_eq!(pending[0].text, " 1 ", "the text is stored as received");

    let m2 = pending[1].id;
    store
        .resolve_reply(
            m2,
            ReplyStatus::Invalid,
            None,
            t("2026-11-02T10:06:00+05:00"),
        )
        .await
        .unwrap();
    let ids: Vec<String> = store
        .pending_replies(2)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.message_id)
        .collect();
    assert_eq!(
        ids,
        ["m4", "m3"],
        "a handled reply leaves the queue; the limit holds"
    );
}

async fn pending_replies_are_read_on_page_by_page_from_where_the_last_page_ended(store: Store) {
    let replies = [
        reply("m1", "2026-11-02T10:05:00+05:00", "1"),
        reply("m2", "2026-11-02T10:01:00+05:00", "2"),
        reply("m3", "2026-11-02T10:03:00+05:00", "1"),
        reply("m4", "2026-11-02T10:03:00+05:00", "2"),
        reply("m5", "2026-11-02T10:00:00+05:00", "1"),
    ];
    store
        .store_replies(&replies, "sms.cursor", "c1")
        .await
        .unwrap();
    let start = (i64::MIN, i64::MIN);

    let first = store.pending_replies_after(start, 2).await.unwrap();
    let last = first.last().unwrap();
    let second = store
        .pending_replies_after((last.received_at, last.id), 2)
        .await
        .unwrap();
    let last = second.last().unwrap();
    let third = store
        .pending_replies_after((last.received_at, last.id), 2)
        .await
        .unwrap();
    let last = third.last().unwrap();
    let after_the_end = store
        .pending_replies_after((last.received_at, last.id), 2)
        .await
        .unwrap();

    let ids = |page: &[sdu::store::ReplyRow]| -> Vec<String> {
        page.iter().map(|r| r.message_id.clone()).collect()
    };
    assert_eq!(ids(&first), ["m5", "m2"], "arrival order, the limit holds");
    assert_eq!(
        ids(&second),
        ["m3", "m4"],
        "two replies of the same instant: in the order they were stored, neither skipped"
    );
    assert_eq!(ids(&third), ["m1"]);
    assert!(after_the_end.is_empty());
    assert_eq!(
        ids(&store.pending_replies_after(start, 10).await.unwrap()),
        ["m5", "m2", "m3", "m4", "m1"],
        "from the start, every pending reply in one page"
    );

    let m3 = second[0].id;
    store
        .resolve_reply(
            m3,
            ReplyStatus::Matched,
            None,
            t("2026-11-02T10:06:00+05:00"),
        )
        .await
        .unwrap();
    assert_eq!(
        ids(&store.pending_replies_after(start, 10).await.unwrap()),
        ["m5", "m2", "m4", "m1"],
        "a handled reply is no longer pending"
    );
}

// ---------------------------------------------------------------------------------------------------------
// The append-only, hash-chained history
// ---------------------------------------------------------------------------------------------------------

async fn the_event_log_refuses_updates_and_deletes(store: Store) {
    let case = case_with_three_events(&store, BIN_A).await;
    let before = store.events(case.id).await.unwrap();

    let update = raw(
        &store,
        "UPDATE case_events SET detail = '{}'",
        "UPDATE case_events SET detail = '{}'",
    )
    .await;
    let delete = raw(&store, "DELETE FROM case_events", "DELETE FROM case_events").await;

    let update = update.expect_err("an UPDATE of the history is refused");
    let delete = delete.expect_err("a DELETE of the history is refused");
    assert!(update.contains("append-only"), "{update}");
    assert!(delete.contains("append-only"), "{delete}");
    let after = store.events(case.id).await.unwrap();
    assert_eq!(
        after
            .iter()
            .map(|e| (&e.detail, &e.hash))
            .collect::<Vec<_>>(),
        before
            .iter()
            .map(|e| (&e.detail, &e.hash))
            .collect::<Vec<_>>()
    );
}

async fn the_audit_is_clean_for_an_untouched_history(store: Store) {
    case_with_three_events(&store, BIN_A).await;
    case_with_three_events(&store, BIN_B).await;
    let events = store
        .events(only_case_of(&store, BIN_A).await.id)
        .await
        .unwrap();

    let verdict = sdu::audit::verify(&store).await.unwrap();

    assert_eq!(verdict, None);
    assert_eq!(events.len(), 3);
    assert_eq!(events[1].prev_hash, events[0].hash);
    assert_eq!(events[2].prev_hash, events[1].hash);
}

async fn the_audit_reports_an_event_changed_after_it_was_written(store: Store) {
    let case = case_with_three_events(&store, BIN_A).await;
    case_with_three_events(&store, BIN_B).await;
    let events = store.events(case.id).await.unwrap();
    let target = events.iter().find(|e| e.kind == "checked").unwrap().id;
    raw(
        &store,
        "DROP TRIGGER case_events_no_update",
        "DROP TRIGGER case_events_no_change ON case_events",
    )
    .await
    .expect("drop the guard on this throw-away database");

    let changed = raw(
        &store,
        "UPDATE case_events SET detail = '{\"permits\":0}' WHERE kind = 'checked' AND case_id = (SELECT MIN(case_id) FROM case_events)",
        "UPDATE case_events SET detail = '{\"permits\":0}' WHERE kind = 'checked' AND case_id = (SELECT MIN(case_id) FROM case_events)",
    )
    .await
    .unwrap();
    let verdict = sdu::audit::verify(&store).await.unwrap();

    assert_eq!(changed, 1);
    let broken = verdict.expect("the audit notices the change");
    assert_eq!((broken.case_id, broken.event_id), (case.id, target));
    assert!(broken.problem.contains("changed"), "{}", broken.problem);
}

async fn the_audit_reports_an_event_removed_from_the_middle_of_a_chain(store: Store) {
    let case = case_with_three_events(&store, BIN_A).await;
    let events = store.events(case.id).await.unwrap();
    raw(
        &store,
        "DROP TRIGGER case_events_no_delete",
        "DROP TRIGGER case_events_no_change ON case_events",
    )
    .await
    .expect("drop the guard on this throw-away database");

    let removed = raw(
        &store,
        "DELETE FROM case_events WHERE kind = 'checked'",
        "DELETE FROM case_events WHERE kind = 'checked'",
    )
    .await
    .unwrap();
    let verdict = sdu::audit::verify(&store).await.unwrap();

    assert_eq!(removed, 1);
    let broken = verdict.expect("the audit notices the gap");
    assert_eq!((broken.case_id, broken.event_id), (case.id, events[2].id));
    assert!(broken.problem.contains("removed"), "{}", broken.problem);
    assert_eq!(event_count(&store).await, 2);
}

async fn the_audit_reports_a_case_whose_last_event_was_removed(store: Store) {
    let case = case_with_three_events(&store, BIN_A).await;
    raw(
        &store,
        "DROP TRIGGER case_events_no_delete",
        "DROP TRIGGER case_events_no_change ON case_events",
    )
    .await
    .expect("drop the guard on this throw-away database");

    raw(
        &store,
        "DELETE FROM case_events WHERE kind = 'queued'",
        "DELETE FROM case_events WHERE kind = 'queued'",
    )
    .await
    .unwrap();
    let verdict = sdu::audit::verify(&store).await.unwrap();

    let broken = verdict.expect("the audit notices the missing tail");
    assert_eq!(broken.case_id, case.id);
    assert!(broken.problem.contains("missing"), "{}", broken.problem);
}

// ---------------------------------------------------------------------------------------------------------
// SQLite only
// ---------------------------------------------------------------------------------------------------------

#[cfg(unix)]
#[tokio::test]
async fn the_sqlite_file_is_private_to_its_owner_and_survives_a_reopen() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new();
    let path = dir.path().join("nested").join("cases.db");
    let url = format!("sqlite://{}", path.display());

    let store = Store::open(&url)
        .await
        .expect("open creates the file and its folder");
    ingest(
        &store,
        &[rename(BIN_A, "2026-11-01T10:00:00+05:00", "Old", "New")],
        "2026-11-02T02:00:00+05:00",
    )
    .await;

    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o600,
        "the database holds personal data: mode {mode:o}"
    );
    for side in ["cases.db-wal", "cases.db-shm"] {
        let side = path.with_file_name(side);
        if let Ok(meta) = std::fs::metadata(&side) {
            let mode = meta.permissions().mode() & 0o777;
            assert_eq!(mode & 0o077, 0, "{} has mode {mode:o}", side.display());
        }
    }
    if let Store::Sqlite(pool) = &store {
        pool.close().await;
    }
    let reopened = Store::open(&url)
        .await
        .expect("migrations apply again cleanly");
    assert_eq!(reopened.cases_of(BIN_A).await.unwrap().len(), 1);
    if let Store::Sqlite(pool) = &reopened {
        pool.close().await;
    }
}
