//! The store's queries, written once for both backends: this file is compiled twice, as
//! `store::sqlite::queries` and `store::postgres::queries`, each time against its backend's concrete types
//! (`super::Db` and the few SQL differences named in `super::`). One source of SQL, no code generic over
//! `sqlx::Database` (whose trait bounds would repeat at every function), and rustfmt and clippy see all of
//! it, which the `macro_rules!` it replaces hid from both.

use super::{CLAIM_SQL, Db, EXPLAIN, NUMBERED};
use crate::store::imp::{ROWS_PER_STATEMENT, group_size, groups, params, shaped, tuples};

use anyhow::Result;
use chrono::{DateTime, Utc};
use sqlx::{Pool, Transaction};

use crate::case::{Stage, transition};
use crate::store::OPEN;
use crate::store::{
    CaseChange, CaseRow, EventRow, IngestReport, Lease, NewCase, NewEvent, NewReply, ReplyRow,
    ReplyStatus, STATE_VERSION, SummaryRow, event_hash, json_text, ms,
};

pub async fn meta(p: &Pool<Db>, name: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT value FROM meta WHERE name = $1")
        .bind(name)
        .fetch_optional(p)
        .await?)
}

pub async fn swap_meta(
    p: &Pool<Db>,
    name: &str,
    expected: Option<&str>,
    value: &str,
) -> Result<bool> {
    let done = match expected {
        None => {
            sqlx::query(
                "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(value)
            .execute(p)
            .await?
        }
        Some(old) => {
            sqlx::query("UPDATE meta SET value = $3 WHERE name = $1 AND value = $2")
                .bind(name)
                .bind(old)
                .bind(value)
                .execute(p)
                .await?
        }
    };
    Ok(done.rows_affected() == 1)
}

async fn set_meta_tx(tx: &mut Transaction<'_, Db>, name: &str, value: &str) -> Result<()> {
    sqlx::query("INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
        .bind(name)
        .bind(value)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// One line of a case's history, ready to insert.
struct Line {
    case_id: i64,
    at: i64,
    kind: &'static str,
    detail: String,
    prev: String,
    hash: String,
}

/// One outward write done, ready to insert into the outbox.
struct Done {
    case_id: i64,
    key: String,
    kind: &'static str,
    result: String,
    at: i64,
}

/// The history lines of `events`, chained from `prev`, and the new head of the chain: computed
/// before anything is written, so that the guarded update can go first.
fn chain(case_id: i64, mut prev: String, at: i64, events: &[NewEvent]) -> (Vec<Line>, String) {
    let mut lines = Vec::with_capacity(events.len());
    for event in events {
        let detail = json_text(&event.detail);
        let hash = event_hash(&prev, case_id, at, event.kind, &detail);
        let prev_hash = std::mem::replace(&mut prev, hash.clone());
        lines.push(Line {
            case_id,
            at,
            kind: event.kind,
            detail,
            prev: prev_hash,
            hash,
        });
    }
    (lines, prev)
}

/// Inserts history lines, many per statement, in order (a case's lines keep their chain order in `id`).
async fn insert_lines(tx: &mut Transaction<'_, Db>, lines: &[Line]) -> Result<()> {
    for chunk in groups(lines) {
        let sql = shaped("insert_lines", NUMBERED, chunk.len(), || {
            format!(
                "INSERT INTO case_events (case_id, at, kind, detail, prev_hash, hash) VALUES {}",
                tuples(NUMBERED, chunk.len(), 6)
            )
        });
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for l in chunk {
            query = query
                .bind(l.case_id)
                .bind(l.at)
                .bind(l.kind)
                .bind(&l.detail)
                .bind(&l.prev)
                .bind(&l.hash);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Records outward writes, many per statement; a key recorded before is skipped.
async fn insert_done(tx: &mut Transaction<'_, Db>, done: &[Done]) -> Result<()> {
    for chunk in groups(done) {
        let sql = shaped("insert_done", NUMBERED, chunk.len(), || {
            format!(
                "INSERT INTO outbox (case_id, idempotency_key, kind, result, done_at) VALUES {} \
             ON CONFLICT (idempotency_key) DO NOTHING",
                tuples(NUMBERED, chunk.len(), 5)
            )
        });
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for d in chunk {
            query = query
                .bind(d.case_id)
                .bind(&d.key)
                .bind(d.kind)
                .bind(&d.result)
                .bind(d.at);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// The guarded update shared by `save`, `save_many` and `ingest`. The guarded `UPDATE` goes first, so
/// that a change that lost the race writes nothing at all (and `save_many` needs no savepoints).
async fn apply(
    tx: &mut Transaction<'_, Db>,
    change: &CaseChange,
    lease: Option<&Lease>,
) -> Result<Option<String>> {
    let Some((last_hash, lines, done)) = apply_row(tx, change, lease).await? else {
        return Ok(None);
    };
    insert_lines(tx, &lines).await?;
    insert_done(tx, &done).await?;
    Ok(Some(last_hash))
}

/// [`apply`] but for its history lines and outbox entries, which it returns so that `save_many` can
/// insert those of many changes together.
async fn apply_row(
    tx: &mut Transaction<'_, Db>,
    change: &CaseChange,
    lease: Option<&Lease>,
) -> Result<Option<(String, Vec<Line>, Vec<Done>)>> {
    let row = &change.row;
    let now = ms(change.now);
    let (lines, last_hash) = chain(row.id, row.last_hash.clone(), now, &change.events);
    let updated = sqlx::query(
        "UPDATE cases SET status = $1, stage = $2, reason = $3, detail = $4, attempt = $5, head_iin = $6, phone = $7, \
         offer_phone = $8, permits = $9, reissued = $10, first_sent_at = $11, second_sent_at = $12, due_at = $13, \
         retries = $14, lease_owner = $21, lease_until = $22, state_version = $15, version = version + 1, \
         last_hash = $16, updated_at = $17, ended_at = $18, reissue_name = $23, region = $24, activity = $25 WHERE id = $19 AND version = $20",
    )
    .bind(&row.status)
    .bind(&row.stage)
    .bind(&row.reason)
    .bind(&row.detail)
    .bind(row.attempt)
    .bind(&row.head_iin)
    .bind(&row.phone)
    .bind(&row.offer_phone)
    .bind(&row.permits)
    .bind(&row.reissued)
    .bind(row.first_sent_at)
    .bind(row.second_sent_at)
    .bind(row.due_at)
    .bind(row.retries)
    .bind(STATE_VERSION)
    .bind(&last_hash)
    .bind(now)
    .bind(row.ended_at)
    .bind(row.id)
    .bind(change.expected_version)
    .bind(lease.map(|l| l.owner.as_str()))
    .bind(lease.map(|l| l.until))
    .bind(&row.reissue_name)
    .bind(&row.region)
    .bind(&row.activity)
    .execute(&mut **tx)
    .await?;
    if updated.rows_affected() != 1 {
        return Ok(None);
    }
    let done = change
        .outbox
        .iter()
        .map(|entry| Done {
            case_id: row.id,
            key: entry.key.clone(),
            kind: entry.kind,
            result: json_text(&entry.result),
            at: now,
        })
        .collect();
    if let Some((reply_id, status)) = change.reply {
        resolve_reply_tx(tx, reply_id, status, Some(row.id), change.now).await?;
    }
    if row.status != OPEN
        && let Some(phone) = &row.phone
    {
        // The phone is free: the next queued case for it may send its offer now.
        sqlx::query(
                "UPDATE cases SET due_at = $1 WHERE phone = $2 AND status = 'open' AND stage = 'queued' AND id <> $3 \
                 AND (due_at IS NULL OR due_at > $1)",
            )
            .bind(now)
            .bind(phone)
            .bind(row.id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(Some((last_hash, lines, done)))
}

/// The guarded update of several cases in one statement; returns the ids it updated (a case whose
/// version moved on is left as it is). `heads[i]` is the new chain head of `changes[i]`.
async fn update_rows(
    tx: &mut Transaction<'_, Db>,
    changes: &[CaseChange],
    leases: &[Option<&Lease>],
    heads: &[(Vec<Line>, String)],
) -> Result<std::collections::HashSet<i64>> {
    if changes.is_empty() {
        return Ok(Default::default());
    }
    // `VALUES` columns are named column1, column2, … on both backends.
    let sql = shaped("update_rows", NUMBERED, changes.len(), || {
        format!(
            "UPDATE cases SET status = v.column3, stage = v.column4, reason = v.column5, detail = v.column6, \
         attempt = v.column7, head_iin = v.column8, phone = v.column9, offer_phone = v.column10, permits = v.column11, \
         reissued = v.column12, first_sent_at = v.column13, second_sent_at = v.column14, due_at = v.column15, \
         retries = v.column16, lease_owner = v.column17, lease_until = v.column18, state_version = v.column19, \
         version = version + 1, last_hash = v.column20, updated_at = v.column21, ended_at = v.column22, reissue_name = v.column23, region = v.column24, activity = v.column25 \
         FROM (VALUES {}) AS v WHERE cases.id = v.column1 AND cases.version = v.column2 RETURNING id",
            tuples(NUMBERED, changes.len(), 25)
        )
    });
    let mut query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
    for ((change, lease), (_, last_hash)) in changes.iter().zip(leases).zip(heads) {
        let row = &change.row;
        query = query
            .bind(row.id)
            .bind(change.expected_version)
            .bind(&row.status)
            .bind(&row.stage)
            .bind(&row.reason)
            .bind(&row.detail)
            .bind(row.attempt)
            .bind(&row.head_iin)
            .bind(&row.phone)
            .bind(&row.offer_phone)
            .bind(&row.permits)
            .bind(&row.reissued)
            .bind(row.first_sent_at)
            .bind(row.second_sent_at)
            .bind(row.due_at)
            .bind(row.retries)
            .bind(lease.map(|l| l.owner.as_str()))
            .bind(lease.map(|l| l.until))
            .bind(STATE_VERSION)
            .bind(last_hash)
            .bind(ms(change.now))
            .bind(row.ended_at)
            .bind(&row.reissue_name)
            .bind(&row.region)
            .bind(&row.activity);
    }
    Ok(query.fetch_all(&mut **tx).await?.into_iter().collect())
}

/// Wakes the queued cases of numbers freed by ended cases: the next may send its offer now.
async fn wake_queued(tx: &mut Transaction<'_, Db>, freed: &[(i64, &str)]) -> Result<()> {
    let mut by_time: std::collections::BTreeMap<i64, Vec<&str>> = std::collections::BTreeMap::new();
    for (now, phone) in freed {
        by_time.entry(*now).or_default().push(phone);
    }
    for (now, phones) in by_time {
        for chunk in groups(&phones) {
            // Ended cases are no longer open, so the cases that freed the numbers are not woken.
            let sql = shaped("wake_queued", NUMBERED, chunk.len(), || {
                format!(
                    "UPDATE cases SET due_at = {} WHERE status = 'open' AND stage = 'queued' AND (due_at IS NULL OR due_at > {}) \
                 AND phone IN ({})",
                    params(NUMBERED, 1, 1),
                    params(NUMBERED, 2, 1),
                    params(NUMBERED, 3, chunk.len())
                )
            });
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now).bind(now);
            for phone in chunk {
                query = query.bind(*phone);
            }
            query.execute(&mut **tx).await?;
        }
    }
    Ok(())
}

pub async fn save(p: &Pool<Db>, change: &CaseChange) -> Result<Option<String>> {
    let mut tx = p.begin().await?;
    let saved = apply(&mut tx, change, None).await?;
    if saved.is_some() {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(saved)
}

/// Applies several changes in one transaction (group commit); each is guarded on its own.
pub async fn save_many(
    p: &Pool<Db>,
    changes: &[CaseChange],
    leases: &[Option<Lease>],
) -> Result<Vec<Option<String>>> {
    let mut tx = p.begin().await?;
    let mut saved = Vec::with_capacity(changes.len());
    let (mut lines, mut done, mut freed, mut resolved) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Guarded updates of many cases per statement; a case twice in one statement would be updated
    // once, so a repeated case starts a new group.
    let mut start = 0;
    while start < changes.len() {
        let mut ids = std::collections::HashSet::new();
        let mut end = start;
        while end < changes.len()
            && end - start < ROWS_PER_STATEMENT
            && ids.insert(changes[end].row.id)
        {
            end += 1;
        }
        let end = start + group_size(end - start);
        let group = &changes[start..end];
        let heads: Vec<(Vec<Line>, String)> = group
            .iter()
            .map(|c| chain(c.row.id, c.row.last_hash.clone(), ms(c.now), &c.events))
            .collect();
        let group_leases: Vec<Option<&Lease>> = (start..end)
            .map(|i| leases.get(i).and_then(Option::as_ref))
            .collect();
        let applied = update_rows(&mut tx, group, &group_leases, &heads).await?;
        for (change, (l, last_hash)) in group.iter().zip(heads) {
            if !applied.contains(&change.row.id) {
                saved.push(None);
                continue;
            }
            let now = ms(change.now);
            lines.extend(l);
            done.extend(change.outbox.iter().map(|entry| Done {
                case_id: change.row.id,
                key: entry.key.clone(),
                kind: entry.kind,
                result: json_text(&entry.result),
                at: now,
            }));
            if let Some((reply_id, status)) = change.reply {
                resolved.push((reply_id, status, change.row.id, now));
            }
            if change.row.status != OPEN
                && let Some(phone) = &change.row.phone
            {
                freed.push((now, phone.as_str()));
            }
            saved.push(Some(last_hash));
        }
        start = end;
    }
    insert_lines(&mut tx, &lines).await?;
    insert_done(&mut tx, &done).await?;
    resolve_replies_tx(&mut tx, &resolved).await?;
    wake_queued(&mut tx, &freed).await?;
    tx.commit().await?;
    Ok(saved)
}

pub async fn ingest(
    p: &Pool<Db>,
    renames: &[NewCase],
    cursor_name: &str,
    cursor: &str,
    now: DateTime<Utc>,
) -> Result<IngestReport> {
    let mut report = IngestReport::default();
    let mut tx = p.begin().await?;
    if NUMBERED {
        // PostgreSQL (the backend with numbered parameters): a backfill grows `cases` faster than
        // autovacuum refreshes its statistics, and the planner, believing the table tiny, read all
        // of it for each page's lookups and guarded updates (a quadratic ingest). Every statement of
        // the ingest has an index that fits.
        //
        // Each execution is planned afresh, too: a generic plan cached by this connection while
        // `cases` was small stays in use, without an `ANALYZE` to invalidate it, long after the
        // table has grown. The `UPDATE … FROM (VALUES …)` of the chain heads kept the hash join it
        // got when the table held a few hundred rows, and read all of it for every 64 rows
        // (docs/BENCHMARKS.md: how it was found, and the figures).
        sqlx::query("SELECT set_config('enable_seqscan', 'off', true), set_config('plan_cache_mode', 'force_custom_plan', true)")
            .execute(&mut *tx)
            .await?;
    }
    let now_ms = ms(now);
    // The open cases of this page's organisations, read at once and kept current while the page is
    // taken in order (each rename sees the cases opened and superseded by the renames before it).
    let mut open_by_bin: std::collections::HashMap<String, Vec<CaseRow>> =
        std::collections::HashMap::new();
    let mut bins: Vec<&str> = renames
        .iter()
        .filter(|r| r.ended.is_none())
        .map(|r| r.bin.as_str())
        .collect();
    bins.sort_unstable();
    bins.dedup();
    for chunk in groups(&bins) {
        // Every case of these organisations, the open ones kept here: with `status = 'open'` in the
        // query PostgreSQL's planner, its statistics behind a fast-growing table, took the partial
        // index of open cases by phone and read every open case for each page (a quadratic
        // ingest). `cases_bin` finds an organisation's few cases.
        let sql = shaped("cases_by_bin", NUMBERED, chunk.len(), || {
            format!(
                "SELECT * FROM cases WHERE bin IN ({})",
                params(NUMBERED, 1, chunk.len())
            )
        });
        let mut query = sqlx::query_as::<_, CaseRow>(sqlx::AssertSqlSafe(sql));
        for bin in chunk {
            query = query.bind(*bin);
        }
        for row in query.fetch_all(&mut *tx).await? {
            if row.status == OPEN {
                open_by_bin.entry(row.bin.clone()).or_default().push(row);
            }
        }
    }
    // The page's cases, inserted many per statement; a rename ingested before is skipped.
    let mut inserted: std::collections::HashMap<String, CaseRow> = std::collections::HashMap::new();
    for chunk in groups(renames) {
        let sql = shaped("ingest_insert", NUMBERED, chunk.len(), || {
            format!(
                "INSERT INTO cases (case_key, bin, rename_at, from_name, to_name, status, stage, reason, detail, due_at, \
             created_at, updated_at, ended_at, state_version) VALUES {} ON CONFLICT (case_key) DO NOTHING RETURNING *",
                tuples(NUMBERED, chunk.len(), 14)
            )
        });
        let mut query = sqlx::query_as::<_, CaseRow>(sqlx::AssertSqlSafe(sql));
        for new in chunk {
            let (status, stage, reason, detail, due) = match &new.ended {
                Some(e) => (
                    e.outcome.as_str(),
                    None,
                    e.reason.map(|r| r.as_str()),
                    Some(e.detail.clone()),
                    None,
                ),
                None => (
                    OPEN,
                    Some(Stage::Checking.as_str()),
                    None,
                    None,
                    Some(now_ms),
                ),
            };
            query = query
                .bind(&new.case_key)
                .bind(&new.bin)
                .bind(ms(new.rename_at))
                .bind(&new.from_name)
                .bind(&new.to_name)
                .bind(status)
                .bind(stage)
                .bind(reason)
                .bind(detail)
                .bind(due)
                .bind(now_ms)
                .bind(now_ms)
                .bind(new.ended.as_ref().map(|_| now_ms))
                .bind(STATE_VERSION);
        }
        for row in query.fetch_all(&mut *tx).await? {
            inserted.insert(row.case_key.clone(), row);
        }
    }
    // New cases' first history lines and chain heads, written together; written out before any other
    // change to a case of this page, so that each case's lines stay in chain order.
    let mut pending = Pending::default();
    for new in renames {
        let Some(mut row) = inserted.remove(&new.case_key) else {
            report.duplicates += 1;
            continue;
        };
        report.opened += 1;
        let id = row.id;
        let new_case = row.read().into_case();
        let ingested = transition::ingested_event(&new_case, new.ended.as_ref());
        if new.ended.is_some() {
            let (new_lines, hash) = chain(id, String::new(), now_ms, &[ingested]);
            pending.add(id, new_lines, hash);
            continue;
        }
        let mut open = open_by_bin.remove(&new.bin).unwrap_or_default();
        open.sort_by_key(|c| (c.rename_at, c.id));
        let open_cases: Vec<_> = open.iter().map(|c| c.read().into_case()).collect();
        // The decision core says which case a rename supersedes; the store only applies it.
        let decision = transition::on_ingested(&new_case, &open_cases);
        let mut events = vec![ingested];
        if let Some(outdated) = decision.new {
            let version = row.version;
            row.set_state(&outdated.case, now);
            events.extend(outdated.events);
            let change = CaseChange {
                row,
                expected_version: version,
                events,
                outbox: vec![],
                reply: None,
                now,
            };
            apply(&mut tx, &change, None).await?;
            report.superseded += 1;
            open_by_bin.insert(new.bin.clone(), open);
            continue;
        }
        let (new_lines, hash) = chain(id, String::new(), now_ms, &events);
        row.last_hash = hash.clone();
        pending.add(id, new_lines, hash);
        if !open.is_empty() {
            pending.write(&mut tx).await?;
        }
        for (mut older, superseded) in open.into_iter().zip(decision.superseded) {
            let version = older.version;
            older.set_state(&superseded.case, now);
            let change = CaseChange {
                row: older,
                expected_version: version,
                events: superseded.events,
                outbox: vec![],
                reply: None,
                now,
            };
            apply(&mut tx, &change, None).await?;
            report.superseded += 1;
        }
        open_by_bin.insert(new.bin.clone(), vec![row]);
    }
    pending.write(&mut tx).await?;
    set_meta_tx(&mut tx, cursor_name, cursor).await?;
    tx.commit().await?;
    if NUMBERED {
        refresh_statistics(p).await;
    }
    Ok(report)
}

/// PostgreSQL: `ANALYZE cases` once the rows changed since its statistics were taken outnumber a tenth
/// of those it counted then (and 10,000), autovacuum's own rule. Autovacuum does it when it is on and
/// keeps up; a backfill and the checks after it outrun it, and on a server with it off the statistics
/// stay those of the table they were taken from. With statistics of an empty table, or of one whose
/// cases had no phone yet, the planner read every open case for lookups of a few: 1.2 s per claim of
/// 512 and 1.6 s per 64 offer slots at 1,000,000 cases (docs/BENCHMARKS.md). Checked after each ingest
/// page and each claim (a lookup in the statistics views); a failure only leaves the statistics as
/// they are.
async fn refresh_statistics(p: &Pool<Db>) {
    if let Err(error) = refresh_statistics_if_stale(p).await {
        tracing::warn!(%error, "statistics of cases could not be refreshed");
    }
}

async fn refresh_statistics_if_stale(p: &Pool<Db>) -> Result<()> {
    let stale: Option<bool> = sqlx::query_scalar(
        "SELECT s.n_mod_since_analyze > greatest(10000, c.reltuples / 10) FROM pg_class c \
         JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = 'cases'::regclass",
    )
    .fetch_optional(p)
    .await?;
    if stale == Some(true) {
        sqlx::query("ANALYZE cases").execute(p).await?;
        tracing::debug!("statistics of cases refreshed");
    }
    Ok(())
}

/// History lines and chain heads of newly ingested cases, not yet written.
#[derive(Default)]
struct Pending {
    lines: Vec<Line>,
    heads: Vec<(i64, String)>,
}

impl Pending {
    fn add(&mut self, case_id: i64, mut lines: Vec<Line>, head: String) {
        self.lines.append(&mut lines);
        self.heads.push((case_id, head));
    }

    async fn write(&mut self, tx: &mut Transaction<'_, Db>) -> Result<()> {
        insert_lines(tx, &self.lines).await?;
        self.lines.clear();
        for chunk in groups(&self.heads) {
            let sql = shaped("set_last_hash", NUMBERED, chunk.len(), || {
                format!(
                    "UPDATE cases SET last_hash = v.column2 FROM (VALUES {}) AS v WHERE cases.id = v.column1",
                    tuples(NUMBERED, chunk.len(), 2)
                )
            });
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, head) in chunk {
                query = query.bind(*id).bind(head);
            }
            query.execute(&mut **tx).await?;
        }
        self.heads.clear();
        Ok(())
    }
}

pub async fn store_replies(
    p: &Pool<Db>,
    replies: &[NewReply],
    cursor_name: &str,
    cursor: &str,
) -> Result<u64> {
    let mut tx = p.begin().await?;
    let mut stored = 0;
    for chunk in groups(replies) {
        let sql = shaped("store_replies", NUMBERED, chunk.len(), || {
            format!(
                "INSERT INTO replies (message_id, from_raw, phone, text, received_at, status) VALUES {} \
             ON CONFLICT (message_id) DO NOTHING",
                tuples(NUMBERED, chunk.len(), 6)
            )
        });
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in chunk {
            query = query
                .bind(&r.message_id)
                .bind(&r.from_raw)
                .bind(&r.phone)
                .bind(&r.text)
                .bind(ms(r.received_at))
                .bind("pending");
        }
        stored += query.execute(&mut *tx).await?.rows_affected();
    }
    set_meta_tx(&mut tx, cursor_name, cursor).await?;
    tx.commit().await?;
    Ok(stored)
}

pub async fn pending_replies_after(
    p: &Pool<Db>,
    after: (i64, i64),
    limit: i64,
) -> Result<Vec<ReplyRow>> {
    Ok(sqlx::query_as(
        "SELECT * FROM replies WHERE status = 'pending' AND (received_at, id) > ($1, $2) ORDER BY received_at, id LIMIT $3",
    )
    .bind(after.0)
    .bind(after.1)
    .bind(limit)
    .fetch_all(p)
    .await?)
}

async fn resolve_reply_tx(
    tx: &mut Transaction<'_, Db>,
    reply_id: i64,
    status: ReplyStatus,
    case_id: Option<i64>,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query("UPDATE replies SET status = $1, case_id = $2, handled_at = $3 WHERE id = $4")
        .bind(status.as_str())
        .bind(case_id)
        .bind(ms(now))
        .bind(reply_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// [`resolve_reply_tx`] for many replies, many per statement: `(reply, status, case, when)`.
async fn resolve_replies_tx(
    tx: &mut Transaction<'_, Db>,
    resolved: &[(i64, ReplyStatus, i64, i64)],
) -> Result<()> {
    for chunk in groups(resolved) {
        let sql = shaped("resolve_replies", NUMBERED, chunk.len(), || {
            format!(
                "UPDATE replies SET status = v.column2, case_id = v.column3, handled_at = v.column4 \
             FROM (VALUES {}) AS v WHERE replies.id = v.column1",
                tuples(NUMBERED, chunk.len(), 4)
            )
        });
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (reply_id, status, case_id, at) in chunk {
            query = query
                .bind(*reply_id)
                .bind(status.as_str())
                .bind(*case_id)
                .bind(*at);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

pub async fn resolve_reply(
    p: &Pool<Db>,
    reply_id: i64,
    status: ReplyStatus,
    case_id: Option<i64>,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut tx = p.begin().await?;
    resolve_reply_tx(&mut tx, reply_id, status, case_id, now).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn offer_holder(p: &Pool<Db>, phone: &str) -> Result<Option<CaseRow>> {
    Ok(
        sqlx::query_as("SELECT * FROM cases WHERE offer_phone = $1 AND status = 'open'")
            .bind(phone)
            .fetch_optional(p)
            .await?,
    )
}

pub async fn offer_holders(p: &Pool<Db>, phones: &[&str]) -> Result<Vec<CaseRow>> {
    let mut rows = Vec::new();
    for chunk in groups(phones) {
        let sql = shaped("offer_holders", NUMBERED, chunk.len(), || {
            format!(
                "SELECT * FROM cases WHERE status = 'open' AND offer_phone IN ({})",
                params(NUMBERED, 1, chunk.len())
            )
        });
        let mut query = sqlx::query_as::<_, CaseRow>(sqlx::AssertSqlSafe(sql));
        for phone in chunk {
            query = query.bind(*phone);
        }
        rows.extend(query.fetch_all(p).await?);
    }
    Ok(rows)
}

/// PostgreSQL: the planner settings of the claim's transaction (see [`claim_due`]).
const CLAIM_PLAN: &str = "SELECT set_config('enable_bitmapscan', 'off', true), \
     set_config('enable_sort', 'off', true), set_config('enable_seqscan', 'off', true)";

pub async fn claim_due(
    p: &Pool<Db>,
    now: i64,
    limit: i64,
    owner: &str,
    wall_now: i64,
    lease_until: i64,
) -> Result<Vec<CaseRow>> {
    let claim = sqlx::query_as(CLAIM_SQL)
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .bind(wall_now)
        .bind(limit);
    let mut rows: Vec<CaseRow> = if NUMBERED {
        // PostgreSQL: the due cases are read in order through `cases_due_in_order` and the read stops
        // at `limit`, whatever the statistics say. With statistics older than a backfill, the planner
        // believed few cases due and chose a bitmap scan of every due case and a sort: 1.2 s per claim
        // of 512 at 900,000 open cases, against milliseconds (docs/BENCHMARKS.md).
        let mut tx = p.begin().await?;
        sqlx::query(CLAIM_PLAN).execute(&mut *tx).await?;
        let rows = claim.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        refresh_statistics(p).await;
        rows
    } else {
        claim.fetch_all(p).await?
    };
    rows.sort_by_key(|r| (r.due_at, r.rename_at, r.id));
    Ok(rows)
}

/// The backend's plan of the claim (not run; under the claim's planner settings), one line per step: the
/// last column of each row of SQLite's `EXPLAIN QUERY PLAN` (its detail) and the one column of
/// PostgreSQL's `EXPLAIN`.
pub async fn explain_claim(p: &Pool<Db>) -> Result<String> {
    use sqlx::Row as _;
    let mut tx = p.begin().await?;
    if NUMBERED {
        sqlx::query(CLAIM_PLAN).execute(&mut *tx).await?;
    }
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{} {CLAIM_SQL}", EXPLAIN)))
        .bind("")
        .bind(0_i64)
        .bind(i64::MAX)
        .bind(0_i64)
        .bind(512_i64)
        .fetch_all(&mut *tx)
        .await?;
    tx.rollback().await?;
    let mut plan = String::new();
    for row in rows {
        plan += &row.try_get::<String, _>(row.len() - 1)?;
        plan.push('\n');
    }
    Ok(plan)
}

pub async fn take_offer_slot(p: &Pool<Db>, case: &CaseRow) -> Result<bool> {
    let result = sqlx::query(
        "UPDATE cases SET offer_phone = phone WHERE id = $1 AND status = 'open' AND offer_phone IS NULL AND phone = $2 \
         AND NOT EXISTS (SELECT 1 FROM cases o WHERE o.phone = $2 AND o.status = 'open' AND o.id <> $1 \
         AND (o.offer_phone IS NOT NULL OR (o.stage = 'queued' AND (o.rename_at < $3 OR (o.rename_at = $3 AND o.id < $1)))))",
    )
    .bind(case.id)
    .bind(&case.phone)
    .bind(case.rename_at)
    .execute(p)
    .await;
    match result {
        Ok(done) => Ok(done.rows_affected() == 1),
        // Another worker took the slot between our check and our write (unique index).
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

pub async fn take_offer_slots(p: &Pool<Db>, ids: &[i64]) -> Result<Vec<i64>> {
    let mut taken = Vec::new();
    for chunk in groups(ids) {
        // As `take_offer_slot`, with the row's own number and rename instant. Of two cases of one number
        // in the same statement, the later is excluded by the earlier one, which is queued.
        let sql = shaped("take_offer_slots", NUMBERED, chunk.len(), || {
            format!(
                "UPDATE cases SET offer_phone = phone WHERE id IN ({}) AND status = 'open' AND offer_phone IS NULL \
             AND phone IS NOT NULL AND NOT EXISTS (SELECT 1 FROM cases o WHERE o.phone = cases.phone AND o.status = 'open' \
             AND o.id <> cases.id AND (o.offer_phone IS NOT NULL OR (o.stage = 'queued' AND (o.rename_at < cases.rename_at \
             OR (o.rename_at = cases.rename_at AND o.id < cases.id))))) RETURNING id",
                params(NUMBERED, 1, chunk.len())
            )
        });
        let mut query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            query = query.bind(*id);
        }
        match query.fetch_all(p).await {
            Ok(ids) => taken.extend(ids),
            // Another worker took a slot meanwhile (unique index): these cases try one by one.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(taken)
}

pub async fn release(p: &Pool<Db>, case_id: i64) -> Result<()> {
    sqlx::query("UPDATE cases SET lease_owner = NULL, lease_until = NULL WHERE id = $1")
        .bind(case_id)
        .execute(p)
        .await?;
    Ok(())
}

pub async fn release_if_owner(p: &Pool<Db>, case_id: i64, owner: &str) -> Result<()> {
    sqlx::query("UPDATE cases SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2")
        .bind(case_id)
        .bind(owner)
        .execute(p)
        .await?;
    Ok(())
}

pub async fn release_all_of(p: &Pool<Db>, owner: &str) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE cases SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
    )
    .bind(owner)
    .execute(p)
    .await?;
    Ok(done.rows_affected())
}

pub async fn next_due(p: &Pool<Db>) -> Result<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT MIN(due_at) FROM cases WHERE status = 'open'")
            .fetch_one(p)
            .await?,
    )
}

pub async fn case(p: &Pool<Db>, id: i64) -> Result<Option<CaseRow>> {
    Ok(sqlx::query_as("SELECT * FROM cases WHERE id = $1")
        .bind(id)
        .fetch_optional(p)
        .await?)
}

pub async fn cases_page(p: &Pool<Db>, after: i64, limit: i64) -> Result<Vec<CaseRow>> {
    Ok(
        sqlx::query_as("SELECT * FROM cases WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(p)
            .await?,
    )
}

pub async fn cases_of(p: &Pool<Db>, bin: &str) -> Result<Vec<CaseRow>> {
    Ok(
        sqlx::query_as("SELECT * FROM cases WHERE bin = $1 ORDER BY rename_at, id")
            .bind(bin)
            .fetch_all(p)
            .await?,
    )
}

pub async fn summary(p: &Pool<Db>) -> Result<Vec<SummaryRow>> {
    Ok(sqlx::query_as(
        "SELECT status, CASE WHEN status = 'open' THEN stage ELSE reason END AS detail, COUNT(*) AS count \
         FROM cases GROUP BY status, CASE WHEN status = 'open' THEN stage ELSE reason END ORDER BY status, detail",
    )
    .fetch_all(p)
    .await?)
}

pub async fn events(p: &Pool<Db>, case_id: i64) -> Result<Vec<EventRow>> {
    Ok(
        sqlx::query_as("SELECT * FROM case_events WHERE case_id = $1 ORDER BY id")
            .bind(case_id)
            .fetch_all(p)
            .await?,
    )
}

pub async fn events_page(p: &Pool<Db>, after: i64, limit: i64) -> Result<Vec<EventRow>> {
    Ok(
        sqlx::query_as("SELECT * FROM case_events WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(p)
            .await?,
    )
}

pub async fn outbox_count(p: &Pool<Db>, case_id: i64, kind: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE case_id = $1 AND kind = $2")
            .bind(case_id)
            .bind(kind)
            .fetch_one(p)
            .await?,
    )
}

pub async fn corrupt_stage(p: &Pool<Db>, bin: &str, stage: Option<&str>) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE cases SET stage = $1, version = version + 1 WHERE bin = $2 AND status = 'open'",
    )
    .bind(stage)
    .bind(bin)
    .execute(p)
    .await?;
    Ok(done.rows_affected())
}

pub async fn register_worker(p: &Pool<Db>, owner: &str, wall_now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO workers (owner, started_at) VALUES ($1, $2) ON CONFLICT (owner) DO NOTHING",
    )
    .bind(owner)
    .bind(wall_now)
    .execute(p)
    .await?;
    Ok(())
}

pub async fn known_workers(p: &Pool<Db>) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT owner FROM workers ORDER BY started_at, owner")
            .fetch_all(p)
            .await?,
    )
}

pub async fn forget_worker(p: &Pool<Db>, owner: &str) -> Result<()> {
    sqlx::query("DELETE FROM workers WHERE owner = $1")
        .bind(owner)
        .execute(p)
        .await?;
    Ok(())
}
