//! The transitions: one pure function per kind of event — a rename ingested, a timer due, the registries'
//! findings, an SMS accepted, a write done, an error, a reply, an operator's action — from the case, what
//! was observed, `now` and the settings to the next state and the lines of history it adds. The engine
//! only performs what [`on_due`] asks through the adapters and hands the result back here; it holds no
//! rule of its own.

use adapters::{AdapterError, CivilRecord, Organization, Person, RenameEvent};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::{
    Assessment, Case, Choice, Ending, OfferState, OfferStep, Outcome, Reason, Service, Settings,
    Stage, Status, Timing, offer_step, parse_reply, recheck, retry_delay,
};

/// One line of a case's history: a kind and a JSON detail, identifiers masked.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What kind of step.
    pub kind: &'static str,
    /// JSON detail; identifiers masked.
    pub detail: serde_json::Value,
}

impl Event {
    /// An event.
    pub fn new(kind: &'static str, detail: serde_json::Value) -> Self {
        Self { kind, detail }
    }
}

/// A case's next state and the history lines that explain it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The state to store.
    pub case: Case,
    /// The lines to append to its history.
    pub events: Vec<Event>,
}

impl Transition {
    fn new(case: Case, events: Vec<Event>) -> Self {
        Self { case, events }
    }

    /// Whether the case goes on at once (open and due by `now`), so that its worker may keep it.
    pub fn goes_on(&self, now: DateTime<Utc>) -> bool {
        !self.case.is_ended() && self.case.due_at.is_some_and(|due| due <= now)
    }
}

/// Ends `case` with `ending`: the case releases its phone (the store wakes the next case waiting for it)
/// and waits for nothing more.
fn end(mut case: Case, ending: Ending) -> Transition {
    let event = Event::new("ended", json!(ending));
    case.status = Status::Ended(ending);
    case.due_at = None;
    case.holds_offer = false;
    Transition::new(case, vec![event])
}

/// Moves `case` to `stage`, due at `due`, its transient failures forgotten.
fn advance(mut case: Case, stage: Stage, due: Option<DateTime<Utc>>) -> Case {
    case.status = Status::Open(stage);
    case.due_at = due;
    case.retries = 0;
    case
}

// --- ingested --------------------------------------------------------------------------------------------

/// Why a rename from the feed cannot make a case (a bad BIN, an unprintable new name): it ends
/// `failed`/`invalid_data` at ingest, alone, and the rest of the feed carries on.
pub fn rename_problem(rename: &RenameEvent) -> Option<Ending> {
    if let Err(e) = adapters::Bin::parse(&rename.bin) {
        return Some(Ending::invalid_data(format!(
            "the rename feed sent an invalid BIN: {e}"
        )));
    }
    adapters::ids::name_problem(&rename.to)
        .map(|problem| Ending::invalid_data(format!("the rename feed's new name {problem}")))
}

/// The first line of a new case's history.
pub fn ingested_event(case: &Case, ended: Option<&Ending>) -> Event {
    Event::new(
        "ingested",
        json!({"bin": case.bin, "rename_at": case.rename_at, "from": case.from_name,
               "to": case.to_name, "ended": ended}),
    )
}

/// What a new rename does to its organisation's cases.
#[derive(Debug, Clone, PartialEq)]
pub struct Ingested {
    /// The new case, ended at once if a later rename is already being handled.
    pub new: Option<Transition>,
    /// The open cases it supersedes.
    pub superseded: Vec<Transition>,
}

/// A rename of an organisation whose case is still open ends that case `superseded` (its waiting offer is
/// void) and the new case carries on; a rename that arrives after a later one is already out of date and
/// ends `superseded` itself. `open` are the organisation's other open cases.
pub fn on_ingested(new: &Case, open: &[Case]) -> Ingested {
    if open.iter().any(|c| c.rename_at > new.rename_at) {
        let ending = Ending::new(
            Outcome::Superseded,
            None,
            "a later rename of this organisation is already being handled",
        );
        return Ingested {
            new: Some(end(new.clone(), ending)),
            superseded: Vec::new(),
        };
    }
    let superseded = open
        .iter()
        .map(|older| {
            let ending = Ending::new(
                Outcome::Superseded,
                None,
                format!("superseded by the rename to «{}»", new.to_name),
            );
            let mut t = end(older.clone(), ending.clone());
            t.events = vec![Event::new(
                "ended",
                json!({"outcome": ending.outcome, "detail": ending.detail, "by_case": new.id}),
            )];
            t
        })
        .collect();
    Ingested {
        new: None,
        superseded,
    }
}

