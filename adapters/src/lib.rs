//! Adapters to the external systems of the proactive re-issue service.
//!
//! [`systems`] declares one object-safe trait per system (docs/RULES.md §7) and the validated types they return;
//! [`http`] implements each over reqwest against the wire API of `docs/API.md`, with the shared plumbing
//! (timeouts, retries with backoff, rate limits, concurrency caps, size limits) written once. [`ids`] holds
//! the identifiers every crate uses. This crate never depends on the orchestrator.

mod clock;
pub mod dims;
pub mod error;
pub mod http;
pub mod ids;
pub mod systems;

pub use dims::{DimError, Kato, Oked};
pub use error::{AdapterError, AdapterResult};
pub use ids::{Bin, IdError, Iin, Msisdn, PhoneError, UncheckedIin};
pub use systems::*;
