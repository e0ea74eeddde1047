//! Injected faults: each mode, the seeded rate, writes under faults, and what faults never touch.

mod common;

use std::time::Duration;

use common::{fixture_mock, get, post, serve};
use mock_registries::{Fault, FaultMode, SystemName};
use serde_json::{Value, json};

fn fault(system: SystemName, mode: FaultMode) -> Fault {
    Fault {
        system,
        mode,
        rate: 1.0,
        delay_ms: 0,
    }
}

#[tokio::test]
async fn an_unavailable_system_answers_503_with_retry_after_until_cleared() {
    let mock = fixture_mock();
    let base = serve(&mock).await;
    let c = reqwest::Client::new();
    let (s, _) = post(
        &c,
        &format!("{base}/_control/faults"),
        None,
        &json!({"system": "e_license", "mode": "unavailable", "rate": 1.0}),
    )
    .await;
    assert_eq!(s, 200);

    let res = c
        .get(format!("{base}/e_license/permits?bin=190540043216"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 503);
    assert_eq!(
        res.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    // Other systems are untouched.
    assert_eq!(
        get(&c, &format!("{base}/individuals/persons/790415307770"))
            .await
            .0,
        200
    );

    let res = c
        .delete(format!("{base}/_control/faults"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        get(&c, &format!("{base}/e_license/permits?bin=190540043216"))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn an_error_fault_answers_500() {
    let mock = fixture_mock();
    mock.set_fault(fault(SystemName::CivilRegistry, FaultMode::Error));
    let base = serve(&mock).await;
    let c = reqwest::Client::new();
    let (s, body) = get(&c, &format!("{base}/civil_registry/records/790415307770")).await;
    assert_eq!(s, 500);
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn a_slow_system_answers_normally_after_the_delay() {
    let mock = fixture_mock();
    mock.set_fault(Fault {
        system: SystemName::MobileBase,
        mode: FaultMode::Slow,
        rate: 1.0,
        delay_ms: 300,
    });
    let base = serve(&mock).await;
    let c = reqwest::Client::new();
    let started = common::now();
    let (s, body) = get(&c, &format!("{base}/mobile_base/numbers/790415307770")).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(s, 200);
    assert_eq!(body["phone"], "+77011234567");
}

#[tokio::test]
async fn a_malformed_answer_is_200_with_a_body_that_is_not_json() {
    let mock = fixture_mock();
    mock.set_fault(fault(SystemName::LegalEntities, FaultMode::Malformed));
    let base = serve(&mock).await;
    let c = reqwest::Client::new();
    let res = c
        .get(format!("{base}/legal_entities/organizations/190540043216"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 200);
    let text = res.text().await.expect("body");
    assert!(!text.is_empty());
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
}

#[tokio::test]
async fn a_write_hit_by_unavailable_or_error_records_nothing() {
    let mock = fixture_mock();
    let base = serve(&mock).await;
    let c = reqwest::Client::new();
    let body = json!({"to": "+77011234567", "text": "t"});
    for mode in [FaultMode::Unavailable, FaultMode::Error] {
        mock.set_fault(fault(SystemName::Sms, mode));
        let res = c
            .post(format!("{base}/sms/messages"))
            .header("Idempotency-Key", "k")
            .json(&body)
            .send()
            .await
            .expect("request");
        assert!(res.status().is_server_error());
    }
    assert!(mock.sent_sms().is_empty());
    mock.clear_faults();
    let (s, first) = post(&c, &format!("{base}/sms/messages"), Some("k"), &body).await;
    assert_eq!(s, 200);
    assert_eq!(first["message_id"], "m-1");
}

#[tokio::test]
async fn a_write_hit_by_malformed_is_recorded_and_its_retry_gets_the_first_answer() {
    let mock = fixture_mock();
    mock.set_fault(fault(SystemName::Sms, FaultMode::Malformed));
    let base = serve(&mock).await;
    let c = reqwest::Client::new();
    let body = json!({"to": "+77011234567", "text": "t"});
    let res = c
        .post(format!("{base}/sms/messages"))
        .header("Idempotency-Key", "k")
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 200);
    assert!(serde_json::from_str::<Value>(&res.text().await.expect("body")).is_err());
    assert_eq!(
        mock.sent_sms().len(),
        1,
        "the gateway committed before failing"
    );

    mock.clear_fault(SystemName::Sms);
    let (s, again) = post(&c, &format!("{base}/sms/messages"), Some("k"), &body).await;
    assert_eq!(s, 200);
    assert_eq!(again["message_id"], "m-1");
    assert_eq!(mock.sent_sms().len(), 1);
}

/// The statuses of `n` GETs to the mobile base under a 50 % `unavailable` fault with this seed.
async fn pattern(seed: u64, n: usize) -> Vec<u16> {
    let scenario = mock_registries::Scenario::parse(common::FIXTURE).expect("fixture");
    let mock = mock_registries::Mock::from_registries(&scenario.registries, seed);
    mock.set_fault(Fault {
        system: SystemName::MobileBase,
        mode: FaultMode::Unavailable,
        rate: 0.5,
        delay_ms: 0,
    });
    let base = serve(&mock).await;
    let c = reqwest::Client::new();
    let mut out = Vec::new();
    for _ in 0..n {
        let res = c
            .get(format!("{base}/mobile_base/numbers/790415307770"))
            .send()
            .await
            .expect("request");
        out.push(res.status().as_u16());
    }
    out
}

#[tokio::test]
async fn a_fault_rate_is_a_seeded_chance_so_runs_repeat() {
    let a = pattern(7, 200).await;
    let b = pattern(7, 200).await;
    let other = pattern(8, 200).await;
    assert_eq!(a, b, "same seed, same faults");
    assert_ne!(a, other, "another seed, other faults");
    let failed = a.iter().filter(|s| **s == 503).count();
    assert!(
        (60..=140).contains(&failed),
        "about half of 200 fail, got {failed}"
    );
}

#[tokio::test]
async fn faults_never_touch_control_endpoints_or_the_openapi_document() {
    let mock = fixture_mock();
    for system in SystemName::ALL {
        mock.set_fault(fault(system, FaultMode::Error));
    }
    let base = serve(&mock).await;
    let c = reqwest::Client::new();
    for path in [
        "/_control/state",
        "/_control/sms/sent",
        "/_control/clock",
        "/_control/faults",
        "/openapi.json",
    ] {
        let res = c
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status().as_u16(), 200, "{path}");
    }
    let (s, _) = post(
        &c,
        &format!("{base}/_control/sms/reply"),
        None,
        &json!({"from": "+7", "text": "1"}),
    )
    .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn a_new_fault_replaces_the_old_one_and_one_system_can_be_cleared_alone() {
    let mock = fixture_mock();
    let base = serve(&mock).await;
    let c = reqwest::Client::new();
    mock.set_fault(fault(SystemName::Sms, FaultMode::Error));
    mock.set_fault(fault(SystemName::Sms, FaultMode::Unavailable));
    mock.set_fault(fault(SystemName::Consent, FaultMode::Error));
    assert_eq!(mock.active_faults().len(), 2);
    assert_eq!(get(&c, &format!("{base}/sms/replies")).await.0, 503);

    let res = c
        .delete(format!("{base}/_control/faults?system=sms"))
        .send()
        .await
        .expect("request");
    let remaining: Value = res.json().await.expect("JSON");
    assert_eq!(remaining["faults"].as_array().map(Vec::len), Some(1));
    assert_eq!(remaining["faults"][0]["system"], "consent");
    assert_eq!(get(&c, &format!("{base}/sms/replies")).await.0, 200);

    let res = c
        .delete(format!("{base}/_control/faults?system=nonsense"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 400);
}

#[tokio::test]
async fn a_fault_request_with_a_bad_rate_or_unknown_system_is_400() {
    let base = serve(&fixture_mock()).await;
    let c = reqwest::Client::new();
    for body in [
        json!({"system": "sms", "mode": "error", "rate": 1.5}),
        json!({"system": "telegraph", "mode": "error"}),
        json!({"system": "sms", "mode": "sulking"}),
    ] {
        let (s, _) = post(&c, &format!("{base}/_control/faults"), None, &body).await;
        assert_eq!(s, 400, "{body}");
    }
    let (s, f) = post(
        &c,
        &format!("{base}/_control/faults"),
        None,
        &json!({"system": "sms", "mode": "slow"}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        f["faults"][0],
        json!({"system": "sms", "mode": "slow", "rate": 1.0, "delay_ms": 0})
    );
}
