//! The decision core: what happens next to a case, as pure functions of the case and what was observed.
//!
//! Nothing here performs I/O or reads a clock; `now` is always an argument. The runner, dry-run and the
//! scenario runner all drive cases through these functions, so the rules of docs/RULES.md §1–§2 (and their
//! precise reading in docs/PROCESS.md) live in exactly one place.

pub mod service;
pub mod state;
pub mod transition;
pub mod window;

use std::time::Duration;

use adapters::{
    Bin, CivilRecord, Iin, Msisdn, OrgStatus, Organization, Permit, PermitStatus, Person,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use service::{Service, Settings};
pub use state::{Case, Status, Write, case_key};
pub use transition::{
    Due, Event, Ingested, OperatorAction, ReplyDecision, Transition, Verdict, WriteDone,
};
pub use window::Window;

/// Where an open case stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Ingested; the registries are being consulted (seed items 6–12).
    Checking,
    /// Eligible with a usable number; waiting for the SMS window or for the phone's earlier offer to end.
    Queued,
    /// An offer SMS went out (attempt 1 or 2); waiting for a reply, the reminder or expiry.
    AwaitingReply,
    /// The head replied 1; consent is to be recorded.
    ConsentPending,
    /// Consent recorded; permits are being re-issued.
    Reissuing,
    /// Permits re-issued; the result is to be written to SDU.
    WritingBack,
}

/// How a case ended (docs/RULES.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// No active permit of this service to re-issue.
    NotApplicable,
    /// The registry names no first head.
    NoHead,
    /// The head is excluded by the criteria.
    Ineligible,
    /// No usable mobile number: general procedure.
    NoPhone,
    /// The head replied 2.
    Declined,
    /// No reply after the reminder.
    Expired,
    /// Re-issued and written to SDU.
    Reissued,
    /// A newer rename of the same organisation took over.
    Superseded,
    /// A permanent error that needs a person.
    Failed,
    /// An operator ended the open case by hand: general procedure.
    ClosedByOperator,
}

/// Why a case ended with its outcome (docs/RULES.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// No active permit of this service.
    NoPermit,
    /// Every active permit already bears the new name.
    AlreadyCurrent,
    /// The organisation is liquidated.
    Liquidated,
    /// A death record exists.
    Deceased,
    /// Declared dead by a court.
    DeclaredDead,
    /// Declared missing by a court.
    DeclaredMissing,
    /// Permanently residing abroad.
    ResidenceAbroad,
    /// Legally incapacitated.
    Incapacitated,
    /// In a place of deprivation of liberty.
    Imprisoned,
    /// No number in the mobile citizens base.
    NotRegistered,
    /// The registered number is not a usable Kazakhstan mobile number.
    InvalidNumber,
    /// A registry sent wrong data.
    InvalidData,
    /// e-license refused to re-issue.
    ReissueRejected,
}

