//! The `mock-registries` binary: serves every external system from a scenario file's `registries` section
//! (`--fixture FILE`) or from a synthetic world (`--synthetic N --seed S`), on one port.
//!
//! Prints `listening on http://ADDR` once it accepts connections; stops cleanly on SIGINT or SIGTERM. Bad
//! input (an unreadable or malformed fixture, a too large N) is one line on stderr and exit status 2.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, FixedOffset, Utc};
use clap::Parser;
use mock_registries::{Mock, Scenario};

/// Mock HTTP servers for every external system of sdu.
#[derive(Debug, Parser)]
#[command(name = "mock-registries", version, about)]
struct Args {
    /// Serve the `registries` section of this scenario file (its events and expectations are ignored).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "synthetic",
        conflicts_with = "synthetic"
    )]
    fixture: Option<PathBuf>,
    /// Serve N generated renamed organisations instead of a fixture.
    #[arg(long, value_name = "N")]
    synthetic: Option<u64>,
    /// Seed of the synthetic world and of the fault RNG.
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Start the mock's clock at this instant (RFC 3339) instead of following the wall clock.
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    now: Option<DateTime<FixedOffset>>,
}

fn parse_time(s: &str) -> Result<DateTime<FixedOffset>, String> {
    DateTime::parse_from_rfc3339(s).map_err(|e| format!("not an RFC 3339 instant: {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = Args::parse();

    let mock = match (&args.fixture, args.synthetic) {
        (Some(path), _) => match Scenario::load(path) {
            Ok(scenario) => Mock::from_registries(&scenario.registries, args.seed),
            Err(e) => return fail(2, &e.to_string()),
        },
        (None, Some(n)) => match Mock::try_synthetic(n, args.seed) {
            Ok(mock) => mock,
            Err(e) => return fail(2, &e),
        },
        (None, None) => return fail(2, "give --fixture FILE or --synthetic N"),
    };
    if let Some(now) = args.now {
        mock.set_now(now.with_timezone(&Utc));
    }

    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => return fail(1, &format!("cannot listen on {}: {e}", args.listen)),
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => return fail(1, &format!("cannot read the bound address: {e}")),
    };
    println!("listening on http://{addr}");
    // Scripts wait for that line: make sure it leaves the pipe now, not when the buffer fills.
    use std::io::Write as _;
    let _ = std::io::stdout().flush();

    match axum::serve(listener, mock.router())
        .with_graceful_shutdown(shutdown_signal())
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(1, &format!("server error: {e}")),
    }
}

/// Prints one line on stderr (the YAML parser's message goes on with a source excerpt: its first line
/// already names the file, line, column and key) and returns the exit status.
fn fail(code: u8, message: &str) -> ExitCode {
    let line = message
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(message);
    eprintln!("mock-registries: {}", line.trim_end());
    ExitCode::from(code)
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM; axum then stops accepting and drains open requests.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
