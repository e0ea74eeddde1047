//! Table tests of the transitions, one table per kind of event: each row is a sentence, the case before,
//! the observation and what must follow; a failure names the row.

use adapters::{AdapterError, Bin, CivilRecord, Iin, Msisdn, OrgStatus, Organization, Person};
use chrono::{DateTime, NaiveTime, Utc};

use super::*;
use crate::case::{Ending, Offer, Outcome, Reason, Stage, Status, Window, Write, case_key};

const BIN: &str = "201140000017";
const HEAD: &str = "850214300013";
const PHONE: &str = "+77011234567";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn settings() -> Settings {
    Settings {
        service: Service::default(),
        language: "kk".into(),
        reminder_after: std::time::Duration::from_secs(72 * 3600),
        expire_after: std::time::Duration::from_secs(72 * 3600),
        window: Window {
            start: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(21, 0, 0).unwrap(),
            tz: chrono_tz::Asia::Almaty,
        },
    }
}

/// A case at `stage`, with what that stage has by then.
fn case(stage: Stage) -> Case {
    let offered = stage != Stage::Checking;
    Case {
        id: 7,
        key: case_key(BIN, at("2026-11-01T15:00:00+05:00")),
        bin: BIN.into(),
        rename_at: at("2026-11-01T15:00:00+05:00"),
        from_name: "ТОО «Ескі»".into(),
        to_name: "ТОО «Жаңа»".into(),
        status: Status::Open(stage),
        attempt: 0,
        head: offered.then(|| Iin::parse(HEAD).unwrap()),
        phone: offered.then(|| Msisdn::parse(PHONE).unwrap()),
        holds_offer: false,
        permits: if offered {
            vec!["KZ-TS-1".into(), "KZ-TS-2".into()]
        } else {
            vec![]
        },
        reissued: vec![],
        reissue_name: None,
        first_sent_at: None,
        second_sent_at: None,
        due_at: Some(at("2026-11-02T02:00:00+05:00")),
        retries: 0,
        region: None,
        activity: None,
    }
}

fn sent(attempt: u8, first: &str, second: Option<&str>) -> Case {
    let mut c = case(Stage::AwaitingReply);
    c.attempt = attempt;
    c.holds_offer = true;
    c.first_sent_at = Some(at(first));
    c.second_sent_at = second.map(at);
    c
}

