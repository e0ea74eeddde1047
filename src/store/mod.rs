//! The case store: cases, their append-only hash-chained history, inbound replies, the outbox of outward
//! writes and small named values (feed cursors, the last nightly ingest).
//!
//! One implementation serves SQLite (the embedded default) and PostgreSQL (production, several workers):
//! every query is written once in SQL both accept (`$N` parameters, times as Unix milliseconds), and the
//! [`store_impl`] macro instantiates it for each backend's concrete types, which avoids both a second copy
//! and the trait-bound maze of code generic over `sqlx::Database`. Migrations are per backend
//! (`migrations/sqlite`, `migrations/postgres`). Every change to a case is one transaction, guarded by the
//! row's `version`, so two workers can never both apply a step.

mod case_store;
mod fault;
mod imp;
mod liveness;
mod postgres;
mod sqlite;

use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use adapters::{Iin, Msisdn};

use crate::case::{Case, Ending, Outcome, Stage, Status};

pub use case_store::{CaseStore, Flaky, StoreError, StoreResult};
pub use fault::{NotAttempted, is_conflict, is_store_error, is_transient};
pub use liveness::WorkerLock;

/// Milliseconds since the Unix epoch: the storage form of every instant.
pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The instant of a stored millisecond value.
pub fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

/// The current layout version of a stored case (docs/RULES.md §2.8): a newer product migrates rows of
/// older versions instead of reinterpreting them.
pub const STATE_VERSION: i64 = 1;

/// A case as stored.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct CaseRow {
    /// Store id.
    pub id: i64,
    /// BIN and rename instant; the idempotency-key prefix.
    pub case_key: String,
    /// The BIN as the registry sent it.
    pub bin: String,
    /// When the rename took effect (ms).
    pub rename_at: i64,
    /// Name before.
    pub from_name: String,
    /// Name after.
    pub to_name: String,
    /// `open` or an outcome.
    pub status: String,
    /// Stage, while open.
    pub stage: Option<String>,
    /// Outcome reason.
    pub reason: Option<String>,
    /// Message of the last decision.
    pub detail: Option<String>,
    /// SMS sent so far.
    pub attempt: i64,
    /// First head, once known.
    pub head_iin: Option<String>,
    /// E.164 number, once known.
    pub phone: Option<String>,
    /// Set while the case holds its phone's one open offer.
    pub offer_phone: Option<String>,
    /// JSON list of permit ids to re-issue.
    pub permits: String,
    /// JSON list of permit ids re-issued.
    pub reissued: String,
    /// First SMS accepted (ms).
    pub first_sent_at: Option<i64>,
    /// Reminder accepted (ms).
    pub second_sent_at: Option<i64>,
    /// Next look (ms); `None` waits for a wake-up.
    pub due_at: Option<i64>,
    /// Consecutive transient failures.
    pub retries: i64,
    /// Worker holding the claim.
    pub lease_owner: Option<String>,
    /// Claim expiry (wall-clock ms).
    pub lease_until: Option<i64>,
    /// Layout version.
    pub state_version: i64,
    /// Row version.
    pub version: i64,
    /// Head of the event hash chain.
    pub last_hash: String,
    /// Ingested at (ms).
    pub created_at: i64,
    /// Last change (ms).
    pub updated_at: i64,
    /// Ended at (ms).
    pub ended_at: Option<i64>,
    /// The name the permits were re-issued under.
    pub reissue_name: Option<String>,
    /// KATO code of the registered address, once read.
    pub region: Option<String>,
    /// OKED code of the main activity, once read.
    pub activity: Option<String>,
}

/// A stored case read for the decision core.
#[derive(Debug, Clone)]
pub enum Read {
    /// Its typed state.
    Case(Case),
    /// It cannot be acted on; the case as far as it could be read, and why.
    Unreadable(Case, String),
}

impl Read {
    /// The case as far as it could be read (an unreadable one with what could be read of it).
    pub fn into_case(self) -> Case {
        match self {
            Read::Case(case) | Read::Unreadable(case, _) => case,
        }
    }
}

