//! The shapes the mock serves and records: what the wire API of `docs/API.md` returns, and what the control
//! endpoints (and the matching [`crate::Mock`] methods) report. Identifiers are [`RawValue`]s, served exactly
//! as the fixture holds them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::scenario::{FaultMode, OrgStatus, PermitStatus, RawValue, SystemName};

/// A fault switched on for one system (docs/RULES.md §4, `POST /_control/faults`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// The faulty system.
    pub system: SystemName,
    /// How it misbehaves.
    pub mode: FaultMode,
    /// Chance per request, 0..=1 (default 1).
    #[serde(default = "one")]
    pub rate: f64,
    /// Delay for `slow`, in milliseconds (default 0).
    #[serde(default)]
    pub delay_ms: u64,
}

fn one() -> f64 {
    1.0
}

/// One rename in the legal-entity registry's feed.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct RenameView {
    /// The organisation's BIN, as the registry holds it.
    pub bin: RawValue,
    /// When the rename took effect.
    pub at: DateTime<Utc>,
    /// The name before.
    pub from: String,
    /// The name it took.
    pub to: String,
}

/// A page of the rename feed (`GET /legal_entities/renames`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct RenamesPageView {
    /// Renames in feed order.
    pub renames: Vec<RenameView>,
    /// The cursor to pass next time.
    pub next_cursor: String,
}

/// An organisation as the legal-entity registry serves it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct OrganizationView {
    /// BIN, as held.
    pub bin: RawValue,
    /// Current name.
    pub name: String,
    /// Active or liquidated.
    pub status: OrgStatus,
    /// The first head's IIN as held, or null.
    pub first_head: Option<RawValue>,
    /// The KATO code of the registered address as held; absent when the record has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RawValue>,
    /// The OKED code of the main activity as held; absent when the record has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<RawValue>,
}

/// A permit as it stands, with the key of the re-issue that last changed it (`GET /_control/state`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PermitView {
    /// e-license's permit id.
    pub permit_id: String,
    /// Holder's BIN, as held.
    pub bin: RawValue,
    /// Service code.
    pub service: String,
    /// Holder's name on the permit.
    pub holder_name: String,
    /// Active or revoked.
    pub status: PermitStatus,
    /// The idempotency key of the last re-issue, if it was re-issued.
    pub idempotency_key: Option<String>,
    /// When it was last re-issued (mock clock).
    pub reissued_at: Option<DateTime<Utc>>,
}

/// An SMS the gateway accepted (`GET /_control/sms/sent`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct SentSmsView {
    /// The gateway's id, `m-1`, `m-2`, ...
    pub message_id: String,
    /// The number it was sent to, as the caller wrote it.
    pub to: String,
    /// The text.
    pub text: String,
    /// The `Idempotency-Key` it was sent with.
    pub idempotency_key: String,
    /// When the gateway accepted it (mock clock).
    pub accepted_at: DateTime<Utc>,
}

/// A reply the gateway received (`GET /sms/replies`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ReplyView {
    /// The gateway's id, `r-1`, `r-2`, ...
    pub message_id: String,
    /// The sender, as delivered.
    pub from: String,
    /// The text as received.
    pub text: String,
    /// When it arrived (mock clock).
    pub received_at: DateTime<Utc>,
}

/// A consent the consent service recorded.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ConsentView {
    /// The service's id, `c-1`, `c-2`, ...
    pub consent_id: String,
    /// The person's IIN as sent.
    pub iin: RawValue,
    /// The organisation's BIN as sent.
    pub bin: RawValue,
    /// The stated purpose.
    pub purpose: String,
    /// The `Idempotency-Key` it was recorded with.
    pub idempotency_key: String,
    /// When it was recorded (mock clock).
    pub recorded_at: DateTime<Utc>,
}

/// A write-back SDU received.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SduRecordView {
    /// SDU's id, `s-1`, `s-2`, ...
    pub record_id: String,
    /// The orchestrator's case id as sent.
    pub case_id: RawValue,
    /// The organisation's BIN as sent.
    pub bin: RawValue,
    /// The name the permits now bear.
    pub new_name: String,
    /// The head's IIN as sent.
    pub head_iin: RawValue,
    /// The permits re-issued.
    pub permit_ids: Vec<RawValue>,
    /// The `Idempotency-Key` it was written with.
    pub idempotency_key: String,
    /// When it was written (mock clock).
    pub written_at: DateTime<Utc>,
}

/// Every write as it stands (`GET /_control/state`). With a fixture, `permits` lists every permit; in a
/// synthetic world, only those changed by a re-issue or an update.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct StateView {
    /// Permits.
    pub permits: Vec<PermitView>,
    /// SDU write-backs, in arrival order.
    pub sdu_records: Vec<SduRecordView>,
    /// Consents, in arrival order.
    pub consents: Vec<ConsentView>,
}
