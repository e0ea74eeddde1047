//! The `sdu` command line (docs/RULES.md §3).

/// jemalloc rather than glibc's malloc: allocation was a quarter of the engine thread's CPU (docs/BENCHMARKS.md,
/// "The allocator"). It gives freed pages back after 1 s (its build settings, `.cargo/config.toml`).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use sdu::clock::{Clock, ManualClock};
use sdu::config::{Config, LogFormat};
use sdu::engine::{Engine, Systems};
use sdu::store::Store;

/// Orchestrator of the proactive re-issue of trusted-software-register permits after a rename.
#[derive(Debug, Parser)]
#[command(name = "sdu", version, about)]
struct Cli {
    /// TOML configuration file (every key has a default).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Case store URL: sqlite://FILE (default sqlite://sdu.db) or postgres://…
    #[arg(long, global = true, value_name = "URL")]
    database: Option<String>,
    /// Testers only: act as if the clock reads this instant (RFC 3339).
    #[arg(long, global = true, value_name = "RFC3339")]
    now: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One pass now: ingest new renames, read replies, drive every case as far as it goes; print a summary.
    Run {
        /// Serve the external systems from the bundled mock registries for this run: a scenario file, or
        /// `synthetic:N`.
        #[arg(long, value_name = "FIXTURE")]
        mock: Option<String>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stay up: nightly ingest on the cron schedule, a tick for due work and replies, the operator API.
    Daemon {
        /// Serve the external systems from the bundled mock registries (as for `run`).
        #[arg(long, value_name = "FIXTURE")]
        mock: Option<String>,
    },
    /// Read-only trace for one organisation: each finding and decision, and the SMS it would send.
    DryRun {
        /// The organisation's BIN.
        #[arg(long)]
        bin: String,
        /// Print the trace as JSON.
        #[arg(long)]
        json: bool,
        /// Serve the external systems from the bundled mock registries (as for `run`).
        #[arg(long, value_name = "FIXTURE")]
        mock: Option<String>,
    },
    /// Scenario files.
    Scenario {
        #[command(subcommand)]
        command: ScenarioCommand,
    },
    /// Apply database migrations.
    Migrate,
    /// The month's outcome statistics as a published data product (docs/DATA-PRODUCT.md).
    Publish(sdu::publish::PublishArgs),
    /// A de-identified research extract (seed 000), or `list` of the grants.
    Extract(sdu::publish::extract::ExtractCommand),
    /// Integrity of the stored history.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The operators of the console (docs/CONSOLE.md).
    Operator {
        #[command(subcommand)]
        command: OperatorCommand,
    },
}

#[derive(Debug, Subcommand)]
enum OperatorCommand {
    /// Add an operator and print its new token once (only its hash is stored).
    Add {
        /// A unique name, recorded with every action the operator takes.
        name: String,
        /// `viewer` (reads) or `operator` (reads and acts).
        #[arg(long)]
        role: sdu::console::auth::Role,
    },
    /// List the operators (names, roles, when added and revoked; never tokens).
    List,
    /// Revoke an operator's token at once.
    Revoke {
        /// The operator's name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum ScenarioCommand {
    /// Run scenario files, or every *.yaml under a folder.
    Run {
        /// Files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// One JSON object per scenario, then the totals.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check every case's hash chain; report the first broken link.
    Verify,
}

/// An error of the user's input: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadInput(String);

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    // The configuration first: the log format and the key of the log tags are settings. Its errors are
    // printed as every other error is, without the subscriber.
    let config = match load_config(&cli) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("sdu: {}", one_line(&e));
            return ExitCode::from(2);
        }
    };
    init_tracing(&config);
    init_tags(&config, matches!(cli.command, Command::Daemon { .. }));
    // One thread for the engine, the HTTP clients' connections and the API: each upstream call then stays
    // on that thread instead of crossing to a worker and back (25 % less CPU in `sdu-bench`, see
    // docs/BENCHMARKS.md); SQLite runs on sqlx's own threads either way.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sdu: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli, config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sdu: {}", one_line(&e));
            let bad_input = e.chain().any(|c| c.downcast_ref::<BadInput>().is_some());
            ExitCode::from(if bad_input { 2 } else { 1 })
        }
    }
}

