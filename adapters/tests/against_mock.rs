//! Every HTTP client against the in-process `mock-registries` over real HTTP on 127.0.0.1: records found
//! and absent, writes deduplicated by their idempotency key, every fault mode, and the rate limit.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use adapters::http::{
    HttpCivilRegistry, HttpConsentService, HttpELicense, HttpIndividuals, HttpLegalEntities,
    HttpMobileBase, HttpSdu, HttpSettings, HttpSmsGateway, RetryPolicy,
};
use adapters::{
    AdapterError, Bin, CivilRegistry, ConsentService, ELicense, IdempotencyKey, Iin, Individuals,
    LegalEntities, MobileBase, Msisdn, OrgStatus, PermitStatus, Sdu, SduRecord, SmsGateway,
    TRUSTED_SOFTWARE_SERVICE,
};
use chrono::{DateTime, Utc};
use mock_registries::{Fault, FaultMode, Mock, Scenario, SystemName};

/// A head with a valid IIN, one organisation whose head's IIN has a bad control digit, and one whose BIN
/// the fixture wrote as a number.
const FIXTURE: &str = r#"
name: adapters-test
start: 2026-11-02T01:00:00+05:00
run_until: 2026-11-03T00:00:00+05:00
registries:
  legal_entities:
    - bin: "201140000017"
      name: "ТОО «Жаңа Технологиялар»"
      status: active
      first_head: "850214300013"
      renames:
        - { at: 2026-11-01T15:00:00+05:00, from: "ТОО «Ескі Технологиялар»" }
    - bin: "190540043216"
      name: "ТОО «Бұрыс»"
      status: liquidated
      first_head: "790415307771"
      renames:
        - { at: 2026-11-01T16:00:00+05:00, from: "ТОО «Дұрыс»" }
    - bin: 70740739532
      name: "АО «Число»"
      renames:
        - { at: 2026-11-01T17:00:00+05:00, from: "АО «Строка»" }
  e_license:
    - { permit_id: "KZ-TS-0001", bin: "201140000017", service: trusted_software_register,
        holder_name: "ТОО «Ескі Технологиялар»", status: active }
    - { permit_id: "KZ-TS-0002", bin: "201140000017", service: trusted_software_register,
        holder_name: "ТОО «Ескі Технологиялар»", status: revoked }
    - { permit_id: "KZ-COM-0001", bin: "201140000017", service: communications_license,
        holder_name: "ТОО «Ескі Технологиялар»", status: active }
  individuals:
    - { iin: "850214300013", name: "Серік Ахметов", residence_abroad: false, incapacitated: false,
        imprisoned: true }
  civil_registry:
    - { iin: "850214300013", deceased: false, declared_dead: false, declared_missing: true }
  mobile_base:
    - { iin: "850214300013", phone: "+77011234567" }
    - { iin: "790415307770", phone: 87011234567 }
"#;

const BIN: &str = "201140000017";
const IIN: &str = "850214300013";
/// In the mobile base only.
const OTHER_IIN: &str = "790415307770";
/// Valid, and in no registry.
const UNKNOWN_IIN: &str = "860101403216";
const PHONE: &str = "+77011234567";

fn bin() -> Bin {
    Bin::parse(BIN).unwrap()
}

