//! The case store as the engine sees it: one trait, with an error that says what the caller can do
//! (wait and retry, retry one by one, or give up), decided once here from the driver's error instead of by
//! every caller searching error chains. [`Store`] implements it on SQLite and PostgreSQL; tests wrap it to
//! inject faults ([`Flaky`]).

use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    CaseChange, CaseRow, EventRow, IngestReport, Lease, NewCase, NewReply, ReplyRow, ReplyStatus,
    Store, SummaryRow, WorkerLock, fault,
};

/// A failure of the case store, by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// It passes by itself (connection lost, server restarting, SQLite busy, no connection in time): wait
    /// and do the same again; nothing was recorded.
    #[error("{0:#}")]
    Transient(anyhow::Error),
    /// Two workers' transactions collided (a deadlock, a serialization failure): the database works, and
    /// the same changes made one at a time would most likely go through.
    #[error("{0:#}")]
    Conflict(anyhow::Error),
    /// It would fail again the same way (a constraint, a decoding error): report it.
    #[error("{0:#}")]
    Permanent(anyhow::Error),
}

impl StoreError {
    /// Classifies a failure of the driver.
    pub fn classify(error: anyhow::Error) -> Self {
        if fault::is_conflict(&error) {
            Self::Conflict(error)
        } else if fault::is_transient(&error) {
            Self::Transient(error)
        } else {
            Self::Permanent(error)
        }
    }

    /// Whether waiting and doing the same again may help (a conflict included).
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::Permanent(_))
    }

    /// Whether it is a conflict between transactions.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict(_))
    }
}

/// The store's answer.
pub type StoreResult<T> = Result<T, StoreError>;

/// What the engine asks of the case store. Every change is one transaction; see [`Store`] for each
/// operation's meaning.
#[async_trait]
pub trait CaseStore: Send + Sync + 'static {
    /// A named value.
    async fn meta(&self, name: &str) -> StoreResult<Option<String>>;
    /// Sets a named value only if it still has `expected`; true if it was set.
    async fn swap_meta(&self, name: &str, expected: Option<&str>, value: &str)
    -> StoreResult<bool>;
    /// Opens one case per rename and moves the feed cursor, in one transaction.
    async fn ingest(
        &self,
        renames: &[NewCase],
        cursor_name: &str,
        cursor: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<IngestReport>;
    /// Stores replies and moves the reply cursor, in one transaction.
    async fn store_replies(
        &self,
        replies: &[NewReply],
        cursor_name: &str,
        cursor: &str,
    ) -> StoreResult<u64>;
    /// Pending replies after `(received_at, id)`, in arrival order.
    async fn pending_replies_after(
        &self,
        after: (i64, i64),
        limit: i64,
    ) -> StoreResult<Vec<ReplyRow>>;
    /// Marks a reply handled without changing any case.
    async fn resolve_reply(
        &self,
        reply_id: i64,
        status: ReplyStatus,
        case_id: Option<i64>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The open case holding `phone`'s offer slot.
    async fn offer_holder(&self, phone: &str) -> StoreResult<Option<CaseRow>>;
    /// The open cases holding these numbers' offer slots.
    async fn offer_holders(&self, phones: &[&str]) -> StoreResult<Vec<CaseRow>>;
    /// Claims up to `limit` due cases for `owner`.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        owner: &str,
        wall_now: i64,
        lease_until: i64,
    ) -> StoreResult<Vec<CaseRow>>;
    /// Applies several guarded changes in one transaction.
    async fn save_many(
        &self,
        changes: &[CaseChange],
        leases: &[Option<Lease>],
    ) -> StoreResult<Vec<Option<String>>>;
    /// Takes a queued case's phone slot; true if taken.
    async fn take_offer_slot(&self, case: &CaseRow) -> StoreResult<bool>;
    /// Takes the phone slots of many queued cases; the ids that took theirs.
    async fn take_offer_slots(&self, ids: &[i64]) -> StoreResult<Vec<i64>>;
    /// Lets go of a claim.
    async fn release(&self, case_id: i64) -> StoreResult<()>;
    /// Lets go of a claim if `owner` holds it.
    async fn release_if_owner(&self, case_id: i64, owner: &str) -> StoreResult<()>;
    /// Lets go of every claim of `owner`.
    async fn release_all_of(&self, owner: &str) -> StoreResult<u64>;
    /// The earliest due time of any open case (ms).
    async fn next_due(&self) -> StoreResult<Option<i64>>;
    /// Counts per status and stage or reason.
    async fn summary(&self) -> StoreResult<Vec<SummaryRow>>;
    /// One case.
    async fn case(&self, id: i64) -> StoreResult<Option<CaseRow>>;
    /// The cases of one organisation, in rename order.
    async fn cases_of(&self, bin: &str) -> StoreResult<Vec<CaseRow>>;
    /// A case's history.
    async fn events(&self, case_id: i64) -> StoreResult<Vec<EventRow>>;
    /// Takes this worker's mark of life, held as long as the value lives.
    async fn hold_worker_lock(&self, owner: &str) -> StoreResult<WorkerLock>;
    /// Whether `owner` still holds its mark of life (`Some(false)`: certainly gone).
    async fn worker_alive(&self, owner: &str) -> StoreResult<Option<bool>>;
    /// Adds `owner` to the workers that have run against this database.
    async fn register_worker(&self, owner: &str, wall_now: i64) -> StoreResult<()>;
    /// The workers that have run against this database and were not yet found gone.
    async fn known_workers(&self) -> StoreResult<Vec<String>>;
    /// Removes a worker found gone, once its claims are freed.
    async fn forget_worker(&self, owner: &str) -> StoreResult<()>;
}

