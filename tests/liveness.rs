//! A worker's mark of life: held, another worker sees it alive; gone with its holder (as when the process
//! dies), another worker sees it gone at once. On SQLite, and on PostgreSQL when `SDU_TEST_POSTGRES` names a
//! server.

use sdu::store::Store;
use sqlx::Executor as _;

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
    let dir = std::env::temp_dir().join(format!("sdu-liveness-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("l.db").display());
    a_mark_of_life_is_seen_while_held_and_gone_once_dropped(&url).await;
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn postgres_a_mark_of_life_is_seen_while_held_and_gone_once_dropped() {
    let Ok(server) = std::env::var("SDU_TEST_POSTGRES") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but SDU_TEST_POSTGRES is not: the PostgreSQL tests must run"
        );
        println!("skipped: SDU_TEST_POSTGRES not set");
        return;
    };
    let admin = sqlx::PgPool::connect(&server).await.unwrap();
    let name = format!("sdu_liveness_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    let url = sdu::scenario::replace_database(&server, &name);
    a_mark_of_life_is_seen_while_held_and_gone_once_dropped(&url).await;
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .await
        .ok();
}