impl CaseRow {
    /// The open stage, if the case is open and its stage is known.
    pub fn stage(&self) -> Option<Stage> {
        (self.status == OPEN)
            .then(|| self.stage.as_deref().and_then(Stage::parse))
            .flatten()
    }

    /// The outcome, if ended.
    pub fn outcome(&self) -> Option<Outcome> {
        Outcome::parse(&self.status)
    }

    /// Permit ids to re-issue.
    pub fn permit_ids(&self) -> Vec<String> {
        serde_json::from_str(&self.permits).unwrap_or_default()
    }

    /// Permit ids re-issued so far.
    pub fn reissued_ids(&self) -> Vec<String> {
        serde_json::from_str(&self.reissued).unwrap_or_default()
    }

    /// The typed state of this row. Each column is parsed; the first that does not parse, or a state that
    /// its stage cannot act on ([`Case::problem`]), makes the case [`Read::Unreadable`].
    pub fn read(&self) -> Read {
        let mut problems: Vec<String> = Vec::new();
        let mut note = |problem: String| problems.push(problem);
        let status = Status::read(
            &self.status,
            self.stage.as_deref(),
            self.reason.as_deref(),
            self.detail.as_deref(),
        )
        .unwrap_or_else(|(status, problem)| {
            note(problem);
            status
        });
        let list = |text: &str, what: &str, note: &mut dyn FnMut(String)| {
            serde_json::from_str::<Vec<String>>(text).unwrap_or_else(|_| {
                note(format!("the list of {what} is not a JSON list of ids"));
                Vec::new()
            })
        };
        let permits = list(&self.permits, "permits", &mut note);
        let reissued = list(&self.reissued, "re-issued permits", &mut note);
        let head = self.head_iin.as_deref().and_then(|h| {
            Iin::parse(h)
                .map_err(|e| note(format!("stored head: {e}")))
                .ok()
        });
        let phone = self.phone.as_deref().and_then(|p| {
            Msisdn::from_stored(p)
                .map_err(|e| note(format!("stored number: {e}")))
                .ok()
        });
        let attempt = u8::try_from(self.attempt)
            .ok()
            .filter(|a| *a <= 2)
            .unwrap_or_else(|| {
                note(format!("attempt {} is not 0, 1 or 2", self.attempt));
                0
            });
        let case = Case {
            id: self.id,
            key: self.case_key.clone(),
            bin: self.bin.clone(),
            rename_at: from_ms(self.rename_at),
            from_name: self.from_name.clone(),
            to_name: self.to_name.clone(),
            status,
            attempt,
            head,
            phone,
            holds_offer: self.offer_phone.is_some(),
            permits,
            reissued,
            reissue_name: self.reissue_name.clone(),
            first_sent_at: self.first_sent_at.map(from_ms),
            second_sent_at: self.second_sent_at.map(from_ms),
            due_at: self.due_at.map(from_ms),
            retries: u32::try_from(self.retries).unwrap_or(0),
            region: self.region.clone(),
            activity: self.activity.clone(),
        };
        if let Some(problem) = problems.into_iter().next() {
            return Read::Unreadable(case, problem);
        }
        match case.problem() {
            Some(problem) => Read::Unreadable(case, problem.to_owned()),
            None => Read::Case(case),
        }
    }

    /// Writes a case's typed state into this row (the store's bookkeeping columns stay as they are);
    /// `now` stamps the end of a case that ends with this change.
    pub fn set_state(&mut self, case: &Case, now: DateTime<Utc>) {
        match &case.status {
            Status::Open(stage) => {
                self.status = OPEN.to_owned();
                self.stage = Some(stage.as_str().to_owned());
                self.reason = None;
                // An open case has no last ending: a retried one must not show its failure's words.
                self.detail = None;
                self.ended_at = None;
            }
            Status::Ended(ending) => {
                if self.status == OPEN || self.ended_at.is_none() {
                    self.ended_at = Some(ms(now));
                }
                self.status = ending.outcome.as_str().to_owned();
                self.stage = None;
                self.reason = ending.reason.map(|r| r.as_str().to_owned());
                self.detail = Some(ending.detail.clone());
            }
        }
        self.attempt = i64::from(case.attempt);
        self.head_iin = case.head.as_ref().map(|h| h.as_str().to_owned());
        self.phone = case.phone.as_ref().map(|p| p.as_str().to_owned());
        self.offer_phone = case.holds_offer.then(|| self.phone.clone()).flatten();
        self.permits = json_text(&case.permits);
        self.reissued = json_text(&case.reissued);
        self.reissue_name = case.reissue_name.clone();
        self.first_sent_at = case.first_sent_at.map(ms);
        self.second_sent_at = case.second_sent_at.map(ms);
        self.due_at = case.due_at.map(ms);
        self.retries = i64::from(case.retries);
        self.region = case.region.clone();
        self.activity = case.activity.clone();
    }
}

