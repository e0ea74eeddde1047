//! The PostgreSQL backend: the shared queries compiled against PostgreSQL's types.

/// The backend's database type.
pub(super) type Db = sqlx::Postgres;
/// Dynamic SQL numbers its parameters (`$1`), as PostgreSQL requires.
pub(super) const NUMBERED: bool = true;
/// How the backend prints a plan.
pub(super) const EXPLAIN: &str = "EXPLAIN";
/// Several workers claim at once: each skips the rows another is claiming.
pub(super) const CLAIM_SQL: &str = super::imp::claim_sql!(" FOR UPDATE SKIP LOCKED");

#[allow(clippy::duplicate_mod)] // the same queries, compiled once per backend
#[path = "queries.rs"]
pub(super) mod queries;

#[allow(clippy::duplicate_mod)] // the same queries, compiled once per backend
#[path = "console_queries.rs"]
pub(super) mod console_queries;
