//! `sdu-bench`: the benchmark of the `sdu` orchestrator (docs/BENCHMARKS.md), a binary of its own so that
//! the product's library carries no benchmark code.

/// jemalloc rather than glibc's malloc: allocation was a quarter of the engine thread's CPU (docs/BENCHMARKS.md,
/// "The allocator"). It gives freed pages back after 1 s (its build settings, `.cargo/config.toml`).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

mod bench;
mod clock;

/// The whole process for N synthetic organisations against `mock-registries` run as a separate process,
/// on a fresh database, in simulated time.
#[derive(Debug, Parser)]
#[command(name = "sdu-bench", version, about)]
struct Cli {
    /// TOML configuration file of `sdu` (every key has a default).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the fresh database goes: sqlite://FILE (default: a temporary file) or postgres://… (a new
    /// database on that server, dropped afterwards).
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    #[command(flatten)]
    args: bench::BenchArgs,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    // As `sdu` does (src/main.rs): the HTTP stack stays at `warn` unless `SDU_LOG` names it, since its debug
    // lines can carry request URLs and bodies, which hold IINs and phone numbers.
    let filter = std::env::var("SDU_LOG")
        .ok()
        .filter(|spec| !spec.trim().is_empty())
        .and_then(|spec| {
            let mut directives = spec.trim().to_owned();
            for krate in ["hyper", "hyper_util", "reqwest"] {
                if !spec.contains(krate) {
                    directives.push_str(&format!(",{krate}=warn"));
                }
            }
            tracing_subscriber::EnvFilter::try_new(directives).ok()
        })
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
    let config = match sdu::config::Config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("sdu-bench: configuration: {e:#}");
            return ExitCode::from(2);
        }
    };
    // One thread, as `sdu` itself runs (src/main.rs): the engine, the HTTP clients and the samplers.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sdu-bench: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let report = runtime.block_on(bench::run(&cli.args, cli.database.as_deref(), config));
    match report {
        Ok(report) if cli.args.json => match serde_json::to_string_pretty(&report) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sdu-bench: {e}");
                ExitCode::from(1)
            }
        },
        Ok(report) => {
            print!("{}", report.render());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sdu-bench: {e:#}");
            ExitCode::from(1)
        }
    }
}
