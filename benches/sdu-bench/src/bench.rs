//! `sdu-bench`: the whole process for N synthetic organisations, measured (docs/BENCHMARKS.md).
//!
//! The benchmark starts `mock-registries --synthetic N --seed S` as a separate process (the binary next to
//! this one, or `--mock-bin`), opens a fresh database (a temporary SQLite file unless `--database` names
//! one; for `postgres://…` a new database on that server, dropped afterwards), and drives the real engine
//! in-process on simulated time: the engine's [`ManualClock`] and the mock's `POST /_control/clock` move
//! together. The timeline, in Asia/Almaty time (the synthetic renames fall in the 24 hours before
//! 2026-11-02 00:00):
//!
//! | phase | instant | what happens |
//! |---|---|---|
//! | `ingest` | day 1, 02:00 | the nightly ingest reads the whole rename feed |
//! | `checks` | day 1, 02:00 | every case is checked; the ones to offer wait for the SMS window |
//! | `offers` | day 1, 09:00 | the first SMS of every queued case |
//! | `replies→reissue` | day 1, 09:30 | replies posted through `POST /_control/sms/reply`, read, matched; consent, re-issue, SDU; offers of heads freed meanwhile, and their replies |
//! | `reminders` | day 4 | every instant at which something is due, until six days after the offers |
//! | `expiry` | day 7 on | expiries, and the later offers of heads shared by several organisations, until no case is open |
//!
//! Each head answers deterministically by the case key: "1" for 75 %, "2" for 10 %, silence for 15 %.
//!
//! It prints cases/s, upstream calls/s, p50/p99 latency per external system (from the adapters'
//! [`CallStats`]), the orchestrator's peak RSS (`VmHWM`), the wall time of each phase, the highest request
//! rate each system saw in any one-second window (sampled on the mock's `/_control/calls` every 100 ms),
//! and the mock's raw capacity on one endpoint (`wrk` if installed, else an in-process client loop), with
//! the orchestrator's calls/s as a fraction of it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adapters::http::{
    CallStats, HttpCivilRegistry, HttpConsentService, HttpELicense, HttpIndividuals,
    HttpLegalEntities, HttpMobileBase, HttpSdu, HttpSmsGateway,
};
use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::clock;
use sdu::clock::ManualClock;
use sdu::config::{Config, SYSTEMS};
use sdu::engine::{Engine, Systems};
use sdu::store::{Store, from_ms, ms};

/// Options of `sdu-bench` (besides `--database` and `--config`).
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Organisations in the synthetic world.
    #[arg(long, default_value_t = 10_000)]
    pub n: u64,
    /// Seed of the synthetic world.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Inject a `slow` fault of this many milliseconds on every system.
    #[arg(long, value_name = "MS")]
    pub latency_ms: Option<u64>,
    /// Requests per second allowed to each system (its `rate_limit` setting).
    #[arg(long, value_name = "PER_SEC")]
    pub rate_limit: Option<u32>,
    /// Cases advanced at once (the `concurrency` setting).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// The `mock-registries` binary (default: the one next to this binary).
    #[arg(long, value_name = "FILE")]
    pub mock_bin: Option<PathBuf>,
    /// How long the mock's raw capacity is measured, in seconds (0 skips it).
    #[arg(long, default_value_t = 5)]
    pub capacity_secs: u64,
    /// Keep the SQLite file (or PostgreSQL database) afterwards.
    #[arg(long)]
    pub keep_db: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Wall time and work of one phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    /// Phase name.
    pub name: &'static str,
    /// Wall time, seconds.
    pub wall_s: f64,
    /// Case steps recorded.
    pub steps: u64,
    /// Upstream calls made.
    pub calls: u64,
    /// Replies posted to the mock.
    pub replies_posted: u64,
    /// Of `wall_s`, the time the benchmark itself spent posting replies to the mock (not the orchestrator's
    /// work: the orchestrator waits meanwhile).
    pub posting_s: f64,
    /// Calls per system.
    pub per_system: BTreeMap<String, u64>,
    /// The median, over the one-second windows inside this phase, of its busiest system's request rate as
    /// the mock counted it: the rate the system was held at while it was the bottleneck (the ramp at either
    /// end of the phase moves a median little).
    pub busiest_median_1s_rate: Option<f64>,
    /// CPU seconds of the orchestrator's main thread in this phase: the engine, the HTTP clients, the
    /// committer's side of every statement.
    pub main_cpu_s: f64,
    /// CPU seconds of SQLite's connection threads in this phase (0 on PostgreSQL, whose server does that work
    /// in its own processes).
    pub sqlite_cpu_s: f64,
    /// When the phase began and ended.
    #[serde(skip)]
    span: Option<(Instant, Instant)>,
}

impl PhaseReport {
    /// The orchestrator's share of the phase: its wall time less the time spent posting replies.
    pub fn orchestrator_s(&self) -> f64 {
        self.wall_s - self.posting_s
    }

    /// The system called most in this phase, and its calls per second of the orchestrator's time.
    pub fn busiest(&self) -> Option<(&str, f64)> {
        self.per_system
            .iter()
            .max_by_key(|(_, n)| **n)
            .filter(|(_, n)| **n > 0 && self.orchestrator_s() > 0.0)
            .map(|(s, n)| (s.as_str(), *n as f64 / self.orchestrator_s()))
    }

