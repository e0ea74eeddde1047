//! One trait per external system (docs/RULES.md §7), with the validated types they return.
//!
//! The orchestrator holds each as `Arc<dyn Trait>`; the HTTP clients live in [`crate::http`]. Lookups map a
//! 404 to `Ok(None)`; every write takes an [`IdempotencyKey`] that the system uses to deduplicate.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::dims::{Kato, Oked};
use crate::error::AdapterResult;
use crate::ids::{Bin, Iin, Msisdn, UncheckedIin};

/// The e-license service code of the "Register of trusted software" state service.
pub const TRUSTED_SOFTWARE_SERVICE: &str = "trusted_software_register";

/// A key that makes an outward write happen at most once, derived from the case and the step.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdempotencyKey(pub String);

impl IdempotencyKey {
    /// The key for one step of one case, e.g. `190540043216-1793527200000:sms:1`: the case key is derived
    /// from the rename itself, so the key survives restarts and even a re-created database.
    pub fn for_step(case_key: &str, step: &str) -> Self {
        Self(format!("{case_key}:{step}"))
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One rename from the legal-entity registry's feed. The BIN is kept raw: a bad one must fail only its own
/// case (docs/RULES.md §2.12), so the orchestrator validates it when it opens the case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameEvent {
    /// The organisation's BIN as the registry sent it.
    pub bin: String,
    /// When the rename took effect.
    pub at: DateTime<Utc>,
    /// The name before.
    pub from: String,
    /// The name after.
    pub to: String,
}

/// A page of the rename feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenamesPage {
    /// Renames in feed order.
    pub renames: Vec<RenameEvent>,
    /// The cursor to continue from.
    pub next_cursor: String,
}

/// Whether an organisation still exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgStatus {
    /// Operating.
    Active,
    /// Liquidated: nothing to re-issue.
    Liquidated,
}

/// An organisation as the legal-entity registry knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    /// Its BIN.
    pub bin: Bin,
    /// Its current name.
    pub name: String,
    /// Active or liquidated.
    pub status: OrgStatus,
    /// The first head (director), if the registry names one: unchecked until the process needs it.
    pub first_head: Option<UncheckedIin>,
    /// The KATO code of its registered address, if the registry gives one.
    pub region: Option<Kato>,
    /// Its main activity (OKED), if the registry gives one.
    pub activity: Option<Oked>,
}

/// The legal-entity registry (ЗТ МДҚ).
#[async_trait]
pub trait LegalEntities: Send + Sync {
    /// Renames recorded after `cursor` (from the beginning when `None`), at most `limit`.
    async fn renames(&self, cursor: Option<&str>, limit: u32) -> AdapterResult<RenamesPage>;
    /// One organisation, or `None` when the registry does not know it.
    async fn organization(&self, bin: &Bin) -> AdapterResult<Option<Organization>>;
}

/// Whether a permit is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PermitStatus {
    /// In force.
    Active,
    /// Withdrawn.
    Revoked,
}

/// A permit document in e-license.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permit {
    /// e-license's id of the permit.
    pub permit_id: String,
    /// The holder's BIN.
    pub bin: Bin,
    /// The state service it was issued under.
    pub service: String,
    /// The holder's name as printed on the permit.
    pub holder_name: String,
    /// Active or revoked.
    pub status: PermitStatus,
}

/// The e-license system.
#[async_trait]
pub trait ELicense: Send + Sync {
    /// Every permit of an organisation under `service`.
    async fn permits(&self, bin: &Bin, service: &str) -> AdapterResult<Vec<Permit>>;
    /// Re-issues a permit under a new holder name. A `Permanent` error is a rejection.
    async fn reissue(
        &self,
        key: &IdempotencyKey,
        permit_id: &str,
        bin: &Bin,
        holder_name: &str,
    ) -> AdapterResult<Permit>;
}

