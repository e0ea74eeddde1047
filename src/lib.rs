//! sdu: the orchestrator of the proactive re-issue of trusted-software-register permits after an
//! organisation renames itself (order No. 204/НҚ, see docs/RULES.md §7).
//!
//! Layers, from pure to I/O: [`case`] decides (no I/O, no clock), [`store`] remembers, [`engine`] acts
//! through the adapters, [`commands`] (the daemon and its API, dry-run, the scenario runner, the audit) reuse the engine, and `main.rs` is the command line.

pub mod case;
pub mod clock;
pub mod commands;
pub mod config;
pub mod console;
pub mod engine;
pub mod privacy;
pub mod publish;
pub mod sms;
pub mod store;
pub mod telemetry;

#[cfg(feature = "mock")]
pub use commands::scenario;
pub use commands::{api, audit, daemon, dry_run};