    fn add(&mut self, other: &PhaseReport) {
        self.wall_s += other.wall_s;
        self.steps += other.steps;
        self.calls += other.calls;
        self.replies_posted += other.replies_posted;
        self.posting_s += other.posting_s;
        self.main_cpu_s += other.main_cpu_s;
        self.sqlite_cpu_s += other.sqlite_cpu_s;
        for (system, n) in &other.per_system {
            *self.per_system.entry(system.clone()).or_default() += n;
        }
    }
}

/// Figures of one external system.
#[derive(Debug, Clone, Serialize)]
pub struct SystemReport {
    /// Calls (all attempts of one trait call count once).
    pub calls: u64,
    /// HTTP attempts.
    pub attempts: u64,
    /// Calls that ended in an error.
    pub errors: u64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// The most requests that arrived at the mock within any one second, counted exactly by the mock over
    /// its arrival instants (`GET /_control/calls/peaks`).
    pub max_1s_requests: u64,
    /// Highest rate over the windows of at least one second between two samples of the mock's counters: an
    /// estimate of `max_1s_requests`, off by the sampler's timing (a sample's instant is the middle of its
    /// request, which a busy event loop can delay).
    pub max_1s_rate: f64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Organisations.
    pub n: u64,
    /// Seed.
    pub seed: u64,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// Engine concurrency.
    pub concurrency: usize,
    /// Injected latency.
    pub latency_ms: Option<u64>,
    /// Per-system rate limit.
    pub rate_limit: Option<u32>,
    /// Cases in the store at the end.
    pub cases: i64,
    /// Cases per second of the orchestrator's time.
    pub cases_per_s: f64,
    /// Upstream calls, all systems.
    pub upstream_calls: u64,
    /// Upstream calls per second of the orchestrator's time.
    pub calls_per_s: f64,
    /// Wall time of the run, phases summed, seconds.
    pub wall_s: f64,
    /// Of that, the orchestrator's time: less the time the benchmark spent posting replies.
    pub orchestrator_s: f64,
    /// CPU time (user + system) of the orchestrator over the run, seconds.
    pub cpu_s: f64,
    /// Of `cpu_s`, the system time (the kernel's work for the orchestrator: loopback TCP, futex wake-ups,
    /// file writes), seconds.
    pub cpu_sys_s: f64,
    /// `cpu_s` per case, milliseconds.
    pub cpu_per_case_ms: f64,
    /// `cpu_s` per upstream call, microseconds.
    pub cpu_per_call_us: f64,
    /// `cpu_sys_s / cpu_s`.
    pub sys_share: f64,
    /// CPU time of the mock process over the run, seconds.
    pub mock_cpu_s: Option<f64>,
    /// Phases in order.
    pub phases: Vec<PhaseReport>,
    /// Per system.
    pub systems: BTreeMap<String, SystemReport>,
    /// Peak resident memory of this process (the orchestrator), MiB.
    pub peak_rss_mib: f64,
    /// Peak resident memory of the mock process, MiB.
    pub mock_peak_rss_mib: Option<f64>,
    /// The mock's raw capacity on one endpoint: requests/s and how it was measured.
    pub capacity: Option<(f64, String)>,
    /// `calls_per_s / capacity`.
    pub fraction_of_capacity: Option<f64>,
    /// Outcome counts at the end.
    pub outcomes: BTreeMap<String, i64>,
}

/// Runs the benchmark. `database` is the `--database` given, if any; `config` the loaded settings.
pub async fn run(
    args: &BenchArgs,
    database: Option<&str>,
    mut config: Config,
) -> Result<BenchReport> {
    let epoch = mock_registries::synthetic_epoch();
    let t_ingest = epoch + chrono::Duration::hours(2);
    let t_offers = epoch + chrono::Duration::hours(9);
    let t_replies = t_offers + chrono::Duration::minutes(30);
    let t_expiry = t_offers + chrono::Duration::hours(144);

    let mock = MockProcess::start(&mock_bin(args)?, args.n, args.seed, t_ingest).await?;
    let control = Control::new(&mock.base);
    if let Some(delay) = args.latency_ms {
        for system in SYSTEMS {
            control.slow(system, delay).await?;
        }
    }
    config.base_url = mock.base.clone();
    if let Some(c) = args.concurrency {
        config.concurrency = c.max(1);
    }
    if let Some(rate) = args.rate_limit {
        for section in [
            &mut config.legal_entities,
            &mut config.e_license,
            &mut config.individuals,
            &mut config.civil_registry,
            &mut config.mobile_base,
            &mut config.sms,
            &mut config.consent,
            &mut config.sdu,
        ] {
            section.rate_limit = Some(rate);
        }
    }
    // Listening before the database exists: a run stopped by Ctrl-C or SIGTERM still drops it below
    // (a PostgreSQL database would otherwise stay on the server).
    let stop = sdu::daemon::Signals::listen()?;
    let db = FreshDb::create(database).await?;
    config.database_url = db.url.clone();
    let mock_cpu_before = cpu_seconds(&mock.pid());
    let measured = tokio::select! {
        measured = measure(
            args,
            &config,
            &control,
            [t_ingest, t_offers, t_replies, t_expiry],
        ) => measured,
        () = stop.recv() => Err(anyhow::anyhow!("interrupted; the benchmark stopped")),
    };
    let mock_cpu_after = cpu_seconds(&mock.pid());
    let dropped = db.drop_unless(args.keep_db).await;
    let mut report = measured?;
    dropped?;
    report.mock_peak_rss_mib = mock.peak_rss_kib().map(|k| k as f64 / 1024.0);
    report.mock_cpu_s = mock_cpu_before.zip(mock_cpu_after).map(|(a, b)| b - a);
    if args.capacity_secs > 0 {
        control.clear_faults().await?;
        let capacity = measure_capacity(&control, Duration::from_secs(args.capacity_secs)).await?;
        report.fraction_of_capacity = Some(report.calls_per_s / capacity.0);
        report.capacity = Some(capacity);
    }
    mock.stop().await;
    Ok(report)
}

