//! A worker's mark of life: held, another worker sees it alive; gone with its holder (as when the process
//! dies), another worker sees it gone at once. On SQLite, and on PostgreSQL when `SDU_TEST_POSTGRES` names a
//! server.

mod procs;

use procs::TestDb;
use sdu::store::Store;

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