/// The status text of an open case.
pub use crate::case::state::OPEN;

/// One line of a case's history.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct EventRow {
    /// Store id.
    pub id: i64,
    /// The case.
    pub case_id: i64,
    /// When (ms).
    pub at: i64,
    /// What kind of step.
    pub kind: String,
    /// JSON detail, identifiers masked.
    pub detail: String,
    /// Hash of the previous event of this case.
    pub prev_hash: String,
    /// This event's hash.
    pub hash: String,
}

/// An event to append: a line of history as the decision core writes it.
pub use crate::case::Event as NewEvent;

/// JSON text of a value that always serialises (a `serde_json::Value`, a list of ids), written straight
/// into a byte buffer: `Value`'s `Display` goes through `fmt::Formatter` a few bytes at a time, which cost
/// 7,000 instructions per history line (docs/BENCHMARKS.md). The text is the same.
pub(crate) fn json_text(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("a JSON value or a list of strings always serialises")
}

/// The hash of one event, chained to the previous one of the same case.
pub fn event_hash(prev: &str, case_id: i64, at: i64, kind: &str, detail: &str) -> String {
    let mut h = Sha256::new();
    for part in [prev, &case_id.to_string(), &at.to_string(), kind, detail] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

/// An outward write that was done, recorded with its key.
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    /// The idempotency key it carried.
    pub key: String,
    /// `sms`, `consent`, `reissue`, `sdu`.
    pub kind: &'static str,
    /// The system's answer (ids, times; no personal data).
    pub result: serde_json::Value,
}

/// A rename to open a case for.
#[derive(Debug, Clone)]
pub struct NewCase {
    /// Case key.
    pub case_key: String,
    /// BIN as sent.
    pub bin: String,
    /// When the rename took effect.
    pub rename_at: DateTime<Utc>,
    /// Name before.
    pub from_name: String,
    /// Name after.
    pub to_name: String,
    /// `Some` when the case ends at once (a BIN that fails validation).
    pub ended: Option<Ending>,
}

/// What one ingest transaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    /// Cases opened (or ended at once).
    pub opened: u64,
    /// Renames already ingested before.
    pub duplicates: u64,
    /// Open cases superseded.
    pub superseded: u64,
}

/// A reply as delivered by the gateway.
#[derive(Debug, Clone)]
pub struct NewReply {
    /// Gateway message id.
    pub message_id: String,
    /// Sender as delivered.
    pub from_raw: String,
    /// Sender normalised, if it normalises.
    pub phone: Option<String>,
    /// Text.
    pub text: String,
    /// Received at.
    pub received_at: DateTime<Utc>,
}

/// A stored reply.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct ReplyRow {
    /// Store id.
    pub id: i64,
    /// Gateway message id.
    pub message_id: String,
    /// Sender as delivered.
    pub from_raw: String,
    /// Normalised sender.
    pub phone: Option<String>,
    /// Text.
    pub text: String,
    /// Received (ms).
    pub received_at: i64,
    /// pending, matched, invalid, no_offer.
    pub status: String,
    /// The case it was matched to.
    pub case_id: Option<i64>,
    /// When it was handled (ms).
    pub handled_at: Option<i64>,
}

/// How a reply was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyStatus {
    /// It decided an open offer.
    Matched,
    /// Not `1` or `2`.
    Invalid,
    /// No offer waited for this number (or the offer ended, or was sent after the reply).
    NoOffer,
}

