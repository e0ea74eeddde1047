//! Hostile registry data at the level of a whole run: a bad record ends only its own case as
//! `failed`/`invalid_data`, and the other cases of the same run carry on to their normal outcome
//! (docs/RULES.md §2.12). `scenarios/27-invalid-data.yaml` shows it for a BIN and a first head with a wrong control
//! digit; this file adds the payloads of `adapters/tests/hostile_payloads.rs` that a fixture can carry: a
//! first head written in full-width digits, a head whose name holds a right-to-left override, and a permit
//! whose holder name holds an escape sequence.

mod procs;

use std::path::PathBuf;

use sdu::config::Config;
use sdu::scenario::{FreshDatabase, run_file};

const SCENARIO: &str = r#"
name: hostile-records-fail-only-their-own-case
start: 2026-11-02T01:00:00+05:00
run_until: 2026-11-03T00:00:00+05:00
registries:
  legal_entities:
    - bin: "210840000983"
      name: "ТОО «Толық Ені»"
      status: active
      first_head: "８５０２１４３０００１３"
      renames:
        - { at: 2026-11-01T09:00:00+05:00, from: "ТОО «Ені Бұрын»" }
    - bin: "201140000017"
      name: "ТОО «Жаңа Технологиялар»"
      status: active
      first_head: "850214300013"
      renames:
        - { at: 2026-11-01T10:00:00+05:00, from: "ТОО «Ескі Технологиялар»" }
    - bin: "190540043216"
      name: "ТОО «Басқару Жүйесі»"
      status: active
      first_head: "820207420047"
      renames:
        - { at: 2026-11-01T10:30:00+05:00, from: "ТОО «Жүйе»" }
    - bin: "060840892041"
      name: "ТОО «Дұрыс Деректер»"
      status: active
      first_head: "600502369686"
      renames:
        - { at: 2026-11-01T11:00:00+05:00, from: "ТОО «Деректер»" }
  e_license:
    - { permit_id: "KZ-TS-9101", bin: "210840000983", service: trusted_software_register,
        holder_name: "ТОО «Ені Бұрын»", status: active }
    - { permit_id: "KZ-TS-9102", bin: "201140000017", service: trusted_software_register,
        holder_name: "ТОО «Ескі Технологиялар»", status: active }
    - { permit_id: "KZ-TS-9103", bin: "190540043216", service: trusted_software_register,
        holder_name: "ТОО «Жүйе\e[2J»", status: active }
    - { permit_id: "KZ-TS-9104", bin: "060840892041", service: trusted_software_register,
        holder_name: "ТОО «Деректер»", status: active }
  individuals:
    - { iin: "850214300013", name: "Серік \u202EвотемхА", residence_abroad: false, incapacitated: false, imprisoned: false }
    - { iin: "820207420047", name: "Айгүл Серікова", residence_abroad: false, incapacitated: false, imprisoned: false }
    - { iin: "600502369686", name: "Алмас Исаев", residence_abroad: false, incapacitated: false, imprisoned: false }
  civil_registry:
    - { iin: "850214300013", deceased: false, declared_dead: false, declared_missing: false }
    - { iin: "820207420047", deceased: false, declared_dead: false, declared_missing: false }
    - { iin: "600502369686", deceased: false, declared_dead: false, declared_missing: false }
  mobile_base:
    - { iin: "850214300013", phone: "+77011279101" }
    - { iin: "820207420047", phone: "+77011279103" }
    - { iin: "600502369686", phone: "+77011279104" }
events:
  - { at: 2026-11-02T10:00:00+05:00, sms_reply: { from: "+77011279104", text: "1" } }
expect:
  cases:
    - { bin: "210840000983", outcome: failed, reason: invalid_data, sms_sent: 0 }
    - { bin: "201140000017", outcome: failed, reason: invalid_data, sms_sent: 0 }
    - { bin: "190540043216", outcome: failed, reason: invalid_data, sms_sent: 0 }
    - { bin: "060840892041", outcome: reissued, sms_sent: 1 }
  sms_total: 1
  sms_to: { "+77011279104": 1 }
  permits:
    - { permit_id: "KZ-TS-9101", holder_name: "ТОО «Ені Бұрын»" }
    - { permit_id: "KZ-TS-9104", holder_name: "ТОО «Дұрыс Деректер»" }
  consents: 1
  sdu_records: 1
  open_cases: 0
"#;

#[tokio::test]
async fn hostile_records_fail_only_their_own_cases_and_the_rest_of_the_run_proceeds() {
    hostile_records_fail_only_their_own_cases(FreshDatabase::SqliteMemory).await;
}

#[tokio::test]
async fn on_postgres_hostile_records_fail_only_their_own_cases_and_the_rest_of_the_run_proceeds() {
    let Some(server) = procs::postgres_server() else {
        return;
    };
    hostile_records_fail_only_their_own_cases(FreshDatabase::Postgres(server)).await;
}

/// The scenario of the module on a fresh database of `db`'s kind.
async fn hostile_records_fail_only_their_own_cases(db: FreshDatabase) {
    let path: PathBuf = std::env::temp_dir().join(format!(
        "sdu-hostile-cases-{}.yaml",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&path, SCENARIO).unwrap();

    let result = run_file(&path, &Config::default(), &db).await;
    let _ = std::fs::remove_file(&path);
    let result = result.unwrap();

    assert!(result.passed, "mismatches: {:#?}", result.mismatches);
    assert_eq!(
        result.outcomes.get("failed/invalid_data"),
        Some(&3),
        "{:?}",
        result.outcomes
    );
    assert_eq!(
        result.outcomes.get("reissued"),
        Some(&1),
        "{:?}",
        result.outcomes
    );
}