/// A transition in words: the status, the due time, and the kinds of the history lines.
fn said(t: &Transition) -> String {
    let status = match &t.case.status {
        Status::Open(stage) => format!("open/{stage}"),
        Status::Ended(e) => match e.reason {
            Some(r) => format!("{}/{r}", e.outcome),
            None => e.outcome.to_string(),
        },
    };
    let due = t
        .case
        .due_at
        .map(|d| {
            d.with_timezone(&chrono_tz::Asia::Almaty)
                .format(" due %m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_default();
    let kinds: Vec<&str> = t.events.iter().map(|e| e.kind).collect();
    format!("{status}{due} [{}]", kinds.join(", "))
}

fn said_due(d: &Due) -> String {
    match d {
        Due::Decided(t) => format!("decided {}", said(t)),
        other => format!("{other:?}"),
    }
}

fn check<T>(rows: Vec<(&str, T, String)>, run: impl Fn(T) -> String) {
    let failures: Vec<String> = rows
        .into_iter()
        .filter_map(|(sentence, input, expected)| {
            let got = run(input);
            (got != expected)
                .then(|| format!("{sentence}\n    expected: {expected}\n    got:      {got}"))
        })
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn a_due_case_asks_for_what_its_stage_needs() {
    let mut reissuing_done = case(Stage::Reissuing);
    reissuing_done.reissued = reissuing_done.permits.clone();
    let mut reissuing_half = case(Stage::Reissuing);
    reissuing_half.reissued = vec!["KZ-TS-1".into()];
    let mut queued_with_slot = case(Stage::Queued);
    queued_with_slot.holds_offer = true;
    let rows: Vec<(&str, (Case, &str, bool), String)> = vec![
        (
            "a case being checked consults the registries",
            (case(Stage::Checking), "2026-11-02T02:00:00+05:00", false),
            "Check".into(),
        ),
        (
            "a queued case in the window sends the offer, taking the phone's slot",
            (case(Stage::Queued), "2026-11-02T09:00:00+05:00", false),
            "Send { attempt: 1, take_slot: true }".into(),
        ),
        (
            "a queued case holding its slot sends without taking it again",
            (queued_with_slot, "2026-11-02T09:00:00+05:00", false),
            "Send { attempt: 1, take_slot: false }".into(),
        ),
        (
            "a queued case at night waits for 09:00",
            (case(Stage::Queued), "2026-11-02T22:00:00+05:00", false),
            "decided open/queued due 11-03 09:00 []".into(),
        ),
        (
            "the reminder waits 72 h from the first SMS",
            (
                sent(1, "2026-11-02T09:00:00+05:00", None),
                "2026-11-04T09:00:00+05:00",
                false,
            ),
            "decided open/awaiting_reply due 11-05 09:00 []".into(),
        ),
        (
            "the reminder goes once 72 h have passed",
            (
                sent(1, "2026-11-02T09:00:00+05:00", None),
                "2026-11-05T09:00:00+05:00",
                false,
            ),
            "Send { attempt: 2, take_slot: false }".into(),
        ),
        (
            "silence 72 h after the reminder expires the case",
            (
                sent(
                    2,
                    "2026-11-02T09:00:00+05:00",
                    Some("2026-11-05T09:00:00+05:00"),
                ),
                "2026-11-08T09:00:00+05:00",
                false,
            ),
            "decided expired [ended]".into(),
        ),
        (
            "expiry is not bound by the window",
            (
                sent(
                    2,
                    "2026-11-02T09:00:00+05:00",
                    Some("2026-11-05T22:30:00+05:00"),
                ),
                "2026-11-08T22:30:00+05:00",
                false,
            ),
            "decided expired [ended]".into(),
        ),
        (
            "consent rechecks and records",
            (
                case(Stage::ConsentPending),
                "2026-11-02T10:00:00+05:00",
                false,
            ),
            "RecordConsent".into(),
        ),
        (
            "the first re-issue after a wait checks eligibility again",
            (case(Stage::Reissuing), "2026-11-02T10:00:00+05:00", false),
            "Reissue { permit: \"KZ-TS-1\", recheck: true }".into(),
        ),
        (
            "the first re-issue right after the consent step does not",
            (case(Stage::Reissuing), "2026-11-02T10:00:00+05:00", true),
            "Reissue { permit: \"KZ-TS-1\", recheck: false }".into(),
        ),
        (
            "the second permit follows without a re-check",
            (reissuing_half, "2026-11-02T10:00:00+05:00", false),
            "Reissue { permit: \"KZ-TS-2\", recheck: false }".into(),
        ),
        (
            "every permit re-issued moves on to SDU",
            (reissuing_done, "2026-11-02T10:00:00+05:00", false),
            "decided open/writing_back due 11-02 10:00 []".into(),
        ),
        (
            "writing back writes to SDU",
            (case(Stage::WritingBack), "2026-11-02T10:00:00+05:00", false),
            "WriteBack".into(),
        ),
    ];
    check(rows, |(c, now, rechecked)| {
        said_due(&on_due(
            &c,
            at(now),
            &settings(),
            rechecked,
            Sending::Allowed,
        ))
    });
}

#[test]
fn a_pause_holds_every_sms_and_nothing_else() {
    let paused =
        |c: Case, now: &str| said_due(&on_due(&c, at(now), &settings(), false, Sending::Paused));
    let rows: Vec<(&str, (Case, &str), String)> = vec![
        (
            "a queued case in the window waits a minute instead of sending the offer",
            (case(Stage::Queued), "2026-11-02T09:00:00+05:00"),
            "decided open/queued due 11-02 09:01 []".into(),
        ),
        (
            "a due reminder waits a minute too",
            (
                sent(1, "2026-11-02T09:00:00+05:00", None),
                "2026-11-05T09:00:00+05:00",
            ),
            "decided open/awaiting_reply due 11-05 09:01 []".into(),
        ),
        (
            "a queued case at night still waits for the window",
            (case(Stage::Queued), "2026-11-02T22:00:00+05:00"),
            "decided open/queued due 11-03 09:00 []".into(),
        ),
        (
            "expiry is not an SMS: it goes on",
            (
                sent(
                    2,
                    "2026-11-02T09:00:00+05:00",
                    Some("2026-11-05T09:00:00+05:00"),
                ),
                "2026-11-08T09:00:00+05:00",
            ),
            "decided expired [ended]".into(),
        ),
        (
            "checks go on",
            (case(Stage::Checking), "2026-11-02T09:00:00+05:00"),
            "Check".into(),
        ),
    ];
    check(rows, |(c, now)| paused(c, now));
}

#[test]
fn findings_end_the_case_or_queue_it_for_the_window() {
    let offer = || {
        Assessment::Ready(Offer {
            head: Iin::parse(HEAD).unwrap(),
            phone: Msisdn::parse(PHONE).unwrap(),
            permits: vec!["KZ-TS-1".into()],
        })
    };
    let rows: Vec<(&str, (Assessment, &str), String)> = vec![
        (
            "an ending ends the case after the findings",
            (
                Assessment::End(Ending::new(Outcome::NoHead, None, "")),
                "2026-11-02T02:00:00+05:00",
            ),
            "no_head [checked, ended]".into(),
        ),
        (
            "an offer found at night is due at 09:00",
            (offer(), "2026-11-02T02:00:00+05:00"),
            "open/queued due 11-02 09:00 [checked, queued]".into(),
        ),
        (
            "an offer found in the window is due at once",
            (offer(), "2026-11-02T10:00:00+05:00"),
            "open/queued due 11-02 10:00 [checked, queued]".into(),
        ),
    ];
    check(rows, |(a, now)| {
        said(&on_checked(
            &case(Stage::Checking),
            a,
            serde_json::json!([]),
            at(now),
            &settings(),
        ))
    });
    let queued = on_checked(
        &case(Stage::Checking),
        offer(),
        serde_json::json!([]),
        at("2026-11-02T02:00:00+05:00"),
        &settings(),
    );
    assert_eq!(queued.case.permits, vec!["KZ-TS-1".to_owned()]);
    assert!(queued.case.phone.is_some() && queued.case.head.is_some());
    let busy = on_slot_busy(&case(Stage::Queued), at("2026-11-02T09:00:00+05:00"));
    assert_eq!(
        said(&busy),
        "open/queued due 11-02 15:00 []",
        "a busy phone looks again only as a guard"
    );
}

#[test]
fn the_timers_run_from_the_instant_the_gateway_accepted_the_sms() {
    let rows: Vec<(&str, (Case, u8, &str), String)> = vec![
        (
            "the first SMS sets the reminder 72 h later",
            (case(Stage::Queued), 1, "2026-11-02T09:00:05+05:00"),
            "open/awaiting_reply due 11-05 09:00 [sms_sent]".into(),
        ),
        (
            "the reminder sets expiry 72 h later",
            (
                sent(1, "2026-11-02T09:00:00+05:00", None),
                2,
                "2026-11-05T20:59:00+05:00",
            ),
            "open/awaiting_reply due 11-08 20:59 [sms_sent]".into(),
        ),
    ];
    check(rows, |(c, attempt, accepted)| {
        said(&on_send_accepted(
            &c,
            attempt,
            at(accepted),
            "m-1",
            &settings(),
        ))
    });
    let t = on_send_accepted(
        &case(Stage::Queued),
        1,
        at("2026-11-02T09:00:05+05:00"),
        "m-1",
        &settings(),
    );
    assert!(t.case.holds_offer && t.case.attempt == 1);
    assert_eq!(t.case.first_sent_at, Some(at("2026-11-02T09:00:05+05:00")));
    let masked = t.events[0].detail.to_string();
    assert!(
        !masked.contains(PHONE) && masked.contains("4567"),
        "{masked}"
    );
}

#[test]
fn confirmed_writes_move_the_case_to_its_next_step() {
    let now = "2026-11-02T10:00:00+05:00";
    let mut one_left = case(Stage::Reissuing);
    one_left.reissued = vec!["KZ-TS-1".into()];
    let rows: Vec<(&str, (Case, WriteDone), String)> = vec![
        (
            "consent recorded moves on to the re-issue",
            (
                case(Stage::ConsentPending),
                WriteDone::Consent {
                    consent_id: "c".into(),
                    recorded_at: at(now),
                },
            ),
            "open/reissuing due 11-02 10:00 [consent_recorded]".into(),
        ),
        (
            "a permit re-issued with one left stays re-issuing",
            (
                case(Stage::Reissuing),
                WriteDone::Reissue {
                    permit_id: "KZ-TS-1".into(),
                    holder_name: "N".into(),
                },
            ),
            "open/reissuing due 11-02 10:00 [permit_reissued]".into(),
        ),
        (
            "the last permit re-issued moves on to SDU",
            (
                one_left,
                WriteDone::Reissue {
                    permit_id: "KZ-TS-2".into(),
                    holder_name: "N".into(),
                },
            ),
            "open/writing_back due 11-02 10:00 [permit_reissued]".into(),
        ),
        (
            "SDU written ends the case reissued",
            (
                case(Stage::WritingBack),
                WriteDone::Sdu {
                    record_id: "r".into(),
                },
            ),
            "reissued [sdu_written, ended]".into(),
        ),
    ];
    check(rows, |(c, done)| said(&on_write_done(&c, done, at(now))));
}

#[test]
fn errors_are_transient_or_end_the_case_with_the_right_reason() {
    let now = at("2026-11-02T10:00:00+05:00");
    let transient = || AdapterError::Transient {
        system: "e_license",
        detail: "503".into(),
    };
    let rejected = || AdapterError::Permanent {
        system: "e_license",
        status: 409,
        detail: "no".into(),
    };
    let invalid = || AdapterError::InvalidData {
        system: "legal_entities",
        detail: "bad".into(),
    };
    let mut retried_twice = case(Stage::Checking);
    retried_twice.retries = 2;
    let rows: Vec<(&str, (Case, AdapterError), String)> = vec![
        (
            "a transient error retries after a minute",
            (case(Stage::Checking), transient()),
            "open/checking due 11-02 10:01 [transient]".into(),
        ),
        (
            "the back-off doubles",
            (retried_twice, transient()),
            "open/checking due 11-02 10:04 [transient]".into(),
        ),
        (
            "a refusal of the re-issue is reissue_rejected",
            (case(Stage::Reissuing), rejected()),
            "failed/reissue_rejected [ended]".into(),
        ),
        (
            "a refusal elsewhere is invalid_data",
            (case(Stage::ConsentPending), rejected()),
            "failed/invalid_data [ended]".into(),
        ),
        (
            "wrong data is invalid_data",
            (case(Stage::Checking), invalid()),
            "failed/invalid_data [ended]".into(),
        ),
    ];
    check(rows, |(c, e)| said(&on_error(&c, &e, now)));
    assert_eq!(
        verdict(Some(Stage::Checking), &transient()),
        Verdict::Transient
    );
    let unreadable = on_unreadable(&case(Stage::Queued), "unknown stage `x`");
    assert_eq!(said(&unreadable), "failed/invalid_data [ended]");
}

#[test]
fn replies_decide_only_the_offer_that_waits_for_them() {
    let now = at("2026-11-02T12:00:00+05:00");
    let waiting = sent(1, "2026-11-02T09:00:00+05:00", None);
    type Row<'a> = (&'a str, &'a str, Option<Case>);
    let rows: Vec<(&str, Row, String)> = vec![
        (
            "1 agrees",
            ("1", "2026-11-02T11:00:00+05:00", Some(waiting.clone())),
            "matched open/consent_pending due 11-02 12:00 [reply]".into(),
        ),
        (
            "2 refuses",
            (" 2. ", "2026-11-02T11:00:00+05:00", Some(waiting.clone())),
            "matched declined [reply, ended]".into(),
        ),
        (
            "anything else is invalid",
            ("yes", "2026-11-02T11:00:00+05:00", Some(waiting.clone())),
            "Invalid".into(),
        ),
        (
            "no offer for the number",
            ("1", "2026-11-02T11:00:00+05:00", None),
            "NoOffer".into(),
        ),
        (
            "a reply before the SMS was sent finds no offer",
            ("1", "2026-11-02T08:00:00+05:00", Some(waiting.clone())),
            "NoOffer".into(),
        ),
        (
            "a reply to a case whose send is not recorded waits",
            ("1", "2026-11-02T11:00:00+05:00", Some(case(Stage::Queued))),
            "Wait".into(),
        ),
        (
            "a second reply after the first decided finds no offer",
            (
                "2",
                "2026-11-02T11:00:00+05:00",
                Some(case(Stage::ConsentPending)),
            ),
            "NoOffer".into(),
        ),
    ];
    check(rows, |(text, received, holder)| {
        match on_reply(
            text,
            "m",
            at(received),
            holder.as_ref(),
            now,
            &Service::default(),
        ) {
            ReplyDecision::Matched(t) => format!("matched {}", said(&t)),
            other => format!("{other:?}"),
        }
    });
    let mut service = Service::default();
    service.agree.push("иә".into());
    assert!(
        matches!(
            on_reply(
                "иә",
                "m",
                at("2026-11-02T11:00:00+05:00"),
                Some(&waiting),
                now,
                &service
            ),
            ReplyDecision::Matched(_)
        ),
        "the vocabulary is the service's"
    );
}

#[test]
fn a_rename_supersedes_the_open_cases_of_its_organisation() {
    let mut new = case(Stage::Checking);
    new.id = 9;
    new.rename_at = at("2026-11-03T10:00:00+05:00");
    let older = sent(1, "2026-11-02T09:00:00+05:00", None);
    let decision = on_ingested(&new, std::slice::from_ref(&older));
    assert!(decision.new.is_none(), "the newer rename carries on");
    assert_eq!(decision.superseded.len(), 1);
    assert_eq!(said(&decision.superseded[0]), "superseded [ended]");
    assert!(
        !decision.superseded[0].case.holds_offer,
        "its waiting offer is void"
    );
    assert_eq!(decision.superseded[0].events[0].detail["by_case"], 9);

    let mut late = case(Stage::Checking);
    late.rename_at = at("2026-10-01T10:00:00+05:00");
    let decision = on_ingested(&late, &[older]);
    assert_eq!(
        said(decision.new.as_ref().unwrap()),
        "superseded [ended]",
        "a rename that arrives late is out of date"
    );
    assert!(decision.superseded.is_empty());

    let bad = adapters::RenameEvent {
        bin: "12345".into(),
        at: at("2026-11-01T10:00:00+05:00"),
        from: "a".into(),
        to: "b".into(),
    };
    assert_eq!(
        rename_problem(&bad).map(|e| e.reason),
        Some(Some(Reason::InvalidData))
    );
}

#[test]
fn the_recheck_and_the_current_name_can_end_the_case() {
    let c = case(Stage::ConsentPending);
    let dead = CivilRecord {
        deceased: true,
        declared_dead: false,
        declared_missing: false,
    };
    let abroad = Person {
        iin: Iin::parse(HEAD).unwrap(),
        name: "P".into(),
        residence_abroad: true,
        incapacitated: false,
        imprisoned: false,
    };
    let other = Person {
        iin: Iin::parse("790415307770").unwrap(),
        ..abroad.clone()
    };
    let s = Service::default();
    assert_eq!(
        on_recheck(&c, None, None, &s),
        None,
        "no record excludes no one"
    );
    assert_eq!(
        said(&on_recheck(&c, Some(&dead), None, &s).unwrap()),
        "ineligible/deceased [ended]"
    );
    assert_eq!(
        said(&on_recheck(&c, None, Some(&abroad), &s).unwrap()),
        "ineligible/residence_abroad [ended]"
    );
    assert_eq!(
        said(&on_recheck(&c, None, Some(&other), &s).unwrap()),
        "failed/invalid_data [ended]"
    );
    let lenient = Service {
        criteria: vec![Reason::Deceased],
        ..Service::default()
    };
    assert_eq!(
        on_recheck(&c, None, Some(&abroad), &lenient),
        None,
        "a service's criteria are its own"
    );

    let org = |bin: &str, name: &str| Organization {
        bin: Bin::parse(bin).unwrap(),
        name: name.into(),
        status: OrgStatus::Active,
        first_head: None,
        region: None,
        activity: None,
    };
    assert_eq!(
        on_current_name(&c, Some(&org(BIN, "ТОО «Соңғы»"))).unwrap(),
        "ТОО «Соңғы»"
    );
    assert_eq!(
        said(&on_current_name(&c, Some(&org("190540043216", "X"))).unwrap_err()),
        "failed/invalid_data [ended]"
    );
    assert_eq!(
        said(&on_current_name(&c, None).unwrap_err()),
        "failed/invalid_data [ended]"
    );
}

#[test]
fn operators_retry_failed_cases_and_end_open_ones_by_hand() {
    let now = at("2026-11-02T10:00:00+05:00");
    let mut failed = case(Stage::Checking);
    failed.status = Status::Ended(Ending::invalid_data("bad head"));
    failed.due_at = None;
    let mut declined = failed.clone();
    declined.status = Status::Ended(Ending::new(Outcome::Declined, None, ""));
    type Row = (Case, OperatorAction, &'static str);
    let rows: Vec<(&str, Row, String)> = vec![
        (
            "a failed case is retried from its checks",
            (failed.clone(), OperatorAction::Retry, "data corrected"),
            "open/checking due 11-02 10:00 [operator_action]".into(),
        ),
        (
            "a case that did not fail cannot be retried",
            (declined, OperatorAction::Retry, "why not"),
            "refused: only a failed case can be retried".into(),
        ),
        (
            "an open case is ended by hand",
            (
                case(Stage::Queued),
                OperatorAction::EndByHand,
                "asked by phone",
            ),
            "closed_by_operator [operator_action, ended]".into(),
        ),
        (
            "an ended case cannot be ended again",
            (failed.clone(), OperatorAction::EndByHand, "again"),
            "refused: the case has already ended".into(),
        ),
        (
            "every action needs a reason",
            (failed, OperatorAction::Retry, " "),
            "refused: an operator action needs a reason".into(),
        ),
    ];
    check(rows, |(c, action, reason)| {
        match on_operator_action(&c, action, "aida", reason, now) {
            Ok(t) => said(&t),
            Err(e) => format!("refused: {e}"),
        }
    });
}

#[test]
fn the_idempotency_key_names_the_case_and_the_step() {
    let c = case(Stage::Reissuing);
    assert_eq!(c.key_of(&Write::Sms(2)).0, format!("{}:sms:2", c.key));
    assert_eq!(
        c.key_of(&Write::Reissue("KZ-TS-1".into())).0,
        format!("{}:reissue:KZ-TS-1", c.key)
    );
    assert_eq!(Write::Sdu.kind(), "sdu");
    assert_eq!(Write::Consent.step(), "consent");
}

#[test]
fn a_stored_state_its_stage_cannot_act_on_is_a_problem() {
    let mut no_phone = case(Stage::Queued);
    no_phone.phone = None;
    assert!(no_phone.problem().is_some());
    let mut unsent = case(Stage::AwaitingReply);
    unsent.attempt = 1;
    assert!(
        unsent.problem().is_some(),
        "awaiting a reply without the SMS recorded as sent"
    );
    assert_eq!(sent(1, "2026-11-02T09:00:00+05:00", None).problem(), None);
    assert_eq!(case(Stage::Checking).problem(), None);
}