impl ReplyStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Matched => "matched",
            Self::Invalid => "invalid",
            Self::NoOffer => "no_offer",
        }
    }
}

/// A change to one case, applied in one transaction if the row still has `expected_version`.
#[derive(Debug, Clone)]
pub struct CaseChange {
    /// The case as it should be stored (lease fields are cleared by the save).
    pub row: CaseRow,
    /// The version read.
    pub expected_version: i64,
    /// History lines to append.
    pub events: Vec<NewEvent>,
    /// Outward writes done in this step.
    pub outbox: Vec<OutboxEntry>,
    /// A reply this change consumes.
    pub reply: Option<(i64, ReplyStatus)>,
    /// Time of the change.
    pub now: DateTime<Utc>,
}

/// A worker's claim on a case, kept across a save when the worker goes on with the case at once: released,
/// another worker could claim the case and repeat the step in hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The worker.
    pub owner: String,
    /// Claim expiry (wall-clock ms).
    pub until: i64,
}

/// Count of cases per status and reason, for summaries.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct SummaryRow {
    /// `open` or an outcome.
    pub status: String,
    /// Stage (open) or reason (ended).
    pub detail: Option<String>,
    /// How many.
    pub count: i64,
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite://…`
    Sqlite,
    /// `postgres://…` or `postgresql://…`
    Postgres,
}

impl Backend {
    /// The backend of a database URL.
    pub fn of(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            bail!("database URL must start with sqlite:// or postgres://")
        }
    }
}

/// The store, on one of the two backends.
#[derive(Debug, Clone)]
pub enum Store {
    /// SQLite.
    Sqlite(sqlx::SqlitePool),
    /// PostgreSQL.
    Postgres(sqlx::PgPool),
}

macro_rules! dispatch {
    ($self:ident, $f:ident ( $($arg:expr),* )) => {
        match $self {
            Store::Sqlite(p) => sqlite::queries::$f(p, $($arg),*).await,
            Store::Postgres(p) => postgres::queries::$f(p, $($arg),*).await,
        }
    };
}

/// How the store waits for its database (settings `sqlite_busy_timeout` and `database_retry_for`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// SQLite: how long a statement waits for another connection's write lock before it fails with
    /// `SQLITE_BUSY` (which the engine then retries as a transient fault).
    pub sqlite_busy_timeout: Duration,
    /// How long a query waits for a pooled connection, a new connection to a server that is restarting
    /// included, before it fails.
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            sqlite_busy_timeout: Duration::from_secs(30),
            acquire_timeout: Duration::from_secs(60),
        }
    }
}

