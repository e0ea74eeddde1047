//! Every HTTP client against `wiremock`: the shape of each request (method, path, query, headers, body) and
//! the mapping of each kind of answer to a result or an `AdapterError`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use adapters::http::{
    CallStats, HttpCivilRegistry, HttpConsentService, HttpELicense, HttpIndividuals,
    HttpLegalEntities, HttpMobileBase, HttpSdu, HttpSettings, HttpSmsGateway, RetryPolicy,
};
use adapters::{
    AdapterError, Bin, CivilRecord, CivilRegistry, ConsentService, ELicense, IdempotencyKey, Iin,
    Individuals, LegalEntities, MobileBase, Msisdn, OrgStatus, PermitStatus, Sdu, SduRecord,
    SmsGateway, TRUSTED_SOFTWARE_SERVICE,
};
use serde_json::json;
use wiremock::matchers::{
    body_json, header, header_exists, method, path, query_param, query_param_is_missing,
};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BIN: &str = "201140000017";
const IIN: &str = "850214300013";
const OTHER_IIN: &str = "790415307770";
const BAD_IIN: &str = "790415307771";
const PHONE: &str = "+77011234567";

fn bin() -> Bin {
    Bin::parse(BIN).unwrap()
}

fn iin() -> Iin {
    Iin::parse(IIN).unwrap()
}

/// Settings for `system` on the wiremock server: fast retries so that tests do not wait.
fn settings(server: &MockServer, system: &str) -> HttpSettings {
    HttpSettings {
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_secs(2),
        },
        ..HttpSettings::for_system(&server.uri(), system)
    }
}

fn ok(body: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

fn person_json(iin: &str) -> serde_json::Value {
    json!({"iin": iin, "name": "Серік Ахметов", "residence_abroad": false,
           "incapacitated": true, "imprisoned": false})
}

async fn individuals(server: &MockServer) -> HttpIndividuals {
    HttpIndividuals::new(settings(server, "individuals")).unwrap()
}

/// Mounts `template` for the person lookup, expected `times` times.
async fn person_answers(server: &MockServer, template: ResponseTemplate, times: u64) {
    Mock::given(method("GET"))
        .and(path(format!("/individuals/persons/{IIN}")))
        .respond_with(template)
        .expect(times)
        .mount(server)
        .await;
}

fn assert_invalid(result: Result<impl std::fmt::Debug, AdapterError>, needle: &str) {
    match result {
        Err(AdapterError::InvalidData { detail, .. }) => {
            assert!(detail.contains(needle), "{detail:?} lacks {needle:?}");
        }
        other => panic!("expected invalid data, got {other:?}"),
    }
}

fn assert_transient(result: Result<impl std::fmt::Debug, AdapterError>, needle: &str) {
    match result {
        Err(AdapterError::Transient { detail, .. }) => {
            assert!(detail.contains(needle), "{detail:?} lacks {needle:?}");
            assert!(!detail.contains(IIN), "{detail:?} leaks the IIN");
        }
        other => panic!("expected a transient error, got {other:?}"),
    }
}

// ---------------------------------------------------------------- request shapes and happy paths

#[tokio::test]
async fn an_organization_is_read_by_bin_and_validated() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/legal_entities/organizations/{BIN}")))
        .and(header("accept", "application/json"))
        .respond_with(ok(json!({"bin": BIN, "name": "ТОО «Жаңа»",
                                 "status": "active", "first_head": IIN})))
        .expect(1)
        .mount(&server)
        .await;
    let client = HttpLegalEntities::new(settings(&server, "legal_entities")).unwrap();

    let org = client.organization(&bin()).await.unwrap().unwrap();

    assert_eq!(org.bin, bin());
    assert_eq!(org.name, "ТОО «Жаңа»");
    assert_eq!(org.status, OrgStatus::Active);
    assert_eq!(org.first_head.map(|h| h.check()), Some(Ok(iin())));
}