/// Each operation is the inherent method of [`Store`] of the same name, its error classified.
#[async_trait]
impl CaseStore for Store {
    async fn meta(&self, name: &str) -> StoreResult<Option<String>> {
        Store::meta(self, name).await.map_err(StoreError::classify)
    }

    async fn swap_meta(
        &self,
        name: &str,
        expected: Option<&str>,
        value: &str,
    ) -> StoreResult<bool> {
        Store::swap_meta(self, name, expected, value)
            .await
            .map_err(StoreError::classify)
    }

    async fn ingest(
        &self,
        renames: &[NewCase],
        cursor_name: &str,
        cursor: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<IngestReport> {
        Store::ingest(self, renames, cursor_name, cursor, now)
            .await
            .map_err(StoreError::classify)
    }

    async fn store_replies(
        &self,
        replies: &[NewReply],
        cursor_name: &str,
        cursor: &str,
    ) -> StoreResult<u64> {
        Store::store_replies(self, replies, cursor_name, cursor)
            .await
            .map_err(StoreError::classify)
    }

    async fn pending_replies_after(
        &self,
        after: (i64, i64),
        limit: i64,
    ) -> StoreResult<Vec<ReplyRow>> {
        Store::pending_replies_after(self, after, limit)
            .await
            .map_err(StoreError::classify)
    }

    async fn resolve_reply(
        &self,
        reply_id: i64,
        status: ReplyStatus,
        case_id: Option<i64>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        Store::resolve_reply(self, reply_id, status, case_id, now)
            .await
            .map_err(StoreError::classify)
    }

    async fn offer_holder(&self, phone: &str) -> StoreResult<Option<CaseRow>> {
        Store::offer_holder(self, phone)
            .await
            .map_err(StoreError::classify)
    }

    async fn offer_holders(&self, phones: &[&str]) -> StoreResult<Vec<CaseRow>> {
        Store::offer_holders(self, phones)
            .await
            .map_err(StoreError::classify)
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        owner: &str,
        wall_now: i64,
        lease_until: i64,
    ) -> StoreResult<Vec<CaseRow>> {
        Store::claim_due(self, now, limit, owner, wall_now, lease_until)
            .await
            .map_err(StoreError::classify)
    }

    async fn save_many(
        &self,
        changes: &[CaseChange],
        leases: &[Option<Lease>],
    ) -> StoreResult<Vec<Option<String>>> {
        Store::save_many(self, changes, leases)
            .await
            .map_err(StoreError::classify)
    }

    async fn take_offer_slot(&self, case: &CaseRow) -> StoreResult<bool> {
        Store::take_offer_slot(self, case)
            .await
            .map_err(StoreError::classify)
    }

    async fn take_offer_slots(&self, ids: &[i64]) -> StoreResult<Vec<i64>> {
        Store::take_offer_slots(self, ids)
            .await
            .map_err(StoreError::classify)
    }

    async fn release(&self, case_id: i64) -> StoreResult<()> {
        Store::release(self, case_id)
            .await
            .map_err(StoreError::classify)
    }

    async fn release_if_owner(&self, case_id: i64, owner: &str) -> StoreResult<()> {
        Store::release_if_owner(self, case_id, owner)
            .await
            .map_err(StoreError::classify)
    }

    async fn release_all_of(&self, owner: &str) -> StoreResult<u64> {
        Store::release_all_of(self, owner)
            .await
            .map_err(StoreError::classify)
    }

    async fn next_due(&self) -> StoreResult<Option<i64>> {
        Store::next_due(self).await.map_err(StoreError::classify)
    }

    async fn summary(&self) -> StoreResult<Vec<SummaryRow>> {
        Store::summary(self).await.map_err(StoreError::classify)
    }

    async fn case(&self, id: i64) -> StoreResult<Option<CaseRow>> {
        Store::case(self, id).await.map_err(StoreError::classify)
    }

    async fn cases_of(&self, bin: &str) -> StoreResult<Vec<CaseRow>> {
        Store::cases_of(self, bin)
            .await
            .map_err(StoreError::classify)
    }

    async fn events(&self, case_id: i64) -> StoreResult<Vec<EventRow>> {
        Store::events(self, case_id)
            .await
            .map_err(StoreError::classify)
    }

    async fn hold_worker_lock(&self, owner: &str) -> StoreResult<WorkerLock> {
        Store::hold_worker_lock(self, owner)
            .await
            .map_err(StoreError::classify)
    }

    async fn worker_alive(&self, owner: &str) -> StoreResult<Option<bool>> {
        Store::worker_alive(self, owner)
            .await
            .map_err(StoreError::classify)
    }

    async fn register_worker(&self, owner: &str, wall_now: i64) -> StoreResult<()> {
        Store::register_worker(self, owner, wall_now)
            .await
            .map_err(StoreError::classify)
    }

    async fn known_workers(&self) -> StoreResult<Vec<String>> {
        Store::known_workers(self)
            .await
            .map_err(StoreError::classify)
    }

    async fn forget_worker(&self, owner: &str) -> StoreResult<()> {
        Store::forget_worker(self, owner)
            .await
            .map_err(StoreError::classify)
    }
}

/// How an injected failure is made from its cause.
type Failure = fn(anyhow::Error) -> StoreError;

/// A store that fails on purpose: the next `n` saves fail as transient (the database away) or as a
/// conflict, then it behaves as the store it wraps. For the engine's unit tests.
pub struct Flaky<S> {
    inner: S,
    failures: Mutex<Vec<Failure>>,
}

impl<S: CaseStore> Flaky<S> {
    /// A store that behaves as `inner` until told to fail.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            failures: Mutex::new(Vec::new()),
        }
    }

    /// The next `n` saves fail, each as `kind` makes it (`StoreError::Transient`, `StoreError::Conflict`).
    pub fn fail_saves(&self, n: usize, kind: Failure) {
        self.failures
            .lock()
            .expect("not poisoned")
            .extend((0..n).map(|_| kind));
    }

    /// The store it wraps.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