impl Store {
    /// Opens (creating an SQLite file with mode 0600 if needed) and migrates the store, with the default
    /// [`StoreOptions`].
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, StoreOptions::default()).await
    }

    /// [`Store::open`] with the given waits.
    pub async fn open_with(url: &str, options: StoreOptions) -> Result<Self> {
        let store = match Backend::of(url)? {
            Backend::Sqlite => Store::Sqlite(imp::open_sqlite(url, options).await?),
            Backend::Postgres => Store::Postgres(imp::open_postgres(url, options).await?),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<()> {
        match self {
            Store::Sqlite(p) => sqlx::migrate!("./migrations/sqlite")
                .run(p)
                .await
                .context("migrating SQLite")?,
            Store::Postgres(p) => sqlx::migrate!("./migrations/postgres")
                .run(p)
                .await
                .context("migrating PostgreSQL")?,
        }
        Ok(())
    }

    /// Which backend.
    pub fn backend(&self) -> Backend {
        match self {
            Store::Sqlite(_) => Backend::Sqlite,
            Store::Postgres(_) => Backend::Postgres,
        }
    }

    /// A named value.
    pub async fn meta(&self, name: &str) -> Result<Option<String>> {
        dispatch!(self, meta(name))
    }

    /// Sets a named value only if it still has `expected` (`None` = absent); true if it was set. Lets one
    /// of several workers win the nightly ingest.
    pub async fn swap_meta(&self, name: &str, expected: Option<&str>, value: &str) -> Result<bool> {
        dispatch!(self, swap_meta(name, expected, value))
    }

    /// Opens one case per rename, supersedes open cases of the same organisations and moves the feed
    /// cursor, all in one transaction.
    pub async fn ingest(
        &self,
        renames: &[NewCase],
        cursor_name: &str,
        cursor: &str,
        now: DateTime<Utc>,
    ) -> Result<IngestReport> {
        dispatch!(self, ingest(renames, cursor_name, cursor, now))
    }

    /// Stores replies (a message id seen before is skipped) and moves the reply cursor, in one transaction.
    pub async fn store_replies(
        &self,
        replies: &[NewReply],
        cursor_name: &str,
        cursor: &str,
    ) -> Result<u64> {
        dispatch!(self, store_replies(replies, cursor_name, cursor))
    }

    /// Replies not handled yet, in arrival order.
    pub async fn pending_replies(&self, limit: i64) -> Result<Vec<ReplyRow>> {
        self.pending_replies_after((i64::MIN, i64::MIN), limit)
            .await
    }

    /// Replies not handled yet that arrived after `after` (`(received_at, id)` of the last one read), in
    /// arrival order: the next page of [`Store::pending_replies`], read through the index instead of again
    /// from the start.
    pub async fn pending_replies_after(
        &self,
        after: (i64, i64),
        limit: i64,
    ) -> Result<Vec<ReplyRow>> {
        dispatch!(self, pending_replies_after(after, limit))
    }

    /// Marks a reply handled without changing any case.
    pub async fn resolve_reply(
        &self,
        reply_id: i64,
        status: ReplyStatus,
        case_id: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        dispatch!(self, resolve_reply(reply_id, status, case_id, now))
    }

    /// The open case holding `phone`'s one offer slot, if any (whatever its stage).
    pub async fn offer_holder(&self, phone: &str) -> Result<Option<CaseRow>> {
        dispatch!(self, offer_holder(phone))
    }

    /// The open cases holding the offer slots of these numbers (as [`Store::offer_holder`], for many
    /// numbers in a few queries).
    pub async fn offer_holders(&self, phones: &[&str]) -> Result<Vec<CaseRow>> {
        dispatch!(self, offer_holders(phones))
    }

    /// The backend's query plan of the claim of due cases ([`Store::claim_due`]), as its `EXPLAIN` prints
    /// it; the claim is not run. For diagnosing a slow drain, and for the test that the claim reads an index
    /// in claim order instead of sorting every due case.
    pub async fn explain_claim(&self) -> Result<String> {
        dispatch!(self, explain_claim())
    }

    /// Claims up to `limit` due cases for `owner` until `lease_until` (wall-clock ms).
    pub async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        owner: &str,
        wall_now: i64,
        lease_until: i64,
    ) -> Result<Vec<CaseRow>> {
        dispatch!(
            self,
            claim_due(ms(now), limit, owner, wall_now, lease_until)
        )
    }

    /// Applies a change if the case still has the expected version and returns the new head of its event
    /// chain; `None` if another writer got there first.
    pub async fn save(&self, change: &CaseChange) -> Result<Option<String>> {
        dispatch!(self, save(change))
    }

    /// Applies several changes in one transaction (group commit): each is guarded by its own expected
    /// version, and the result for each is as [`Store::save`] gives it. An error leaves none applied.
    /// `leases[i]`, when given, keeps the case of `changes[i]` claimed (its worker carries on with it at
    /// once); otherwise the save releases the claim, as [`Store::save`] does.
    pub async fn save_many(
        &self,
        changes: &[CaseChange],
        leases: &[Option<Lease>],
    ) -> Result<Vec<Option<String>>> {
        dispatch!(self, save_many(changes, leases))
    }

    /// Takes the phone's one offer slot for a queued case, if no other open case holds it and no earlier
    /// queued case waits for it; true if taken.
    pub async fn take_offer_slot(&self, case: &CaseRow) -> Result<bool> {
        dispatch!(self, take_offer_slot(case))
    }

    /// [`Store::take_offer_slot`] for many queued cases at once; returns the ids that took their slot (a
    /// case left out may try again on its own).
    pub async fn take_offer_slots(&self, ids: &[i64]) -> Result<Vec<i64>> {
        dispatch!(self, take_offer_slots(ids))
    }

    /// Lets go of a claim without changing the case.
    pub async fn release(&self, case_id: i64) -> Result<()> {
        dispatch!(self, release(case_id))
    }

    /// Lets go of a claim if `owner` still holds it (another worker's claim stays).
    pub async fn release_if_owner(&self, case_id: i64, owner: &str) -> Result<()> {
        dispatch!(self, release_if_owner(case_id, owner))
    }

    /// Adds `owner` to the workers that have run against this database (once it holds its mark of life).
    pub async fn register_worker(&self, owner: &str, wall_now: i64) -> Result<()> {
        dispatch!(self, register_worker(owner, wall_now))
    }

    /// The workers that have run against this database and were not yet found gone: the only ones that
    /// can hold claims (a worker registers before it claims).
    pub async fn known_workers(&self) -> Result<Vec<String>> {
        dispatch!(self, known_workers())
    }

    /// Removes a worker found gone, once its claims are freed.
    pub async fn forget_worker(&self, owner: &str) -> Result<()> {
        dispatch!(self, forget_worker(owner))
    }

    /// Lets go of every claim `owner` holds; returns how many. Only for a worker with no case in hand (after
    /// a pass that failed on a database error), so that it can take its cases up again at once.
    pub async fn release_all_of(&self, owner: &str) -> Result<u64> {
        dispatch!(self, release_all_of(owner))
    }

    /// The earliest due time of any open case.
    pub async fn next_due(&self) -> Result<Option<i64>> {
        dispatch!(self, next_due())
    }

    /// One case.
    pub async fn case(&self, id: i64) -> Result<Option<CaseRow>> {
        dispatch!(self, case(id))
    }

    /// Cases with id above `after`, in id order, at most `limit` (for paging through every case).
    pub async fn cases_page(&self, after: i64, limit: i64) -> Result<Vec<CaseRow>> {
        dispatch!(self, cases_page(after, limit))
    }

    /// Cases of one organisation, in rename order.
    pub async fn cases_of(&self, bin: &str) -> Result<Vec<CaseRow>> {
        dispatch!(self, cases_of(bin))
    }

    /// Counts per status and stage/reason.
    pub async fn summary(&self) -> Result<Vec<SummaryRow>> {
        dispatch!(self, summary())
    }

    /// A case's history.
    pub async fn events(&self, case_id: i64) -> Result<Vec<EventRow>> {
        dispatch!(self, events(case_id))
    }

    /// Outward writes of a case.
    pub async fn outbox_count(&self, case_id: i64, kind: &str) -> Result<i64> {
        dispatch!(self, outbox_count(case_id, kind))
    }

    /// Testers only (the scenario event `corrupt_case`): stores `stage` as the stage of the open case of
    /// `bin`, as a faulty upgrade or a hand edit would; returns how many cases it changed. The schema's
    /// constraints still apply (an unknown stage text is refused; no stage at all is not).
    pub async fn corrupt_stage(&self, bin: &str, stage: Option<&str>) -> Result<u64> {
        dispatch!(self, corrupt_stage(bin, stage))
    }

    /// Every event in id order after `after`, at most `limit` (for `audit verify`).
    pub async fn events_page(&self, after: i64, limit: i64) -> Result<Vec<EventRow>> {
        dispatch!(self, events_page(after, limit))
    }
}