#[tokio::test]
async fn a_first_head_that_is_null_or_absent_is_none() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/legal_entities/organizations/{BIN}")))
        .respond_with(ok(
            json!({"bin": BIN, "name": "N", "status": "liquidated", "first_head": null}),
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/legal_entities/organizations/{BIN}")))
        .respond_with(ok(json!({"bin": BIN, "name": "N", "status": "active"})))
        .mount(&server)
        .await;
    let client = HttpLegalEntities::new(settings(&server, "legal_entities")).unwrap();

    let null_head = client.organization(&bin()).await.unwrap().unwrap();
    let absent_head = client.organization(&bin()).await.unwrap().unwrap();

    assert_eq!(null_head.first_head, None);
    assert_eq!(null_head.status, OrgStatus::Liquidated);
    assert_eq!(absent_head.first_head, None);
}

#[tokio::test]
async fn an_unparseable_first_head_is_kept_unchecked_until_the_process_needs_it() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/legal_entities/organizations/{BIN}")))
        .respond_with(ok(
            json!({"bin": BIN, "name": "N", "status": "active", "first_head": BAD_IIN}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let client = HttpLegalEntities::new(settings(&server, "legal_entities")).unwrap();

    let org = client.organization(&bin()).await.unwrap().unwrap();

    let head = org.first_head.expect("the field is there");
    assert!(!format!("{head:?}").contains(BAD_IIN), "{head:?}");
    let problem = head.check().unwrap_err().to_string();
    assert!(problem.contains("control digit"), "{problem}");
}

#[tokio::test]
async fn an_unknown_organization_is_none() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": "unknown BIN"})))
        .expect(1)
        .mount(&server)
        .await;
    let client = HttpLegalEntities::new(settings(&server, "legal_entities")).unwrap();

    assert_eq!(client.organization(&bin()).await.unwrap(), None);
}

#[tokio::test]
async fn renames_pass_cursor_and_limit_and_keep_the_bin_raw() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/legal_entities/renames"))
        .and(query_param("cursor", "c1"))
        .and(query_param("limit", "2"))
        .respond_with(ok(json!({
            "renames": [
                {"bin": BIN, "at": "2026-11-01T15:00:00+05:00", "from": "Old", "to": "New"},
                {"bin": "not-a-bin", "at": "2026-11-01T16:00:00Z", "from": "A", "to": "B"}
            ],
            "next_cursor": "c2"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let client = HttpLegalEntities::new(settings(&server, "legal_entities")).unwrap();

    let page = client.renames(Some("c1"), 2).await.unwrap();

    assert_eq!(page.next_cursor, "c2");
    assert_eq!(page.renames.len(), 2);
    assert_eq!(page.renames[0].bin, BIN);
    assert_eq!(page.renames[0].at.to_rfc3339(), "2026-11-01T10:00:00+00:00");
    assert_eq!(
        (page.renames[0].from.as_str(), page.renames[0].to.as_str()),
        ("Old", "New")
    );
    assert_eq!(page.renames[1].bin, "not-a-bin");
}

#[tokio::test]
async fn renames_from_the_beginning_send_no_cursor() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/legal_entities/renames"))
        .and(query_param_is_missing("cursor"))
        .respond_with(ok(json!({"renames": [], "next_cursor": ""})))
        .expect(1)
        .mount(&server)
        .await;
    let client = HttpLegalEntities::new(settings(&server, "legal_entities")).unwrap();

    let page = client.renames(None, 500).await.unwrap();

    assert!(page.renames.is_empty());
}

#[tokio::test]
async fn a_rename_with_a_bad_time_is_invalid_data() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ok(json!({
            "renames": [{"bin": BIN, "at": "yesterday", "from": "A", "to": "B"}],
            "next_cursor": "c"
        })))
        .mount(&server)
        .await;
    let client = HttpLegalEntities::new(settings(&server, "legal_entities")).unwrap();

    assert_invalid(
        client.renames(None, 10).await,
        "renames[0]: field `at` is not an RFC 3339 time",
    );
}

#[tokio::test]
async fn permits_are_asked_by_bin_and_service() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/e_license/permits"))
        .and(query_param("bin", BIN))
        .and(query_param("service", TRUSTED_SOFTWARE_SERVICE))
        .respond_with(ok(json!({"permits": [
            {"permit_id": "KZ-TS-0001", "bin": BIN, "service": TRUSTED_SOFTWARE_SERVICE,
             "holder_name": "Old", "status": "active"},
            {"permit_id": "KZ-TS-0002", "bin": BIN, "service": TRUSTED_SOFTWARE_SERVICE,
             "holder_name": "Old", "status": "revoked"}
        ]})))
        .expect(1)
        .mount(&server)
        .await;
    let client = HttpELicense::new(settings(&server, "e_license")).unwrap();

    let permits = client
        .permits(&bin(), TRUSTED_SOFTWARE_SERVICE)
        .await
        .unwrap();

    assert_eq!(permits.len(), 2);
    assert_eq!(permits[0].permit_id, "KZ-TS-0001");
    assert_eq!(permits[0].bin, bin());
    assert_eq!(permits[0].status, PermitStatus::Active);
    assert_eq!(permits[1].status, PermitStatus::Revoked);
}

#[tokio::test]
async fn a_permit_of_another_organization_is_invalid_data() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ok(json!({"permits": [
            {"permit_id": "KZ-TS-0001", "bin": "190540043216", "service": TRUSTED_SOFTWARE_SERVICE,
             "holder_name": "Old", "status": "active"}
        ]})))
        .expect(1)
        .mount(&server)
        .await;
    let client = HttpELicense::new(settings(&server, "e_license")).unwrap();

    assert_invalid(
        client.permits(&bin(), TRUSTED_SOFTWARE_SERVICE).await,
        "permits[0]: field `bin` names another organisation",
    );
}