/// The run itself, from the ingest to the last outcome.
async fn measure(
    args: &BenchArgs,
    config: &Config,
    control: &Control,
    [t_ingest, t_offers, t_replies, t_expiry]: [DateTime<Utc>; 4],
) -> Result<BenchReport> {
    let stats: BTreeMap<&'static str, Arc<CallStats>> = SYSTEMS
        .iter()
        .map(|s| (*s, Arc::new(CallStats::new())))
        .collect();
    let systems = systems_with_stats(config, &stats)?;
    let store = Store::open(&config.database_url).await?;
    let clock = ManualClock::new(t_ingest);
    let engine = Engine::new(store, systems, Arc::new(clock.clone()), config.clone())?;
    let mut driver = Driver {
        engine: &engine,
        clock: &clock,
        control,
        reply_mark: 0,
        posting: Duration::ZERO,
    };
    let mut sampler = Sampler::start(control.clone())?;
    let cpu_before = cpu_times("self");
    let started = clock::now();
    let mut phases = Vec::new();

    let meter = Meter::start(&stats);
    engine.ingest().await?;
    phases.push(meter.finish("ingest", 0, 0, Duration::ZERO));

    let meter = Meter::start(&stats);
    let steps = engine.drain().await?;
    phases.push(meter.finish("checks", steps, 0, Duration::ZERO));

    driver.set_time(t_offers).await?;
    let meter = Meter::start(&stats);
    let steps = engine.drain().await?;
    phases.push(meter.finish("offers", steps, 0, Duration::ZERO));

    driver.set_time(t_replies).await?;
    let meter = Meter::start(&stats);
    let posting = driver.posting;
    let (steps, replies) = driver.answer_and_tick().await?;
    phases.push(meter.finish("replies→reissue", steps, replies, driver.posting - posting));

    // From here the clock jumps to each instant at which a case is due, rounded up to the minute.
    let mut reminders = PhaseReport::empty("reminders");
    let mut expiry = PhaseReport::empty("expiry");
    let mut now = t_replies;
    let limit = t_ingest + chrono::Duration::days(60);
    while let Some(due) = engine.store.next_due().await? {
        let next = ceil_minute(from_ms(due)).max(now + chrono::Duration::minutes(1));
        if next > limit {
            tracing::warn!("cases still due after 60 simulated days; the benchmark stops there");
            break;
        }
        now = next;
        driver.set_time(now).await?;
        let meter = Meter::start(&stats);
        let posting = driver.posting;
        let mut steps = driver.tick().await?;
        let (more, replies) = driver.answer_and_tick().await?;
        steps += more;
        let part = meter.finish("", steps, replies, driver.posting - posting);
        if now < t_expiry {
            reminders.add(&part);
        } else {
            expiry.add(&part);
        }
    }
    phases.push(reminders);
    phases.push(expiry);
    let wall_s = started.elapsed().as_secs_f64();
    let (cpu_s, cpu_sys_s) = cpu_times("self")
        .zip(cpu_before)
        .map_or((0.0, 0.0), |(after, before)| {
            (after.0 + after.1 - before.0 - before.1, after.1 - before.1)
        });
    let orchestrator_s = wall_s - driver.posting.as_secs_f64();
    let origin = sampler.origin;
    sampler.stop().await?;
    // Read before the samples are loaded back: the peak of the run, not of the analysis after it.
    let peak_rss_mib = peak_rss_kib("self").map_or(0.0, |k| k as f64 / 1024.0);
    let samples = sampler.read()?;
    for phase in &mut phases {
        let (Some((from, to)), Some((system, _))) = (phase.span, phase.busiest()) else {
            continue;
        };
        let system = system.to_owned();
        let from = from.duration_since(origin).as_secs_f64();
        let to = to.duration_since(origin).as_secs_f64();
        phase.busiest_median_1s_rate = median_one_second_rate(&samples, &system, from, to);
    }

    let outcomes = engine.summary().await?;
    let cases: i64 = outcomes.values().sum();
    // The exact peaks, counted by the mock over its arrivals; the samples' windows only estimate them.
    let peaks = control.peaks().await?;
    let max_rates = max_one_second_rates(&samples);
    let systems: BTreeMap<String, SystemReport> = stats
        .iter()
        .map(|(name, s)| {
            let s = s.snapshot();
            let report = SystemReport {
                calls: s.calls,
                attempts: s.attempts,
                errors: s.errors,
                p50_ms: s.p50.as_secs_f64() * 1000.0,
                p99_ms: s.p99.as_secs_f64() * 1000.0,
                max_1s_requests: peaks.get(*name).copied().unwrap_or(0),
                max_1s_rate: max_rates.get(*name).copied().unwrap_or(0.0),
            };
            ((*name).to_owned(), report)
        })
        .collect();
    let upstream_calls: u64 = systems.values().map(|s| s.calls).sum();
    Ok(BenchReport {
        n: args.n,
        seed: args.seed,
        backend: match engine.store.backend() {
            sdu::store::Backend::Sqlite => "sqlite",
            sdu::store::Backend::Postgres => "postgres",
        },
        concurrency: config.concurrency,
        latency_ms: args.latency_ms,
        rate_limit: args.rate_limit,
        cases,
        cases_per_s: cases as f64 / orchestrator_s,
        upstream_calls,
        calls_per_s: upstream_calls as f64 / orchestrator_s,
        wall_s,
        orchestrator_s,
        cpu_s,
        cpu_sys_s,
        cpu_per_case_ms: if cases > 0 {
            cpu_s * 1000.0 / cases as f64
        } else {
            0.0
        },
        cpu_per_call_us: if upstream_calls > 0 {
            cpu_s * 1e6 / upstream_calls as f64
        } else {
            0.0
        },
        sys_share: if cpu_s > 0.0 { cpu_sys_s / cpu_s } else { 0.0 },
        mock_cpu_s: None,
        phases,
        systems,
        peak_rss_mib,
        mock_peak_rss_mib: None,
        capacity: None,
        fraction_of_capacity: None,
        outcomes,
    })
}

