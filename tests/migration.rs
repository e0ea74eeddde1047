//! Upgrades: a database made by the previous schema (migrations 0001–0003), holding open cases at every
//! stage, is migrated to the typed state (0004, CHECK constraints) and every case carries on as it was;
//! a stage the product does not know is made explicit, so that the engine ends that case instead of
//! looping on it. On SQLite, and on PostgreSQL when `SDU_TEST_POSTGRES` names a server.

mod procs;

use std::path::{Path, PathBuf};

use sdu::case::{Stage, Status};
use sdu::store::{Read, Store};
use sqlx::Executor as _;

/// The migrations of `backend` before the typed state, copied into a folder of their own.
fn old_migrations(backend: &str) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let to = std::env::temp_dir().join(format!(
        "sdu-old-migrations-{backend}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&to).unwrap();
    for name in [
        "0001_cases.sql",
        "0002_pending_replies_in_arrival_order.sql",
        "0003_due_cases_in_claim_order.sql",
    ] {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
    to
}

/// One open case per stage as the old schema stored it, plus one whose stage the product never knew, one
/// ended case and its history line (case_events refers to cases, which the SQLite migration rebuilds).
const OLD_ROWS: &str = "
INSERT INTO cases (case_key, bin, rename_at, from_name, to_name, status, stage, attempt, head_iin, phone,
    offer_phone, permits, reissued, first_sent_at, second_sent_at, due_at, created_at, updated_at) VALUES
 ('k-checking', '201140000017', 1, 'A', 'B', 'open', 'checking', 0, NULL, NULL, NULL, '[]', '[]', NULL, NULL, 10, 1, 1),
 ('k-queued', '201140000017', 2, 'A', 'B', 'open', 'queued', 0, '850214300013', '+77011234567', NULL, '[\"P1\"]', '[]', NULL, NULL, 10, 1, 1),
 ('k-awaiting', '190540043216', 3, 'A', 'B', 'open', 'awaiting_reply', 1, '850214300013', '+77011234568', '+77011234568', '[\"P2\"]', '[]', 5, NULL, 10, 1, 1),
 ('k-consent', '190540043216', 4, 'A', 'B', 'open', 'consent_pending', 2, '850214300013', '+77011234569', '+77011234569', '[\"P3\"]', '[]', 5, 6, 10, 1, 1),
 ('k-reissuing', '190540043216', 5, 'A', 'B', 'open', 'reissuing', 1, '850214300013', '+77011234570', '+77011234570', '[\"P4\", \"P5\"]', '[\"P4\"]', 5, NULL, 10, 1, 1),
 ('k-writing', '190540043216', 6, 'A', 'B', 'open', 'writing_back', 1, '850214300013', '+77011234571', '+77011234571', '[\"P6\"]', '[\"P6\"]', 5, NULL, 10, 1, 1),
 ('k-unknown', '190540043216', 7, 'A', 'B', 'open', 'stage_of_a_newer_version', 0, NULL, NULL, NULL, '[]', '[]', NULL, NULL, 10, 1, 1);
INSERT INTO cases (case_key, bin, rename_at, from_name, to_name, status, reason, detail, created_at, updated_at, ended_at)
 VALUES ('k-ended', '190540043216', 8, 'A', 'B', 'not_applicable', 'no_permit', 'no permit', 1, 1, 1);
INSERT INTO case_events (case_id, at, kind, detail, prev_hash, hash)
 SELECT id, 1, 'ingested', '{}', '', 'h' FROM cases WHERE case_key = 'k-ended';
";

async fn the_old_schemas_open_cases_carry_on(url: &str, backend: &str) {
    let old = old_migrations(backend);
    let migrator = sqlx::migrate::Migrator::new(old.as_path()).await.unwrap();
    match backend {
        "sqlite" => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            migrator.run(&pool).await.unwrap();
            pool.execute(OLD_ROWS).await.unwrap();
            pool.close().await;
        }
        _ => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            migrator.run(&pool).await.unwrap();
            pool.execute(OLD_ROWS).await.unwrap();
            pool.close().await;
        }
    }
    std::fs::remove_dir_all(old).ok();

    let store = Store::open(url)
        .await
        .expect("the new version migrates the old database");

    let mut stages = Vec::new();
    for row in store.cases_page(0, 100).await.unwrap() {
        match (row.case_key.as_str(), row.read()) {
            ("k-unknown", Read::Unreadable(_, problem)) => {
                assert!(problem.contains("without a stage"), "{problem}");
                assert_eq!(
                    row.detail.as_deref(),
                    Some("unknown stored stage: stage_of_a_newer_version"),
                    "the unknown value is kept for the person who reads the case"
                );
            }
            ("k-ended", Read::Case(case)) => assert!(case.is_ended()),
            (key, Read::Case(case)) => {
                let Status::Open(stage) = case.status else {
                    panic!("{key} should still be open")
                };
                stages.push(stage);
            }
            (key, Read::Unreadable(_, problem)) => panic!("{key} became unreadable: {problem}"),
        }
    }
    assert_eq!(
        stages,
        vec![
            Stage::Checking,
            Stage::Queued,
            Stage::AwaitingReply,
            Stage::ConsentPending,
            Stage::Reissuing,
            Stage::WritingBack
        ],
        "every open case of the old schema carries on at its stage"
    );
    let ended = store.cases_of("190540043216").await.unwrap();
    let history = store.events(ended.last().unwrap().id).await.unwrap();
    assert_eq!(history.len(), 1, "the history survives the rebuild");
    let refused = store
        .corrupt_stage("201140000017", Some("no_such_stage"))
        .await;
    assert!(
        refused.is_err(),
        "the schema now refuses a stage the product does not know"
    );
}

#[tokio::test]
async fn sqlite_the_old_schemas_open_cases_carry_on() {
    let db = procs::TestDb::sqlite("migration");
    // The old schema is created by a raw pool, which must be told to create the file.
    the_old_schemas_open_cases_carry_on(&format!("{}?mode=rwc", db.url), "sqlite").await;
    db.remove().await;
}

#[tokio::test]
async fn postgres_the_old_schemas_open_cases_carry_on() {
    let Some(server) = procs::postgres_server() else {
        return;
    };
    let db = procs::TestDb::postgres(&server, "migration").await;
    the_old_schemas_open_cases_carry_on(&db.url, "postgres").await;
    db.remove().await;
}