// --- the operator console (docs/CONSOLE.md) -----------------------------------------------------------

macro_rules! console {
    ($self:ident, $f:ident ( $($arg:expr),* )) => {
        match $self {
            Store::Sqlite(p) => sqlite::console_queries::$f(p, $($arg),*).await,
            Store::Postgres(p) => postgres::console_queries::$f(p, $($arg),*).await,
        }
    };
}

/// An operator of the console: a name, a role, and the SHA-256 of its bearer token.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct OperatorRow {
    /// Unique name, shown in every action it takes.
    pub name: String,
    /// `viewer` or `operator`.
    pub role: String,
    /// Hex SHA-256 of the token; the token itself is never stored.
    #[serde(skip)]
    pub token_hash: String,
    /// Added at (ms).
    pub created_at: i64,
    /// Revoked at (ms); a revoked operator's token is refused.
    pub revoked_at: Option<i64>,
}

/// One operator action, as recorded.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct ActionRow {
    /// Store id (0 before it is stored).
    pub id: i64,
    /// When (ms).
    pub at: i64,
    /// Who.
    pub operator: String,
    /// `retry`, `end_by_hand`, `pause_sms` or `resume_sms`.
    pub action: String,
    /// The case acted on, for case actions.
    pub case_id: Option<i64>,
    /// The operator's reason.
    pub reason: String,
}