#[tokio::test]
async fn a_permit_with_a_bad_bin_is_invalid_data() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ok(json!({"permits": [
            {"permit_id": "KZ-TS-0001", "bin": "201140000018", "service": TRUSTED_SOFTWARE_SERVICE,
             "holder_name": "Old", "status": "active"}
        ]})))
        .mount(&server)
        .await;
    let client = HttpELicense::new(settings(&server, "e_license")).unwrap();

    assert_invalid(
        client.permits(&bin(), TRUSTED_SOFTWARE_SERVICE).await,
        "field `bin` is not a valid BIN",
    );
}

#[tokio::test]
async fn a_reissue_posts_the_new_name_with_the_idempotency_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/e_license/permits/KZ-TS-0001/reissue"))
        .and(header("Idempotency-Key", "case-7:reissue:KZ-TS-0001"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({"bin": BIN, "holder_name": "ТОО «Жаңа»"})))
        .respond_with(ok(json!({"permit_id": "KZ-TS-0001", "bin": BIN,
                                 "service": TRUSTED_SOFTWARE_SERVICE, "holder_name": "ТОО «Жаңа»",
                                 "status": "active", "reissued_at": "2026-11-02T12:00:00+05:00"})))
        .expect(1)
        .mount(&server)
        .await;
    let client = HttpELicense::new(settings(&server, "e_license")).unwrap();
    let key = IdempotencyKey::for_step("case-7", "reissue:KZ-TS-0001");

    let permit = client
        .reissue(&key, "KZ-TS-0001", &bin(), "ТОО «Жаңа»")
        .await
        .unwrap();

    assert_eq!(permit.holder_name, "ТОО «Жаңа»");
    assert_eq!(permit.status, PermitStatus::Active);
}

#[tokio::test]
async fn a_permit_id_is_percent_encoded_in_the_path() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/e_license/permits/KZ%2FTS%201/reissue"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": "unknown permit"})))
        .expect(1)
        .mount(&server)
        .await;
    let client = HttpELicense::new(settings(&server, "e_license")).unwrap();

    let result = client
        .reissue(
            &IdempotencyKey::for_step("case-1", "r"),
            "KZ/TS 1",
            &bin(),
            "N",
        )
        .await;

    assert!(
        matches!(
            result,
            Err(AdapterError::Absent {
                system: "e_license"
            })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_422_on_a_reissue_is_a_rejection_with_its_message_masked() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(422).set_body_json(
                json!({"error": format!("permit KZ-TS-0001 is revoked (head {IIN})")}),
            ),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = HttpELicense::new(settings(&server, "e_license")).unwrap();

    let result = client
        .reissue(
            &IdempotencyKey::for_step("case-1", "r"),
            "KZ-TS-0001",
            &bin(),
            "N",
        )
        .await;

    match result {
        Err(AdapterError::Permanent {
            system,
            status,
            detail,
        }) => {
            assert_eq!((system, status), ("e_license", 422));
            assert_eq!(detail, "permit KZ-TS-0001 is revoked (head ********0013)");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn a_person_is_read_by_iin() {
    let server = MockServer::start().await;
    person_answers(&server, ok(person_json(IIN)), 1).await;
    let client = individuals(&server).await;

    let person = client.person(&iin()).await.unwrap().unwrap();

    assert_eq!(person.iin, iin());
    assert_eq!(person.name, "Серік Ахметов");
    assert!(!person.residence_abroad && person.incapacitated && !person.imprisoned);
}

#[tokio::test]
async fn a_person_with_another_iin_is_invalid_data() {
    let server = MockServer::start().await;
    person_answers(&server, ok(person_json(OTHER_IIN)), 1).await;
    let client = individuals(&server).await;

    assert_invalid(client.person(&iin()).await, "`iin` names another person");
}

#[tokio::test]
async fn a_person_with_a_bad_control_digit_is_invalid_data() {
    let server = MockServer::start().await;
    person_answers(&server, ok(person_json(BAD_IIN)), 1).await;
    let client = individuals(&server).await;

    assert_invalid(client.person(&iin()).await, "control digit does not match");
}

#[tokio::test]
async fn wrong_types_are_invalid_data_and_not_retried() {
    let server = MockServer::start().await;
    let mut body = person_json(IIN);
    body["imprisoned"] = json!("no");
    person_answers(&server, ok(body), 1).await;
    let client = individuals(&server).await;

    assert_invalid(
        client.person(&iin()).await,
        "person: field `imprisoned` must be a boolean, got a string",
    );
}

#[tokio::test]
async fn a_missing_field_is_invalid_data() {
    let server = MockServer::start().await;
    let mut body = person_json(IIN);
    body.as_object_mut().unwrap().remove("residence_abroad");
    person_answers(&server, ok(body), 1).await;
    let client = individuals(&server).await;

    assert_invalid(
        client.person(&iin()).await,
        "missing field `residence_abroad`",
    );
}

#[tokio::test]
async fn a_json_body_that_is_not_an_object_is_invalid_data() {
    let server = MockServer::start().await;
    person_answers(&server, ok(json!([1, 2])), 1).await;
    let client = individuals(&server).await;

    assert_invalid(
        client.person(&iin()).await,
        "expected an object, got an array",
    );
}

#[tokio::test]
async fn an_unknown_person_is_none() {
    let server = MockServer::start().await;
    person_answers(
        &server,
        ResponseTemplate::new(404).set_body_json(json!({"error": "unknown"})),
        1,
    )
    .await;
    let client = individuals(&server).await;

    assert_eq!(client.person(&iin()).await.unwrap(), None);
    assert_eq!(client.stats().snapshot().absent, 1);
}

#[tokio::test]
async fn a_civil_record_is_read_by_iin_and_a_404_means_none() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/civil_registry/records/{IIN}")))
        .respond_with(ok(
            json!({"iin": IIN, "deceased": false, "declared_dead": true,
                                 "declared_missing": false}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/civil_registry/records/{OTHER_IIN}")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": "no record"})))
        .expect(1)
        .mount(&server)
        .await;
    let client = HttpCivilRegistry::new(settings(&server, "civil_registry")).unwrap();

    let record = client.record(&iin()).await.unwrap();
    let none = client
        .record(&Iin::parse(OTHER_IIN).unwrap())
        .await
        .unwrap();

    assert_eq!(
        record,
        Some(CivilRecord {
            deceased: false,
            declared_dead: true,
            declared_missing: false
        })
    );
    assert_eq!(none, None);
}

#[tokio::test]
async fn a_civil_record_about_someone_else_is_invalid_data() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ok(
            json!({"iin": OTHER_IIN, "deceased": false, "declared_dead": false,
                                 "declared_missing": false}),
        ))
        .mount(&server)
        .await;
    let client = HttpCivilRegistry::new(settings(&server, "civil_registry")).unwrap();

    assert_invalid(client.record(&iin()).await, "names another person");
}