// --- timer due -------------------------------------------------------------------------------------------

/// Whether outgoing SMS may go: the operators' emergency switch (docs/CONSOLE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sending {
    /// SMS go as the timers and the window say.
    Allowed,
    /// No SMS goes; a case whose SMS is due looks again after [`PAUSED_RECHECK`].
    Paused,
}

/// How soon a case held by the pause looks again: one daemon tick (a minute by default), so that after a
/// resume what waited goes within a tick.
pub const PAUSED_RECHECK: chrono::Duration = chrono::Duration::minutes(1);

/// What a due case needs next.
#[derive(Debug, Clone, PartialEq)]
pub enum Due {
    /// Consult the registries (seed items 6–12), asking each only when [`super::assess`] needs it; the
    /// result goes to [`on_checked`].
    Check,
    /// Send SMS `attempt` (1 the offer, 2 the reminder), first taking the phone's one offer slot if
    /// `take_slot`; the result goes to [`on_send_accepted`] (or [`on_slot_busy`]).
    Send {
        /// 1 or 2.
        attempt: u8,
        /// The case does not hold its phone's offer slot yet.
        take_slot: bool,
    },
    /// Check eligibility again ([`on_recheck`]), then record the head's consent ([`on_write_done`]).
    RecordConsent,
    /// Read the organisation's current name ([`on_current_name`]), check eligibility again first if
    /// `recheck`, then re-issue `permit` under that name.
    Reissue {
        /// The permit.
        permit: String,
        /// Whether eligibility must be checked again first.
        recheck: bool,
    },
    /// Write the result back to SDU.
    WriteBack,
    /// Nothing to do outside: the case moves (waits, expires, goes on) by itself.
    Decided(Box<Transition>),
}

/// A decision that needs nothing outside.
fn decided(t: Transition) -> Due {
    Due::Decided(Box::new(t))
}

/// A due case: what it needs next. `rechecked` says eligibility was checked moments ago by the consent
/// step of the same run, so the re-issue that follows at once need not ask the registries again; a case
/// that waited in between (a re-issue retried later, a restart) is checked again.
pub fn on_due(
    case: &Case,
    now: DateTime<Utc>,
    settings: &Settings,
    rechecked: bool,
    sending: Sending,
) -> Due {
    let Some(stage) = case.stage() else {
        return decided(Transition::new(case.clone(), vec![]));
    };
    match stage {
        Stage::Checking => Due::Check,
        Stage::Queued | Stage::AwaitingReply => {
            let state = OfferState {
                stage,
                attempt: case.attempt,
                first_sent_at: case.first_sent_at,
                second_sent_at: case.second_sent_at,
            };
            match offer_step(&state, now, &timing(settings)) {
                OfferStep::WaitUntil(at) => {
                    let mut next = case.clone();
                    next.due_at = Some(at);
                    decided(Transition::new(next, vec![]))
                }
                OfferStep::Expire => decided(end(
                    case.clone(),
                    Ending::new(Outcome::Expired, None, "no reply after the reminder"),
                )),
                OfferStep::Send { .. } if sending == Sending::Paused => {
                    // Held, not rescheduled by the timers: the reminder and expiry count from the SMS
                    // actually sent, so a pause shifts them by its own length.
                    let mut next = case.clone();
                    next.due_at = Some(now + PAUSED_RECHECK);
                    decided(Transition::new(next, vec![]))
                }
                OfferStep::Send { attempt } => Due::Send {
                    attempt,
                    take_slot: !case.holds_offer,
                },
            }
        }
        Stage::ConsentPending => Due::RecordConsent,
        Stage::Reissuing => match case.permits.iter().find(|p| !case.reissued.contains(p)) {
            Some(permit) => Due::Reissue {
                permit: permit.clone(),
                recheck: case.reissued.is_empty() && !rechecked,
            },
            None => decided(Transition::new(
                advance(case.clone(), Stage::WritingBack, Some(now)),
                vec![],
            )),
        },
        Stage::WritingBack => Due::WriteBack,
    }
}

