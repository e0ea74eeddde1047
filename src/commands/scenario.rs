//! The scenario runner (docs/RULES.md §6): each file runs the real orchestrator, over real HTTP, against the mock
//! registries started in-process on 127.0.0.1, with a fresh database and a simulated clock.
//!
//! The clock passes through every instant at which the daemon would do something: each nightly ingest
//! instant, each event, the end of each fault, and every tick at which a case is due (a failed ingest or
//! reply poll is retried at the next tick). Idle minutes in between are skipped, which gives the same result
//! as ticking every minute because nothing can happen in them. The case engine runs with concurrency 1 and
//! the mock's faults are seeded, so a file gives the same result every time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use adapters::Msisdn;
use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use mock_registries::{EventKind, Fault, Mock, Scenario, SystemName};
use serde::Serialize;

use crate::clock::ManualClock;
use crate::config::Config;
use crate::engine::{Engine, IngestMode, Systems};
use crate::store::{Store, ms};

/// The verdict on one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    /// The file.
    pub file: String,
    /// The scenario's name.
    pub name: String,
    /// True when every expectation held.
    pub passed: bool,
    /// Each expectation that did not hold.
    pub mismatches: Vec<String>,
    /// Final count of cases per outcome.
    pub outcomes: BTreeMap<String, i64>,
}

/// Expands folders into their `*.yaml` files (recursively, sorted); files are taken as given.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut found)?;
            found.sort();
            if found.is_empty() {
                bail!("{}: no *.yaml files in this folder", path.display());
            }
            files.extend(found);
        } else if path.exists() {
            files.push(path.clone());
        } else {
            bail!("{}: no such file or folder", path.display());
        }
    }
    Ok(files)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

/// Where each scenario's fresh database comes from.
#[derive(Debug, Clone)]
pub enum FreshDatabase {
    /// A private in-memory SQLite database per scenario.
    SqliteMemory,
    /// A new PostgreSQL database per scenario, created through this server URL and dropped afterwards.
    Postgres(String),
}

/// Runs one scenario file.
pub async fn run_file(path: &Path, base: &Config, db: &FreshDatabase) -> Result<ScenarioResult> {
    let scenario = Scenario::load(path)?;
    let file = path.display().to_string();
    let config = base
        .apply_overrides(&scenario.config)
        .with_context(|| format!("{file}: key `config`"))?;
    let (url, cleanup) = fresh_database(db).await?;
    let result = run(&scenario, config, &url).await;
    if let Some(cleanup) = cleanup {
        cleanup.await;
    }
    let (mismatches, outcomes) =
        result.with_context(|| format!("{file}: scenario `{}`", scenario.name))?;
    Ok(ScenarioResult {
        file,
        name: scenario.name.clone(),
        passed: mismatches.is_empty(),
        mismatches,
        outcomes,
    })
}

type Cleanup = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

async fn fresh_database(db: &FreshDatabase) -> Result<(String, Option<Cleanup>)> {
    match db {
        FreshDatabase::SqliteMemory => Ok(("sqlite::memory:".to_owned(), None)),
        FreshDatabase::Postgres(server) => {
            use sqlx::Executor;
            let name = format!("sdu_scenario_{}", uuid::Uuid::new_v4().simple());
            let admin = sqlx::PgPool::connect(server)
                .await
                .context("cannot connect to PostgreSQL")?;
            admin
                .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await?;
            let url = replace_database(server, &name);
            let cleanup: Cleanup = Box::pin(async move {
                let _ = admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .await;
            });
            Ok((url, Some(cleanup)))
        }
    }
}

