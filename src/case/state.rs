//! A case's state, typed: what the store's row holds, read into enums and validated identifiers when a
//! case is loaded, so that every rule works on a state that cannot be half-known. A row that cannot be read
//! (an unknown stage, an open case without its stage, a queued case without a usable number) is never acted
//! on: [`super::transition::on_unreadable`] ends it `failed`/`invalid_data`.

use adapters::{IdempotencyKey, Iin, Msisdn};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Ending, Outcome, Reason, Stage};

/// Where a case stands: open at a stage, or ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Not ended yet.
    Open(Stage),
    /// Ended, for good.
    Ended(Ending),
}

/// The stored status of a case that has not ended.
pub const OPEN: &str = "open";

impl Status {
    /// The status stored as text (`open` with its stage, or an outcome with its reason and detail).
    /// `Err` carries what could be made of it and what is wrong: an unknown stage, an open case without
    /// one, an unknown outcome or reason.
    pub fn read(
        status: &str,
        stage: Option<&str>,
        reason: Option<&str>,
        detail: Option<&str>,
    ) -> Result<Status, (Status, String)> {
        if status == OPEN {
            return match stage.map(|s| (s, Stage::parse(s))) {
                Some((_, Some(stage))) => Ok(Status::Open(stage)),
                Some((text, None)) => Err((
                    Status::Open(Stage::Checking),
                    format!("unknown stage `{text}`"),
                )),
                None => Err((
                    Status::Open(Stage::Checking),
                    "an open case without a stage".into(),
                )),
            };
        }
        let detail = detail.unwrap_or_default();
        let Some(outcome) = Outcome::parse(status) else {
            return Err((
                Status::Ended(Ending::invalid_data(detail)),
                format!("unknown status `{status}`"),
            ));
        };
        match reason.map(|r| (r, Reason::parse(r))) {
            Some((text, None)) => Err((
                Status::Ended(Ending::new(outcome, None, detail)),
                format!("unknown reason `{text}`"),
            )),
            parsed => Ok(Status::Ended(Ending::new(
                outcome,
                parsed.and_then(|(_, r)| r),
                detail,
            ))),
        }
    }
}

/// One case: one organisation, one rename (docs/RULES.md §1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Store id.
    pub id: i64,
    /// BIN and rename instant: the prefix of every idempotency key of the case.
    pub key: String,
    /// The BIN as the registry sent it.
    pub bin: String,
    /// When the rename took effect.
    pub rename_at: DateTime<Utc>,
    /// The name before.
    pub from_name: String,
    /// The name after.
    pub to_name: String,
    /// Open at a stage, or ended.
    pub status: Status,
    /// SMS sent so far (0, 1 or 2).
    pub attempt: u8,
    /// The first head, once the checks found an eligible one.
    pub head: Option<Iin>,
    /// The head's number, once known.
    pub phone: Option<Msisdn>,
    /// Whether this case holds its phone's one open offer.
    pub holds_offer: bool,
    /// Permits to re-issue.
    pub permits: Vec<String>,
    /// Permits re-issued so far.
    pub reissued: Vec<String>,
    /// The name the permits were re-issued under (the organisation's name at the moment of re-issue).
    pub reissue_name: Option<String>,
    /// When the gateway accepted the first SMS.
    pub first_sent_at: Option<DateTime<Utc>>,
    /// When the gateway accepted the reminder.
    pub second_sent_at: Option<DateTime<Utc>>,
    /// When to look at the case next; `None` waits for a wake-up (its phone freed).
    pub due_at: Option<DateTime<Utc>>,
    /// Consecutive transient failures.
    pub retries: u32,
    /// The KATO code of the organisation's registered address, as the registry gave it at the check (a
    /// dimension of the published statistics; it describes the organisation, not a person).
    pub region: Option<String>,
    /// The OKED code of its main activity, likewise.
    pub activity: Option<String>,
}

impl Case {
    /// The open stage, if open.
    pub fn stage(&self) -> Option<Stage> {
        match self.status {
            Status::Open(stage) => Some(stage),
            Status::Ended(_) => None,
        }
    }

    /// The ending, if ended.
    pub fn ending(&self) -> Option<&Ending> {
        match &self.status {
            Status::Ended(ending) => Some(ending),
            Status::Open(_) => None,
        }
    }

    /// Whether the case has ended.
    pub fn is_ended(&self) -> bool {
        matches!(self.status, Status::Ended(_))
    }

    /// Why a state read from the store cannot be acted on, if it cannot: what each stage needs must be
    /// there (a queued case its head and number, an offer sent its times, a re-issue its permits).
    pub fn problem(&self) -> Option<&'static str> {
        let Status::Open(stage) = self.status else {
            return None;
        };
        let offered = matches!(
            stage,
            Stage::Queued
                | Stage::AwaitingReply
                | Stage::ConsentPending
                | Stage::Reissuing
                | Stage::WritingBack
        );
        if offered && (self.head.is_none() || self.phone.is_none()) {
            return Some("the stored case has no valid head or number for its stage");
        }
        if offered && self.permits.is_empty() {
            return Some("the stored case has no permit to re-issue for its stage");
        }
        if stage == Stage::AwaitingReply {
            let consistent = match self.attempt {
                1 => self.first_sent_at.is_some(),
                2 => self.first_sent_at.is_some() && self.second_sent_at.is_some(),
                _ => false,
            };
            if !consistent {
                return Some(
                    "the stored case awaits a reply but its SMS were not recorded as sent",
                );
            }
        }
        None
    }

    /// The idempotency key of one outward write of this case: derived from the rename, so that the same
    /// step of the same rename never writes twice, whatever restarts or retries happen.
    pub fn key_of(&self, write: &Write) -> IdempotencyKey {
        IdempotencyKey::for_step(&self.key, &write.step())
    }
}

/// An outward write, named by its step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// The offer SMS (1) or the reminder (2).
    Sms(u8),
    /// The head's consent.
    Consent,
    /// The re-issue of one permit.
    Reissue(String),
    /// The result written back to SDU.
    Sdu,
}

impl Write {
    /// The step part of the idempotency key (`sms:1`, `consent`, `reissue:KZ-TS-0001`, `sdu`).
    pub fn step(&self) -> String {
        match self {
            Self::Sms(attempt) => format!("sms:{attempt}"),
            Self::Consent => "consent".to_owned(),
            Self::Reissue(permit) => format!("reissue:{permit}"),
            Self::Sdu => "sdu".to_owned(),
        }
    }

    /// The outbox's kind of this write.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sms(_) => "sms",
            Self::Consent => "consent",
            Self::Reissue(_) => "reissue",
            Self::Sdu => "sdu",
        }
    }
}

/// The idempotency-key prefix of a case: derived from the rename itself, so that re-ingesting the same
/// rename (even into a new database) cannot repeat a write.
pub fn case_key(bin_raw: &str, rename_at: DateTime<Utc>) -> String {
    format!("{bin_raw}-{}", rename_at.timestamp_millis())
}