/// The error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string().replace('\n', " ");
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// The log subscriber: `SDU_LOG`'s filter (the HTTP stack held at `warn`, [`log_directives`]), lines on
/// stderr in the configured `log_format`.
fn init_tracing(config: &Config) {
    let filter = std::env::var("SDU_LOG")
        .ok()
        .filter(|spec| !spec.trim().is_empty())
        .and_then(|spec| tracing_subscriber::EnvFilter::try_new(log_directives(&spec)).ok())
        .unwrap_or_else(|| {
            tracing_subscriber::EnvFilter::new("warn,tokio_cron_scheduler=warn,sqlx=warn")
        });
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match config.log_format {
        LogFormat::Text => fmt.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => fmt.json().try_init(),
    };
}

/// The key of the tags that stand for people in log lines. Without `log_hash_key` the key is drawn for
/// this process: said as a warning where logs are collected and compared across runs (JSON lines, the
/// daemon), and at `info` for a one-off command, whose stderr a person reads.
fn init_tags(config: &Config, daemon: bool) {
    let key = config.log_hash_key.as_ref().map(|k| k.0.as_str());
    sdu::privacy::set_tag_key(key);
    if key.is_none() {
        const UNSET: &str = "log_hash_key is not set: the person tags of this process's log lines are keyed \
                             at random and will not match those of other runs or workers";
        if daemon || config.log_format == LogFormat::Json {
            tracing::warn!("{UNSET}");
        } else {
            tracing::info!("{UNSET}");
        }
    }
}

/// The HTTP stack's own logs: at debug and trace they describe connections, and some of their lines (a
/// request URI hyper-util refuses, reqwest's verbose connection dump) would print request URLs, which hold
/// IINs (`/individuals/persons/{iin}`), or bodies, which hold phone numbers.
const HTTP_STACK: [&str; 3] = ["hyper", "hyper_util", "reqwest"];

/// `SDU_LOG` with the HTTP stack held at `warn`, unless a directive names one of its crates: a generic
/// `SDU_LOG=debug` must not turn on logs that may carry personal data.
fn log_directives(spec: &str) -> String {
    let mut directives = spec.trim().to_owned();
    for krate in HTTP_STACK {
        let named = spec.split(',').any(|directive| {
            let target = directive.trim().split(['=', '[']).next().unwrap_or("");
            target == krate || target.starts_with(&format!("{krate}::"))
        });
        if !named {
            if !directives.is_empty() {
                directives.push(',');
            }
            directives.push_str(krate);
            directives.push_str("=warn");
        }
    }
    directives
}

fn load_config(cli: &Cli) -> Result<Config> {
    let mut config = Config::load(cli.config.as_deref(), std::env::vars())
        .map_err(|e| BadInput(format!("configuration: {e:#}")))?;
    if let Some(url) = &cli.database {
        config.database_url = url.clone();
    }
    Ok(config)
}

/// The clock every command runs on: the real one, or `--now`'s.
fn clock(cli: &Cli) -> Result<Arc<dyn Clock>> {
    Ok(match &cli.now {
        None => sdu::clock::wall(),
        Some(text) => {
            let at = DateTime::parse_from_rfc3339(text)
                .map_err(|e| BadInput(format!("--now `{text}` is not an RFC 3339 instant: {e}")))?;
            Arc::new(ManualClock::new(at.with_timezone(&Utc)))
        }
    })
}

/// Starts the bundled mock registries in-process when asked, and points every system at it.
#[cfg(feature = "mock")]
async fn start_mock(
    spec: Option<&str>,
    config: &mut Config,
    now: DateTime<Utc>,
) -> Result<Option<mock_registries::Mock>> {
    let Some(spec) = spec else { return Ok(None) };
    let mock = match spec.strip_prefix("synthetic:") {
        Some(n) => {
            let n: u64 = n
                .parse()
                .map_err(|_| BadInput(format!("--mock synthetic:N needs a number, got `{n}`")))?;
            mock_registries::Mock::synthetic(n, 1)
        }
        None => {
            let scenario = mock_registries::Scenario::load(std::path::Path::new(spec))
                .map_err(|e| BadInput(e.to_string()))?;
            mock_registries::Mock::from_registries(&scenario.registries, 1)
        }
    };
    mock.set_now(now);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = mock.spawn(listener).await?;
    config.base_url = format!("http://{addr}");
    Ok(Some(mock))
}

/// A build without the `mock` feature has no bundled mock registries: `--mock` is refused.
#[cfg(not(feature = "mock"))]
async fn start_mock(
    spec: Option<&str>,
    _config: &mut Config,
    _now: DateTime<Utc>,
) -> Result<Option<()>> {
    match spec {
        None => Ok(None),
        Some(_) => Err(BadInput(NO_MOCK.replace("{what}", "--mock")).into()),
    }
}

