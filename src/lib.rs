//! sdu: the orchestrator of the proactive re-issue of trusted-software-register permits after an
//! organisation renames itself (order No. 204/НҚ, see DOMAIN.md).
//!
//! Layers, from pure to I/O: [`case`] decides (no I/O, no clock), [`store`] remembers, [`engine`] acts
//! through the adapters, [`scenario`] and [`dry_run`] reuse the engine, and `main.rs` is the command line.

pub mod api;
pub mod audit;
pub mod bench;
pub mod case;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod dry_run;
pub mod engine;
pub mod privacy;
pub mod publish;
pub mod scenario;
pub mod sms;
pub mod store;