/// A person in the individuals registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// The IIN.
    pub iin: Iin,
    /// Full name (stays in the case store; never logged).
    pub name: String,
    /// Permanently residing in another country.
    pub residence_abroad: bool,
    /// Legally incapacitated by a court.
    pub incapacitated: bool,
    /// Held in a place of deprivation of liberty.
    pub imprisoned: bool,
}

/// The individuals registry (ЖТ МДҚ).
#[async_trait]
pub trait Individuals: Send + Sync {
    /// The person, or `None` when the registry does not know the IIN.
    async fn person(&self, iin: &Iin) -> AdapterResult<Option<Person>>;
}

/// A civil-registry record of a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilRecord {
    /// A death record exists.
    pub deceased: bool,
    /// A court declared the person dead.
    pub declared_dead: bool,
    /// A court declared the person missing.
    pub declared_missing: bool,
}

/// The civil registry (АХАЖ).
#[async_trait]
pub trait CivilRegistry: Send + Sync {
    /// The person's record, or `None` when there is none (alive, never declared).
    async fn record(&self, iin: &Iin) -> AdapterResult<Option<CivilRecord>>;
}

/// The mobile citizens base (БМГ).
#[async_trait]
pub trait MobileBase: Send + Sync {
    /// The number registered for an IIN exactly as the base holds it (the orchestrator normalises it, since
    /// an unusable number is an outcome, not an error), or `None` when none is registered.
    async fn number(&self, iin: &Iin) -> AdapterResult<Option<String>>;
}

/// What the SMS gateway says after accepting a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentSms {
    /// The gateway's id of the message.
    pub message_id: String,
    /// When the gateway accepted it: the "actually sent" instant timers start from.
    pub accepted_at: DateTime<Utc>,
}

/// A reply received by the gateway. `from` is kept raw; the orchestrator normalises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundSms {
    /// The gateway's id, unique per reply: a reply seen twice has the same id.
    pub message_id: String,
    /// The sender's number as the gateway reports it.
    pub from: String,
    /// The text as received.
    pub text: String,
    /// When the gateway received it.
    pub received_at: DateTime<Utc>,
}

/// A page of replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepliesPage {
    /// Replies in arrival order.
    pub replies: Vec<InboundSms>,
    /// The cursor to continue from.
    pub next_cursor: String,
}

/// The SMS gateway of the e-gov portal.
#[async_trait]
pub trait SmsGateway: Send + Sync {
    /// Sends one SMS; a repeated key returns the first acceptance and sends nothing.
    async fn send(&self, key: &IdempotencyKey, to: &Msisdn, text: &str) -> AdapterResult<SentSms>;
    /// Replies received after `cursor`, at most `limit`.
    async fn replies(&self, cursor: Option<&str>, limit: u32) -> AdapterResult<RepliesPage>;
}

/// What the consent service returns once consent is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentReceipt {
    /// The consent service's id of the record.
    pub consent_id: String,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
}

/// The consent service (ДДБ through Smart Bridge).
#[async_trait]
pub trait ConsentService: Send + Sync {
    /// Records the person's consent to processing their data for this organisation's re-issue.
    async fn record(
        &self,
        key: &IdempotencyKey,
        iin: &Iin,
        bin: &Bin,
        purpose: &str,
    ) -> AdapterResult<ConsentReceipt>;
}

/// The result written back to SDU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SduRecord {
    /// The orchestrator's case id.
    pub case_id: i64,
    /// The organisation.
    pub bin: Bin,
    /// The name the permits now bear.
    pub new_name: String,
    /// The first head who consented.
    pub head_iin: Iin,
    /// The permits re-issued.
    pub permit_ids: Vec<String>,
}

/// SDU's answer to a write-back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SduReceipt {
    /// SDU's id of the record.
    pub record_id: String,
}

/// The Smart Data Ukimet platform (write-back).
#[async_trait]
pub trait Sdu: Send + Sync {
    /// Writes the re-issue result; a repeated key writes nothing new.
    async fn write_back(
        &self,
        key: &IdempotencyKey,
        record: &SduRecord,
    ) -> AdapterResult<SduReceipt>;
}
