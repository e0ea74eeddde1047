//! Idempotent writes: SMS, consent, re-issue, SDU write-back; replies; what the control endpoints report.

mod common;

use common::{at, fixture_mock, get, post, serve};
use serde_json::json;

#[tokio::test]
async fn a_repeated_sms_key_returns_the_first_answer_and_sends_nothing_new() {
    let mock = fixture_mock();
    mock.set_now(at("2026-11-02T09:00:00+05:00"));
    let base = serve(&mock).await;
    let c = reqwest::Client::new();
    let body = json!({"to": "+77011234567", "text": "1 немесе 2"});

    let (s, first) = post(&c, &format!("{base}/sms/messages"), Some("k-1"), &body).await;
    assert_eq!(s, 200);
    assert_eq!(first["message_id"], "m-1");
    assert_eq!(first["accepted_at"], "2026-11-02T04:00:00Z");

    mock.set_now(at("2026-11-02T10:00:00+05:00"));
    let other = json!({"to": "+77000000000", "text": "different"});
    let (s, again) = post(&c, &format!("{base}/sms/messages"), Some("k-1"), &other).await;
    assert_eq!(s, 200);
    assert_eq!(again, first, "same id, same time");

    let (_, second) = post(&c, &format!("{base}/sms/messages"), Some("k-2"), &body).await;
    assert_eq!(second["message_id"], "m-2");

    let sent = mock.sent_sms();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].idempotency_key, "k-1");
    assert_eq!(sent[0].to, "+77011234567");
    let (_, over_http) = get(&c, &format!("{base}/_control/sms/sent")).await;
    assert_eq!(over_http.as_array().map(Vec::len), Some(2));
    assert_eq!(over_http[1]["idempotency_key"], "k-2");
    assert_eq!(over_http[0]["accepted_at"], "2026-11-02T04:00:00Z");
}

#[tokio::test]
async fn a_write_without_an_idempotency_key_is_400_and_records_nothing() {
    let mock = fixture_mock();
    let base = serve(&mock).await;
    let c = reqwest::Client::new();
    let cases = [
        ("/sms/messages", json!({"to": "+77011234567", "text": "x"})),
        (
            "/consent/consents",
            json!({"iin": "790415307770", "bin": "190540043216", "purpose": "p"}),
        ),
        (
            "/sdu/records",
            json!({"case_id": 1, "bin": "190540043216", "new_name": "n", "head_iin": "790415307770",
                   "permit_ids": ["KZ-TS-0001"]}),
        ),
        (
            "/e_license/permits/KZ-TS-0001/reissue",
            json!({"bin": "190540043216", "holder_name": "n"}),
        ),
    ];
    for (path, body) in cases {
        let (s, err) = post(&c, &format!("{base}{path}"), None, &body).await;
        assert_eq!(s, 400, "{path}");
        assert!(err["error"].is_string());
    }
    assert!(mock.sent_sms().is_empty());
    let state = mock.state();
    assert!(state.consents.is_empty() && state.sdu_records.is_empty());
    assert!(state.permits.iter().all(|p| p.idempotency_key.is_none()));
}

#[tokio::test]
async fn a_body_that_is_not_the_expected_json_is_400() {
    let base = serve(&fixture_mock()).await;
    let c = reqwest::Client::new();
    let res = c
        .post(format!("{base}/sms/messages"))
        .header("Idempotency-Key", "k")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 400);
    let (s, _) = post(
        &c,
        &format!("{base}/consent/consents"),
        Some("k"),
        &json!({"iin": "1"}),
    )
    .await;
    assert_eq!(s, 400, "missing bin and purpose");
}

