//! Table tests of the decision core: each row of a table is one sentence of docs/PROCESS.md, and the
//! failure message names the row that broke.

use chrono::NaiveTime;

use super::*;

// ---------------------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------------------

const BIN: &str = "201140000017";
const OTHER_BIN: &str = "190540043216";
const HEAD: &str = "850214300013";
const OTHER_IIN: &str = "790415307770";
const NEW_NAME: &str = "ТОО «Жаңа Технологиялар»";
const OLD_NAME: &str = "ТОО «Ескі Технологиялар»";
const PHONE: &str = "+77011234567";
const SERVICE: &str = adapters::TRUSTED_SOFTWARE_SERVICE;

fn bin() -> Bin {
    Bin::parse(BIN).unwrap()
}

fn iin(raw: &str) -> Iin {
    Iin::parse(raw).unwrap()
}

fn organization() -> Organization {
    Organization {
        bin: bin(),
        name: NEW_NAME.to_owned(),
        status: OrgStatus::Active,
        first_head: Some(iin(HEAD).into()),
        region: None,
        activity: None,
    }
}

fn permit(id: &str, service: &str, holder: &str, status: PermitStatus) -> Permit {
    Permit {
        permit_id: id.to_owned(),
        bin: bin(),
        service: service.to_owned(),
        holder_name: holder.to_owned(),
        status,
    }
}

fn active_old(id: &str) -> Permit {
    permit(id, SERVICE, OLD_NAME, PermitStatus::Active)
}

fn civil(deceased: bool, declared_dead: bool, declared_missing: bool) -> CivilRecord {
    CivilRecord {
        deceased,
        declared_dead,
        declared_missing,
    }
}

fn person(residence_abroad: bool, incapacitated: bool, imprisoned: bool) -> Person {
    Person {
        iin: iin(HEAD),
        name: "Test Person".to_owned(),
        residence_abroad,
        incapacitated,
        imprisoned,
    }
}

/// Every registry answered, and every answer leads to an offer.
fn all_clear() -> Facts {
    Facts {
        organization: Some(Some(organization())),
        permits: Some(vec![active_old("KZ-TS-0001")]),
        civil: Some(Some(civil(false, false, false))),
        person: Some(Some(person(false, false, false))),
        phone: Some(Some(PHONE.to_owned())),
    }
}

/// A facts value changed by `edit`.
fn with(edit: impl FnOnce(&mut Facts)) -> Facts {
    let mut facts = all_clear();
    edit(&mut facts);
    facts
}

/// An assessment in words, so that table rows compare and print as sentences.
fn verdict(a: &Assessment) -> String {
    match a {
        Assessment::Need(need) => format!("need {need:?}"),
        Assessment::End(e) => match e.reason {
            Some(r) => format!("end {}/{}", e.outcome, r),
            None => format!("end {}", e.outcome),
        },
        Assessment::Ready(offer) => format!(
            "ready {} head {} permits [{}]",
            offer.phone.as_str(),
            offer.head.as_str(),
            offer.permits.join(", ")
        ),
    }
}

fn ready(phone: &str, permits: &[&str]) -> String {
    format!("ready {phone} head {HEAD} permits [{}]", permits.join(", "))
}