fn timing(settings: &Settings) -> Timing {
    Timing {
        reminder_after: settings.reminder_after,
        expire_after: settings.expire_after,
        window: settings.window,
    }
}

// --- findings --------------------------------------------------------------------------------------------

/// The registries' findings for a case being checked (`assessment` is final: an ending or an offer).
/// An eligible head with a usable number is queued for the SMS window (due when it opens: no second look
/// before then).
pub fn on_checked(
    case: &Case,
    assessment: Assessment,
    findings: serde_json::Value,
    now: DateTime<Utc>,
    settings: &Settings,
) -> Transition {
    let checked = Event::new("checked", findings);
    match assessment {
        Assessment::End(ending) => {
            let mut t = end(case.clone(), ending);
            t.events.insert(0, checked);
            t
        }
        Assessment::Ready(offer) => {
            let due = if settings.window.contains(now) {
                now
            } else {
                settings.window.next_open(now)
            };
            let mut next = advance(case.clone(), Stage::Queued, Some(due));
            let queued = Event::new(
                "queued",
                json!({"permits": offer.permits, "phone": offer.phone.masked()}),
            );
            next.head = Some(offer.head);
            next.phone = Some(offer.phone);
            next.permits = offer.permits;
            Transition::new(next, vec![checked, queued])
        }
        Assessment::Need(need) => {
            unreachable!("the checks hand over only final assessments, not {need:?}")
        }
    }
}

/// Another case holds the phone's one offer: this one waits for its end, which wakes it. The later look is
/// only a guard against a missed wake-up.
pub fn on_slot_busy(case: &Case, now: DateTime<Utc>) -> Transition {
    let mut next = case.clone();
    next.due_at = Some(now + chrono::Duration::hours(6));
    Transition::new(next, vec![])
}

/// The eligibility re-check just before consent and re-issue (docs/RULES.md §2.6): a head who has become
/// ineligible ends the case with the first criterion that now applies. `None`: still eligible.
pub fn on_recheck(
    case: &Case,
    civil: Option<&CivilRecord>,
    person: Option<&Person>,
    service: &Service,
) -> Option<Transition> {
    if let (Some(p), Some(head)) = (person, &case.head)
        && &p.iin != head
    {
        return Some(end(
            case.clone(),
            Ending::invalid_data("the individuals registry answered for another IIN"),
        ));
    }
    recheck(civil, person, &service.criteria).map(|reason| {
        end(
            case.clone(),
            Ending::new(
                Outcome::Ineligible,
                Some(reason),
                format!("excluded at the re-check: {reason}"),
            ),
        )
    })
}

/// The name to re-issue under: the one the organisation bears in the registry at the moment of the
/// re-issue (a rename recorded after the offer but not yet ingested must not leave the permit under an
/// outdated name). `Err` ends the case: the registry no longer knows the organisation.
pub fn on_current_name(case: &Case, org: Option<&Organization>) -> Result<String, Box<Transition>> {
    match org {
        Some(org) if org.bin.as_str() == case.bin => Ok(org.name.clone()),
        Some(_) => Err(Box::new(end(
            case.clone(),
            Ending::invalid_data("the legal-entity registry answered for another BIN"),
        ))),
        None => Err(Box::new(end(
            case.clone(),
            Ending::invalid_data(
                "the legal-entity registry no longer knows the organisation at the re-issue",
            ),
        ))),
    }
}

// --- send accepted, write done ---------------------------------------------------------------------------