#[tokio::test]
async fn a_reissue_renames_the_permit_once_and_records_its_key() {
    let mock = fixture_mock();
    mock.set_now(at("2026-11-02T12:00:00+05:00"));
    let base = serve(&mock).await;
    let c = reqwest::Client::new();
    let url = format!("{base}/e_license/permits/KZ-TS-0001/reissue");
    let body = json!({"bin": "190540043216", "holder_name": "ТОО «Жаңа Технологиялар»"});

    let (s, first) = post(&c, &url, Some("r-1"), &body).await;
    assert_eq!(s, 200);
    assert_eq!(
        first,
        json!({"permit_id": "KZ-TS-0001", "bin": "190540043216", "service": "trusted_software_register",
               "holder_name": "ТОО «Жаңа Технологиялар»", "status": "active",
               "reissued_at": "2026-11-02T07:00:00Z"})
    );
    let other = json!({"bin": "190540043216", "holder_name": "Something else"});
    let (_, again) = post(&c, &url, Some("r-1"), &other).await;
    assert_eq!(again, first);

    let (_, permits) = get(&c, &format!("{base}/e_license/permits?bin=190540043216")).await;
    assert_eq!(
        permits["permits"][0]["holder_name"],
        "ТОО «Жаңа Технологиялар»"
    );

    let state = mock.state();
    let p = state
        .permits
        .iter()
        .find(|p| p.permit_id == "KZ-TS-0001")
        .expect("listed");
    assert_eq!(p.holder_name, "ТОО «Жаңа Технологиялар»");
    assert_eq!(p.idempotency_key.as_deref(), Some("r-1"));
    assert_eq!(state.permits.len(), 3, "a fixture lists every permit");
}

