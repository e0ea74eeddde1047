//! The operator console's queries (docs/CONSOLE.md), written once for both backends: compiled twice, as
//! `store::sqlite::console_queries` and `store::postgres::console_queries`, like `queries.rs`. Every query
//! is static SQL: an absent filter is a NULL parameter that the condition lets through.

use super::Db;

use anyhow::Result;
use sqlx::Pool;

use crate::store::{ActionRow, CaseFilter, CaseRow, DayCount, OperatorRow, OutboxRow};

pub async fn add_operator(p: &Pool<Db>, operator: &OperatorRow) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO operators (name, role, token_hash, created_at, revoked_at) VALUES ($1, $2, $3, $4, NULL) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(&operator.name)
    .bind(&operator.role)
    .bind(&operator.token_hash)
    .bind(operator.created_at)
    .execute(p)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn operators(p: &Pool<Db>) -> Result<Vec<OperatorRow>> {
    Ok(sqlx::query_as("SELECT * FROM operators ORDER BY name")
        .fetch_all(p)
        .await?)
}

pub async fn operator_by_token(p: &Pool<Db>, token_hash: &str) -> Result<Option<OperatorRow>> {
    Ok(
        sqlx::query_as("SELECT * FROM operators WHERE token_hash = $1 AND revoked_at IS NULL")
            .bind(token_hash)
            .fetch_optional(p)
            .await?,
    )
}

pub async fn revoke_operator(p: &Pool<Db>, name: &str, now: i64) -> Result<bool> {
    let done =
        sqlx::query("UPDATE operators SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL")
            .bind(name)
            .bind(now)
            .execute(p)
            .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn record_action(p: &Pool<Db>, action: &ActionRow) -> Result<()> {
    insert_action(p, action).await
}

async fn insert_action<'e>(
    executor: impl sqlx::Executor<'e, Database = Db>,
    action: &ActionRow,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO operator_actions (at, operator, action, case_id, reason) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(action.at)
    .bind(&action.operator)
    .bind(&action.action)
    .bind(action.case_id)
    .bind(&action.reason)
    .execute(executor)
    .await?;
    Ok(())
}

/// Sets a switch and records who set it, in one transaction: the switch never changes unrecorded.
pub async fn set_switch(p: &Pool<Db>, name: &str, value: &str, action: &ActionRow) -> Result<()> {
    let mut tx = p.begin().await?;
    sqlx::query(
        "INSERT INTO meta (name, value) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(name)
    .bind(value)
    .execute(&mut *tx)
    .await?;
    insert_action(&mut *tx, action).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn actions(p: &Pool<Db>, before: i64, limit: i64) -> Result<Vec<ActionRow>> {
    Ok(
        sqlx::query_as("SELECT * FROM operator_actions WHERE id < $1 ORDER BY id DESC LIMIT $2")
            .bind(before)
            .bind(limit)
            .fetch_all(p)
            .await?,
    )
}

/// Cases matching every given filter, in id order after `filter.after` (keyset pagination).
pub async fn search_cases(p: &Pool<Db>, filter: &CaseFilter, limit: i64) -> Result<Vec<CaseRow>> {
    Ok(sqlx::query_as(
        "SELECT * FROM cases WHERE id > $1 \
         AND (CAST($2 AS TEXT) IS NULL OR ($2 = 'open' AND status = 'open') OR ($2 = 'ended' AND status <> 'open')) \
         AND (CAST($3 AS TEXT) IS NULL OR status = $3) \
         AND (CAST($4 AS TEXT) IS NULL OR reason = $4) \
         AND (CAST($5 AS TEXT) IS NULL OR stage = $5) \
         AND (CAST($6 AS TEXT) IS NULL OR bin = $6) \
         AND (CAST($7 AS BIGINT) IS NULL OR rename_at >= $7) \
         AND (CAST($8 AS BIGINT) IS NULL OR rename_at < $8) \
         ORDER BY id LIMIT $9",
    )
    .bind(filter.after)
    .bind(&filter.status)
    .bind(&filter.outcome)
    .bind(&filter.reason)
    .bind(&filter.stage)
    .bind(&filter.bin)
    .bind(filter.renamed_from)
    .bind(filter.renamed_until)
    .bind(limit)
    .fetch_all(p)
    .await?)
}

/// Cases renamed in `[from, until)` counted per local day (`offset_ms` east of UTC), status and reason.
pub async fn funnel(p: &Pool<Db>, from: i64, until: i64, offset_ms: i64) -> Result<Vec<DayCount>> {
    Ok(sqlx::query_as(
        "SELECT CAST((rename_at + $3) / 86400000 AS BIGINT) AS day, status, \
         COALESCE(reason, stage) AS detail, COUNT(*) AS count \
         FROM cases WHERE rename_at >= $1 AND rename_at < $2 \
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )
    .bind(from)
    .bind(until)
    .bind(offset_ms)
    .fetch_all(p)
    .await?)
}

pub async fn outbox_of(p: &Pool<Db>, case_id: i64) -> Result<Vec<OutboxRow>> {
    Ok(sqlx::query_as(
        "SELECT idempotency_key, kind, result, done_at FROM outbox WHERE case_id = $1 ORDER BY id",
    )
    .bind(case_id)
    .fetch_all(p)
    .await?)
}

/// Brings forward to `now` the offers due in `(now, until]`: after a resume, the SMS the pause held go at
/// once instead of at their next look. Safe for any case it touches: the core decides from the SMS
/// actually sent, not from `due_at`, so a case woken early only looks again and goes back to waiting.
pub async fn wake_offers(p: &Pool<Db>, now: i64, until: i64) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE cases SET due_at = $1 WHERE status = 'open' AND stage IN ('queued', 'awaiting_reply') \
         AND due_at > $1 AND due_at <= $2",
    )
    .bind(now)
    .bind(until)
    .execute(p)
    .await?;
    Ok(done.rows_affected())
}