/// The error of a build without the bundled mock registries.
#[cfg(not(feature = "mock"))]
const NO_MOCK: &str = "{what} needs the bundled mock registries, and this build of sdu has none (built \
                       without the `mock` cargo feature; rebuild with default features)";

async fn dispatch(cli: Cli, mut config: Config) -> Result<ExitCode> {
    let clock = clock(&cli)?;
    match &cli.command {
        Command::Migrate => {
            open_store(&config).await?;
            println!("migrations applied to {}", redact(&config.database_url));
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { mock, json } => {
            let _mock = start_mock(mock.as_deref(), &mut config, clock.now()).await?;
            let store = open_store(&config).await?;
            let systems = Systems::http(&config, |_| {})?;
            let mut engine = Engine::new(store, systems, clock, config)?;
            if std::io::stderr().is_terminal() {
                engine.on_step = Some(Arc::new(|n| {
                    if n % 1000 == 0 {
                        eprint!("\r{n} case steps recorded…");
                    }
                }));
            }
            let report = engine
                .pass(sdu::engine::IngestMode::Now)
                .await
                .map_err(|e| in_store(e, &engine.config))?;
            let summary = engine.summary().await?;
            let pause = engine.sms_pause().await?;
            if *json {
                println!(
                    "{}",
                    serde_json::json!({"pass": report, "cases": summary, "sms_pause": pause})
                );
            } else {
                if std::io::stderr().is_terminal() {
                    eprint!("\r");
                }
                print_pass(&report, &summary, &pause);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Daemon { mock } => {
            // Before the first pass, so that the counters hold everything the daemon did by its first scrape.
            sdu::telemetry::install();
            let _mock = start_mock(mock.as_deref(), &mut config, clock.now()).await?;
            let store = open_store(&config).await?;
            let systems = Systems::http(&config, |_| {})?;
            let engine = Arc::new(Engine::new(store, systems, clock, config)?);
            sdu::daemon::run(engine).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::DryRun { bin, json, mock } => {
            let bin = adapters::Bin::parse(bin)
                .map_err(|e| BadInput(format!("--bin `{bin}` is not a valid BIN: {e}")))?;
            let _mock = start_mock(mock.as_deref(), &mut config, clock.now()).await?;
            let systems = Systems::http(&config, |_| {})?;
            let trace = sdu::dry_run::trace(&systems, &config, &bin, clock.now()).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&trace)?);
            } else {
                print!("{}", trace.render());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Scenario {
            command: ScenarioCommand::Run { paths, json },
        } => run_scenarios(paths, *json, &config).await,
        Command::Publish(args) => {
            let store = open_store(&config).await?;
            println!("{}", sdu::publish::run(args, &store, &config).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Extract(cmd) => {
            let store = open_store(&config).await?;
            print!(
                "{}",
                sdu::publish::extract::run(cmd, &store, clock.now(), config.extract_k)
                    .await?
                    .trim_end()
            );
            println!();
            Ok(ExitCode::SUCCESS)
        }
        Command::Operator { command } => {
            let store = open_store(&config).await?;
            operator_command(command, &store, clock.now()).await
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            let store = open_store(&config).await?;
            match sdu::audit::verify(&store).await? {
                None => {
                    println!("audit: every case's history is intact");
                    Ok(ExitCode::SUCCESS)
                }
                Some(broken) => {
                    println!(
                        "audit: broken link at event {} of case {}: {}",
                        broken.event_id, broken.case_id, broken.problem
                    );
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}

/// `sdu operator add|list|revoke`.
async fn operator_command(
    command: &OperatorCommand,
    store: &Store,
    now: DateTime<Utc>,
) -> Result<ExitCode> {
    match command {
        OperatorCommand::Add { name, role } => {
            let token = sdu::console::auth::add_operator(store, name, *role, now)
                .await
                .map_err(|e| BadInput(format!("{e:#}")))?;
            eprintln!(
                "operator `{}` added as {}; its token (shown once, only its hash is kept):",
                name.trim(),
                role.as_str()
            );
            println!("{token}");
        }
        OperatorCommand::List => {
            println!("{:<24} {:<9} {:<26} revoked", "name", "role", "added");
            for op in store.operators().await? {
                println!(
                    "{:<24} {:<9} {:<26} {}",
                    op.name,
                    op.role,
                    sdu::store::from_ms(op.created_at).to_rfc3339(),
                    op.revoked_at
                        .map(|t| sdu::store::from_ms(t).to_rfc3339())
                        .unwrap_or_else(|| "-".into())
                );
            }
        }
        OperatorCommand::Revoke { name } => {
            if !store.revoke_operator(name, sdu::store::ms(now)).await? {
                return Err(BadInput(format!("no operator `{name}` with a valid token")).into());
            }
            println!("operator `{name}` revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `sdu scenario run`: the scenario runner needs the mock registries in-process.
#[cfg(feature = "mock")]
async fn run_scenarios(paths: &[PathBuf], json: bool, config: &Config) -> Result<ExitCode> {
    let files = sdu::scenario::collect_files(paths).map_err(|e| BadInput(format!("{e:#}")))?;
    let db = match sdu::store::Backend::of(&config.database_url)? {
        sdu::store::Backend::Sqlite => sdu::scenario::FreshDatabase::SqliteMemory,
        sdu::store::Backend::Postgres => {
            sdu::scenario::FreshDatabase::Postgres(config.database_url.clone())
        }
    };
    let (mut passed, mut failed) = (0, 0);
    for file in files {
        let result = sdu::scenario::run_file(&file, config, &db).await;
        let result = match result {
            Ok(r) => r,
            Err(e) => sdu::scenario::ScenarioResult {
                file: file.display().to_string(),
                name: file.display().to_string(),
                passed: false,
                mismatches: vec![format!("error: {}", one_line(&e))],
                outcomes: Default::default(),
            },
        };
        if result.passed {
            passed += 1;
        } else {
            failed += 1;
        }
        if json {
            println!("{}", serde_json::to_string(&result)?);
        } else if result.passed {
            println!("PASS {}", result.name);
        } else {
            println!("FAIL {}: {}", result.name, result.mismatches.join("; "));
        }
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"passed": passed, "failed": failed})
        );
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(not(feature = "mock"))]
async fn run_scenarios(_paths: &[PathBuf], _json: bool, _config: &Config) -> Result<ExitCode> {
    Err(BadInput(NO_MOCK.replace("{what}", "sdu scenario run")).into())
}

/// Opens the case store with the configured waits; an error names the store (password hidden).
async fn open_store(config: &Config) -> Result<Store> {
    Store::open_with(&config.database_url, config.store_options())
        .await
        .map_err(|e| in_store(e, config))
}

/// A database error, prefixed with the store it concerns (the URL without its password; no personal data:
/// the driver's messages name codes and statements, not values).
fn in_store(e: anyhow::Error, config: &Config) -> anyhow::Error {
    if sdu::store::is_store_error(&e) {
        e.context(format!("case store {}", redact(&config.database_url)))
    } else {
        e
    }
}

fn print_pass(
    report: &sdu::engine::PassReport,
    summary: &std::collections::BTreeMap<String, i64>,
    pause: &sdu::engine::pause::SmsPause,
) {
    if pause.paused {
        println!(
            "SMS PAUSED by {} at {}: {} (no SMS is sent until an operator resumes them)",
            pause.by.as_deref().unwrap_or("?"),
            pause.at.map(|t| t.to_rfc3339()).unwrap_or_default(),
            pause.reason.as_deref().unwrap_or("")
        );
    }
    if let Some(i) = &report.ingest {
        println!(
            "ingest: {} new case(s), {} already known, {} superseded",
            i.opened, i.duplicates, i.superseded
        );
    }
    if let Some(e) = &report.ingest_error {
        println!("ingest: failed, retried next time: {e}");
    }
    if let Some(e) = &report.replies_error {
        println!("replies: could not be read, retried next time: {e}");
    }
    println!(
        "replies stored: {}; case steps recorded: {}",
        report.replies_stored, report.steps
    );
    println!("cases:");
    for (key, count) in summary {
        println!("  {key:<32} {count}");
    }
}

/// A database URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::log_directives;

    #[test]
    fn a_generic_log_level_keeps_the_http_stack_at_warn() {
        assert_eq!(
            log_directives("debug"),
            "debug,hyper=warn,hyper_util=warn,reqwest=warn"
        );
        assert_eq!(
            log_directives("sdu=trace,sqlx=debug"),
            "sdu=trace,sqlx=debug,hyper=warn,hyper_util=warn,reqwest=warn"
        );
    }

    #[test]
    fn an_http_crate_named_explicitly_keeps_its_level() {
        assert_eq!(
            log_directives("debug,reqwest=trace,hyper_util::client=debug"),
            "debug,reqwest=trace,hyper_util::client=debug,hyper=warn"
        );
    }
}