#[tokio::test]
async fn a_reissue_of_an_unknown_revoked_or_foreign_permit_is_rejected() {
    let mock = fixture_mock();
    let base = serve(&mock).await;
    let c = reqwest::Client::new();
    let body = json!({"bin": "190540043216", "holder_name": "n"});

    let (s, _) = post(
        &c,
        &format!("{base}/e_license/permits/NOPE/reissue"),
        Some("a"),
        &body,
    )
    .await;
    assert_eq!(s, 404);
    let (s, e) = post(
        &c,
        &format!("{base}/e_license/permits/KZ-TS-0002/reissue"),
        Some("b"),
        &body,
    )
    .await;
    assert_eq!(s, 422);
    assert!(e["error"].as_str().unwrap_or_default().contains("revoked"));
    let foreign = json!({"bin": "210840000983", "holder_name": "n"});
    let (s, _) = post(
        &c,
        &format!("{base}/e_license/permits/KZ-TS-0001/reissue"),
        Some("c"),
        &foreign,
    )
    .await;
    assert_eq!(s, 422);

    // A rejection is not remembered: the same key succeeds once the request is right.
    let (s, _) = post(
        &c,
        &format!("{base}/e_license/permits/KZ-TS-0001/reissue"),
        Some("c"),
        &body,
    )
    .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn consents_and_sdu_records_are_kept_once_per_key_with_their_keys() {
    let mock = fixture_mock();
    mock.set_now(at("2026-11-02T12:00:00+05:00"));
    let base = serve(&mock).await;
    let c = reqwest::Client::new();
    let consent = json!({"iin": "790415307770", "bin": "190540043216", "purpose": "reissue"});
    let (s, c1) = post(
        &c,
        &format!("{base}/consent/consents"),
        Some("case-1:consent"),
        &consent,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        c1,
        json!({"consent_id": "c-1", "recorded_at": "2026-11-02T07:00:00Z"})
    );
    let (_, c2) = post(
        &c,
        &format!("{base}/consent/consents"),
        Some("case-1:consent"),
        &consent,
    )
    .await;
    assert_eq!(c2, c1);

    let record = json!({"case_id": 1, "bin": "190540043216", "new_name": "ТОО «Жаңа Технологиялар»",
                        "head_iin": "790415307770", "permit_ids": ["KZ-TS-0001"]});
    let (s, s1) = post(
        &c,
        &format!("{base}/sdu/records"),
        Some("case-1:sdu"),
        &record,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(s1["record_id"], "s-1");
    assert_eq!(s1["written_at"], "2026-11-02T07:00:00Z");
    post(
        &c,
        &format!("{base}/sdu/records"),
        Some("case-1:sdu"),
        &record,
    )
    .await;

    let (_, state) = get(&c, &format!("{base}/_control/state")).await;
    assert_eq!(state["consents"].as_array().map(Vec::len), Some(1));
    assert_eq!(state["consents"][0]["idempotency_key"], "case-1:consent");
    assert_eq!(state["consents"][0]["iin"], "790415307770");
    assert_eq!(state["sdu_records"].as_array().map(Vec::len), Some(1));
    assert_eq!(state["sdu_records"][0]["idempotency_key"], "case-1:sdu");
    assert_eq!(state["sdu_records"][0]["permit_ids"], json!(["KZ-TS-0001"]));
}

#[tokio::test]
async fn replies_arrive_through_the_control_endpoint_with_sequential_ids_and_the_mock_time() {
    let mock = fixture_mock();
    mock.set_now(at("2026-11-02T12:30:00+05:00"));
    let base = serve(&mock).await;
    let c = reqwest::Client::new();

    let (s, r1) = post(
        &c,
        &format!("{base}/_control/sms/reply"),
        None,
        &json!({"from": "+77011234567", "text": "1"}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(r1["message_id"], "r-1");
    assert_eq!(r1["received_at"], "2026-11-02T07:30:00Z");
    assert_eq!(mock.sms_reply("+77011234567", " 2. "), "r-2");

    let (_, page) = get(&c, &format!("{base}/sms/replies?limit=1")).await;
    assert_eq!(page["replies"][0]["message_id"], "r-1");
    assert_eq!(page["replies"][0]["from"], "+77011234567");
    assert_eq!(page["next_cursor"], "1");
    let (_, page) = get(&c, &format!("{base}/sms/replies?cursor=1")).await;
    assert_eq!(page["replies"][0]["text"], " 2. ");
    assert_eq!(page["next_cursor"], "2");
    let (_, page) = get(&c, &format!("{base}/sms/replies?cursor=2")).await;
    assert_eq!(page, json!({"replies": [], "next_cursor": "2"}));
    let (s, _) = get(&c, &format!("{base}/sms/replies?cursor=abc")).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn identifiers_in_a_write_must_be_strings_or_numbers_even_on_a_replay() {
    let mock = fixture_mock();
    let base = serve(&mock).await;
    let c = reqwest::Client::new();
    let good = json!({"iin": 790415307770u64, "bin": "190540043216", "purpose": "p"});
    let (s, _) = post(&c, &format!("{base}/consent/consents"), Some("k"), &good).await;
    assert_eq!(s, 200, "a number is kept as sent");
    let bad = json!({"iin": {}, "bin": "190540043216", "purpose": "p"});
    let (s, _) = post(&c, &format!("{base}/consent/consents"), Some("k"), &bad).await;
    assert_eq!(s, 400);
    let (s, _) = post(
        &c,
        &format!("{base}/_control/sms/reply"),
        None,
        &json!({"from": [], "text": "1"}),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(mock.state().consents.len(), 1);
    assert_eq!(mock.state().consents[0].iin, json!(790415307770u64));
}

#[tokio::test]
async fn a_cursor_or_limit_beyond_any_feed_gives_an_empty_or_capped_page() {
    let base = serve(&fixture_mock()).await;
    let c = reqwest::Client::new();
    let (s, page) = get(
        &c,
        &format!("{base}/sms/replies?cursor=99999999999999999999999&limit=99999999999999999999"),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(page["replies"], json!([]));
    let (s, _) = get(
        &c,
        &format!("{base}/legal_entities/renames?cursor=99999999999999999999999"),
    )
    .await;
    assert_eq!(s, 200);
}