/// HTTP clients of every system, each recording into its own statistics.
fn systems_with_stats(
    config: &Config,
    stats: &BTreeMap<&'static str, Arc<CallStats>>,
) -> Result<Systems> {
    let s = |name: &str| {
        let mut settings = config.http_settings(name);
        settings.stats = stats.get(name).cloned();
        settings
    };
    Ok(Systems {
        legal_entities: Arc::new(HttpLegalEntities::new(s("legal_entities"))?),
        e_license: Arc::new(HttpELicense::new(s("e_license"))?),
        individuals: Arc::new(HttpIndividuals::new(s("individuals"))?),
        civil_registry: Arc::new(HttpCivilRegistry::new(s("civil_registry"))?),
        mobile_base: Arc::new(HttpMobileBase::new(s("mobile_base"))?),
        sms: Arc::new(HttpSmsGateway::new(s("sms"))?),
        consent: Arc::new(HttpConsentService::new(s("consent"))?),
        sdu: Arc::new(HttpSdu::new(s("sdu"))?),
    })
}

/// Counts calls per system from the start of a phase.
struct Meter {
    stats: BTreeMap<&'static str, (Arc<CallStats>, u64)>,
    started: Instant,
    cpu: ThreadCpu,
}

/// CPU seconds so far of this process's main thread and of SQLite's connection threads.
#[derive(Debug, Clone, Copy, Default)]
struct ThreadCpu {
    main: f64,
    sqlite: f64,
}

impl ThreadCpu {
    /// Reads `/proc/self/task`: the main thread has the process's id; sqlx names its SQLite threads
    /// `sqlx-sqlite-worker-N` (the kernel keeps 15 characters of a name).
    fn now() -> Self {
        let mut cpu = Self::default();
        let pid = std::process::id().to_string();
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return cpu;
        };
        for task in tasks.flatten() {
            let tid = task.file_name().to_string_lossy().into_owned();
            let Some(seconds) = cpu_seconds(&format!("self/task/{tid}")) else {
                continue;
            };
            if tid == pid {
                cpu.main += seconds;
            } else if std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.starts_with("sqlx-sqlite"))
            {
                cpu.sqlite += seconds;
            }
        }
        cpu
    }
}

impl Meter {
    fn start(stats: &BTreeMap<&'static str, Arc<CallStats>>) -> Self {
        Self {
            stats: stats
                .iter()
                .map(|(k, v)| (*k, (Arc::clone(v), v.calls())))
                .collect(),
            started: clock::now(),
            cpu: ThreadCpu::now(),
        }
    }

    fn finish(
        self,
        name: &'static str,
        steps: u64,
        replies_posted: u64,
        posting: Duration,
    ) -> PhaseReport {
        let cpu = ThreadCpu::now();
        let per_system: BTreeMap<String, u64> = self
            .stats
            .iter()
            .map(|(k, (s, before))| ((*k).to_owned(), s.calls() - before))
            .collect();
        PhaseReport {
            name,
            wall_s: self.started.elapsed().as_secs_f64(),
            steps,
            calls: per_system.values().sum(),
            replies_posted,
            posting_s: posting.as_secs_f64(),
            per_system,
            busiest_median_1s_rate: None,
            main_cpu_s: cpu.main - self.cpu.main,
            sqlite_cpu_s: cpu.sqlite - self.cpu.sqlite,
            span: Some((self.started, clock::now())),
        }
    }
}

impl PhaseReport {
    fn empty(name: &'static str) -> Self {
        Self {
            name,
            wall_s: 0.0,
            steps: 0,
            calls: 0,
            replies_posted: 0,
            posting_s: 0.0,
            per_system: BTreeMap::new(),
            busiest_median_1s_rate: None,
            main_cpu_s: 0.0,
            sqlite_cpu_s: 0.0,
            span: None,
        }
    }
}

