//! Each system's read endpoints: a record found, a record absent, identifiers served as the fixture holds them.

mod common;

use common::{fixture_mock, get, serve};
use serde_json::json;

#[tokio::test]
async fn an_organisation_is_served_by_bin_and_an_unknown_bin_is_404() {
    let base = serve(&fixture_mock()).await;
    let c = reqwest::Client::new();

    let (status, org) = get(
        &c,
        &format!("{base}/legal_entities/organizations/190540043216"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        org,
        json!({"bin": "190540043216", "name": "ТОО «Жаңа Технологиялар»", "status": "active",
               "first_head": "790415307770"})
    );

    let (status, org) = get(
        &c,
        &format!("{base}/legal_entities/organizations/210840000983"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(org["status"], "liquidated");
    assert_eq!(org["first_head"], json!(null));

    let (status, body) = get(
        &c,
        &format!("{base}/legal_entities/organizations/000000000000"),
    )
    .await;
    assert_eq!(status, 404);
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn an_unquoted_bin_is_served_as_a_json_number() {
    let base = serve(&fixture_mock()).await;
    let c = reqwest::Client::new();
    let (status, org) = get(
        &c,
        &format!("{base}/legal_entities/organizations/70740739532"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(org["bin"], json!(70740739532u64));
    let (_, numbers) = get(&c, &format!("{base}/mobile_base/numbers/860101403216")).await;
    assert_eq!(numbers["phone"], json!(87011234567u64));
}

#[tokio::test]
async fn permits_are_filtered_by_service_and_an_unknown_bin_has_none() {
    let base = serve(&fixture_mock()).await;
    let c = reqwest::Client::new();

    let (status, all) = get(&c, &format!("{base}/e_license/permits?bin=190540043216")).await;
    assert_eq!(status, 200);
    assert_eq!(all["permits"].as_array().map(Vec::len), Some(3));

    let (_, tsr) = get(
        &c,
        &format!("{base}/e_license/permits?bin=190540043216&service=trusted_software_register"),
    )
    .await;
    let ids: Vec<_> = tsr["permits"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["permit_id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(ids, ["KZ-TS-0001", "KZ-TS-0002"]);
    assert_eq!(tsr["permits"][1]["status"], "revoked");

    let (status, none) = get(&c, &format!("{base}/e_license/permits?bin=999999999999")).await;
    assert_eq!(status, 200);
    assert_eq!(none, json!({"permits": []}));

    let (status, _) = get(&c, &format!("{base}/e_license/permits")).await;
    assert_eq!(status, 400, "bin is required");
}

#[tokio::test]
async fn a_person_a_civil_record_and_a_number_are_found_or_404() {
    let base = serve(&fixture_mock()).await;
    let c = reqwest::Client::new();
    let known = "790415307770";
    let unknown = "860101403216";

    let (s, p) = get(&c, &format!("{base}/individuals/persons/{known}")).await;
    assert_eq!(s, 200);
    assert_eq!(
        p,
        json!({"iin": known, "name": "Серік Ахметов", "residence_abroad": false,
               "incapacitated": false, "imprisoned": false})
    );
    assert_eq!(
        get(&c, &format!("{base}/individuals/persons/{unknown}"))
            .await
            .0,
        404
    );

    let (s, r) = get(&c, &format!("{base}/civil_registry/records/{known}")).await;
    assert_eq!(s, 200);
    assert_eq!(r["deceased"], false);
    assert_eq!(
        get(&c, &format!("{base}/civil_registry/records/{unknown}"))
            .await
            .0,
        404
    );

    let (s, m) = get(&c, &format!("{base}/mobile_base/numbers/{known}")).await;
    assert_eq!(s, 200);
    assert_eq!(m, json!({"iin": known, "phone": "+77011234567"}));
    assert_eq!(
        get(&c, &format!("{base}/mobile_base/numbers/000000000000"))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn an_unknown_path_and_a_wrong_method_answer_json_errors() {
    let base = serve(&fixture_mock()).await;
    let c = reqwest::Client::new();
    let (s, body) = get(&c, &format!("{base}/e_license/nothing")).await;
    assert_eq!(s, 404);
    assert!(body["error"].is_string());

    let res = c
        .delete(format!("{base}/individuals/persons/790415307770"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 405);
    let body: serde_json::Value = res.json().await.expect("JSON");
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn requests_are_counted_per_system() {
    let mock = fixture_mock();
    let base = serve(&mock).await;
    let c = reqwest::Client::new();
    get(&c, &format!("{base}/individuals/persons/790415307770")).await;
    get(&c, &format!("{base}/individuals/persons/000000000000")).await;
    get(&c, &format!("{base}/_control/state")).await;
    let counts = mock.call_counts();
    assert_eq!(counts["individuals"], 2);
    assert_eq!(counts["e_license"], 0);
    assert_eq!(counts.len(), 8);
    let (_, over_http) = get(&c, &format!("{base}/_control/calls")).await;
    assert_eq!(over_http["individuals"], 2);
}