#[async_trait]
impl<S: CaseStore> CaseStore for Flaky<S> {
    async fn save_many(
        &self,
        changes: &[CaseChange],
        leases: &[Option<Lease>],
    ) -> StoreResult<Vec<Option<String>>> {
        let failure = self.failures.lock().expect("not poisoned").pop();
        if let Some(kind) = failure {
            return Err(kind(anyhow::anyhow!("injected: the case store is away")));
        }
        self.inner.save_many(changes, leases).await
    }

    async fn meta(&self, name: &str) -> StoreResult<Option<String>> {
        self.inner.meta(name).await
    }

    async fn swap_meta(
        &self,
        name: &str,
        expected: Option<&str>,
        value: &str,
    ) -> StoreResult<bool> {
        self.inner.swap_meta(name, expected, value).await
    }

    async fn ingest(
        &self,
        renames: &[NewCase],
        cursor_name: &str,
        cursor: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<IngestReport> {
        self.inner.ingest(renames, cursor_name, cursor, now).await
    }

    async fn store_replies(
        &self,
        replies: &[NewReply],
        cursor_name: &str,
        cursor: &str,
    ) -> StoreResult<u64> {
        self.inner.store_replies(replies, cursor_name, cursor).await
    }

    async fn pending_replies_after(
        &self,
        after: (i64, i64),
        limit: i64,
    ) -> StoreResult<Vec<ReplyRow>> {
        self.inner.pending_replies_after(after, limit).await
    }

    async fn resolve_reply(
        &self,
        reply_id: i64,
        status: ReplyStatus,
        case_id: Option<i64>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.inner
            .resolve_reply(reply_id, status, case_id, now)
            .await
    }

    async fn offer_holder(&self, phone: &str) -> StoreResult<Option<CaseRow>> {
        self.inner.offer_holder(phone).await
    }

    async fn offer_holders(&self, phones: &[&str]) -> StoreResult<Vec<CaseRow>> {
        self.inner.offer_holders(phones).await
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        owner: &str,
        wall_now: i64,
        lease_until: i64,
    ) -> StoreResult<Vec<CaseRow>> {
        self.inner
            .claim_due(now, limit, owner, wall_now, lease_until)
            .await
    }

    async fn take_offer_slot(&self, case: &CaseRow) -> StoreResult<bool> {
        self.inner.take_offer_slot(case).await
    }

    async fn take_offer_slots(&self, ids: &[i64]) -> StoreResult<Vec<i64>> {
        self.inner.take_offer_slots(ids).await
    }

    async fn release(&self, case_id: i64) -> StoreResult<()> {
        self.inner.release(case_id).await
    }

    async fn release_if_owner(&self, case_id: i64, owner: &str) -> StoreResult<()> {
        self.inner.release_if_owner(case_id, owner).await
    }

    async fn release_all_of(&self, owner: &str) -> StoreResult<u64> {
        self.inner.release_all_of(owner).await
    }

    async fn next_due(&self) -> StoreResult<Option<i64>> {
        self.inner.next_due().await
    }

    async fn summary(&self) -> StoreResult<Vec<SummaryRow>> {
        self.inner.summary().await
    }

    async fn case(&self, id: i64) -> StoreResult<Option<CaseRow>> {
        self.inner.case(id).await
    }

    async fn cases_of(&self, bin: &str) -> StoreResult<Vec<CaseRow>> {
        self.inner.cases_of(bin).await
    }

    async fn events(&self, case_id: i64) -> StoreResult<Vec<EventRow>> {
        self.inner.events(case_id).await
    }

    async fn hold_worker_lock(&self, owner: &str) -> StoreResult<WorkerLock> {
        self.inner.hold_worker_lock(owner).await
    }

    async fn worker_alive(&self, owner: &str) -> StoreResult<Option<bool>> {
        self.inner.worker_alive(owner).await
    }

    async fn register_worker(&self, owner: &str, wall_now: i64) -> StoreResult<()> {
        self.inner.register_worker(owner, wall_now).await
    }

    async fn known_workers(&self) -> StoreResult<Vec<String>> {
        self.inner.known_workers().await
    }

    async fn forget_worker(&self, owner: &str) -> StoreResult<()> {
        self.inner.forget_worker(owner).await
    }
}