fn iin() -> Iin {
    Iin::parse(IIN).unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The fixture's mock, served on 127.0.0.1:0, its clock at the scenario's start; returns it and its base URL.
async fn serve() -> (Mock, String) {
    let scenario = Scenario::parse(FIXTURE).expect("the fixture parses");
    let mock = Mock::from_registries(&scenario.registries, 7);
    mock.set_now(at("2026-11-02T01:00:00+05:00"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = mock.spawn(listener).await.unwrap();
    (mock, format!("http://{addr}"))
}

/// Settings with quick backoffs so that retried tests stay fast.
fn settings(base: &str, system: &str) -> HttpSettings {
    HttpSettings {
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(50),
        },
        ..HttpSettings::for_system(base, system)
    }
}

fn with_attempts(settings: HttpSettings, max_attempts: u32) -> HttpSettings {
    HttpSettings {
        retry: RetryPolicy {
            max_attempts,
            ..settings.retry
        },
        ..settings
    }
}

fn fault(system: SystemName, mode: FaultMode, rate: f64) -> Fault {
    Fault {
        system,
        mode,
        rate,
        delay_ms: 0,
    }
}

fn calls_to(mock: &Mock, system: &str) -> u64 {
    mock.call_counts()[system]
}

// ---------------------------------------------------------------- found and absent

#[tokio::test]
async fn every_lookup_finds_what_the_fixture_holds() {
    let (_mock, base) = serve().await;
    let legal = HttpLegalEntities::new(settings(&base, "legal_entities")).unwrap();
    let elicense = HttpELicense::new(settings(&base, "e_license")).unwrap();
    let people = HttpIndividuals::new(settings(&base, "individuals")).unwrap();
    let civil = HttpCivilRegistry::new(settings(&base, "civil_registry")).unwrap();
    let mobile = HttpMobileBase::new(settings(&base, "mobile_base")).unwrap();

    let org = legal.organization(&bin()).await.unwrap().unwrap();
    let permits = elicense
        .permits(&bin(), TRUSTED_SOFTWARE_SERVICE)
        .await
        .unwrap();
    let person = people.person(&iin()).await.unwrap().unwrap();
    let record = civil.record(&iin()).await.unwrap().unwrap();
    let number = mobile.number(&iin()).await.unwrap();

    assert_eq!(org.name, "ТОО «Жаңа Технологиялар»");
    assert_eq!(org.status, OrgStatus::Active);
    assert_eq!(org.first_head.map(|h| h.check()), Some(Ok(iin())));
    let ids: Vec<_> = permits.iter().map(|p| p.permit_id.as_str()).collect();
    assert_eq!(ids, ["KZ-TS-0001", "KZ-TS-0002"]);
    assert_eq!(permits[1].status, PermitStatus::Revoked);
    assert_eq!(person.name, "Серік Ахметов");
    assert!(person.imprisoned && !person.residence_abroad && !person.incapacitated);
    assert!(record.declared_missing && !record.deceased && !record.declared_dead);
    assert_eq!(number.as_deref(), Some(PHONE));
}

#[tokio::test]
async fn absent_records_are_none() {
    let (_mock, base) = serve().await;
    let unknown = Iin::parse(UNKNOWN_IIN).unwrap();
    let legal = HttpLegalEntities::new(settings(&base, "legal_entities")).unwrap();
    let elicense = HttpELicense::new(settings(&base, "e_license")).unwrap();
    let people = HttpIndividuals::new(settings(&base, "individuals")).unwrap();
    let civil = HttpCivilRegistry::new(settings(&base, "civil_registry")).unwrap();
    let mobile = HttpMobileBase::new(settings(&base, "mobile_base")).unwrap();
    let unknown_bin = Bin::parse("210840000983").unwrap();

    assert_eq!(legal.organization(&unknown_bin).await.unwrap(), None);
    assert_eq!(
        elicense
            .permits(&unknown_bin, TRUSTED_SOFTWARE_SERVICE)
            .await
            .unwrap(),
        []
    );
    assert_eq!(people.person(&unknown).await.unwrap(), None);
    assert_eq!(civil.record(&unknown).await.unwrap(), None);
    assert_eq!(mobile.number(&unknown).await.unwrap(), None);
    let reissue = elicense
        .reissue(
            &IdempotencyKey::for_step("case-1", "reissue:X"),
            "KZ-NOPE",
            &bin(),
            "N",
        )
        .await;
    assert!(
        matches!(
            reissue,
            Err(AdapterError::Absent {
                system: "e_license"
            })
        ),
        "{reissue:?}"
    );
    assert_eq!(people.stats().snapshot().absent, 1);
}

#[tokio::test]
async fn a_first_head_with_a_bad_control_digit_fails_its_check_and_hides_its_digits() {
    let (_mock, base) = serve().await;
    let legal = HttpLegalEntities::new(settings(&base, "legal_entities")).unwrap();

    let org = legal
        .organization(&Bin::parse("190540043216").unwrap())
        .await
        .unwrap()
        .unwrap();

    let head = org.first_head.expect("the fixture names a head");
    assert!(!format!("{head:?}").contains("790415307771"), "{head:?}");
    let problem = head.check().unwrap_err().to_string();
    assert!(problem.contains("control digit"), "{problem}");
}

#[tokio::test]
async fn a_numeric_phone_from_the_mock_becomes_text() {
    let (_mock, base) = serve().await;
    let mobile = HttpMobileBase::new(settings(&base, "mobile_base")).unwrap();

    let number = mobile
        .number(&Iin::parse(OTHER_IIN).unwrap())
        .await
        .unwrap();

    assert_eq!(number.as_deref(), Some("87011234567"));
}

#[tokio::test]
async fn the_rename_feed_pages_with_its_cursor_and_keeps_a_numeric_bin_as_text() {
    let (mock, base) = serve().await;
    let legal = HttpLegalEntities::new(settings(&base, "legal_entities")).unwrap();

    let first = legal.renames(None, 2).await.unwrap();
    let second = legal.renames(Some(&first.next_cursor), 2).await.unwrap();
    let nothing_new = legal.renames(Some(&second.next_cursor), 2).await.unwrap();
    mock.rename(BIN, "ТОО «Тағы Жаңа»", at("2026-11-02T00:30:00+05:00"));
    let later = legal
        .renames(Some(&nothing_new.next_cursor), 2)
        .await
        .unwrap();

    let bins: Vec<_> = first
        .renames
        .iter()
        .chain(&second.renames)
        .map(|r| r.bin.as_str())
        .collect();
    assert_eq!(bins, [BIN, "190540043216", "70740739532"]);
    assert_eq!(first.renames[0].to, "ТОО «Жаңа Технологиялар»");
    assert!(nothing_new.renames.is_empty());
    assert_eq!(nothing_new.next_cursor, second.next_cursor);
    assert_eq!(later.renames.len(), 1);
    assert_eq!(later.renames[0].to, "ТОО «Тағы Жаңа»");
}

// ---------------------------------------------------------------- writes and idempotency

#[tokio::test]
async fn a_repeated_sms_key_returns_the_first_acceptance_and_sends_once() {
    let (mock, base) = serve().await;
    let sms = HttpSmsGateway::new(settings(&base, "sms")).unwrap();
    let key = IdempotencyKey::for_step("case-1", "sms:1");
    let to = Msisdn::parse(PHONE).unwrap();

    let first = sms.send(&key, &to, "Құрметті ... 1 ... 2").await.unwrap();
    mock.set_now(at("2026-11-02T02:00:00+05:00"));
    let again = sms.send(&key, &to, "Құрметті ... 1 ... 2").await.unwrap();

    assert_eq!(first, again);
    assert_eq!(first.accepted_at, at("2026-11-02T01:00:00+05:00"));
    let sent = mock.sent_sms();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, PHONE);
    assert_eq!(sent[0].idempotency_key, "case-1:sms:1");
}

#[tokio::test]
async fn replies_arrive_through_the_feed() {
    let (mock, base) = serve().await;
    let sms = HttpSmsGateway::new(settings(&base, "sms")).unwrap();
    let start = sms.replies(None, 100).await.unwrap();

    let id = mock.sms_reply("8 701 123 45 67", " 1.");
    let page = sms.replies(Some(&start.next_cursor), 100).await.unwrap();

    assert!(start.replies.is_empty());
    assert_eq!(page.replies.len(), 1);
    assert_eq!(page.replies[0].message_id, id);
    assert_eq!(page.replies[0].from, "8 701 123 45 67");
    assert_eq!(page.replies[0].text, " 1.");
    assert_eq!(page.replies[0].received_at, at("2026-11-02T01:00:00+05:00"));
}

#[tokio::test]
async fn a_repeated_reissue_key_returns_the_first_result() {
    let (mock, base) = serve().await;
    let elicense = HttpELicense::new(settings(&base, "e_license")).unwrap();
    let key = IdempotencyKey::for_step("case-2", "reissue:KZ-TS-0001");

    let first = elicense
        .reissue(&key, "KZ-TS-0001", &bin(), "ТОО «Жаңа Технологиялар»")
        .await
        .unwrap();
    let again = elicense
        .reissue(&key, "KZ-TS-0001", &bin(), "ТОО «Жаңа Технологиялар»")
        .await
        .unwrap();

    assert_eq!(first, again);
    assert_eq!(first.holder_name, "ТОО «Жаңа Технологиялар»");
    let state = mock.state();
    let permit = state
        .permits
        .iter()
        .find(|p| p.permit_id == "KZ-TS-0001")
        .unwrap();
    assert_eq!(permit.holder_name, "ТОО «Жаңа Технологиялар»");
    assert_eq!(
        permit.idempotency_key.as_deref(),
        Some("case-2:reissue:KZ-TS-0001")
    );
}

#[tokio::test]
async fn a_reissue_of_a_revoked_permit_is_rejected() {
    let (_mock, base) = serve().await;
    let elicense = HttpELicense::new(settings(&base, "e_license")).unwrap();

    let result = elicense
        .reissue(
            &IdempotencyKey::for_step("case-2", "reissue:KZ-TS-0002"),
            "KZ-TS-0002",
            &bin(),
            "N",
        )
        .await;

    assert!(
        matches!(&result, Err(AdapterError::Permanent { status: 422, detail, .. }) if detail.contains("revoked")),
        "{result:?}"
    );
}

#[tokio::test]
async fn consent_and_sdu_writes_happen_once_per_key() {
    let (mock, base) = serve().await;
    let consent = HttpConsentService::new(settings(&base, "consent")).unwrap();
    let sdu = HttpSdu::new(settings(&base, "sdu")).unwrap();
    let consent_key = IdempotencyKey::for_step("case-4", "consent");
    let sdu_key = IdempotencyKey::for_step("case-4", "sdu");
    let record = SduRecord {
        case_id: 4,
        bin: bin(),
        new_name: "ТОО «Жаңа Технологиялар»".into(),
        head_iin: iin(),
        permit_ids: vec!["KZ-TS-0001".into()],
    };

    let c1 = consent
        .record(&consent_key, &iin(), &bin(), "permit_reissue")
        .await
        .unwrap();
    let c2 = consent
        .record(&consent_key, &iin(), &bin(), "permit_reissue")
        .await
        .unwrap();
    let s1 = sdu.write_back(&sdu_key, &record).await.unwrap();
    let s2 = sdu.write_back(&sdu_key, &record).await.unwrap();

    assert_eq!(c1, c2);
    assert_eq!(s1, s2);
    let state = mock.state();
    assert_eq!(state.consents.len(), 1);
    assert_eq!(state.consents[0].idempotency_key, "case-4:consent");
    assert_eq!(state.sdu_records.len(), 1);
    assert_eq!(state.sdu_records[0].record_id, s1.record_id);
}

// ---------------------------------------------------------------- faults

/// Twenty lookups through a fault that hits about half the requests, with enough attempts to get through.
async fn lookups_get_through(mode: FaultMode) {
    let (mock, base) = serve().await;
    mock.set_fault(fault(SystemName::Individuals, mode, 0.5));
    let people = HttpIndividuals::new(with_attempts(settings(&base, "individuals"), 12)).unwrap();

    for _ in 0..20 {
        assert!(people.person(&iin()).await.unwrap().is_some());
    }

    let stats = people.stats().snapshot();
    assert_eq!((stats.calls, stats.errors), (20, 0));
    assert!(stats.attempts > 20, "no request was faulted: {stats:?}");
    assert_eq!(calls_to(&mock, "individuals"), stats.attempts);
}

#[tokio::test]
async fn an_unavailable_system_is_retried_then_succeeds() {
    lookups_get_through(FaultMode::Unavailable).await;
}

#[tokio::test]
async fn an_erroring_system_is_retried_then_succeeds() {
    lookups_get_through(FaultMode::Error).await;
}

#[tokio::test]
async fn a_malformed_answer_is_retried_then_succeeds() {
    lookups_get_through(FaultMode::Malformed).await;
}

/// A fault on every request: the call makes all its attempts and ends in a transient error.
async fn retries_are_exhausted(mode: FaultMode, delay_ms: u64, needle: &str) {
    let (mock, base) = serve().await;
    mock.set_fault(Fault {
        delay_ms,
        ..fault(SystemName::CivilRegistry, mode, 1.0)
    });
    let civil = HttpCivilRegistry::new(HttpSettings {
        timeout: Duration::from_millis(300),
        ..settings(&base, "civil_registry")
    })
    .unwrap();

    let result = civil.record(&iin()).await;

    match result {
        Err(AdapterError::Transient { system, detail }) => {
            assert_eq!(system, "civil_registry");
            assert!(detail.contains(needle), "{detail:?} lacks {needle:?}");
            assert!(detail.contains("after 3 attempts"), "{detail}");
        }
        other => panic!("expected a transient error, got {other:?}"),
    }
    assert_eq!(calls_to(&mock, "civil_registry"), 3);
}

#[tokio::test]
async fn an_unavailable_system_exhausts_the_retries_with_a_transient_error() {
    retries_are_exhausted(FaultMode::Unavailable, 0, "status 503").await;
}

#[tokio::test]
async fn an_erroring_system_exhausts_the_retries_with_a_transient_error() {
    retries_are_exhausted(FaultMode::Error, 0, "status 500").await;
}

#[tokio::test]
async fn a_malformed_answer_every_time_is_a_transient_error() {
    retries_are_exhausted(FaultMode::Malformed, 0, "not JSON").await;
}

#[tokio::test]
async fn a_system_slower_than_the_timeout_is_a_transient_error() {
    retries_are_exhausted(FaultMode::Slow, 2_000, "timed out").await;
}

#[tokio::test]
async fn a_slow_system_within_the_timeout_answers() {
    let (mock, base) = serve().await;
    mock.set_fault(Fault {
        delay_ms: 150,
        ..fault(SystemName::MobileBase, FaultMode::Slow, 1.0)
    });
    let mobile = HttpMobileBase::new(settings(&base, "mobile_base")).unwrap();

    assert_eq!(mobile.number(&iin()).await.unwrap().as_deref(), Some(PHONE));
    assert!(mobile.stats().snapshot().max >= Duration::from_millis(150));
}

#[tokio::test]
async fn a_fault_cleared_mid_way_lets_a_retry_succeed() {
    let (mock, base) = serve().await;
    mock.set_fault(fault(
        SystemName::LegalEntities,
        FaultMode::Unavailable,
        1.0,
    ));
    let legal = HttpLegalEntities::new(HttpSettings {
        retry: RetryPolicy {
            max_attempts: 50,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(40),
        },
        ..settings(&base, "legal_entities")
    })
    .unwrap();
    let healer = {
        let mock = mock.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            mock.clear_faults();
        })
    };

    let org = legal.organization(&bin()).await.unwrap();

    healer.await.unwrap();
    assert!(org.is_some());
    assert!(legal.stats().snapshot().attempts > 1);
}