/// Moves simulated time and plays the heads' part.
struct Driver<'a> {
    engine: &'a Engine,
    clock: &'a ManualClock,
    control: &'a Control,
    /// Highest outbox id already looked at for a reply.
    reply_mark: i64,
    /// Time spent posting replies to the mock, all told.
    posting: Duration,
}

impl Driver<'_> {
    async fn set_time(&self, t: DateTime<Utc>) -> Result<()> {
        self.clock.set(t);
        self.control.set_clock(t).await
    }

    /// What the daemon does at a tick: read replies, match them, drive every due case. Returns the steps.
    async fn tick(&self) -> Result<u64> {
        self.engine.poll_replies().await?;
        let _ = self.engine.handle_replies().await?;
        self.engine.drain().await
    }

    /// Posts the answers to every first SMS sent since the last call, then ticks; again while new first SMS
    /// went out meanwhile (a head freed by an answer gets the offer of the next organisation). Returns the
    /// steps recorded and the replies posted.
    async fn answer_and_tick(&mut self) -> Result<(u64, u64)> {
        let (mut steps, mut posted) = (0, 0);
        loop {
            let n = self.post_replies().await?;
            if n == 0 {
                return Ok((steps, posted));
            }
            posted += n;
            steps += self.tick().await?;
        }
    }

    async fn post_replies(&mut self) -> Result<u64> {
        let mut posted = 0;
        loop {
            let page = first_sms_after(&self.engine.store, self.reply_mark, 1000).await?;
            let Some((last, _, _)) = page.last() else {
                return Ok(posted);
            };
            self.reply_mark = *last;
            let replies: Vec<(String, &'static str)> = page
                .into_iter()
                .filter(|(_, key, _)| key.ends_with(":sms:1"))
                .filter_map(|(_, key, phone)| Some((phone?, answer_of(&key)?)))
                .collect();
            posted += replies.len() as u64;
            let control = self.control;
            let started = clock::now();
            let results: Vec<Result<()>> = futures::stream::iter(replies)
                .map(|(from, text)| async move { control.reply(&from, text).await })
                .buffer_unordered(16)
                .collect()
                .await;
            self.posting += started.elapsed();
            results.into_iter().collect::<Result<()>>()?;
        }
    }
}

/// The head's answer to the offer of the case with this idempotency key: "1" for 75 %, "2" for 10 %,
/// none for 15 %, by a hash of the case key (FNV-1a), so every run answers alike.
fn answer_of(key: &str) -> Option<&'static str> {
    let case_key = key.rsplit_once(":sms:").map_or(key, |(k, _)| k);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in case_key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    match h % 20 {
        0..15 => Some("1"),
        15..17 => Some("2"),
        _ => None,
    }
}

/// SMS recorded in the outbox after `after`: (outbox id, idempotency key, the case's phone).
async fn first_sms_after(
    store: &Store,
    after: i64,
    limit: i64,
) -> Result<Vec<(i64, String, Option<String>)>> {
    const SQL: &str = "SELECT o.id, o.idempotency_key, c.phone FROM outbox o JOIN cases c ON c.id = o.case_id \
                       WHERE o.kind = 'sms' AND o.id > $1 ORDER BY o.id LIMIT $2";
    Ok(match store {
        Store::Sqlite(p) => {
            sqlx::query_as(SQL)
                .bind(after)
                .bind(limit)
                .fetch_all(p)
                .await?
        }
        Store::Postgres(p) => {
            sqlx::query_as(SQL)
                .bind(after)
                .bind(limit)
                .fetch_all(p)
                .await?
        }
    })
}

fn ceil_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    let v = ms(t);
    from_ms(v.div_euclid(60_000) * 60_000 + if v.rem_euclid(60_000) == 0 { 0 } else { 60_000 })
}

/// User and system CPU time of a process (`self` or a pid) so far, in seconds.
fn cpu_seconds(pid: &str) -> Option<f64> {
    cpu_times(pid).map(|(user, system)| user + system)
}

/// User and system CPU time of a process (`self` or a pid) so far, apart, in seconds.
fn cpu_times(pid: &str) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces) start with the state, field 3; utime and
    // stime are fields 14 and 15, in clock ticks of 1/100 s.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let user = fields.get(11)?.parse::<u64>().ok()?;
    let system = fields.get(12)?.parse::<u64>().ok()?;
    Some((user as f64 / 100.0, system as f64 / 100.0))
}

/// `VmHWM` of a process (`self` or a pid) in KiB.
fn peak_rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn mock_bin(args: &BenchArgs) -> Result<PathBuf> {
    if let Some(path) = &args.mock_bin {
        return Ok(path.clone());
    }
    let exe = std::env::current_exe().context("cannot find this binary's path")?;
    let path = exe.with_file_name("mock-registries");
    if !path.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p mock-registries) or pass --mock-bin",
            path.display()
        );
    }
    Ok(path)
}

/// `mock-registries` running as a child process.
struct MockProcess {
    child: tokio::process::Child,
    base: String,
}

