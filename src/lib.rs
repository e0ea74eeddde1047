//! sdu: the orchestrator of the proactive re-issue of trusted-software-register permits after an
//! organisation renames itself (order No. 204/НҚ, see docs/RULES.md §7).
//!
//! Layers, from pure to I/O: [`case`] decides (no I/O, no clock), [`store`] remembers, [`engine`] acts
//! through the adapters, [`scenario`] and [`dry_run`] reuse the engine, and `main.rs` is the command line.

pub mod api;
pub mod audit;
pub mod case;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod dry_run;
// HOUSEKEEPING-NEEDS: the engine reads the real clocks itself (`SystemClock.now()` in src/engine.rs,
// `Instant::now` in src/engine/retry.rs), which clippy.toml forbids outside src/clock.rs; this allow
// keeps the workspace clippy-clean until the engine takes those readings from an injected clock.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod engine;
pub mod privacy;
/// The scenario runner needs the bundled mock registries (the `mock` feature, on by default).
#[cfg(feature = "mock")]
pub mod scenario;
pub mod sms;
pub mod store;
