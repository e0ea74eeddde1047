//! Shared helpers: a small fixture covering every system, and a mock started on 127.0.0.1:0.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use mock_registries::{Mock, Scenario};
use serde_json::Value;

/// Every system with one record found and one absent: org A renamed once, org B renamed twice and
/// liquidated with no head, org C with an unquoted (numeric) BIN; a revoked permit and another service's.
pub const FIXTURE: &str = include_str!("fixture.yaml");

/// The fixture's mock, fault RNG seeded with 42.
pub fn fixture_mock() -> Mock {
    let scenario = Scenario::parse(FIXTURE).expect("the test fixture parses");
    Mock::from_registries(&scenario.registries, 42)
}

/// Serves `mock` on 127.0.0.1:0; returns its base URL.
pub async fn serve(mock: &Mock) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = mock.spawn(listener).await.expect("spawn");
    format!("http://{addr}")
}

/// An RFC 3339 instant.
pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

/// GET and return (status, JSON body).
pub async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let res = client.get(url).send().await.expect("request");
    let status = res.status().as_u16();
    let body = res.json::<Value>().await.expect("a JSON body");
    (status, body)
}

/// POST JSON with an optional Idempotency-Key; return (status, JSON body).
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut req = client.post(url).json(body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let body = res.json::<Value>().await.expect("a JSON body");
    (status, body)
}

/// The monotonic clock, for the tests' own timing (deadlines, elapsed times): the test crate's one
/// sanctioned reading of it.
#[allow(clippy::disallowed_methods)] // tests time real processes and servers
pub fn now() -> std::time::Instant {
    std::time::Instant::now()
}
