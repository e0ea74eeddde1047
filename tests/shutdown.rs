//! Shutdown (docs/RULES.md §3 `sdu daemon`: a clean exit on SIGINT/SIGTERM): a daemon in the middle of a
//! large catch-up gets SIGTERM, finishes the steps in hand and exits 0 within 10 s; its history is intact;
//! a following `sdu run` carries on where it stopped and writes nothing twice. Run on an SQLite file and,
//! when `SDU_TEST_POSTGRES` names a server, on a fresh PostgreSQL database.

mod procs;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use procs::{Daemon, MockChild, Sdu, TestDb, at, eventually};
use sdu::store::{Store, ms};

const ORGANISATIONS: u64 = 3000;

/// Steps recorded beyond the ingest itself.
async fn steps(store: &Store) -> i64 {
    procs::scalar(
        store,
        "SELECT COUNT(*) FROM case_events WHERE kind <> 'ingested'",
    )
    .await
}

async fn audit_is_clean(sdu: &Sdu, now: DateTime<Utc>) {
    let (status, stdout, stderr) = sdu.output(now, &["audit", "verify"]).await;
    assert!(status.success(), "audit verify: {stdout}{stderr}");
    assert!(stdout.contains("intact"), "audit verify: {stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_daemon_stops_cleanly_on_sigterm_and_a_later_run_finishes_its_work() {
    a_busy_daemon_stops_cleanly(TestDb::sqlite("shutdown"), "SQLite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_daemon_on_postgres_stops_cleanly_on_sigterm_and_a_later_run_finishes_its_work() {
    let Some(server) = procs::postgres_server() else {
        return;
    };
    let db = TestDb::postgres(&server, "shutdown").await;
    a_busy_daemon_stops_cleanly(db, "PostgreSQL").await;
}

/// The story of the module on `db` (`label`), which it removes at the end.
async fn a_busy_daemon_stops_cleanly(db: TestDb, label: &str) {
    // A world of 3000 renamed organisations; e-license answers each request 50 ms late.
    let mock = MockChild::start(&["--synthetic", &ORGANISATIONS.to_string(), "--seed", "11"]).await;
    let store = &db.open().await;
    let sdu = Sdu {
        database: db.url.clone(),
        base_url: mock.url.clone(),
        env: vec![
            ("SDU_TICK".into(), "1s".into()),
            ("SDU_API_LISTEN".into(), "127.0.0.1:0".into()),
        ],
    };

    // Its first start only records the beginning of the nightly schedule (docs/PROCESS.md).
    let night = at("2026-11-02T01:30:00+05:00");
    mock.set_clock(night).await;
    let daemon = Daemon::start(&sdu, night).await;
    assert!(
        eventually(Duration::from_secs(60), || async {
            store
                .meta(sdu::engine::LAST_INGEST_SLOT)
                .await
                .expect("meta")
                .is_some()
        })
        .await,
        "the daemon records its first start"
    );
    let (status, output) = daemon.terminate(Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| s.success()), "idle daemon: {output}");

    // Started again at 10:00, it catches up on the night's ingest and works through 3000 cases.
    let ten = at("2026-11-02T10:00:00+05:00");
    mock.set_clock(ten).await;
    mock.set_fault(
        serde_json::json!({"system": "e_license", "mode": "slow", "rate": 1.0, "delay_ms": 50}),
    )
    .await;
    let daemon = Daemon::start(&sdu, ten).await;
    assert!(
        eventually(Duration::from_secs(300), || async {
            steps(store).await >= 100
        })
        .await,
        "the daemon gets to work"
    );
    let busy = store
        .next_due()
        .await
        .expect("next due")
        .is_some_and(|due| due <= ms(ten));
    assert!(busy, "work is left when SIGTERM arrives");

    let asked = procs::now();
    let (status, output) = daemon.terminate(Duration::from_secs(10)).await;
    let status = status.unwrap_or_else(|| panic!("no exit within 10 s of SIGTERM: {output}"));
    assert!(status.success(), "exit after SIGTERM: {status}: {output}");
    assert!(output.contains("sdu daemon: stopped"), "{output}");
    let stopped_after = asked.elapsed();
    let done_at_stop = steps(store).await;
    let leased = procs::scalar(
        store,
        "SELECT COUNT(*) FROM cases WHERE lease_owner IS NOT NULL",
    )
    .await;
    println!(
        "shutdown on {label}: SIGTERM after {done_at_stop} steps of {ORGANISATIONS} cases; exit 0 after {:.1} s; {leased} claims left",
        stopped_after.as_secs_f64()
    );
    assert_eq!(leased, 0, "a clean stop lets go of every claim");
    audit_is_clean(&sdu, ten).await;

    // A pass finishes the work: nothing is left due, and a second pass finds nothing.
    let (status, stdout, stderr) = sdu.output(ten, &["run", "--json"]).await;
    assert!(status.success(), "sdu run: {stderr}");
    let pass: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON summary");
    assert!(
        pass["pass"]["steps"].as_i64() > Some(0),
        "the pass carried on: {pass}"
    );
    let next = store.next_due().await.expect("next due");
    assert!(
        next.is_none_or(|due| due > ms(ten)),
        "work still due after the pass"
    );
    let (status, stdout, stderr) = sdu.output(ten, &["run", "--json"]).await;
    assert!(status.success(), "sdu run: {stderr}");
    let again: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON summary");
    assert_eq!(
        again["pass"]["steps"], 0,
        "a second pass finds work: {again}"
    );

    // Every rename has its one case; every SMS was accepted once and recorded once.
    let feed = mock.feed().await;
    let cases = procs::all_cases(store).await;
    assert_eq!(cases.len(), feed.len(), "one case per rename");
    let sent = mock.sent().await;
    let keys: BTreeSet<String> = sent.iter().map(|s| s.idempotency_key.clone()).collect();
    assert_eq!(keys.len(), sent.len(), "an SMS key accepted twice");
    let attempts: i64 = cases.iter().map(|c| c.attempt).sum();
    assert_eq!(
        sent.len() as i64,
        attempts,
        "SMS accepted vs attempts recorded"
    );
    assert!(
        keys.iter().all(|k| k.ends_with(":sms:1")),
        "only first offers at 10:00"
    );
    let outbox: BTreeSet<String> = procs::texts(store, "SELECT idempotency_key FROM outbox")
        .await
        .into_iter()
        .collect();
    assert_eq!(
        outbox, keys,
        "the store recorded exactly the SMS the gateway accepted"
    );
    let state = mock.state().await;
    assert!(
        state.consents.is_empty() && state.sdu_records.is_empty(),
        "no reply, no consent or write-back"
    );
    audit_is_clean(&sdu, ten).await;

    match store {
        Store::Sqlite(p) => p.close().await,
        Store::Postgres(p) => p.close().await,
    }
    mock.stop().await;
    db.remove().await;
}