/// The gateway accepted SMS `attempt`: the timers run from the instant it was accepted, not from when it
/// was asked for (the reminder `reminder_after` after the first, expiry `expire_after` after the second).
pub fn on_send_accepted(
    case: &Case,
    attempt: u8,
    accepted_at: DateTime<Utc>,
    message_id: &str,
    settings: &Settings,
) -> Transition {
    let wait = match attempt {
        1 => settings.reminder_after,
        _ => settings.expire_after,
    };
    let due = accepted_at + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
    let mut next = advance(case.clone(), Stage::AwaitingReply, Some(due));
    next.attempt = attempt;
    next.holds_offer = true;
    if attempt == 1 {
        next.first_sent_at = Some(accepted_at);
    } else {
        next.second_sent_at = Some(accepted_at);
    }
    let to = case.phone.as_ref().map(|p| p.masked());
    let event = Event::new(
        "sms_sent",
        json!({"attempt": attempt, "to": to, "message_id": message_id, "accepted_at": accepted_at}),
    );
    Transition::new(next, vec![event])
}

/// An outward write other than an SMS that the system confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum WriteDone {
    /// The consent service recorded the consent.
    Consent {
        /// Its id.
        consent_id: String,
        /// When.
        recorded_at: DateTime<Utc>,
    },
    /// e-license re-issued a permit.
    Reissue {
        /// The permit.
        permit_id: String,
        /// The name it now bears.
        holder_name: String,
    },
    /// SDU took the result.
    Sdu {
        /// Its record id.
        record_id: String,
    },
}

/// A confirmed write moves the case on: consent → re-issue, each permit in turn → SDU → `reissued`.
pub fn on_write_done(case: &Case, done: WriteDone, now: DateTime<Utc>) -> Transition {
    match done {
        WriteDone::Consent {
            consent_id,
            recorded_at,
        } => Transition::new(
            advance(case.clone(), Stage::Reissuing, Some(now)),
            vec![Event::new(
                "consent_recorded",
                json!({"consent_id": consent_id, "recorded_at": recorded_at}),
            )],
        ),
        WriteDone::Reissue {
            permit_id,
            holder_name,
        } => {
            let mut next = case.clone();
            if !next.reissued.contains(&permit_id) {
                next.reissued.push(permit_id.clone());
            }
            next.reissue_name = Some(holder_name.clone());
            let all_done = next.permits.iter().all(|p| next.reissued.contains(p));
            let stage = if all_done {
                Stage::WritingBack
            } else {
                Stage::Reissuing
            };
            Transition::new(
                advance(next, stage, Some(now)),
                vec![Event::new(
                    "permit_reissued",
                    json!({"permit_id": permit_id, "holder_name": holder_name}),
                )],
            )
        }
        WriteDone::Sdu { record_id } => {
            let mut t = end(
                case.clone(),
                Ending::new(
                    Outcome::Reissued,
                    None,
                    "permits re-issued and written to SDU",
                ),
            );
            t.events.insert(
                0,
                Event::new("sdu_written", json!({"record_id": record_id})),
            );
            t
        }
    }
}

// --- error -----------------------------------------------------------------------------------------------

/// What an upstream error means for a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It passes: the case waits and retries, and never ends for it.
    Transient,
    /// It will not pass: the case ends `failed` with this reason and needs a person.
    Permanent(Reason),
}

/// Transient errors never end a case; a refusal of the re-issue itself is `reissue_rejected`; any other
/// permanent error (wrong data, a refusal elsewhere) is `invalid_data`.
pub fn verdict(stage: Option<Stage>, error: &AdapterError) -> Verdict {
    match error {
        AdapterError::Transient { .. } => Verdict::Transient,
        AdapterError::Permanent { .. } if stage == Some(Stage::Reissuing) => {
            Verdict::Permanent(Reason::ReissueRejected)
        }
        _ => Verdict::Permanent(Reason::InvalidData),
    }
}

/// An upstream error during a case's step: a transient one re-schedules the case with a back-off
/// ([`retry_delay`]), a permanent one ends it `failed`.
pub fn on_error(case: &Case, error: &AdapterError, now: DateTime<Utc>) -> Transition {
    match verdict(case.stage(), error) {
        Verdict::Transient => {
            let delay = retry_delay(case.retries);
            let mut next = case.clone();
            next.retries += 1;
            next.due_at = Some(now + chrono::Duration::from_std(delay).unwrap_or_default());
            let (system, detail) = match error {
                AdapterError::Transient { system, detail } => (*system, detail.as_str()),
                _ => ("", ""),
            };
            Transition::new(
                next,
                vec![Event::new(
                    "transient",
                    json!({"system": system, "detail": detail, "retry_in_s": delay.as_secs()}),
                )],
            )
        }
        Verdict::Permanent(reason) => end(
            case.clone(),
            Ending::new(Outcome::Failed, Some(reason), error.to_string()),
        ),
    }
}

