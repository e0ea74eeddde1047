//! Shared helpers: a small fixture covering every system, and a mock started on 127.0.0.1:0.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use mock_registries::{Mock, Scenario};
use serde_json::Value;

/// Every system with one record found and one absent: org A renamed once, org B renamed twice and
/// liquidated with no head, org C with an unquoted (numeric) BIN; a revoked permit and another service's.
pub const FIXTURE: &str = r#"
name: mock-test
start: 2026-11-02T01:00:00+05:00
run_until: 2026-11-03T00:00:00+05:00
registries:
  legal_entities:
    - bin: "190540043216"
      name: "ТОО «Жаңа Технологиялар»"
      status: active
      first_head: "790415307770"
      renames:
        - { at: 2026-11-01T15:00:00+05:00, from: "ТОО «Ескі Технологиялар»" }
    - bin: "210840000983"
      name: "ЖШС «Үш»"
      status: liquidated
      renames:
        - { at: 2026-11-01T12:00:00+05:00, from: "ЖШС «Екі»" }
        - { at: 2026-11-01T10:00:00+05:00, from: "ЖШС «Бір»" }
    - bin: 70740739532
      name: "АО «Число»"
      first_head: "860101403216"
      renames:
        - { at: 2026-11-01T20:00:00+05:00, from: "АО «Строка»" }
  e_license:
    - { permit_id: "KZ-TS-0001", bin: "190540043216", service: trusted_software_register,
        holder_name: "ТОО «Ескі Технологиялар»", status: active }
    - { permit_id: "KZ-TS-0002", bin: "190540043216", service: trusted_software_register,
        holder_name: "ТОО «Ескі Технологиялар»", status: revoked }
    - { permit_id: "KZ-COM-0001", bin: "190540043216", service: communications_license,
        holder_name: "ТОО «Ескі Технологиялар»" }
  individuals:
    - { iin: "790415307770", name: "Серік Ахметов", residence_abroad: false, incapacitated: false, imprisoned: false }
  civil_registry:
    - { iin: "790415307770", deceased: false, declared_dead: false, declared_missing: false }
  mobile_base:
    - { iin: "790415307770", phone: "+77011234567" }
    - { iin: "860101403216", phone: 87011234567 }
"#;

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
