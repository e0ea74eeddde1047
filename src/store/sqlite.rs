//! The SQLite backend: the shared queries compiled against SQLite's types.

/// The backend's database type.
pub(super) type Db = sqlx::Sqlite;
/// Dynamic SQL leaves its parameters anonymous (`?`): sqlx binds them by position, where a numbered one
/// costs SQLite a search by name per parameter.
pub(super) const NUMBERED: bool = false;
/// How the backend prints a plan.
pub(super) const EXPLAIN: &str = "EXPLAIN QUERY PLAN";
/// SQLite has one writer at a time: the claim needs no row lock.
pub(super) const CLAIM_SQL: &str = super::imp::claim_sql!("");

#[allow(clippy::duplicate_mod)] // the same queries, compiled once per backend
#[path = "queries.rs"]
pub(super) mod queries;

#[allow(clippy::duplicate_mod)] // the same queries, compiled once per backend
#[path = "console_queries.rs"]
pub(super) mod console_queries;