macro_rules! snake_text {
    ($($t:ty),*) => {$(
        impl $t {
            /// The snake_case name stored and printed.
            pub fn as_str(self) -> &'static str {
                Self::NAMES.iter().find(|(v, _)| *v == self).map(|(_, n)| *n).expect("every variant is named")
            }
            /// Parses the stored name.
            pub fn parse(text: &str) -> Option<Self> {
                Self::NAMES.iter().find(|(_, n)| *n == text).map(|(v, _)| *v)
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

impl Stage {
    const NAMES: [(Stage, &'static str); 6] = [
        (Stage::Checking, "checking"),
        (Stage::Queued, "queued"),
        (Stage::AwaitingReply, "awaiting_reply"),
        (Stage::ConsentPending, "consent_pending"),
        (Stage::Reissuing, "reissuing"),
        (Stage::WritingBack, "writing_back"),
    ];
}

impl Outcome {
    const NAMES: [(Outcome, &'static str); 10] = [
        (Outcome::NotApplicable, "not_applicable"),
        (Outcome::NoHead, "no_head"),
        (Outcome::Ineligible, "ineligible"),
        (Outcome::NoPhone, "no_phone"),
        (Outcome::Declined, "declined"),
        (Outcome::Expired, "expired"),
        (Outcome::Reissued, "reissued"),
        (Outcome::Superseded, "superseded"),
        (Outcome::Failed, "failed"),
        (Outcome::ClosedByOperator, "closed_by_operator"),
    ];
}

impl Reason {
    const NAMES: [(Reason, &'static str); 13] = [
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
}

snake_text!(Stage, Outcome, Reason);

/// The registry that holds an eligibility criterion's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registry {
    /// The civil registry: death, court declarations of death or of missing status.
    Civil,
    /// The individuals registry: residence abroad, incapacity, imprisonment.
    Individuals,
}

impl Reason {
    /// The registry whose record decides this eligibility criterion; `None` if the reason is not one.
    pub fn criterion(self) -> Option<Registry> {
        match self {
            Reason::Deceased | Reason::DeclaredDead | Reason::DeclaredMissing => {
                Some(Registry::Civil)
            }
            Reason::ResidenceAbroad | Reason::Incapacitated | Reason::Imprisoned => {
                Some(Registry::Individuals)
            }
            _ => None,
        }
    }

    /// Whether this criterion excludes the head, by the records it reads (no record: it does not).
    fn excludes(self, civil: Option<&CivilRecord>, person: Option<&Person>) -> bool {
        match self {
            Reason::Deceased => civil.is_some_and(|c| c.deceased),
            Reason::DeclaredDead => civil.is_some_and(|c| c.declared_dead),
            Reason::DeclaredMissing => civil.is_some_and(|c| c.declared_missing),
            Reason::ResidenceAbroad => person.is_some_and(|p| p.residence_abroad),
            Reason::Incapacitated => person.is_some_and(|p| p.incapacitated),
            Reason::Imprisoned => person.is_some_and(|p| p.imprisoned),
            _ => false,
        }
    }
}

/// A case's end: outcome, reason and a message for the person who reads the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ending {
    /// The outcome.
    pub outcome: Outcome,
    /// Its reason, where the outcome has one.
    pub reason: Option<Reason>,
    /// What was found, without personal data.
    pub detail: String,
}

impl Ending {
    /// An ending with a reason.
    pub fn new(outcome: Outcome, reason: Option<Reason>, detail: impl Into<String>) -> Self {
        Self {
            outcome,
            reason,
            detail: detail.into(),
        }
    }

    /// `failed` / `invalid_data`.
    pub fn invalid_data(detail: impl Into<String>) -> Self {
        Self::new(Outcome::Failed, Some(Reason::InvalidData), detail)
    }
}

/// What the registries said so far about one case; `None` = not asked yet, `Some(None)` = absent (404).
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The organisation record.
    pub organization: Option<Option<Organization>>,
    /// Its permits of [`SERVICE`].
    pub permits: Option<Vec<Permit>>,
    /// The head's civil-registry record.
    pub civil: Option<Option<CivilRecord>>,
    /// The head in the individuals registry.
    pub person: Option<Option<Person>>,
    /// The head's registered number, raw.
    pub phone: Option<Option<String>>,
}

/// A registry the assessment needs to hear from next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Need {
    /// The legal-entity registry's record of the organisation.
    Organization,
    /// e-license's permits of the organisation.
    Permits,
    /// The civil registry's record of the head.
    Civil,
    /// The individuals registry's record of the head.
    Person,
    /// The mobile citizens base's number of the head.
    Phone,
}

/// An eligible head with a usable number, and what to re-issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The first head.
    pub head: Iin,
    /// The head's number, normalised.
    pub phone: Msisdn,
    /// Active permits of this service that bear another name.
    pub permits: Vec<String>,
}

/// The result of assessing a case from the facts gathered so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assessment {
    /// Ask this registry next.
    Need(Need),
    /// The case ends.
    End(Ending),
    /// The head may be offered the re-issue.
    Ready(Offer),
}

/// Seed items 6–12 in order: the first finding that decides ends the case. The head's IIN is read only
/// once the permits say a head is needed (personal data only where needed); the eligibility criteria are
/// the service's, in its order.
pub fn assess(bin: &Bin, new_name: &str, facts: &Facts, service: &Service) -> Assessment {
    let Some(org) = &facts.organization else {
        return Assessment::Need(Need::Organization);
    };
    let Some(org) = org else {
        return Assessment::End(Ending::invalid_data(
            "the legal-entity registry does not know the renamed organisation",
        ));
    };
    if &org.bin != bin {
        return Assessment::End(Ending::invalid_data(
            "the legal-entity registry answered for another BIN",
        ));
    }
    if org.status == OrgStatus::Liquidated {
        return Assessment::End(Ending::new(
            Outcome::NotApplicable,
            Some(Reason::Liquidated),
            "organisation liquidated",
        ));
    }
    let Some(permits) = &facts.permits else {
        return Assessment::Need(Need::Permits);
    };
    if permits.iter().any(|p| &p.bin != bin) {
        return Assessment::End(Ending::invalid_data(
            "e-license returned a permit of another BIN",
        ));
    }
    let active: Vec<&Permit> = permits
        .iter()
        .filter(|p| p.service == service.code && p.status == PermitStatus::Active)
        .collect();
    if active.is_empty() {
        return Assessment::End(Ending::new(
            Outcome::NotApplicable,
            Some(Reason::NoPermit),
            "no active permit of this service",
        ));
    }
    let affected: Vec<String> = active
        .iter()
        .filter(|p| p.holder_name != new_name)
        .map(|p| p.permit_id.clone())
        .collect();
    if affected.is_empty() {
        return Assessment::End(Ending::new(
            Outcome::NotApplicable,
            Some(Reason::AlreadyCurrent),
            "every active permit already bears the new name",
        ));
    }
    let head = match head_of(org) {
        Ok(Some(head)) => head,
        Ok(None) => {
            return Assessment::End(Ending::new(
                Outcome::NoHead,
                None,
                "the registry names no first head",
            ));
        }
        Err(ending) => return Assessment::End(ending),
    };
    for criterion in &service.criteria {
        let (civil, person) = match criterion.criterion() {
            Some(Registry::Civil) => match &facts.civil {
                None => return Assessment::Need(Need::Civil),
                Some(civil) => (civil.as_ref(), None),
            },
            Some(Registry::Individuals) => match &facts.person {
                None => return Assessment::Need(Need::Person),
                Some(Some(p)) if p.iin != head => {
                    return Assessment::End(Ending::invalid_data(
                        "the individuals registry answered for another IIN",
                    ));
                }
                Some(person) => (None, person.as_ref()),
            },
            None => continue,
        };
        if criterion.excludes(civil, person) {
            return Assessment::End(ineligible(*criterion));
        }
    }
    let Some(phone) = &facts.phone else {
        return Assessment::Need(Need::Phone);
    };
    let Some(raw) = phone else {
        return Assessment::End(Ending::new(
            Outcome::NoPhone,
            Some(Reason::NotRegistered),
            "no number in the mobile citizens base",
        ));
    };
    match Msisdn::parse(raw) {
        Ok(phone) => Assessment::Ready(Offer {
            head,
            phone,
            permits: affected,
        }),
        Err(e) => Assessment::End(Ending::new(
            Outcome::NoPhone,
            Some(Reason::InvalidNumber),
            format!("registered number unusable: {e}"),
        )),
    }
}

/// The organisation's first head, checked: read only once the permits said a head is needed. A malformed
/// IIN is wrong registry data, and ends the case `failed`/`invalid_data`.
pub fn head_of(org: &Organization) -> Result<Option<Iin>, Ending> {
    org.first_head
        .as_ref()
        .map(|raw| {
            raw.check().map_err(|e| {
                Ending::invalid_data(format!(
                    "the legal-entity registry's first head is not a valid IIN: {e}"
                ))
            })
        })
        .transpose()
}

fn ineligible(reason: Reason) -> Ending {
    Ending::new(
        Outcome::Ineligible,
        Some(reason),
        format!("excluded: {reason}"),
    )
}

/// The eligibility re-check before consent and re-issue: the first of `criteria` that now applies, if any.
pub fn recheck(
    civil: Option<&CivilRecord>,
    person: Option<&Person>,
    criteria: &[Reason],
) -> Option<Reason> {
    criteria
        .iter()
        .copied()
        .find(|criterion| criterion.excludes(civil, person))
}

/// A valid answer to the offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    /// "1": agrees.
    Agree,
    /// "2": refuses.
    Refuse,
}

/// Reads a reply by the service's vocabulary (today `1` or `2`), ignoring surrounding white space and one
/// trailing `.`; anything else is `None`.
pub fn parse_reply(text: &str, service: &Service) -> Option<Choice> {
    let trimmed = text.trim();
    let core = trimmed.strip_suffix('.').unwrap_or(trimmed).trim();
    if service.agree.iter().any(|a| a == core) {
        Some(Choice::Agree)
    } else if service.refuse.iter().any(|r| r == core) {
        Some(Choice::Refuse)
    } else {
        None
    }
}

/// Durations and window the offer follows.
#[derive(Debug, Clone)]
pub struct Timing {
    /// First SMS to reminder.
    pub reminder_after: Duration,
    /// Reminder to expiry.
    pub expire_after: Duration,
    /// When SMS may go.
    pub window: Window,
}

/// The offer-related state of an open case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferState {
    /// The stage (`Queued` or `AwaitingReply`).
    pub stage: Stage,
    /// SMS sent so far (0, 1 or 2).
    pub attempt: u8,
    /// When the gateway accepted the first SMS.
    pub first_sent_at: Option<DateTime<Utc>>,
    /// When the gateway accepted the reminder.
    pub second_sent_at: Option<DateTime<Utc>>,
}