async fn mobile_answers(server: &MockServer, phone: serde_json::Value) -> HttpMobileBase {
    Mock::given(method("GET"))
        .and(path(format!("/mobile_base/numbers/{IIN}")))
        .respond_with(ok(json!({"iin": IIN, "phone": phone})))
        .expect(1)
        .mount(server)
        .await;
    HttpMobileBase::new(settings(server, "mobile_base")).unwrap()
}

#[tokio::test]
async fn a_registered_number_is_returned_raw() {
    let server = MockServer::start().await;
    let client = mobile_answers(&server, json!("8 (701) 123-45-67")).await;

    assert_eq!(
        client.number(&iin()).await.unwrap().as_deref(),
        Some("8 (701) 123-45-67")
    );
}

#[tokio::test]
async fn a_numeric_phone_becomes_its_decimal_text() {
    let server = MockServer::start().await;
    let client = mobile_answers(&server, json!(77011234567u64)).await;

    assert_eq!(
        client.number(&iin()).await.unwrap().as_deref(),
        Some("77011234567")
    );
}

#[tokio::test]
async fn a_null_phone_means_no_number() {
    let server = MockServer::start().await;
    let client = mobile_answers(&server, json!(null)).await;

    assert_eq!(client.number(&iin()).await.unwrap(), None);
}

#[tokio::test]
async fn a_phone_of_another_type_is_invalid_data() {
    let server = MockServer::start().await;
    let client = mobile_answers(&server, json!(["+77011234567"])).await;

    assert_invalid(
        client.number(&iin()).await,
        "field `phone` must be a string",
    );
}

#[tokio::test]
async fn no_registered_number_is_none() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": "none"})))
        .expect(1)
        .mount(&server)
        .await;
    let client = HttpMobileBase::new(settings(&server, "mobile_base")).unwrap();

    assert_eq!(client.number(&iin()).await.unwrap(), None);
}