fn check_assess_rows(rows: Vec<(&str, Facts, String)>) {
    let mut failures = Vec::new();
    for (sentence, facts, expected) in rows {
        let got = verdict(&assess(&bin(), NEW_NAME, &facts, &Service::default()));
        if got != expected {
            failures.push(format!(
                "{sentence}\n    expected: {expected}\n    got:      {got}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn end(outcome: Outcome, reason: Option<Reason>) -> String {
    verdict(&Assessment::End(Ending::new(outcome, reason, "")))
}

// ---------------------------------------------------------------------------------------------------------
// assess
// ---------------------------------------------------------------------------------------------------------

#[test]
fn assess_asks_the_registries_in_seed_order() {
    let rows = vec![
        (
            "with nothing known, the legal-entity registry is asked first",
            Facts::default(),
            "need Organization".to_owned(),
        ),
        (
            "with the organisation known, e-license is asked next",
            with(|f| {
                f.permits = None;
                f.civil = None;
                f.person = None;
                f.phone = None;
            }),
            "need Permits".to_owned(),
        ),
        (
            "with affected permits and a head, the civil registry is asked next",
            with(|f| {
                f.civil = None;
                f.person = None;
                f.phone = None;
            }),
            "need Civil".to_owned(),
        ),
        (
            "with a clean civil record, the individuals registry is asked next",
            with(|f| {
                f.person = None;
                f.phone = None;
            }),
            "need Person".to_owned(),
        ),
        (
            "with a head absent from the civil registry, the individuals registry is asked next",
            with(|f| {
                f.civil = Some(None);
                f.person = None;
                f.phone = None;
            }),
            "need Person".to_owned(),
        ),
        (
            "with an eligible head, the mobile base is asked last",
            with(|f| f.phone = None),
            "need Phone".to_owned(),
        ),
        (
            "with everything clear, the head is offered the re-issue",
            all_clear(),
            ready(PHONE, &["KZ-TS-0001"]),
        ),
    ];
    check_assess_rows(rows);
}

#[test]
fn assess_ends_on_the_organisation_record() {
    let rows = vec![
        (
            "an organisation the registry does not know fails with invalid data",
            with(|f| f.organization = Some(None)),
            end(Outcome::Failed, Some(Reason::InvalidData)),
        ),
        (
            "a record of another BIN fails with invalid data",
            with(|f| {
                let mut org = organization();
                org.bin = Bin::parse(OTHER_BIN).unwrap();
                f.organization = Some(Some(org));
            }),
            end(Outcome::Failed, Some(Reason::InvalidData)),
        ),
        (
            "a liquidated organisation is not applicable, before e-license is even asked",
            with(|f| {
                let mut org = organization();
                org.status = OrgStatus::Liquidated;
                f.organization = Some(Some(org));
                f.permits = None;
            }),
            end(Outcome::NotApplicable, Some(Reason::Liquidated)),
        ),
    ];
    check_assess_rows(rows);
}

#[test]
fn assess_ends_when_no_permit_needs_a_reissue() {
    let rows = vec![
        (
            "an organisation with no permit at all has no permit",
            with(|f| f.permits = Some(vec![])),
            end(Outcome::NotApplicable, Some(Reason::NoPermit)),
        ),
        (
            "an organisation with only a revoked permit has no permit",
            with(|f| {
                f.permits = Some(vec![permit(
                    "KZ-TS-0001",
                    SERVICE,
                    OLD_NAME,
                    PermitStatus::Revoked,
                )])
            }),
            end(Outcome::NotApplicable, Some(Reason::NoPermit)),
        ),
        (
            "an organisation with only another service's permit has no permit",
            with(|f| {
                f.permits = Some(vec![permit(
                    "KZ-CL-0001",
                    "communications_license",
                    OLD_NAME,
                    PermitStatus::Active,
                )])
            }),
            end(Outcome::NotApplicable, Some(Reason::NoPermit)),
        ),
        (
            "an organisation whose every active permit bears the new name is already current",
            with(|f| {
                f.permits = Some(vec![
                    permit("KZ-TS-0001", SERVICE, NEW_NAME, PermitStatus::Active),
                    permit("KZ-TS-0002", SERVICE, NEW_NAME, PermitStatus::Active),
                    permit("KZ-TS-0003", SERVICE, OLD_NAME, PermitStatus::Revoked),
                ])
            }),
            end(Outcome::NotApplicable, Some(Reason::AlreadyCurrent)),
        ),
        (
            "e-license answering with a permit of another BIN fails with invalid data",
            with(|f| {
                let mut p = active_old("KZ-TS-0001");
                p.bin = Bin::parse(OTHER_BIN).unwrap();
                f.permits = Some(vec![p]);
            }),
            end(Outcome::Failed, Some(Reason::InvalidData)),
        ),
    ];
    check_assess_rows(rows);
}

#[test]
fn the_affected_permits_are_the_active_ones_of_this_service_under_another_name() {
    let rows = vec![
        (
            "revoked, other-service and already-current permits are left out; the rest keep their order",
            with(|f| {
                f.permits = Some(vec![
                    active_old("KZ-TS-0002"),
                    permit("KZ-TS-0003", SERVICE, NEW_NAME, PermitStatus::Active),
                    permit("KZ-TS-0004", SERVICE, OLD_NAME, PermitStatus::Revoked),
                    permit(
                        "KZ-CL-0005",
                        "communications_license",
                        OLD_NAME,
                        PermitStatus::Active,
                    ),
                    permit(
                        "KZ-TS-0006",
                        SERVICE,
                        "ТОО «Одан да Ескі»",
                        PermitStatus::Active,
                    ),
                ])
            }),
            ready(PHONE, &["KZ-TS-0002", "KZ-TS-0006"]),
        ),
        (
            "a name that differs only in its quotes still counts as another name",
            with(|f| {
                f.permits = Some(vec![permit(
                    "KZ-TS-0007",
                    SERVICE,
                    "ТОО \"Жаңа Технологиялар\"",
                    PermitStatus::Active,
                )])
            }),
            ready(PHONE, &["KZ-TS-0007"]),
        ),
    ];
    check_assess_rows(rows);
}

#[test]
fn assess_ends_without_a_first_head() {
    let rows = vec![(
        "an organisation with affected permits but no first head has no head",
        with(|f| {
            let mut org = organization();
            org.first_head = None;
            f.organization = Some(Some(org));
            f.civil = None;
            f.person = None;
            f.phone = None;
        }),
        end(Outcome::NoHead, None),
    )];
    check_assess_rows(rows);
}

#[test]
fn each_criterion_alone_makes_the_head_ineligible() {
    let ineligible = |r| end(Outcome::Ineligible, Some(r));
    let rows = vec![
        (
            "a head with a death record is ineligible as deceased",
            with(|f| f.civil = Some(Some(civil(true, false, false)))),
            ineligible(Reason::Deceased),
        ),
        (
            "a head declared dead is ineligible as declared dead",
            with(|f| f.civil = Some(Some(civil(false, true, false)))),
            ineligible(Reason::DeclaredDead),
        ),
        (
            "a head declared missing is ineligible as declared missing",
            with(|f| f.civil = Some(Some(civil(false, false, true)))),
            ineligible(Reason::DeclaredMissing),
        ),
        (
            "a head residing abroad is ineligible as residence abroad",
            with(|f| f.person = Some(Some(person(true, false, false)))),
            ineligible(Reason::ResidenceAbroad),
        ),
        (
            "an incapacitated head is ineligible as incapacitated",
            with(|f| f.person = Some(Some(person(false, true, false)))),
            ineligible(Reason::Incapacitated),
        ),
        (
            "an imprisoned head is ineligible as imprisoned",
            with(|f| f.person = Some(Some(person(false, false, true)))),
            ineligible(Reason::Imprisoned),
        ),
        (
            "a civil exclusion ends the case before the individuals registry is asked",
            with(|f| {
                f.civil = Some(Some(civil(true, false, false)));
                f.person = None;
                f.phone = None;
            }),
            ineligible(Reason::Deceased),
        ),
    ];
    check_assess_rows(rows);
}

#[test]
fn when_several_criteria_hold_the_first_in_contract_order_is_the_reason() {
    let ineligible = |r| end(Outcome::Ineligible, Some(r));
    let rows = vec![
        (
            "deceased and declared missing gives deceased",
            with(|f| f.civil = Some(Some(civil(true, false, true)))),
            ineligible(Reason::Deceased),
        ),
        (
            "declared dead and declared missing gives declared dead",
            with(|f| f.civil = Some(Some(civil(false, true, true)))),
            ineligible(Reason::DeclaredDead),
        ),
        (
            "residence abroad and imprisoned gives residence abroad",
            with(|f| f.person = Some(Some(person(true, false, true)))),
            ineligible(Reason::ResidenceAbroad),
        ),
        (
            "incapacitated and imprisoned gives incapacitated",
            with(|f| f.person = Some(Some(person(false, true, true)))),
            ineligible(Reason::Incapacitated),
        ),
        (
            "declared missing (civil) and residence abroad (individuals) gives declared missing",
            with(|f| {
                f.civil = Some(Some(civil(false, false, true)));
                f.person = Some(Some(person(true, false, false)));
            }),
            ineligible(Reason::DeclaredMissing),
        ),
        (
            "every criterion at once gives deceased",
            with(|f| {
                f.civil = Some(Some(civil(true, true, true)));
                f.person = Some(Some(person(true, true, true)));
            }),
            ineligible(Reason::Deceased),
        ),
    ];
    check_assess_rows(rows);
}

#[test]
fn absent_records_are_no_adverse_record_but_a_wrong_person_is_invalid_data() {
    let rows = vec![
        (
            "a head absent from the individuals registry is eligible",
            with(|f| f.person = Some(None)),
            ready(PHONE, &["KZ-TS-0001"]),
        ),
        (
            "a head absent from both registries is eligible",
            with(|f| {
                f.civil = Some(None);
                f.person = Some(None);
            }),
            ready(PHONE, &["KZ-TS-0001"]),
        ),
        (
            "the individuals registry answering for another IIN fails with invalid data",
            with(|f| {
                let mut p = person(false, false, false);
                p.iin = iin(OTHER_IIN);
                f.person = Some(Some(p));
            }),
            end(Outcome::Failed, Some(Reason::InvalidData)),
        ),
    ];
    check_assess_rows(rows);
}

#[test]
fn the_phone_decides_between_an_offer_and_the_general_procedure() {
    let invalid = end(Outcome::NoPhone, Some(Reason::InvalidNumber));
    let phone = |raw: &str| with(|f| f.phone = Some(Some(raw.to_owned())));
    let rows = vec![
        (
            "a head with no number in the mobile base is not registered",
            with(|f| f.phone = Some(None)),
            end(Outcome::NoPhone, Some(Reason::NotRegistered)),
        ),
        (
            "a Russian +7 9xx mobile is an invalid number",
            phone("+79161234567"),
            invalid.clone(),
        ),
        (
            "an Almaty fixed line is an invalid number",
            phone("+77272501234"),
            invalid.clone(),
        ),
        (
            "letters inside the number make it invalid",
            phone("+7 701 ABC 45 67"),
            invalid.clone(),
        ),
        (
            "too few digits make it invalid",
            phone("12345"),
            invalid.clone(),
        ),
        ("an empty number is invalid", phone(""), invalid.clone()),
        (
            "too many digits make it invalid",
            phone("+770112345678"),
            invalid.clone(),
        ),
        (
            "E.164 is taken as it is",
            phone("+77011234567"),
            ready("+77011234567", &["KZ-TS-0001"]),
        ),
        (
            "8 7XX with spaces is normalised",
            phone("8 701 123 45 67"),
            ready("+77011234567", &["KZ-TS-0001"]),
        ),
        (
            "+7 with brackets and dashes is normalised",
            phone("+7 (705) 987-65-43"),
            ready("+77059876543", &["KZ-TS-0001"]),
        ),
        (
            "7 7XX without a plus is normalised",
            phone("7 747 321 00 99"),
            ready("+77473210099", &["KZ-TS-0001"]),
        ),
        (
            "8 7XX run together is normalised",
            phone("87011234567"),
            ready("+77011234567", &["KZ-TS-0001"]),
        ),
        (
            "8-7XX with dashes is normalised",
            phone("8-701-123-45-67"),
            ready("+77011234567", &["KZ-TS-0001"]),
        ),
        (
            "surrounding white space is ignored",
            phone("  +77011234567 "),
            ready("+77011234567", &["KZ-TS-0001"]),
        ),
    ];
    check_assess_rows(rows);
}

#[test]
fn an_ending_says_why_without_personal_data() {
    let facts = with(|f| f.phone = Some(Some("+79161234567".to_owned())));
    let Assessment::End(ending) = assess(&bin(), NEW_NAME, &facts, &Service::default()) else {
        panic!("a Russian number must end the case");
    };
    assert!(
        !ending.detail.contains("9161234567"),
        "the detail must not repeat the number: {}",
        ending.detail
    );
    assert!(!ending.detail.is_empty());
}

// ---------------------------------------------------------------------------------------------------------
// recheck
// ---------------------------------------------------------------------------------------------------------

/// A sentence, the civil record, the individuals record and the reason expected.
type RecheckRow = (
    &'static str,
    Option<CivilRecord>,
    Option<Person>,
    Option<Reason>,
);

#[test]
fn the_recheck_finds_the_first_criterion_that_now_applies() {
    let rows: Vec<RecheckRow> = vec![
        (
            "no record anywhere keeps the head eligible",
            None,
            None,
            None,
        ),
        (
            "clean records keep the head eligible",
            Some(civil(false, false, false)),
            Some(person(false, false, false)),
            None,
        ),
        (
            "a new death record excludes as deceased",
            Some(civil(true, false, false)),
            None,
            Some(Reason::Deceased),
        ),
        (
            "a new declaration of death excludes as declared dead",
            Some(civil(false, true, false)),
            None,
            Some(Reason::DeclaredDead),
        ),
        (
            "a new declaration of missing excludes as declared missing",
            Some(civil(false, false, true)),
            Some(person(false, false, false)),
            Some(Reason::DeclaredMissing),
        ),
        (
            "a move abroad excludes as residence abroad",
            None,
            Some(person(true, false, false)),
            Some(Reason::ResidenceAbroad),
        ),
        (
            "a court decision excludes as incapacitated",
            Some(civil(false, false, false)),
            Some(person(false, true, false)),
            Some(Reason::Incapacitated),
        ),
        (
            "a prison sentence excludes as imprisoned",
            None,
            Some(person(false, false, true)),
            Some(Reason::Imprisoned),
        ),
        (
            "a civil criterion wins over an individuals criterion",
            Some(civil(false, true, false)),
            Some(person(false, false, true)),
            Some(Reason::DeclaredDead),
        ),
    ];
    for (sentence, civil, person, expected) in rows {
        assert_eq!(
            recheck(
                civil.as_ref(),
                person.as_ref(),
                &Service::default().criteria
            ),
            expected,
            "{sentence}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// offer_step
// ---------------------------------------------------------------------------------------------------------

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

fn timing(reminder_after: Duration, expire_after: Duration) -> Timing {
    Timing {
        reminder_after,
        expire_after,
        window: Window {
            start: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(21, 0, 0).unwrap(),
            tz: chrono_tz::Asia::Almaty,
        },
    }
}

fn queued() -> OfferState {
    OfferState {
        stage: Stage::Queued,
        attempt: 0,
        first_sent_at: None,
        second_sent_at: None,
    }
}

fn first_sent(first: &str) -> OfferState {
    OfferState {
        stage: Stage::AwaitingReply,
        attempt: 1,
        first_sent_at: Some(at(first)),
        second_sent_at: None,
    }
}

fn second_sent(first: &str, second: &str) -> OfferState {
    OfferState {
        stage: Stage::AwaitingReply,
        attempt: 2,
        first_sent_at: Some(at(first)),
        second_sent_at: Some(at(second)),
    }
}

#[test]
fn offer_steps_follow_the_window_and_the_timers() {
    let standard = timing(hours(72), hours(72));
    let short = timing(hours(13), hours(13));
    let send = |attempt| OfferStep::Send { attempt };
    let wait = |s: &str| OfferStep::WaitUntil(at(s));
    let rows: Vec<(&str, OfferState, &str, &Timing, OfferStep)> = vec![
        // The first SMS.
        (
            "a queued case inside the window sends the offer",
            queued(),
            "2026-11-02T12:30:00+05:00",
            &standard,
            send(1),
        ),
        (
            "a queued case at 09:00 exactly sends the offer (the window opens inclusive)",
            queued(),
            "2026-11-02T09:00:00+05:00",
            &standard,
            send(1),
        ),
        (
            "a queued case at 20:59:59 still sends the offer",
            queued(),
            "2026-11-02T20:59:59+05:00",
            &standard,
            send(1),
        ),
        (
            "a queued case one second before 09:00 waits for 09:00",
            queued(),
            "2026-11-02T08:59:59+05:00",
            &standard,
            wait("2026-11-02T09:00:00+05:00"),
        ),
        (
            "a queued case at the nightly ingest waits for 09:00 the same day",
            queued(),
            "2026-11-02T02:00:00+05:00",
            &standard,
            wait("2026-11-02T09:00:00+05:00"),
        ),
        (
            "a queued case at 21:00 exactly waits for 09:00 the next day (the window closes exclusive)",
            queued(),
            "2026-11-02T21:00:00+05:00",
            &standard,
            wait("2026-11-03T09:00:00+05:00"),
        ),
        (
            "a queued case at 23:30 waits for 09:00 the next day",
            queued(),
            "2026-11-02T23:30:00+05:00",
            &standard,
            wait("2026-11-03T09:00:00+05:00"),
        ),
        // The reminder.
        (
            "right after the first SMS the case waits 72 h for the reminder",
            first_sent("2026-11-02T09:00:00+05:00"),
            "2026-11-02T09:01:00+05:00",
            &standard,
            wait("2026-11-05T09:00:00+05:00"),
        ),
        (
            "one second before first + 72 h the case still waits",
            first_sent("2026-11-02T09:00:00+05:00"),
            "2026-11-05T08:59:59+05:00",
            &standard,
            wait("2026-11-05T09:00:00+05:00"),
        ),
        (
            "at first + 72 h exactly the reminder goes",
            first_sent("2026-11-02T09:00:00+05:00"),
            "2026-11-05T09:00:00+05:00",
            &standard,
            send(2),
        ),
        (
            "the reminder counts from the actual send, not from 09:00",
            first_sent("2026-11-02T14:17:23+05:00"),
            "2026-11-05T14:17:22+05:00",
            &standard,
            wait("2026-11-05T14:17:23+05:00"),
        ),
        (
            "a reminder due at 20:59:30 but looked at after 21:00 waits for 09:00",
            first_sent("2026-11-02T20:59:30+05:00"),
            "2026-11-05T21:00:30+05:00",
            &standard,
            wait("2026-11-06T09:00:00+05:00"),
        ),
        (
            "a reminder falling at night (13 h after 10:00) waits for 09:00",
            first_sent("2026-11-02T10:00:00+05:00"),
            "2026-11-02T23:00:00+05:00",
            &short,
            wait("2026-11-03T09:00:00+05:00"),
        ),
        (
            "that night reminder goes at 09:00 exactly",
            first_sent("2026-11-02T10:00:00+05:00"),
            "2026-11-03T09:00:00+05:00",
            &short,
            send(2),
        ),
        // Expiry.
        (
            "right after the reminder the case waits 72 h for expiry",
            second_sent("2026-11-02T09:00:00+05:00", "2026-11-05T09:00:00+05:00"),
            "2026-11-05T09:01:00+05:00",
            &standard,
            wait("2026-11-08T09:00:00+05:00"),
        ),
        (
            "one second before second + 72 h the case still waits",
            second_sent("2026-11-02T09:00:00+05:00", "2026-11-05T09:00:00+05:00"),
            "2026-11-08T08:59:59+05:00",
            &standard,
            wait("2026-11-08T09:00:00+05:00"),
        ),
        (
            "at second + 72 h exactly the case expires",
            second_sent("2026-11-02T09:00:00+05:00", "2026-11-05T09:00:00+05:00"),
            "2026-11-08T09:00:00+05:00",
            &standard,
            OfferStep::Expire,
        ),
        (
            "expiry counts from the reminder's actual send, not from first + 144 h",
            second_sent("2026-11-02T10:00:00+05:00", "2026-11-03T09:00:00+05:00"),
            "2026-11-03T21:59:59+05:00",
            &short,
            wait("2026-11-03T22:00:00+05:00"),
        ),
        (
            "expiry is not bound by the window: it happens at 22:00",
            second_sent("2026-11-02T10:00:00+05:00", "2026-11-03T09:00:00+05:00"),
            "2026-11-03T22:00:00+05:00",
            &short,
            OfferStep::Expire,
        ),
        (
            "a case looked at long after its expiry expires",
            second_sent("2026-11-02T09:00:00+05:00", "2026-11-05T09:00:00+05:00"),
            "2026-12-01T03:00:00+05:00",
            &standard,
            OfferStep::Expire,
        ),
        // A sent SMS whose time was lost is sent again (the idempotency key makes it a no-op).
        (
            "attempt 1 without its send time resends attempt 1 inside the window",
            OfferState {
                first_sent_at: None,
                ..first_sent("2026-11-02T09:00:00+05:00")
            },
            "2026-11-02T10:00:00+05:00",
            &standard,
            send(1),
        ),
        (
            "attempt 1 without its send time waits for the window at night",
            OfferState {
                first_sent_at: None,
                ..first_sent("2026-11-02T09:00:00+05:00")
            },
            "2026-11-02T22:00:00+05:00",
            &standard,
            wait("2026-11-03T09:00:00+05:00"),
        ),
    ];
    let mut failures = Vec::new();
    for (sentence, state, now, timing, expected) in rows {
        let got = offer_step(&state, at(now), timing);
        if got != expected {
            failures.push(format!(
                "{sentence}\n    expected: {expected:?}\n    got:      {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------------------
// parse_reply
// ---------------------------------------------------------------------------------------------------------

#[test]
fn replies_are_one_or_two_with_white_space_and_one_trailing_dot_ignored() {
    let rows: Vec<(&str, Option<Choice>)> = vec![
        ("1", Some(Choice::Agree)),
        ("2", Some(Choice::Refuse)),
        (" 1 ", Some(Choice::Agree)),
        ("1.", Some(Choice::Agree)),
        (" 2. ", Some(Choice::Refuse)),
        ("1\n", Some(Choice::Agree)),
        ("\t2\r\n", Some(Choice::Refuse)),
        ("  1.  ", Some(Choice::Agree)),
        ("1..", None),
        ("１", None),
        ("٢", None),
        ("3", None),
        ("0", None),
        ("01", None),
        ("11", None),
        ("+1", None),
        (".1", None),
        ("yes", None),
        ("иә", None),
        ("", None),
        ("   ", None),
        (".", None),
        ("1 2", None),
        ("1,", None),
    ];
    let failures: Vec<String> = rows
        .into_iter()
        .filter_map(|(text, expected)| {
            let got = parse_reply(text, &Service::default());
            (got != expected).then(|| format!("{text:?}: expected {expected:?}, got {got:?}"))
        })
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------------------
// retry_delay, case_key
// ---------------------------------------------------------------------------------------------------------

#[test]
fn transient_failures_back_off_1_2_4_8_then_every_15_minutes() {
    let minutes = |m: u64| Duration::from_secs(60 * m);
    let rows = vec![
        (0, minutes(1)),
        (1, minutes(2)),
        (2, minutes(4)),
        (3, minutes(8)),
        (4, minutes(15)),
        (5, minutes(15)),
        (63, minutes(15)),
        (64, minutes(15)),
        (u32::MAX, minutes(15)),
    ];
    for (retries, expected) in rows {
        assert_eq!(
            retry_delay(retries),
            expected,
            "after failure number {}",
            u64::from(retries) + 1
        );
    }
}

#[test]
fn the_case_key_is_the_bin_and_the_rename_instant_in_unix_milliseconds() {
    let rows = vec![
        (
            "a rename at 15:00 Almaty",
            BIN,
            "2026-11-01T15:00:00+05:00",
            "201140000017-1793527200000",
        ),
        (
            "the same instant written in UTC gives the same key",
            BIN,
            "2026-11-01T10:00:00Z",
            "201140000017-1793527200000",
        ),
        (
            "another rename of the same organisation gives another key",
            BIN,
            "2026-11-01T10:00:00+05:00",
            "201140000017-1793509200000",
        ),
        (
            "two renames within one second still get two keys",
            BIN,
            "2026-11-01T10:00:00.250+05:00",
            "201140000017-1793509200250",
        ),
        (
            "a BIN that fails validation is kept as the registry sent it",
            "20114000001X",
            "2026-11-01T10:00:00+05:00",
            "20114000001X-1793509200000",
        ),
    ];
    for (sentence, bin_raw, rename_at, expected) in rows {
        assert_eq!(case_key(bin_raw, at(rename_at)), expected, "{sentence}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Stored names
// ---------------------------------------------------------------------------------------------------------

#[test]
fn every_stage_round_trips_through_its_stored_name() {
    let rows = [
        (Stage::Checking, "checking"),
        (Stage::Queued, "queued"),
        (Stage::AwaitingReply, "awaiting_reply"),
        (Stage::ConsentPending, "consent_pending"),
        (Stage::Reissuing, "reissuing"),
        (Stage::WritingBack, "writing_back"),
    ];
    for (stage, name) in rows {
        assert_eq!(stage.as_str(), name);
        assert_eq!(stage.to_string(), name);
        assert_eq!(Stage::parse(name), Some(stage));
        assert_eq!(serde_json::to_value(stage).unwrap(), name, "serde agrees");
    }
    assert_eq!(Stage::parse("open"), None);
    assert_eq!(Stage::parse("Queued"), None);
}

#[test]
fn every_outcome_round_trips_through_its_contract_name() {
    let rows = [
        (Outcome::NotApplicable, "not_applicable"),
        (Outcome::NoHead, "no_head"),
        (Outcome::Ineligible, "ineligible"),
        (Outcome::NoPhone, "no_phone"),
        (Outcome::Declined, "declined"),
        (Outcome::Expired, "expired"),
        (Outcome::Reissued, "reissued"),
        (Outcome::Superseded, "superseded"),
        (Outcome::Failed, "failed"),
    ];
    for (outcome, name) in rows {
        assert_eq!(outcome.as_str(), name);
        assert_eq!(outcome.to_string(), name);
        assert_eq!(Outcome::parse(name), Some(outcome));
        assert_eq!(serde_json::to_value(outcome).unwrap(), name, "serde agrees");
    }
    assert_eq!(
        Outcome::parse("open"),
        None,
        "open is a status, not an outcome"
    );
    assert_eq!(Outcome::parse(""), None);
}

#[test]
fn every_reason_round_trips_through_its_contract_name() {
    let rows = [
        (Reason::NoPermit, "no_permit"),
        (Reason::AlreadyCurrent, "already_current"),
        (Reason::Liquidated, "liquidated"),
        (Reason::Deceased, "deceased"),
        (Reason::DeclaredDead, "declared_dead"),
        (Reason::DeclaredMissing, "declared_missing"),
        (Reason::ResidenceAbroad, "residence_abroad"),
        (Reason::Incapacitated, "incapacitated"),
        (Reason::Imprisoned, "imprisoned"),
        (Reason::NotRegistered, "not_registered"),
        (Reason::InvalidNumber, "invalid_number"),
        (Reason::InvalidData, "invalid_data"),
        (Reason::ReissueRejected, "reissue_rejected"),
    ];
    for (reason, name) in rows {
        assert_eq!(reason.as_str(), name);
        assert_eq!(reason.to_string(), name);
        assert_eq!(Reason::parse(name), Some(reason));
        assert_eq!(serde_json::to_value(reason).unwrap(), name, "serde agrees");
    }
    assert_eq!(Reason::parse("no-permit"), None);
}