/// What to do about an offer now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferStep {
    /// Send SMS number `attempt` (1 or 2) now.
    Send {
        /// 1 for the offer, 2 for the reminder.
        attempt: u8,
    },
    /// Nothing until this instant.
    WaitUntil(DateTime<Utc>),
    /// No reply after the reminder: the case ends `expired`.
    Expire,
}

/// Seed items 13, 15, 16 with the timers and window of docs/RULES.md §2.1–§2.2.
pub fn offer_step(state: &OfferState, now: DateTime<Utc>, timing: &Timing) -> OfferStep {
    let send_when_open = |attempt: u8| {
        if timing.window.contains(now) {
            OfferStep::Send { attempt }
        } else {
            OfferStep::WaitUntil(timing.window.next_open(now))
        }
    };
    match (state.attempt, state.first_sent_at, state.second_sent_at) {
        (0, _, _) => send_when_open(1),
        (1, Some(first), _) => {
            let due = first + timing.reminder_after;
            if now < due {
                OfferStep::WaitUntil(due)
            } else {
                send_when_open(2)
            }
        }
        (_, _, Some(second)) => {
            let due = second + timing.expire_after;
            if now < due {
                OfferStep::WaitUntil(due)
            } else {
                OfferStep::Expire
            }
        }
        // A sent SMS without its time cannot happen (the store writes both together); resend to be safe,
        // the idempotency key makes it a no-op at the gateway.
        (attempt, _, _) => send_when_open(attempt.clamp(1, 2)),
    }
}

/// Back-off after the `retries`-th consecutive transient failure: 1, 2, 4, 8, then every 15 minutes.
pub fn retry_delay(retries: u32) -> Duration {
    let minutes = 1u64 << retries.min(4);
    Duration::from_secs(60 * minutes.min(15))
}

#[cfg(test)]
mod tests;
