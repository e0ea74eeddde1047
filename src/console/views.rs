//! What the console shows of a case, as the API answers it and the dashboard renders it. Personal
//! identifiers are masked to their last four digits; names of people never leave the case store (the
//! history's details carry none: the core masks them when it writes them).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::privacy::mask;
use crate::store::{ActionRow, CaseRow, EventRow, OutboxRow, from_ms};

/// One case, as listed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CaseView {
    /// Store id.
    pub id: i64,
    /// The organisation's BIN as the registry sent it.
    pub bin: String,
    /// The name before the rename.
    pub from_name: String,
    /// The name after it.
    pub to_name: String,
    /// When the rename took effect.
    pub renamed_at: DateTime<Utc>,
    /// `open`, or the outcome (`reissued`, `failed`, `closed_by_operator`, …).
    pub status: String,
    /// Stage of an open case.
    pub stage: Option<String>,
    /// The outcome's reason.
    pub reason: Option<String>,
    /// The last decision in words.
    pub detail: Option<String>,
    /// SMS sent so far.
    pub attempt: i64,
    /// The head's IIN, masked to its last four digits.
    pub head: Option<String>,
    /// The head's number, masked to its last four digits.
    pub phone: Option<String>,
    /// Permits to re-issue.
    pub permits: Vec<String>,
    /// Permits re-issued.
    pub reissued: Vec<String>,
    /// The name the permits were re-issued under.
    pub reissue_name: Option<String>,
    /// When the engine looks at the case next.
    pub due_at: Option<DateTime<Utc>>,
    /// Consecutive transient failures.
    pub retries: i64,
    /// Ingested at.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Ended at.
    pub ended_at: Option<DateTime<Utc>>,
    /// Whether it waits for a person (a failed case: retry it once its data is corrected, or leave it to
    /// the general procedure).
    pub needs_person: bool,
}

impl CaseView {
    /// The view of a stored case.
    pub fn of(row: &CaseRow) -> Self {
        Self {
            id: row.id,
            bin: row.bin.clone(),
            from_name: row.from_name.clone(),
            to_name: row.to_name.clone(),
            renamed_at: from_ms(row.rename_at),
            status: row.status.clone(),
            stage: row.stage.clone(),
            reason: row.reason.clone(),
            detail: row.detail.clone(),
            attempt: row.attempt,
            head: row.head_iin.as_deref().map(mask),
            phone: row.phone.as_deref().map(mask),
            permits: row.permit_ids(),
            reissued: row.reissued_ids(),
            reissue_name: row.reissue_name.clone(),
            due_at: row.due_at.map(from_ms),
            retries: row.retries,
            created_at: from_ms(row.created_at),
            updated_at: from_ms(row.updated_at),
            ended_at: row.ended_at.map(from_ms),
            needs_person: row.status == "failed",
        }
    }
}

/// A page of cases.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CasePage {
    /// The cases, in id order.
    pub cases: Vec<CaseView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

/// One line of a case's history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TimelineEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// What (`ingested`, `checked`, `sms_sent`, `reply`, `operator_action`, `ended`, …).
    pub kind: String,
    /// Its detail (findings, masked numbers, the operator and reason, …).
    #[schema(value_type = Object)]
    pub detail: Value,
    /// The link's hash in the case's chain.
    pub hash: String,
}

/// One outward write done for the case.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WriteView {
    /// `sms`, `consent`, `reissue` or `sdu`.
    pub kind: String,
    /// The idempotency key it carried (derived from the rename and the step).
    pub idempotency_key: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The system's answer.
    #[schema(value_type = Object)]
    pub result: Value,
}

/// A case with its whole history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CaseDetail {
    /// The case.
    pub case: CaseView,
    /// Its history, oldest first: findings, SMS, replies, writes, operator actions.
    pub timeline: Vec<TimelineEntry>,
    /// Its outward writes with their keys.
    pub writes: Vec<WriteView>,
}

impl CaseDetail {
    /// The detail of a stored case.
    pub fn of(row: &CaseRow, events: &[EventRow], writes: &[OutboxRow]) -> Self {
        Self {
            case: CaseView::of(row),
            timeline: events
                .iter()
                .map(|e| TimelineEntry {
                    at: from_ms(e.at),
                    kind: e.kind.clone(),
                    detail: serde_json::from_str(&e.detail)
                        .unwrap_or(Value::String(e.detail.clone())),
                    hash: e.hash.clone(),
                })
                .collect(),
            writes: writes
                .iter()
                .map(|w| WriteView {
                    kind: w.kind.clone(),
                    idempotency_key: w.idempotency_key.clone(),
                    at: from_ms(w.done_at),
                    result: serde_json::from_str(&w.result)
                        .unwrap_or(Value::String(w.result.clone())),
                })
                .collect(),
        }
    }
}

/// The funnel of a period: cases by the local day of their rename.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Funnel {
    /// First day (local).
    pub from: NaiveDate,
    /// Last day (local, inclusive).
    pub to: NaiveDate,
    /// Counts over the period by `status` or `status/reason` (`open/stage` for open cases).
    pub totals: BTreeMap<String, i64>,
    /// Counts over the period by status alone (`open` or the outcome).
    pub by_status: BTreeMap<String, i64>,
    /// Per day, the same counts by status alone.
    pub days: Vec<FunnelDay>,
}

/// One day of the funnel.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FunnelDay {
    /// The local day.
    pub date: NaiveDate,
    /// Counts by status (`open` or the outcome).
    pub by_status: BTreeMap<String, i64>,
}

/// One recorded operator action.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActionView {
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub operator: String,
    /// `retry`, `end_by_hand`, `pause_sms` or `resume_sms`.
    pub action: String,
    /// The case, for case actions.
    pub case_id: Option<i64>,
    /// Why.
    pub reason: String,
}

impl ActionView {
    /// The view of a recorded action.
    pub fn of(row: &ActionRow) -> Self {
        Self {
            at: from_ms(row.at),
            operator: row.operator.clone(),
            action: row.action.clone(),
            case_id: row.case_id,
            reason: row.reason.clone(),
        }
    }
}