#[tokio::test]
async fn an_sms_is_posted_with_its_idempotency_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/sms/messages"))
        .and(header("Idempotency-Key", "case-3:sms:1"))
        .and(body_json(
            json!({"to": PHONE, "text": "Құрметті 1 немесе 2"}),
        ))
        .respond_with(ok(
            json!({"message_id": "m-1", "accepted_at": "2026-11-02T09:00:00+05:00"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let client = HttpSmsGateway::new(settings(&server, "sms")).unwrap();

    let sent = client
        .send(
            &IdempotencyKey::for_step("case-3", "sms:1"),
            &Msisdn::parse(PHONE).unwrap(),
            "Құрметті 1 немесе 2",
        )
        .await
        .unwrap();

    assert_eq!(sent.message_id, "m-1");
    assert_eq!(sent.accepted_at.to_rfc3339(), "2026-11-02T04:00:00+00:00");
}

#[tokio::test]
async fn replies_are_read_from_the_cursor() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/sms/replies"))
        .and(query_param("cursor", "r5"))
        .and(query_param("limit", "100"))
        .respond_with(ok(json!({
            "replies": [{"message_id": "in-6", "from": "87011234567", "text": " 1. ",
                         "received_at": "2026-11-02T10:00:00+05:00"}],
            "next_cursor": "r6"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let client = HttpSmsGateway::new(settings(&server, "sms")).unwrap();

    let page = client.replies(Some("r5"), 100).await.unwrap();

    assert_eq!(page.next_cursor, "r6");
    assert_eq!(page.replies.len(), 1);
    assert_eq!(page.replies[0].from, "87011234567");
    assert_eq!(page.replies[0].text, " 1. ");
}

#[tokio::test]
async fn consent_is_posted_with_iin_bin_and_purpose() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/consent/consents"))
        .and(header("Idempotency-Key", "case-3:consent"))
        .and(body_json(
            json!({"iin": IIN, "bin": BIN, "purpose": "permit_reissue"}),
        ))
        .respond_with(ok(
            json!({"consent_id": "c-1", "recorded_at": "2026-11-02T09:00:00Z"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let client = HttpConsentService::new(settings(&server, "consent")).unwrap();

    let receipt = client
        .record(
            &IdempotencyKey::for_step("case-3", "consent"),
            &iin(),
            &bin(),
            "permit_reissue",
        )
        .await
        .unwrap();

    assert_eq!(receipt.consent_id, "c-1");
}

#[tokio::test]
async fn the_sdu_record_is_posted_with_its_idempotency_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/sdu/records"))
        .and(header("Idempotency-Key", "case-3:sdu"))
        .and(body_json(
            json!({"case_id": 3, "bin": BIN, "new_name": "New", "head_iin": IIN,
                              "permit_ids": ["KZ-TS-0001"]}),
        ))
        .respond_with(ok(
            json!({"record_id": "s-1", "written_at": "2026-11-02T09:00:00Z"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let client = HttpSdu::new(settings(&server, "sdu")).unwrap();
    let record = SduRecord {
        case_id: 3,
        bin: bin(),
        new_name: "New".into(),
        head_iin: iin(),
        permit_ids: vec!["KZ-TS-0001".into()],
    };

    let receipt = client
        .write_back(&IdempotencyKey::for_step("case-3", "sdu"), &record)
        .await
        .unwrap();

    assert_eq!(receipt.record_id, "s-1");
}

// ---------------------------------------------------------------- status mapping and retries

#[tokio::test]
async fn a_400_is_permanent_and_not_retried() {
    let server = MockServer::start().await;
    person_answers(
        &server,
        ResponseTemplate::new(400).set_body_json(json!({"error": "bad request"})),
        1,
    )
    .await;
    let client = individuals(&server).await;

    let result = client.person(&iin()).await;

    assert!(
        matches!(&result, Err(AdapterError::Permanent { status: 400, detail, .. }) if detail == "bad request"),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_permanent_error_without_a_message_gives_the_reason() {
    let server = MockServer::start().await;
    person_answers(
        &server,
        ResponseTemplate::new(403).set_body_string("<html>no</html>"),
        1,
    )
    .await;
    let client = individuals(&server).await;

    let result = client.person(&iin()).await;

    assert!(
        matches!(&result, Err(AdapterError::Permanent { status: 403, detail, .. }) if detail == "Forbidden"),
        "{result:?}"
    );
}

/// Mounts a failure answered once, then the person.
async fn fails_once_then_answers(server: &MockServer, failure: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(format!("/individuals/persons/{IIN}")))
        .respond_with(failure)
        .up_to_n_times(1)
        .expect(1)
        .mount(server)
        .await;
    person_answers(server, ok(person_json(IIN)), 1).await;
}

#[tokio::test]
async fn a_503_is_retried_then_succeeds() {
    let server = MockServer::start().await;
    fails_once_then_answers(&server, ResponseTemplate::new(503)).await;
    let client = individuals(&server).await;

    assert!(client.person(&iin()).await.unwrap().is_some());
    let stats = client.stats().snapshot();
    assert_eq!((stats.calls, stats.attempts, stats.errors), (1, 2, 0));
}

#[tokio::test]
async fn a_500_is_retried_then_succeeds() {
    let server = MockServer::start().await;
    fails_once_then_answers(&server, ResponseTemplate::new(500)).await;
    let client = individuals(&server).await;

    assert!(client.person(&iin()).await.unwrap().is_some());
}

#[tokio::test]
async fn a_truncated_json_body_is_retried_then_succeeds() {
    let server = MockServer::start().await;
    fails_once_then_answers(
        &server,
        ResponseTemplate::new(200)
            .set_body_raw(format!("{{\"iin\": \"{IIN}\", \"na"), "application/json"),
    )
    .await;
    let client = individuals(&server).await;

    assert!(client.person(&iin()).await.unwrap().is_some());
}

#[tokio::test]
async fn retries_exhausted_give_a_transient_error() {
    let server = MockServer::start().await;
    person_answers(&server, ResponseTemplate::new(503), 3).await;
    let client = individuals(&server).await;

    let result = client.person(&iin()).await;

    assert_transient(result, "status 503 Service Unavailable (after 3 attempts)");
    let stats = client.stats().snapshot();
    assert_eq!(
        (
            stats.calls,
            stats.attempts,
            stats.errors,
            stats.transient_errors
        ),
        (1, 3, 1, 1)
    );
}

#[tokio::test]
async fn a_truncated_json_body_is_transient() {
    let server = MockServer::start().await;
    person_answers(
        &server,
        ResponseTemplate::new(200)
            .set_body_raw(format!("{{\"iin\": \"{IIN}\", \"na"), "application/json"),
        3,
    )
    .await;
    let client = individuals(&server).await;

    assert_transient(client.person(&iin()).await, "not JSON (truncated)");
}

#[tokio::test]
async fn an_html_body_is_transient() {
    let server = MockServer::start().await;
    person_answers(
        &server,
        ResponseTemplate::new(200).set_body_raw("<html><body>Gateway</body></html>", "text/html"),
        3,
    )
    .await;
    let client = individuals(&server).await;

    assert_transient(client.person(&iin()).await, "not JSON (syntax error)");
}

#[tokio::test]
async fn an_oversize_body_is_transient() {
    let server = MockServer::start().await;
    let mut body = person_json(IIN);
    body["padding"] = json!("x".repeat(4096));
    person_answers(&server, ok(body), 3).await;
    let client = HttpIndividuals::new(HttpSettings {
        max_body_bytes: 1024,
        ..settings(&server, "individuals")
    })
    .unwrap();

    assert_transient(
        client.person(&iin()).await,
        "response too large (over 1024 bytes)",
    );
}

#[tokio::test]
async fn a_body_just_under_the_limit_is_read() {
    let server = MockServer::start().await;
    let mut body = person_json(IIN);
    body["padding"] = json!("x".repeat(900));
    let size = serde_json::to_vec(&body).unwrap().len();
    person_answers(&server, ok(body), 1).await;
    let client = HttpIndividuals::new(HttpSettings {
        max_body_bytes: size,
        ..settings(&server, "individuals")
    })
    .unwrap();

    assert!(client.person(&iin()).await.unwrap().is_some());
}

#[tokio::test]
async fn a_429_is_retried_no_sooner_than_retry_after_says() {
    let server = MockServer::start().await;
    fails_once_then_answers(
        &server,
        ResponseTemplate::new(429).insert_header("Retry-After", "1"),
    )
    .await;
    let client = individuals(&server).await;
    let started = common::now();

    assert!(client.person(&iin()).await.unwrap().is_some());

    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_429_asking_longer_than_max_backoff_gives_up_at_once() {
    let server = MockServer::start().await;
    person_answers(
        &server,
        ResponseTemplate::new(429).insert_header("Retry-After", "3600"),
        1,
    )
    .await;
    let client = individuals(&server).await;

    assert_transient(
        client.person(&iin()).await,
        "rate limited (429), retry after 3600s",
    );
}

#[tokio::test]
async fn a_timeout_is_transient_and_retried() {
    let server = MockServer::start().await;
    person_answers(
        &server,
        ok(person_json(IIN)).set_delay(Duration::from_millis(1500)),
        2,
    )
    .await;
    let client = HttpIndividuals::new(HttpSettings {
        timeout: Duration::from_millis(200),
        retry: RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(10),
        },
        ..settings(&server, "individuals")
    })
    .unwrap();

    assert_transient(client.person(&iin()).await, "timed out after 200ms");
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = HttpIndividuals::new(HttpSettings {
        retry: RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(10),
        },
        ..HttpSettings::for_system(&format!("http://{addr}"), "individuals")
    })
    .unwrap();

    assert_transient(client.person(&iin()).await, "connection failed");
}

#[tokio::test]
async fn a_write_keeps_its_idempotency_key_on_every_retry() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/sms/messages"))
        .and(header("Idempotency-Key", "case-9:sms:2"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/sms/messages"))
        .and(header("Idempotency-Key", "case-9:sms:2"))
        .respond_with(ok(
            json!({"message_id": "m-9", "accepted_at": "2026-11-02T09:00:00Z"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let client = HttpSmsGateway::new(settings(&server, "sms")).unwrap();

    let sent = client
        .send(
            &IdempotencyKey::for_step("case-9", "sms:2"),
            &Msisdn::parse(PHONE).unwrap(),
            "t",
        )
        .await
        .unwrap();

    assert_eq!(sent.message_id, "m-9");
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.body == requests[0].body));
}

#[tokio::test]
async fn reads_carry_no_idempotency_key() {
    let server = MockServer::start().await;
    Mock::given(header_exists("Idempotency-Key"))
        .respond_with(ResponseTemplate::new(400))
        .mount(&server)
        .await;
    person_answers(&server, ok(person_json(IIN)), 1).await;
    let client = individuals(&server).await;

    assert!(client.person(&iin()).await.unwrap().is_some());
}

#[tokio::test]
async fn no_error_message_holds_the_iin() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ok(person_json(IIN)).set_delay(Duration::from_millis(1000)))
        .mount(&server)
        .await;
    let client = HttpIndividuals::new(HttpSettings {
        timeout: Duration::from_millis(100),
        retry: RetryPolicy::no_retries(),
        ..settings(&server, "individuals")
    })
    .unwrap();

    let error = client.person(&iin()).await.unwrap_err();

    let text = format!("{error} {error:?}");
    assert!(!text.contains(IIN) && !text.contains("persons"), "{text}");
}

// ---------------------------------------------------------------- limits and statistics

#[tokio::test]
async fn the_concurrency_cap_holds() {
    let server = MockServer::start().await;
    person_answers(
        &server,
        ok(person_json(IIN)).set_delay(Duration::from_millis(200)),
        6,
    )
    .await;
    let client = Arc::new(
        HttpIndividuals::new(HttpSettings {
            max_concurrency: 2,
            ..settings(&server, "individuals")
        })
        .unwrap(),
    );
    let started = common::now();

    let calls = (0..6).map(|_| {
        let client = Arc::clone(&client);
        tokio::spawn(async move { client.person(&iin()).await })
    });
    for call in futures::future::join_all(calls).await {
        assert!(call.unwrap().unwrap().is_some());
    }

    // Three rounds of two: at least 600 ms (without the cap all six would take about 200 ms).
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
}

/// The limit is an upper bound: the steady-state rate (10th to 100th call) is at most 10% above it. A
/// loaded machine only makes calls slower, so the lower bound is generous (see `against_mock.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_holds_in_the_steady_state() {
    let server = MockServer::start().await;
    person_answers(&server, ok(person_json(IIN)), 100).await;
    let client = Arc::new(
        HttpIndividuals::new(HttpSettings {
            rate_limit_per_sec: Some(50),
            ..settings(&server, "individuals")
        })
        .unwrap(),
    );

    let started = common::now();
    let calls = (0..100).map(|_| {
        let client = Arc::clone(&client);
        tokio::spawn(async move {
            client.person(&iin()).await.unwrap();
            common::now()
        })
    });
    let mut finished: Vec<Instant> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    finished.sort();

    let window = finished[99] - finished[9];
    let rate = 90.0 / window.as_secs_f64();
    assert!((30.0..=55.0).contains(&rate), "{rate:.1}/s over {window:?}");
    // 100 calls at 50/s, the first one free, cannot finish before 1.98 s.
    assert!(
        started.elapsed() >= Duration::from_millis(1950),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn clients_can_share_one_statistics_record() {
    let server = MockServer::start().await;
    person_answers(&server, ok(person_json(IIN)), 1).await;
    Mock::given(method("GET"))
        .and(path(format!("/civil_registry/records/{IIN}")))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let stats = Arc::new(CallStats::new());
    let people = HttpIndividuals::new(HttpSettings {
        stats: Some(Arc::clone(&stats)),
        ..settings(&server, "individuals")
    })
    .unwrap();
    let civil = HttpCivilRegistry::new(HttpSettings {
        stats: Some(Arc::clone(&stats)),
        ..settings(&server, "civil_registry")
    })
    .unwrap();

    people.person(&iin()).await.unwrap();
    civil.record(&iin()).await.unwrap();

    let snap = stats.snapshot();
    assert_eq!((snap.calls, snap.absent, snap.errors), (2, 1, 0));
    assert!(snap.p99 >= snap.p50 && snap.max >= snap.p99);
}

#[test]
fn unusable_settings_are_refused() {
    let zero_rate = HttpSettings {
        rate_limit_per_sec: Some(0),
        ..HttpSettings::default()
    };
    let zero_concurrency = HttpSettings {
        max_concurrency: 0,
        ..HttpSettings::default()
    };
    let bad_url = HttpSettings::for_system("not a url", "sms");

    for settings in [zero_rate, zero_concurrency, bad_url] {
        assert!(matches!(
            HttpSmsGateway::new(settings),
            Err(AdapterError::Permanent { status: 0, .. })
        ));
    }
}

// ---------------------------------------------------------------- statistical dimensions (DATA-PRODUCT)

#[tokio::test]
async fn region_and_activity_are_read_validated_and_optional() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/legal_entities/organizations/{BIN}")))
        .respond_with(ok(json!({"bin": BIN, "name": "N", "status": "active",
                                 "region": "751110000", "activity": "62010"})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/legal_entities/organizations/{BIN}")))
        .respond_with(ok(
            json!({"bin": BIN, "name": "N", "status": "active", "region": null}),
        ))
        .mount(&server)
        .await;
    let client = HttpLegalEntities::new(settings(&server, "legal_entities")).unwrap();

    let with = client.organization(&bin()).await.unwrap().unwrap();
    let without = client.organization(&bin()).await.unwrap().unwrap();

    assert_eq!(with.region.as_ref().map(|r| r.oblast()), Some("75"));
    assert_eq!(with.activity.as_ref().map(|a| a.section()), Some('J'));
    assert_eq!((without.region, without.activity), (None, None));
}

#[tokio::test]
async fn a_bad_region_or_activity_is_invalid_data() {
    for (field, value, expected) in [
        (
            "region",
            json!("75111000"),
            "`region` must be exactly 9 digits",
        ),
        (
            "region",
            json!("511110000"),
            "`region` digits 1-2 name no region",
        ),
        ("region", json!(751110000), "`region`"),
        (
            "activity",
            json!("62.01.0"),
            "`activity` must be exactly 5 digits",
        ),
        (
            "activity",
            json!("40000"),
            "`activity` digits 1-2 are not an OKED division",
        ),
    ] {
        let server = MockServer::start().await;
        let mut body = json!({"bin": BIN, "name": "N", "status": "active"});
        body[field] = value;
        Mock::given(method("GET"))
            .and(path(format!("/legal_entities/organizations/{BIN}")))
            .respond_with(ok(body))
            .mount(&server)
            .await;
        let client = HttpLegalEntities::new(settings(&server, "legal_entities")).unwrap();
        assert_invalid(client.organization(&bin()).await, expected);
    }
}

/// What an observer heard, in order.
#[derive(Debug, Default)]
struct Heard(std::sync::Mutex<Vec<String>>);

impl adapters::http::CallObserver for Heard {
    fn call_done(&self, system: &'static str, _elapsed: Duration, error: Option<&AdapterError>) {
        let outcome = match error {
            None => "ok",
            Some(AdapterError::Absent { .. }) => "absent",
            Some(_) => "error",
        };
        self.0
            .lock()
            .unwrap()
            .push(format!("{system} done {outcome}"));
    }

    fn attempt_failed(&self, system: &'static str, kind: adapters::http::FailureKind) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{system} failed {}", kind.as_str()));
    }

    fn rate_limited(&self, system: &'static str, waited: Duration) {
        assert!(waited >= Duration::from_millis(1));
        self.0.lock().unwrap().push(format!("{system} waited"));
    }
}

#[tokio::test]
async fn the_observer_hears_each_failed_attempt_by_kind_and_each_call_once() {
    let server = MockServer::start().await;
    // The first call fails four ways before its answer; the third is refused for good.
    for answer in [
        ResponseTemplate::new(503),
        ResponseTemplate::new(429),
        ok(person_json(IIN)).set_delay(Duration::from_millis(500)),
        ResponseTemplate::new(200).set_body_raw("not json", "application/json"),
        ok(person_json(IIN)),
        ResponseTemplate::new(400),
    ] {
        Mock::given(method("GET"))
            .and(path(format!("/individuals/persons/{IIN}")))
            .respond_with(answer)
            .up_to_n_times(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path(format!("/individuals/persons/{OTHER_IIN}")))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let heard = Arc::new(Heard::default());
    let client = HttpIndividuals::new(HttpSettings {
        timeout: Duration::from_millis(100),
        // Twenty requests a second, a burst of two: the later attempts wait on the limiter.
        rate_limit_per_sec: Some(20),
        retry: RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(10),
        },
        observer: Some(heard.clone()),
        ..settings(&server, "individuals")
    })
    .unwrap();

    assert!(client.person(&iin()).await.unwrap().is_some());
    assert!(
        client
            .person(&Iin::parse(OTHER_IIN).unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        client.person(&iin()).await,
        Err(AdapterError::Permanent { status: 400, .. })
    ));

    let heard: Vec<String> = heard.0.lock().unwrap().clone();
    let failures: Vec<&str> = heard
        .iter()
        .filter(|h| h.contains(" failed "))
        .map(String::as_str)
        .collect();
    assert_eq!(
        failures,
        [
            "individuals failed server_error",
            "individuals failed rate_limited",
            "individuals failed timeout",
            "individuals failed transient",
            "individuals failed permanent",
        ],
        "{heard:?}"
    );
    let done: Vec<&str> = heard
        .iter()
        .filter(|h| h.contains(" done "))
        .map(String::as_str)
        .collect();
    assert_eq!(
        done,
        [
            "individuals done ok",
            "individuals done absent",
            "individuals done error"
        ],
        "{heard:?}"
    );
    assert!(heard.iter().any(|h| h == "individuals waited"), "{heard:?}");
}
