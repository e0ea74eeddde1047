//! A worker's mark of life: held, another worker sees it alive; gone with its holder (as when the process
//! dies), another worker sees it gone at once. On SQLite, and on PostgreSQL when `SDU_TEST_POSTGRES` names a
//! server.

mod procs;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use procs::TestDb;
use sdu::case::case_key;
use sdu::clock::ManualClock;
use sdu::config::Config;
use sdu::engine::{Engine, Systems};
use sdu::store::{NewCase, Store, ms};

async fn a_mark_of_life_is_seen_while_held_and_gone_once_dropped(url: &str) {
    let one = Store::open(url).await.unwrap();
    let other = Store::open(url).await.unwrap();
    assert_ne!(
        other.worker_alive("1-never-seen").await.unwrap(),
        Some(true),
        "a worker that never held a mark is not alive"
    );

    let mark = one.hold_worker_lock("1-worker").await.unwrap();
    assert_eq!(
        other.worker_alive("1-worker").await.unwrap(),
        Some(true),
        "held"
    );
    assert_eq!(
        other.worker_alive("1-worker").await.unwrap(),
        Some(true),
        "asking does not take it"
    );

    drop(mark);
    assert_ne!(
        other.worker_alive("1-worker").await.unwrap(),
        Some(true),
        "gone with its holder"
    );
}

#[tokio::test]
async fn sqlite_a_mark_of_life_is_seen_while_held_and_gone_once_dropped() {
    let db = TestDb::sqlite("liveness");
    a_mark_of_life_is_seen_while_held_and_gone_once_dropped(&db.url).await;
    db.remove().await;
}

#[tokio::test]
async fn postgres_a_mark_of_life_is_seen_while_held_and_gone_once_dropped() {
    let Some(server) = procs::postgres_server() else {
        return;
    };
    let db = TestDb::postgres(&server, "liveness").await;
    a_mark_of_life_is_seen_while_held_and_gone_once_dropped(&db.url).await;
    db.remove().await;
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("an RFC 3339 instant")
        .with_timezone(&Utc)
}

/// The registered workers are the ones looked at: a dead one's claims are freed by the next look and its
/// row forgotten; a live one's claims and row stay.
async fn a_dead_workers_claims_are_freed_and_a_live_ones_kept(url: &str) {
    let store = Store::open(url).await.unwrap();
    let now = t("2026-11-02T02:00:00+05:00");
    let renames: Vec<NewCase> = ["000740001307", "010140003514", "020240004919"]
        .iter()
        .map(|bin| NewCase {
            case_key: case_key(bin, t("2026-11-01T10:00:00+05:00")),
            bin: (*bin).to_owned(),
            rename_at: t("2026-11-01T10:00:00+05:00"),
            from_name: "Old".into(),
            to_name: "New".into(),
            ended: None,
        })
        .collect();
    store
        .ingest(&renames, "legal_entities.cursor", "2026-11-02", now)
        .await
        .unwrap();
    let (wall, lease_until) = (ms(now), ms(now) + 300_000);

    let dead = store.hold_worker_lock("1-dead").await.unwrap();
    store.register_worker("1-dead", wall).await.unwrap();
    let of_dead = store
        .claim_due(now, 1, "1-dead", wall, lease_until)
        .await
        .unwrap();
    assert_eq!(of_dead.len(), 1);
    drop(dead);
    let live = store.hold_worker_lock("2-live").await.unwrap();
    store.register_worker("2-live", wall + 1).await.unwrap();
    let of_live = store
        .claim_due(now, 1, "2-live", wall, lease_until)
        .await
        .unwrap();
    assert_eq!(of_live.len(), 1);

    let config = Config::default();
    let systems = Systems::http(&config, |_| {}).unwrap();
    let clock = Arc::new(ManualClock::new(now));
    let engine = Engine::with_wall_clock(
        Store::open(url).await.unwrap(),
        systems,
        clock.clone(),
        clock,
        config,
    )
    .unwrap();
    // A PostgreSQL server ends the dead worker's session a moment after its socket closes.
    let mut freed = 0;
    for _ in 0..50 {
        freed = engine.take_over_dead_claims(true).await.unwrap();
        if freed > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(freed, 1, "the dead worker's one claim");
    let workers = store.known_workers().await.unwrap();
    assert_eq!(
        workers.len(),
        2,
        "the live worker and the engine: {workers:?}"
    );
    assert!(workers.iter().any(|w| w == "2-live"));
    assert!(!workers.iter().any(|w| w == "1-dead"), "forgotten");

    // Before any lease expires, another claim gets the freed case and the one never claimed.
    let again = store
        .claim_due(now, 10, "3-other", wall + 1, lease_until)
        .await
        .unwrap();
    let ids: Vec<i64> = again.iter().map(|r| r.id).collect();
    assert_eq!(again.len(), 2, "{ids:?}");
    assert!(ids.contains(&of_dead[0].id));
    assert!(
        !ids.contains(&of_live[0].id),
        "the live worker's claim is kept"
    );
    assert_eq!(engine.take_over_dead_claims(true).await.unwrap(), 0);
    drop(live);
}

#[tokio::test]
async fn sqlite_a_dead_workers_claims_are_freed_and_a_live_ones_kept() {
    let db = TestDb::sqlite("liveness_registry");
    a_dead_workers_claims_are_freed_and_a_live_ones_kept(&db.url).await;
    db.remove().await;
}

#[tokio::test]
async fn postgres_a_dead_workers_claims_are_freed_and_a_live_ones_kept() {
    let Some(server) = procs::postgres_server() else {
        return;
    };
    let db = TestDb::postgres(&server, "liveness_registry").await;
    a_dead_workers_claims_are_freed_and_a_live_ones_kept(&db.url).await;
    db.remove().await;
}
