//! The rename feed (order, cursor, visibility by the mock clock) and the scenario events that change the
//! registries (`rename`, `update`), in-process and through the control endpoints.

mod common;

use common::{at, fixture_mock, get, post, serve};
use mock_registries::SystemName;
use serde_json::{Value, json};

fn froms(page: &Value) -> Vec<String> {
    page["renames"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["from"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn the_feed_is_ordered_by_time_and_tells_each_renames_new_name() {
    let mock = fixture_mock();
    mock.set_now(at("2026-11-02T02:00:00+05:00"));
    let base = serve(&mock).await;
    let c = reqwest::Client::new();
    let (s, page) = get(&c, &format!("{base}/legal_entities/renames")).await;
    assert_eq!(s, 200);
    assert_eq!(
        page["renames"],
        json!([
            {"bin": "210840000983", "at": "2026-11-01T05:00:00Z", "from": "ЖШС «Бір»", "to": "ЖШС «Екі»"},
            {"bin": "210840000983", "at": "2026-11-01T07:00:00Z", "from": "ЖШС «Екі»", "to": "ЖШС «Үш»"},
            {"bin": "190540043216", "at": "2026-11-01T10:00:00Z", "from": "ТОО «Ескі Технологиялар»",
             "to": "ТОО «Жаңа Технологиялар»"},
            {"bin": 70740739532u64, "at": "2026-11-01T15:00:00Z", "from": "АО «Строка»", "to": "АО «Число»"},
        ])
    );
    assert_eq!(page["next_cursor"], "4");
}

#[tokio::test]
async fn only_renames_up_to_the_mock_clock_are_visible_and_the_cursor_picks_up_the_rest() {
    let mock = fixture_mock();
    mock.set_now(at("2026-11-01T13:00:00+05:00"));
    let base = serve(&mock).await;
    let c = reqwest::Client::new();

    let (_, page) = get(&c, &format!("{base}/legal_entities/renames")).await;
    assert_eq!(froms(&page), ["ЖШС «Бір»", "ЖШС «Екі»"]);
    let cursor = page["next_cursor"].as_str().unwrap_or_default().to_string();
    assert_eq!(cursor, "2");

    let (_, same) = get(
        &c,
        &format!("{base}/legal_entities/renames?cursor={cursor}"),
    )
    .await;
    assert_eq!(
        same,
        json!({"renames": [], "next_cursor": "2"}),
        "nothing new yet"
    );

    mock.set_now(at("2026-11-02T00:00:00+05:00"));
    let (_, rest) = get(
        &c,
        &format!("{base}/legal_entities/renames?cursor={cursor}"),
    )
    .await;
    assert_eq!(froms(&rest), ["ТОО «Ескі Технологиялар»", "АО «Строка»"]);
    assert_eq!(rest["next_cursor"], "4");
}

#[tokio::test]
async fn the_limit_pages_through_the_feed_one_by_one() {
    let mock = fixture_mock();
    mock.set_now(at("2026-11-03T00:00:00+05:00"));
    let base = serve(&mock).await;
    let c = reqwest::Client::new();
    let mut cursor = String::new();
    let mut seen = Vec::new();
    for _ in 0..6 {
        let (_, page) = get(
            &c,
            &format!("{base}/legal_entities/renames?limit=1&cursor={cursor}"),
        )
        .await;
        seen.extend(froms(&page));
        cursor = page["next_cursor"].as_str().unwrap_or_default().to_string();
    }
    assert_eq!(seen.len(), 4);
    assert_eq!(cursor, "4");
    assert_eq!(
        get(&c, &format!("{base}/legal_entities/renames?cursor=x"))
            .await
            .0,
        400
    );
    assert_eq!(
        get(&c, &format!("{base}/legal_entities/renames?limit=-1"))
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn a_rename_event_changes_the_name_and_appears_after_the_cursor() {
    let mock = fixture_mock();
    mock.set_now(at("2026-11-04T10:00:00+05:00"));
    let base = serve(&mock).await;
    let c = reqwest::Client::new();
    let (_, page) = get(&c, &format!("{base}/legal_entities/renames")).await;
    let cursor = page["next_cursor"].as_str().unwrap_or_default().to_string();

    mock.rename(
        "190540043216",
        "ТОО «Тағы Жаңа»",
        at("2026-11-04T10:00:00+05:00"),
    );

    let (_, org) = get(
        &c,
        &format!("{base}/legal_entities/organizations/190540043216"),
    )
    .await;
    assert_eq!(org["name"], "ТОО «Тағы Жаңа»");
    let (_, fresh) = get(
        &c,
        &format!("{base}/legal_entities/renames?cursor={cursor}"),
    )
    .await;
    assert_eq!(
        fresh["renames"],
        json!([{"bin": "190540043216", "at": "2026-11-04T05:00:00Z",
                "from": "ТОО «Жаңа Технологиялар»", "to": "ТОО «Тағы Жаңа»"}])
    );
}

#[tokio::test]
async fn a_backdated_rename_is_never_hidden_behind_a_cursor() {
    let mock = fixture_mock();
    mock.set_now(at("2026-11-02T00:00:00+05:00"));
    let page = mock.renames(None, 500).expect("page");
    assert_eq!(page.next_cursor, "4");

    // Dated before renames already served: it still comes after them.
    mock.rename(
        "210840000983",
        "ЖШС «Төрт»",
        at("2026-11-01T11:00:00+05:00"),
    );
    let fresh = mock.renames(Some(&page.next_cursor), 500).expect("page");
    assert_eq!(fresh.renames.len(), 1);
    assert_eq!(fresh.renames[0].to, "ЖШС «Төрт»");
    assert_eq!(fresh.renames[0].from, "ЖШС «Үш»");
    assert_eq!(fresh.next_cursor, "5");
}

#[tokio::test]
async fn a_future_rename_waits_for_the_clock_in_its_time_order() {
    let mock = fixture_mock();
    mock.set_now(at("2026-11-02T00:00:00+05:00"));
    mock.rename("190540043216", "Later", at("2026-11-05T00:00:00+05:00"));
    mock.rename("210840000983", "Sooner", at("2026-11-03T00:00:00+05:00"));
    let page = mock.renames(None, 500).expect("page");
    assert_eq!(page.renames.len(), 4);
    mock.set_now(at("2026-11-06T00:00:00+05:00"));
    let rest = mock.renames(Some(&page.next_cursor), 500).expect("page");
    let tos: Vec<_> = rest.renames.iter().map(|r| r.to.as_str()).collect();
    assert_eq!(tos, ["Sooner", "Later"]);
}

#[tokio::test]
async fn an_update_replaces_a_record_or_adds_one_in_each_registry() {
    let mock = fixture_mock();
    let base = serve(&mock).await;
    let c = reqwest::Client::new();
    let record = |v: Value| v.as_object().cloned().unwrap_or_default();

    mock.update(
        SystemName::CivilRegistry,
        record(json!({"iin": "790415307770", "deceased": true})),
    )
    .expect("update");
    let (_, r) = get(&c, &format!("{base}/civil_registry/records/790415307770")).await;
    assert_eq!(r["deceased"], true);

    mock.update(
        SystemName::MobileBase,
        record(json!({"iin": "111111111111", "phone": "87017654321"})),
    )
    .expect("update");
    assert_eq!(
        get(&c, &format!("{base}/mobile_base/numbers/111111111111"))
            .await
            .1["phone"],
        "87017654321"
    );

    mock.update(
        SystemName::Individuals,
        record(json!({"iin": "790415307770", "imprisoned": true})),
    )
    .expect("update");
    assert_eq!(
        get(&c, &format!("{base}/individuals/persons/790415307770"))
            .await
            .1["imprisoned"],
        true
    );

    mock.update(
        SystemName::ELicense,
        record(json!({"permit_id": "KZ-TS-0002", "bin": "210840000983",
        "service": "trusted_software_register", "holder_name": "ЖШС «Үш»", "status": "active"})),
    )
    .expect("update");
    let (_, moved) = get(&c, &format!("{base}/e_license/permits?bin=210840000983")).await;
    assert_eq!(moved["permits"][0]["permit_id"], "KZ-TS-0002");
    let (_, left) = get(&c, &format!("{base}/e_license/permits?bin=190540043216")).await;
    assert_eq!(
        left["permits"].as_array().map(Vec::len),
        Some(2),
        "the permit moved to the other BIN"
    );

    assert!(
        mock.update(SystemName::Sms, record(json!({"x": 1})))
            .is_err()
    );
    assert!(
        mock.update(
            SystemName::MobileBase,
            record(json!({"iin": {}, "phone": "1"}))
        )
        .is_err(),
        "an identifier is a string or a number"
    );
    assert!(
        mock.update(
            SystemName::CivilRegistry,
            record(json!({"iin": "1", "dead": true}))
        )
        .is_err()
    );
}

#[tokio::test]
async fn an_organisation_update_keeps_its_rename_history_and_adds_new_renames() {
    let mock = fixture_mock();
    mock.set_now(at("2026-11-03T00:00:00+05:00"));
    let before = mock.renames(None, 500).expect("page");

    let record = json!({
        "bin": "190540043216", "name": "ТОО «Үшінші»", "status": "liquidated", "first_head": null,
        "renames": [
            {"at": "2026-11-01T15:00:00+05:00", "from": "ТОО «Ескі Технологиялар»"},
            {"at": "2026-11-02T15:00:00+05:00", "from": "ТОО «Жаңа Технологиялар»"}
        ]
    });
    mock.update(
        SystemName::LegalEntities,
        record.as_object().cloned().unwrap_or_default(),
    )
    .expect("update");

    let org = mock.organization("190540043216").expect("org");
    assert_eq!(org.name, "ТОО «Үшінші»");
    assert_eq!(org.status, mock_registries::OrgStatus::Liquidated);
    assert_eq!(org.first_head, None);

    let after = mock.renames(Some(&before.next_cursor), 500).expect("page");
    assert_eq!(after.renames.len(), 1, "only the new rename is added");
    assert_eq!(after.renames[0].from, "ТОО «Жаңа Технологиялар»");
    assert_eq!(after.renames[0].to, "ТОО «Үшінші»");
    assert_eq!(mock.renames(None, 500).expect("page").renames.len(), 5);
}

#[tokio::test]
async fn the_control_endpoints_set_the_clock_rename_and_update() {
    let mock = fixture_mock();
    let base = serve(&mock).await;
    let c = reqwest::Client::new();

    let (s, clock) = post(
        &c,
        &format!("{base}/_control/clock"),
        None,
        &json!({"now": "2026-11-04T10:00:00+05:00"}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(clock["now"], "2026-11-04T05:00:00Z");
    assert_eq!(
        get(&c, &format!("{base}/_control/clock")).await.1["now"],
        "2026-11-04T05:00:00Z"
    );
    assert_eq!(mock.now(), at("2026-11-04T10:00:00+05:00"));

    let (s, applied) = post(
        &c,
        &format!("{base}/_control/rename"),
        None,
        &json!({"bin": "190540043216", "to": "ТОО «Жаңа»"}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        applied["at"], "2026-11-04T05:00:00Z",
        "at defaults to the mock's now"
    );
    assert_eq!(
        mock.organization("190540043216").map(|o| o.name).as_deref(),
        Some("ТОО «Жаңа»")
    );
    let (s, _) = post(
        &c,
        &format!("{base}/_control/rename"),
        None,
        &json!({"bin": "000000000000", "to": "x"}),
    )
    .await;
    assert_eq!(s, 404);

    let (s, _) = post(&c, &format!("{base}/_control/update"), None,
                      &json!({"system": "civil_registry", "record": {"iin": "790415307770", "declared_missing": true}})).await;
    assert_eq!(s, 200);
    assert_eq!(
        mock.civil_record("790415307770")
            .map(|r| r.declared_missing),
        Some(true)
    );
    let (s, _) = post(
        &c,
        &format!("{base}/_control/update"),
        None,
        &json!({"system": "civil_registry", "record": {"iin": "1", "wrong": 1}}),
    )
    .await;
    assert_eq!(s, 400);
}
