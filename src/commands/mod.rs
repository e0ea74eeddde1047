//! The commands besides the engine's own pass: the daemon and its operator API, dry-run, the scenario
//! runner and the audit of the stored history. `main.rs` parses the command line and calls into these.

pub mod api;
pub mod audit;
pub mod daemon;
pub mod dry_run;
/// The scenario runner needs the bundled mock registries (the `mock` feature, on by default).
#[cfg(feature = "mock")]
pub mod scenario;