/// A stored case that cannot be read ends `failed`/`invalid_data`, with what was wrong: acted on, it could
/// do anything; released unchanged, it would be claimed again at once, for ever.
pub fn on_unreadable(case: &Case, problem: &str) -> Transition {
    end(
        case.clone(),
        Ending::invalid_data(format!("the stored case cannot be read: {problem}")),
    )
}

// --- reply -----------------------------------------------------------------------------------------------

/// What a stored reply does.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyDecision {
    /// Not an answer of the vocabulary: recorded, changes nothing.
    Invalid,
    /// No offer waits for this number (none sent, ended, or sent after the reply): changes nothing.
    NoOffer,
    /// The number's case holds the offer but has not recorded its SMS as sent yet (a process killed between
    /// the gateway's acceptance and the record): the reply waits, so that a "1" is never lost.
    Wait,
    /// The reply decides the offer.
    Matched(Box<Transition>),
}

/// A reply from a number whose one offer slot `holder` holds (if any). The first valid reply decides;
/// later ones find the case no longer awaiting a reply.
pub fn on_reply(
    text: &str,
    message_id: &str,
    received_at: DateTime<Utc>,
    holder: Option<&Case>,
    now: DateTime<Utc>,
    service: &Service,
) -> ReplyDecision {
    let Some(choice) = parse_reply(text, service) else {
        return ReplyDecision::Invalid;
    };
    let Some(case) = holder else {
        return ReplyDecision::NoOffer;
    };
    match case.stage() {
        Some(Stage::Queued) => ReplyDecision::Wait,
        Some(Stage::AwaitingReply) if case.first_sent_at.is_some_and(|t| t <= received_at) => {
            let reply = Event::new(
                "reply",
                json!({"message_id": message_id, "choice": choice, "received_at": received_at}),
            );
            ReplyDecision::Matched(Box::new(match choice {
                Choice::Agree => Transition::new(
                    advance(case.clone(), Stage::ConsentPending, Some(now)),
                    vec![reply],
                ),
                Choice::Refuse => {
                    let mut t = end(
                        case.clone(),
                        Ending::new(
                            Outcome::Declined,
                            None,
                            "the head replied 2: general procedure",
                        ),
                    );
                    t.events.insert(0, reply);
                    t
                }
            }))
        }
        _ => ReplyDecision::NoOffer,
    }
}

// --- operator action -------------------------------------------------------------------------------------

/// What an operator may do to one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorAction {
    /// Take a `failed` case up again from its checks, once its data was corrected. The idempotency keys stay
    /// derived from the rename, so a write already done for a step is not done again.
    Retry,
    /// End an open case by hand: the service is then provided under the general procedure.
    EndByHand,
}

/// An operator's action on a case, with who and why; `Err` says why it does not apply.
pub fn on_operator_action(
    case: &Case,
    action: OperatorAction,
    operator: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Transition, String> {
    if reason.trim().is_empty() {
        return Err("an operator action needs a reason".into());
    }
    let event = Event::new(
        "operator_action",
        json!({"action": action, "operator": operator, "reason": reason}),
    );
    match (action, &case.status) {
        (OperatorAction::Retry, Status::Ended(ending)) if ending.outcome == Outcome::Failed => {
            let mut next = advance(case.clone(), Stage::Checking, Some(now));
            next.holds_offer = false;
            Ok(Transition::new(next, vec![event]))
        }
        (OperatorAction::Retry, _) => Err("only a failed case can be retried".into()),
        (OperatorAction::EndByHand, Status::Open(_)) => {
            let mut t = end(
                case.clone(),
                Ending::new(
                    Outcome::ClosedByOperator,
                    None,
                    format!("ended by hand by {operator}: general procedure"),
                ),
            );
            t.events.insert(0, event);
            Ok(t)
        }
        (OperatorAction::EndByHand, Status::Ended(_)) => Err("the case has already ended".into()),
    }
}

#[cfg(test)]
#[path = "transition_tests.rs"]
mod tests;
