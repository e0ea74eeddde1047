//! Rebuilds the `sdu` crate when a migration is added or changed: `sqlx::migrate!` embeds `migrations/` at
//! compile time, and on stable Rust cargo does not know the macro read those files (sqlx's documented
//! advice), so a new migration alone left a binary without it.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