/// The same server URL with another database name.
pub fn replace_database(url: &str, name: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let scheme_end = head.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match head[scheme_end..].find('/') {
        Some(slash) => &head[..scheme_end + slash],
        None => head,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

fn utc(t: DateTime<chrono::FixedOffset>) -> DateTime<Utc> {
    t.with_timezone(&Utc)
}

/// The first tick boundary at or after `t`.
fn ceil_to_tick(t: DateTime<Utc>, tick: Duration) -> DateTime<Utc> {
    let step = tick.as_millis().max(1) as i64;
    let v = ms(t);
    let up = v.div_euclid(step) * step + if v.rem_euclid(step) == 0 { 0 } else { step };
    crate::store::from_ms(up)
}

async fn run(
    scenario: &Scenario,
    config: Config,
    db_url: &str,
) -> Result<(Vec<String>, BTreeMap<String, i64>)> {
    let start = utc(scenario.start);
    let until = utc(scenario.run_until);
    let mock = Mock::from_registries(&scenario.registries, 0x5d0);
    mock.set_now(start);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = mock.spawn(listener).await?;
    let mut config = config;
    config.base_url = format!("http://{addr}");
    config.concurrency = 1;
    // Retries happen in simulated time (the case back-off), not by sleeping inside one tick.
    let systems = Systems::http(&config, |s| {
        s.retry = adapters::http::RetryPolicy::no_retries()
    })?;
    let store = Store::open(db_url).await?;
    let clock = ManualClock::new(start);
    let engine = Engine::new(store, systems, Arc::new(clock.clone()), config.clone())?;
    let tick = config.tick;

    let mut events: Vec<(DateTime<Utc>, usize)> = scenario
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| (utc(e.at), i))
        .collect();
    events.sort();
    let mut next_event = 0;
    let mut fault_ends: Vec<(DateTime<Utc>, SystemName)> = Vec::new();

    // The daemon starts at `start`: a fresh database records it as the baseline of the nightly schedule.
    engine.nightly_if_due().await?;
    let mut now = start;
    loop {
        clock.set(now);
        mock.set_now(now);
        fault_ends.sort();
        for (_, system) in fault_ends.iter().filter(|(end, _)| *end <= now) {
            mock.clear_fault(*system);
        }
        fault_ends.retain(|(end, _)| *end > now);
        while next_event < events.len() && events[next_event].0 <= now {
            let event = &scenario.events[events[next_event].1];
            apply_event(&mock, &engine.store, event, &mut fault_ends).await?;
            next_event += 1;
        }
        let report = engine.pass(IngestMode::Nightly).await?;
        let retry_next_tick = report.ingest_error.is_some()
            || report.replies_error.is_some()
            || engine.ingest_overdue().await?;

        if now >= until {
            break;
        }
        let mut next = until;
        if let Some((at, _)) = events.get(next_event) {
            next = next.min(*at);
        }
        if let Some((end, _)) = fault_ends.first() {
            next = next.min(*end);
        }
        if let Some(due) = engine.store.next_due().await? {
            next = next.min(ceil_to_tick(crate::store::from_ms(due), tick));
        }
        next = next.min(engine.next_ingest_after(now)?);
        if retry_next_tick {
            next = next.min(ceil_to_tick(now + chrono::Duration::milliseconds(1), tick));
        }
        now = next.max(now + chrono::Duration::milliseconds(1)).min(until);
        if now <= clock_now(&clock) {
            now = clock_now(&clock) + chrono::Duration::milliseconds(1);
        }
    }
    let mismatches = check(scenario, &engine, &mock).await?;
    let outcomes = engine.summary().await?;
    Ok((mismatches, outcomes))
}

fn clock_now(clock: &ManualClock) -> DateTime<Utc> {
    use crate::clock::Clock;
    clock.now()
}

async fn apply_event(
    mock: &Mock,
    store: &Store,
    event: &mock_registries::Event,
    fault_ends: &mut Vec<(DateTime<Utc>, SystemName)>,
) -> Result<()> {
    match event.kind().map_err(anyhow::Error::msg)? {
        EventKind::SmsReply(reply) => {
            mock.sms_reply(&raw_text(&reply.from), &reply.text);
        }
        EventKind::Fault(f) => {
            mock.set_fault(Fault {
                system: f.system,
                mode: f.mode,
                rate: f.rate,
                delay_ms: f.delay_ms,
            });
            fault_ends.push((utc(f.until), f.system));
        }
        EventKind::Rename(r) => mock.rename(&raw_text(&r.bin), &r.to, utc(event.at)),
        EventKind::Update(u) => mock
            .update(u.system, u.record.clone())
            .map_err(anyhow::Error::msg)?,
        EventKind::CorruptCase(c) => {
            let bin = raw_text(&c.bin);
            if store.corrupt_stage(&bin, c.stage.as_deref()).await? == 0 {
                anyhow::bail!("corrupt_case: {bin} has no open case to damage");
            }
        }
    }
    Ok(())
}

/// An identifier as the fixture wrote it, as text.
fn raw_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn check(scenario: &Scenario, engine: &Engine, mock: &Mock) -> Result<Vec<String>> {
    let expect = &scenario.expect;
    let mut out = Vec::new();
    let sent = mock.sent_sms();
    let state = mock.state();
    if let Some(cases) = &expect.cases {
        let mut by_bin: BTreeMap<&str, Vec<_>> = BTreeMap::new();
        for c in cases {
            by_bin.entry(c.bin.as_str()).or_default().push(c);
        }
        for (bin, expected) in by_bin {
            let actual = engine.store.cases_of(bin).await?;
            if actual.len() != expected.len() {
                out.push(format!(
                    "cases of {bin}: expected {} case(s), got {}",
                    expected.len(),
                    actual.len()
                ));
            }
            for (i, (want, got)) in expected.iter().zip(actual.iter()).enumerate() {
                let at = format!("case {} of {bin}", i + 1);
                if got.status != want.outcome {
                    let got_detail = got
                        .stage
                        .as_deref()
                        .or(got.reason.as_deref())
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default();
                    out.push(format!(
                        "{at}: outcome expected {}, got {}{got_detail}",
                        want.outcome, got.status
                    ));
                }
                if let Some(reason) = &want.reason
                    && got.reason.as_deref() != Some(reason.as_str())
                {
                    out.push(format!(
                        "{at}: reason expected {reason}, got {}",
                        got.reason.as_deref().unwrap_or("none")
                    ));
                }
                if let Some(stage) = &want.stage
                    && got.stage.as_deref() != Some(stage.as_str())
                {
                    out.push(format!(
                        "{at}: stage expected {stage}, got {}",
                        got.stage.as_deref().unwrap_or("none")
                    ));
                }
                if let Some(attempt) = want.attempt
                    && got.attempt != i64::from(attempt)
                {
                    out.push(format!(
                        "{at}: attempt expected {attempt}, got {}",
                        got.attempt
                    ));
                }
                if let Some(n) = want.sms_sent {
                    let prefix = format!("{}:sms:", got.case_key);
                    let count = sent
                        .iter()
                        .filter(|s| s.idempotency_key.starts_with(&prefix))
                        .count() as u64;
                    if count != n {
                        out.push(format!("{at}: sms_sent expected {n}, got {count}"));
                    }
                }
            }
        }
    }
    if let Some(n) = expect.sms_total
        && sent.len() as u64 != n
    {
        out.push(format!("sms_total: expected {n}, got {}", sent.len()));
    }
    if let Some(part) = &expect.sms_text_contains {
        let others = sent
            .iter()
            .filter(|s| !s.text.contains(part.as_str()))
            .count();
        if others > 0 {
            out.push(format!(
                "sms_text_contains: {others} SMS of {} do not contain {part:?}",
                sent.len()
            ));
        }
    }
    if let Some(per_phone) = &expect.sms_to {
        for (phone, n) in per_phone {
            let want = Msisdn::parse(phone)
                .map(|m| m.to_string())
                .unwrap_or_else(|_| phone.clone());
            let count = sent.iter().filter(|s| s.to == want).count() as u64;
            if count != *n {
                // Masked like every number the product prints; the last four digits tell them apart.
                let shown = Msisdn::parse(phone)
                    .map(|m| m.masked())
                    .unwrap_or_else(|_| adapters::ids::mask_raw(phone));
                out.push(format!("sms_to {shown}: expected {n}, got {count}"));
            }
        }
    }
    if let Some(permits) = &expect.permits {
        for want in permits {
            match state.permits.iter().find(|p| p.permit_id == want.permit_id) {
                None => out.push(format!("permit {}: not in e-license", want.permit_id)),
                Some(p) if p.holder_name != want.holder_name => out.push(format!(
                    "permit {}: holder_name expected «{}», got «{}»",
                    want.permit_id, want.holder_name, p.holder_name
                )),
                Some(_) => {}
            }
        }
    }
    if let Some(n) = expect.sdu_records
        && state.sdu_records.len() as u64 != n
    {
        out.push(format!(
            "sdu_records: expected {n}, got {}",
            state.sdu_records.len()
        ));
    }
    if let Some(n) = expect.consents
        && state.consents.len() as u64 != n
    {
        out.push(format!(
            "consents: expected {n}, got {}",
            state.consents.len()
        ));
    }
    if let Some(n) = expect.open_cases {
        let open: i64 = engine
            .store
            .summary()
            .await?
            .iter()
            .filter(|r| r.status == "open")
            .map(|r| r.count)
            .sum();
        if open as u64 != n {
            out.push(format!("open_cases: expected {n}, got {open}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_is_replaced_in_a_server_url() {
        assert_eq!(
            replace_database("postgres://127.0.0.1:5432/test", "x"),
            "postgres://127.0.0.1:5432/x"
        );
        assert_eq!(
            replace_database("postgres://u@h/test?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(
            replace_database("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
    }

    #[test]
    fn times_round_up_to_the_next_tick() {
        let t = DateTime::parse_from_rfc3339("2026-11-02T09:00:30Z")
            .unwrap()
            .with_timezone(&Utc);
        let up = ceil_to_tick(t, Duration::from_secs(60));
        assert_eq!(up.to_rfc3339(), "2026-11-02T09:01:00+00:00");
        assert_eq!(ceil_to_tick(up, Duration::from_secs(60)), up);
    }
}