#[tokio::test]
async fn a_write_whose_answer_was_garbled_is_retried_and_applied_once() {
    // `malformed` lets the write happen and garbles its answer, as a gateway that fails after committing.
    let (mock, base) = serve().await;
    mock.set_fault(fault(SystemName::Sms, FaultMode::Malformed, 1.0));
    let sms = HttpSmsGateway::new(HttpSettings {
        retry: RetryPolicy {
            max_attempts: 50,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(40),
        },
        ..settings(&base, "sms")
    })
    .unwrap();
    let healer = {
        let mock = mock.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            mock.clear_faults();
        })
    };

    let sent = sms
        .send(
            &IdempotencyKey::for_step("case-5", "sms:1"),
            &Msisdn::parse(PHONE).unwrap(),
            "t",
        )
        .await
        .unwrap();

    healer.await.unwrap();
    assert!(sms.stats().snapshot().attempts > 1);
    let accepted = mock.sent_sms();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].message_id, sent.message_id);
}

// ---------------------------------------------------------------- rate limit

/// 100 calls at a limit of 50/s, all queued at once. The limit is an upper bound, so that side is held
/// tight: over the steady state (the 10th to the 100th call, past start-up effects) the rate is at most
/// 10% above the limit. A loaded machine can only make the calls slower, so the lower bound is generous;
/// it still catches a limiter that admits far less than asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_rate_limit_holds_within_ten_percent() {
    let (mock, base) = serve().await;
    let people = Arc::new(
        HttpIndividuals::new(HttpSettings {
            rate_limit_per_sec: Some(50),
            ..settings(&base, "individuals")
        })
        .unwrap(),
    );

    let started = common::now();
    let calls = (0..100).map(|_| {
        let people = Arc::clone(&people);
        tokio::spawn(async move {
            people.person(&iin()).await.unwrap();
            common::now()
        })
    });
    let mut finished: Vec<Instant> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let elapsed = started.elapsed();
    finished.sort();

    let window = finished[99] - finished[9];
    let rate = 90.0 / window.as_secs_f64();
    assert!(
        rate <= 55.0,
        "faster than the limit: {rate:.1}/s over {window:?}"
    );
    assert!(
        rate >= 30.0,
        "far slower than the limit: {rate:.1}/s over {window:?}"
    );
    // 99 gaps of 20 ms after the first call: never sooner than 1.98 s.
    assert!(elapsed >= Duration::from_millis(1950), "{elapsed:?}");
    assert_eq!(calls_to(&mock, "individuals"), 100);
}
