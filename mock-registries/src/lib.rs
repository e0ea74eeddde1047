//! Mock registries: every external system of DOMAIN.md served over HTTP from a scenario file.
pub mod scenario;