/// Filters of a case search; `None` lets every case through.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    /// Cases with a greater id only (the keyset cursor).
    pub after: i64,
    /// `open` or `ended`.
    pub status: Option<String>,
    /// An outcome (`reissued`, `failed`, …).
    pub outcome: Option<String>,
    /// An outcome reason.
    pub reason: Option<String>,
    /// A stage of open cases.
    pub stage: Option<String>,
    /// The BIN as the registry sent it.
    pub bin: Option<String>,
    /// Renamed at or after (ms).
    pub renamed_from: Option<i64>,
    /// Renamed before (ms).
    pub renamed_until: Option<i64>,
}

/// Cases per local day, status and reason (or stage, for open cases).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DayCount {
    /// Days since 1970-01-01, local.
    pub day: i64,
    /// `open` or an outcome.
    pub status: String,
    /// Reason (ended) or stage (open).
    pub detail: Option<String>,
    /// How many.
    pub count: i64,
}

/// One outward write done for a case.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    /// The idempotency key it carried.
    pub idempotency_key: String,
    /// `sms`, `consent`, `reissue` or `sdu`.
    pub kind: String,
    /// The system's answer (JSON), identifiers masked.
    pub result: String,
    /// When (ms).
    pub done_at: i64,
}

impl Store {
    /// Adds an operator; false if the name is taken (revoked names included: a name means one person).
    pub async fn add_operator(&self, operator: &OperatorRow) -> Result<bool> {
        console!(self, add_operator(operator))
    }

    /// Every operator, revoked ones included, by name.
    pub async fn operators(&self) -> Result<Vec<OperatorRow>> {
        console!(self, operators())
    }

    /// The operator, not revoked, whose token has this hash.
    pub async fn operator_by_token(&self, token_hash: &str) -> Result<Option<OperatorRow>> {
        console!(self, operator_by_token(token_hash))
    }

    /// Revokes an operator; false if there is no such operator or it was revoked already.
    pub async fn revoke_operator(&self, name: &str, now: i64) -> Result<bool> {
        console!(self, revoke_operator(name, now))
    }

    /// Records an operator action.
    pub async fn record_action(&self, action: &ActionRow) -> Result<()> {
        console!(self, record_action(action))
    }

    /// Sets a switch (a named value) and records the action that set it, in one transaction.
    pub async fn set_switch(&self, name: &str, value: &str, action: &ActionRow) -> Result<()> {
        console!(self, set_switch(name, value, action))
    }

    /// Operator actions with id below `before`, newest first.
    pub async fn actions(&self, before: i64, limit: i64) -> Result<Vec<ActionRow>> {
        console!(self, actions(before, limit))
    }

    /// Cases matching `filter`, in id order, at most `limit`.
    pub async fn search_cases(&self, filter: &CaseFilter, limit: i64) -> Result<Vec<CaseRow>> {
        console!(self, search_cases(filter, limit))
    }

    /// Cases renamed in `[from, until)` (ms) per local day, status and reason.
    pub async fn funnel(&self, from: i64, until: i64, offset_ms: i64) -> Result<Vec<DayCount>> {
        console!(self, funnel(from, until, offset_ms))
    }

    /// Brings forward to `now` the open offers due in `(now, until]` (ms), for a resume; how many.
    pub async fn wake_offers(&self, now: i64, until: i64) -> Result<u64> {
        console!(self, wake_offers(now, until))
    }

    /// The outward writes done for a case, in order.
    pub async fn outbox_of(&self, case_id: i64) -> Result<Vec<OutboxRow>> {
        console!(self, outbox_of(case_id))
    }
}