impl MockProcess {
    async fn start(bin: &Path, n: u64, seed: u64, now: DateTime<Utc>) -> Result<Self> {
        let mut child = tokio::process::Command::new(bin)
            .args(["--synthetic", &n.to_string(), "--seed", &seed.to_string()])
            .args(["--listen", "127.0.0.1:0", "--now", &now.to_rfc3339()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stdout = child.stdout.take().context("mock-registries stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("mock-registries did not say where it listens within 30 s")??
            .context("mock-registries exited before listening")?;
        let base = line
            .strip_prefix("listening on ")
            .with_context(|| format!("unexpected first line from mock-registries: {line}"))?
            .trim()
            .to_owned();
        Ok(Self { child, base })
    }

    fn pid(&self) -> String {
        self.child.id().map(|p| p.to_string()).unwrap_or_default()
    }

    fn peak_rss_kib(&self) -> Option<u64> {
        peak_rss_kib(&self.pid())
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The mock's control endpoints.
#[derive(Clone)]
struct Control {
    http: reqwest::Client,
    base: String,
}

impl Control {
    fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<serde_json::Value> {
        let response = request
            .send()
            .await
            .with_context(|| format!("mock control: {what}"))?;
        let status = response.status();
        let body: serde_json::Value = response
            .json()
            .await
            .with_context(|| format!("mock control: {what}: body"))?;
        if !status.is_success() {
            bail!("mock control: {what}: status {status}: {body}");
        }
        Ok(body)
    }

    async fn set_clock(&self, now: DateTime<Utc>) -> Result<()> {
        let url = format!("{}/_control/clock", self.base);
        self.send(self.http.post(url).json(&json!({ "now": now })), "clock")
            .await
            .map(drop)
    }

    async fn slow(&self, system: &str, delay_ms: u64) -> Result<()> {
        let url = format!("{}/_control/faults", self.base);
        let fault = json!({"system": system, "mode": "slow", "rate": 1.0, "delay_ms": delay_ms});
        self.send(self.http.post(url).json(&fault), "faults")
            .await
            .map(drop)
    }

    async fn clear_faults(&self) -> Result<()> {
        let url = format!("{}/_control/faults", self.base);
        self.send(self.http.delete(url), "faults").await.map(drop)
    }

    async fn reply(&self, from: &str, text: &str) -> Result<()> {
        let url = format!("{}/_control/sms/reply", self.base);
        self.send(
            self.http
                .post(url)
                .json(&json!({"from": from, "text": text})),
            "sms reply",
        )
        .await
        .map(drop)
    }

    async fn peaks(&self) -> Result<BTreeMap<String, u64>> {
        let url = format!("{}/_control/calls/peaks", self.base);
        Ok(serde_json::from_value(
            self.send(self.http.get(url), "call peaks").await?,
        )?)
    }

    async fn calls(&self) -> Result<BTreeMap<String, u64>> {
        let url = format!("{}/_control/calls", self.base);
        Ok(serde_json::from_value(
            self.send(self.http.get(url), "calls").await?,
        )?)
    }

    /// A BIN the synthetic world knows, for the capacity measurement.
    async fn some_bin(&self) -> Result<String> {
        let url = format!("{}/legal_entities/renames?limit=1", self.base);
        let page = self.send(self.http.get(url), "renames").await?;
        page["renames"][0]["bin"]
            .as_str()
            .map(str::to_owned)
            .context("the rename feed is empty")
    }
}

/// One reading of the mock's request counters: seconds since the sampler started, counts per system in the
/// order of [`SYSTEMS`].
type Sample = (f64, [u64; SYSTEMS.len()]);

/// The counters of one reading, in the order of [`SYSTEMS`].
fn counts_array(counts: &BTreeMap<String, u64>) -> [u64; SYSTEMS.len()] {
    SYSTEMS.map(|s| counts.get(s).copied().unwrap_or(0))
}

/// The mock's request counters, read every 100 ms while the run goes on. The readings go to a temporary
/// file, not to memory: a run of an hour takes 36,000 of them, and this process's peak RSS, one of the
/// figures measured, must not grow with the length of the run. They are read back after the run.
struct Sampler {
    /// The instant sample times count from.
    origin: Instant,
    path: PathBuf,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Bytes of one [`Sample`] in the sampler's file: the time, then each counter, little-endian.
const SAMPLE_BYTES: usize = 8 * (1 + SYSTEMS.len());

impl Sampler {
    fn start(control: Control) -> Result<Self> {
        use std::io::Write;
        let path = std::env::temp_dir().join(format!(
            "sdu-bench-samples-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        );
        let stop = tokio_util::sync::CancellationToken::new();
        let token = stop.clone();
        let origin = clock::now();
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(100));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !token.is_cancelled() {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = every.tick() => {}
                }
                let sent = origin.elapsed().as_secs_f64();
                if let Ok(counts) = control.calls().await {
                    // The counters were read somewhere between sending and receiving: take the middle.
                    let at = (sent + origin.elapsed().as_secs_f64()) / 2.0;
                    out.write_all(&at.to_le_bytes())?;
                    for count in counts_array(&counts) {
                        out.write_all(&count.to_le_bytes())?;
                    }
                }
            }
            out.flush()
        });
        Ok(Self {
            origin,
            path,
            stop,
            task,
        })
    }

    /// Stops sampling; the readings are left in the file for [`Sampler::read`].
    async fn stop(&mut self) -> Result<()> {
        self.stop.cancel();
        (&mut self.task)
            .await
            .context("the sampler panicked")?
            .context("writing the sampler's file")
    }

    /// The readings, in order; removes the file.
    fn read(self) -> Result<Vec<Sample>> {
        let bytes = std::fs::read(&self.path)
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        let _ = std::fs::remove_file(&self.path);
        let word = |chunk: &[u8], i: usize| -> [u8; 8] {
            chunk[i * 8..(i + 1) * 8].try_into().expect("8 bytes")
        };
        Ok(bytes
            .chunks_exact(SAMPLE_BYTES)
            .map(|chunk| {
                let at = f64::from_le_bytes(word(chunk, 0));
                (
                    at,
                    std::array::from_fn(|k| u64::from_le_bytes(word(chunk, k + 1))),
                )
            })
            .collect())
    }
}

/// Per system, the highest request rate over any window of at least one second between two samples.
fn max_one_second_rates(samples: &[Sample]) -> BTreeMap<String, f64> {
    let mut out: BTreeMap<String, f64> = BTreeMap::new();
    let mut j = 0;
    for i in 0..samples.len() {
        j = j.max(i);
        while j < samples.len() && samples[j].0 - samples[i].0 < 1.0 {
            j += 1;
        }
        let Some((t_end, end)) = samples.get(j) else {
            break;
        };
        let (t_start, start) = &samples[i];
        for (k, system) in SYSTEMS.iter().enumerate() {
            let delta = end[k].saturating_sub(start[k]);
            let rate = delta as f64 / (t_end - t_start);
            let best = out.entry((*system).to_owned()).or_default();
            *best = best.max(rate);
        }
    }
    out
}

/// The median of one system's request rate over the one-second windows (between two samples) that lie
/// within `[from, to]` (seconds since the sampler started); `None` when the span holds no such window.
fn median_one_second_rate(samples: &[Sample], system: &str, from: f64, to: f64) -> Option<f64> {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|(t, _)| *t >= from && *t <= to)
        .collect();
    let k = SYSTEMS.iter().position(|s| *s == system)?;
    let count = |s: &Sample| s.1[k];
    let mut rates = Vec::new();
    let mut j = 0;
    for i in 0..inside.len() {
        j = j.max(i);
        while j < inside.len() && inside[j].0 - inside[i].0 < 1.0 {
            j += 1;
        }
        let Some(end) = inside.get(j) else {
            break;
        };
        rates.push(count(end).saturating_sub(count(inside[i])) as f64 / (end.0 - inside[i].0));
    }
    rates.sort_by(f64::total_cmp);
    (!rates.is_empty()).then(|| rates[rates.len() / 2])
}

/// The mock's raw capacity on one endpoint (an organisation lookup): `wrk` with 2 threads and 64
/// connections if it is installed, else 64 concurrent in-process requests in a loop.
async fn measure_capacity(control: &Control, duration: Duration) -> Result<(f64, String)> {
    let url = format!(
        "{}/legal_entities/organizations/{}",
        control.base,
        control.some_bin().await?
    );
    let secs = duration.as_secs().max(1);
    let wrk = tokio::process::Command::new("wrk")
        .args(["-t2", "-c64", &format!("-d{secs}s"), &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .await;
    if let Ok(out) = wrk {
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(rate) = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse::<f64>().ok())
        {
            return Ok((
                rate,
                format!("wrk -t2 -c64 -d{secs}s GET /legal_entities/organizations/{{bin}}"),
            ));
        }
    }
    let client = reqwest::Client::new();
    let deadline = clock::now() + duration;
    let started = clock::now();
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let workers: Vec<_> = (0..64)
        .map(|_| {
            let (client, url, done) = (client.clone(), url.clone(), done.clone());
            tokio::spawn(async move {
                while clock::now() < deadline {
                    if let Ok(r) = client.get(&url).send().await
                        && r.bytes().await.is_ok()
                    {
                        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let rate =
        done.load(std::sync::atomic::Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    Ok((
        rate,
        "in-process reqwest loop, 64 concurrent, GET /legal_entities/organizations/{bin}".into(),
    ))
}

/// A database created for this run.
struct FreshDb {
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    SqliteFile(PathBuf),
    Postgres { admin: sqlx::PgPool, name: String },
}

impl FreshDb {
    async fn create(database: Option<&str>) -> Result<Self> {
        match database {
            Some(url) if sdu::store::Backend::of(url)? == sdu::store::Backend::Postgres => {
                use sqlx::Executor;
                let name = format!("sdu_bench_{}", uuid::Uuid::new_v4().simple());
                let admin = sqlx::PgPool::connect(url)
                    .await
                    .context("cannot connect to PostgreSQL")?;
                admin
                    .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await?;
                Ok(Self {
                    url: sdu::scenario::replace_database(url, &name),
                    cleanup: Cleanup::Postgres { admin, name },
                })
            }
            Some(url) => {
                let path = PathBuf::from(
                    url.trim_start_matches("sqlite:")
                        .trim_start_matches("//")
                        .split('?')
                        .next()
                        .unwrap_or_default(),
                );
                if path.exists() {
                    bail!(
                        "{} exists: the benchmark needs a fresh database",
                        path.display()
                    );
                }
                Ok(Self {
                    url: url.to_owned(),
                    cleanup: Cleanup::SqliteFile(path),
                })
            }
            None => {
                let path = std::env::temp_dir().join(format!(
                    "sdu-bench-{}-{}.db",
                    std::process::id(),
                    uuid::Uuid::new_v4().simple()
                ));
                Ok(Self {
                    url: format!("sqlite://{}", path.display()),
                    cleanup: Cleanup::SqliteFile(path),
                })
            }
        }
    }

    async fn drop_unless(self, keep: bool) -> Result<()> {
        if keep {
            match &self.cleanup {
                Cleanup::SqliteFile(path) => {
                    eprintln!("sdu-bench: database kept at {}", path.display())
                }
                Cleanup::Postgres { name, .. } => {
                    eprintln!("sdu-bench: PostgreSQL database {name} kept")
                }
            }
            return Ok(());
        }
        match self.cleanup {
            Cleanup::SqliteFile(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
            Cleanup::Postgres { admin, name } => {
                use sqlx::Executor;
                admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .await?;
            }
        }
        Ok(())
    }
}

impl BenchReport {
    /// The report as a table for people.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let opt = |v: Option<String>| v.unwrap_or_else(|| "none".into());
        let _ = writeln!(
            s,
            "sdu-bench: N = {}, seed {}, {}, concurrency {}, injected latency {}, rate limit {}",
            self.n,
            self.seed,
            self.backend,
            self.concurrency,
            opt(self.latency_ms.map(|l| format!("{l} ms"))),
            opt(self.rate_limit.map(|r| format!("{r}/s per system"))),
        );
        let _ = writeln!(
            s,
            "\nphase              wall s  posting s  main CPU s  sqlite CPU s     steps     calls   replies   busiest system (calls/s; median 1-s rate)"
        );
        for p in &self.phases {
            let busiest = p
                .busiest()
                .map(|(name, rate)| match p.busiest_median_1s_rate {
                    Some(median) => format!("{name} ({rate:.1}; {median:.1})"),
                    None => format!("{name} ({rate:.1})"),
                })
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "{:<16} {:>8.2} {:>10.2} {:>11.2} {:>13.2} {:>9} {:>9} {:>9}   {busiest}",
                p.name,
                p.wall_s,
                p.posting_s,
                p.main_cpu_s,
                p.sqlite_cpu_s,
                p.steps,
                p.calls,
                p.replies_posted
            );
        }
        let _ = writeln!(
            s,
            "{:<16} {:>8.2} {:>10.2} {:>11.2} {:>13.2}   orchestrator {:.2} s",
            "total",
            self.wall_s,
            self.wall_s - self.orchestrator_s,
            self.phases.iter().map(|p| p.main_cpu_s).sum::<f64>(),
            self.phases.iter().map(|p| p.sqlite_cpu_s).sum::<f64>(),
            self.orchestrator_s
        );
        let _ = writeln!(
            s,
            "\nsystem            calls  attempts  errors   p50 ms   p99 ms   most in 1 s (exact; sampled estimate /s)"
        );
        for (name, r) in &self.systems {
            let _ = writeln!(
                s,
                "{name:<16} {:>7} {:>9} {:>7} {:>8.2} {:>8.2}   {} ({:.1})",
                r.calls, r.attempts, r.errors, r.p50_ms, r.p99_ms, r.max_1s_requests, r.max_1s_rate
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "cases:            {} ({:.0} cases/s of orchestrator time)",
            self.cases, self.cases_per_s
        );
        let _ = writeln!(
            s,
            "upstream calls:   {} ({:.0} calls/s of orchestrator time)",
            self.upstream_calls, self.calls_per_s
        );
        let _ = writeln!(
            s,
            "CPU time:         {:.1} s (orchestrator){}",
            self.cpu_s,
            self.mock_cpu_s
                .map(|m| format!(", {m:.1} s (mock)"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            s,
            "CPU per case:     {:.3} ms; per upstream call {:.1} µs; system time {:.1} % of the CPU time",
            self.cpu_per_case_ms,
            self.cpu_per_call_us,
            self.sys_share * 100.0
        );
        let _ = writeln!(
            s,
            "peak RSS:         {:.1} MiB (orchestrator){}",
            self.peak_rss_mib,
            self.mock_peak_rss_mib
                .map(|m| format!(", {m:.1} MiB (mock)"))
                .unwrap_or_default()
        );
        if let Some(limit) = self.rate_limit {
            let highest = self
                .systems
                .values()
                .map(|r| r.max_1s_requests)
                .max()
                .unwrap_or(0);
            let held = self
                .phases
                .iter()
                .filter_map(|p| p.busiest_median_1s_rate)
                .fold(0.0, f64::max);
            let _ = writeln!(
                s,
                "rate limit:       {limit}/s per system; most requests of any system within one second, as the mock \
                 counted their arrivals: {highest} ({}); busiest system held at {held:.1}/s = {:.1} % of the limit \
                 (median 1-s rate, its busiest phase)",
                if highest <= u64::from(limit) {
                    "not above the limit"
                } else {
                    "ABOVE THE LIMIT"
                },
                held / f64::from(limit) * 100.0
            );
        }
        if let Some((rate, how)) = &self.capacity {
            let _ = writeln!(s, "mock capacity:    {rate:.0} requests/s ({how})");
        }
        if let Some(f) = self.fraction_of_capacity {
            let _ = writeln!(
                s,
                "orchestrator:     {:.1} % of the mock's capacity (its upstream calls/s against wrk's requests/s)",
                f * 100.0
            );
        }
        let _ = writeln!(s, "\noutcomes:");
        for (k, v) in &self.outcomes {
            let _ = writeln!(s, "  {k:<32} {v}");
        }
        s
    }
}
