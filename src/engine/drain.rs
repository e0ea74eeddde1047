//! The claim loop and the group commit: due cases are claimed ahead while claimed ones advance, and one
//! committer saves every step waiting at that moment in one transaction.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;

use anyhow::Result;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use tracing::debug;

use super::Engine;
use crate::case::Stage;
use crate::store::{self, CaseChange, CaseRow, CaseStore, Lease};

/// A step for the committer of [`Engine::drain`], the claim to keep if the worker goes on with the case,
/// and where to send its result (the new chain head, `None` if another writer changed the case first).
pub(super) type SaveRequest = (
    CaseChange,
    Option<Lease>,
    tokio::sync::oneshot::Sender<Result<Option<String>>>,
);
/// Where steps go to be saved.
pub(super) type Saves = tokio::sync::mpsc::UnboundedSender<SaveRequest>;

/// Cases for [`Engine::drain`] to advance.
enum Refill {
    /// Newly claimed, in claim order; `slots_taken` if their offer slots were taken with the claim.
    Claimed {
        rows: Vec<CaseRow>,
        slots_taken: bool,
    },
    /// Held queued cases, their offer slots now taken.
    Released(Vec<CaseRow>),
}

/// What [`Engine::drain`] holds between its claims: cases ready to advance, queued cases held back until
/// no case of the drain is being checked, and the errors so far.
#[derive(Default)]
struct Hand {
    ready: VecDeque<CaseRow>,
    held: Vec<CaseRow>,
    /// Cases of `ready` and in flight that are being checked.
    checking: usize,
    /// The last claim found fewer cases than it asked for: the next waits until no case is in hand.
    exhausted: bool,
    errors: Vec<anyhow::Error>,
}

/// What the drain should fetch next.
enum Want {
    /// The held queued cases, their offer slots taken together now that no case is being checked.
    Release,
    /// More due cases; with `take_slots` their offer slots are taken with the claim (only when no case of
    /// the drain is being checked; otherwise the queued ones are held, above).
    Claim { take_slots: bool },
}

impl Hand {
    fn wants(&self, concurrency: usize, in_flight: usize, stopping: bool) -> Option<Want> {
        if self.checking == 0 && !self.held.is_empty() {
            Some(Want::Release)
        } else if self.errors.is_empty()
            && !stopping
            && self.held.is_empty()
            && self.ready.len() < concurrency
            && (!self.exhausted || in_flight == 0)
        {
            Some(Want::Claim {
                take_slots: self.checking == 0,
            })
        } else {
            None
        }
    }

    /// Takes in what a claim or a release brought; false when the drain is done (nothing due, nothing in
    /// hand).
    fn take_in(&mut self, filled: Result<Refill>, claim_size: usize, idle: bool) -> bool {
        match filled {
            Ok(Refill::Claimed { rows, slots_taken }) => {
                self.exhausted = rows.len() < claim_size;
                if rows.is_empty() && idle && self.ready.is_empty() {
                    return false;
                }
                for row in rows {
                    if row.stage() == Some(Stage::Checking) {
                        self.checking += 1;
                    } else if !slots_taken && row.stage() == Some(Stage::Queued) {
                        self.held.push(row);
                        continue;
                    }
                    self.ready.push_back(row);
                }
            }
            Ok(Refill::Released(rows)) => self.ready.extend(rows),
            Err(e) => self.errors.push(e),
        }
        true
    }

    fn finished(&mut self, was_checking: bool, result: Result<()>) {
        if was_checking {
            self.checking -= 1;
        }
        if let Err(e) = result {
            self.errors.push(e);
        }
    }

    /// The error that says why the drain failed, rather than one of the steps left out after it.
    fn into_result(mut self) -> Result<()> {
        self.errors.sort_by_key(|e| e.is::<store::NotAttempted>());
        match self.errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl<S: CaseStore> Engine<S> {
    /// Drives every due case until none is due now; returns the steps recorded.
    ///
    /// Up to `concurrency` cases advance at once. Due cases are claimed ahead, twice `concurrency` at a time,
    /// while the claimed ones advance, so that neither the HTTP clients nor the store wait for the other at
    /// the end of a batch. Steps are saved by one committer that applies every step waiting at that moment
    /// in one transaction (group commit), so that the store does one commit for many steps instead of one
    /// each. A case's next step starts only once its previous one is saved, so each case still moves one
    /// recorded step at a time. The drain ends when a claim finds nothing due and no case is in hand.
    ///
    /// A queued case claimed while cases of this drain are still being checked waits for those checks
    /// before it takes its phone's offer slot: of two organisations of one head, the earlier rename, maybe
    /// still being checked, gets the first offer (`take_offer_slot` orders queued cases, not cases still
    /// being checked).
    pub async fn drain(&self) -> Result<u64> {
        let start = self.steps.load(Ordering::Relaxed);
        self.store_failed.store(false, Ordering::Relaxed);
        self.take_over_dead_claims(true).await?;
        let concurrency = self.config.concurrency;
        let claim_size = concurrency * 2;
        let (saves, queue) = tokio::sync::mpsc::unbounded_channel();
        // The work owns the sender: when it ends, the committer sees the channel close and ends too.
        let work = async move {
            let saves: Saves = saves;
            let mut hand = Hand::default();
            let mut in_flight = futures::stream::FuturesUnordered::new();
            let mut refill: Option<futures::future::BoxFuture<'_, Result<Refill>>> = None;
            loop {
                while in_flight.len() < concurrency
                    && let Some(row) = hand.ready.pop_front()
                {
                    in_flight.push(self.advance_tracked(row, &saves));
                }
                if refill.is_none() {
                    refill = match hand.wants(concurrency, in_flight.len(), self.stopping()) {
                        Some(Want::Release) => {
                            let rows = std::mem::take(&mut hand.held);
                            Some(Box::pin(async move {
                                let now = self.clock.now();
                                Ok(Refill::Released(self.take_offer_slots(rows, now).await?))
                            }))
                        }
                        Some(Want::Claim { take_slots }) => {
                            Some(Box::pin(self.claim_batch(claim_size, take_slots)))
                        }
                        None => None,
                    };
                }
                if refill.is_none() && in_flight.is_empty() {
                    break;
                }
                tokio::select! {
                    filled = async { refill.as_mut().expect("guarded").await }, if refill.is_some() => {
                        refill = None;
                        if !hand.take_in(filled, claim_size, in_flight.is_empty()) {
                            break;
                        }
                    }
                    Some((was_checking, result)) = in_flight.next(), if !in_flight.is_empty() => {
                        hand.finished(was_checking, result);
                    }
                }
            }
            hand.into_result()
        };
        let (worked, committed) = tokio::join!(work, self.commit(queue));
        worked?;
        committed?;
        Ok(self.steps.load(Ordering::Relaxed) - start)
    }

    /// [`Engine::advance`], noting whether the case was being checked and whether the store failed.
    async fn advance_tracked(&self, row: CaseRow, saves: &Saves) -> (bool, Result<()>) {
        let was_checking = row.stage() == Some(Stage::Checking);
        let result = self.advance(row, saves).await;
        if result.as_ref().is_err_and(store::is_store_error) {
            self.store_failed.store(true, Ordering::Relaxed);
        }
        (was_checking, result)
    }

    /// Claims up to `limit` due cases for this worker; with `take_slots`, also takes the offer slots of the
    /// queued ones that send their first SMS now.
    async fn claim_batch(&self, limit: usize, take_slots: bool) -> Result<Refill> {
        self.take_over_dead_claims(false).await?;
        // The pause switch is read before every claim, so that a pause stops the SMS within one claim.
        let take_slots = take_slots && !self.refresh_pause().await?;
        let now = self.clock.now();
        let (wall, lease_until) = self.lease_from_now();
        let rows = self
            .store
            .claim_due(now, limit as i64, &self.owner, wall, lease_until)
            .await?;
        // A batch with cases to check holds its queued ones back (see `drain`).
        let take_slots = take_slots && !rows.iter().any(|r| r.stage() == Some(Stage::Checking));
        let rows = if take_slots {
            self.take_offer_slots(rows, now).await?
        } else {
            rows
        };
        Ok(Refill::Claimed {
            rows,
            slots_taken: take_slots,
        })
    }

    /// Takes, in a few statements, the offer slots of the claimed cases that send their first SMS now (the
    /// window is open), so that their offer steps need not take them one by one.
    async fn take_offer_slots(
        &self,
        mut batch: Vec<CaseRow>,
        now: DateTime<Utc>,
    ) -> Result<Vec<CaseRow>> {
        if !self.settings.window.contains(now) {
            return Ok(batch);
        }
        let want: Vec<i64> = batch
            .iter()
            .filter(|r| {
                r.stage() == Some(Stage::Queued) && r.offer_phone.is_none() && r.phone.is_some()
            })
            .map(|r| r.id)
            .collect();
        if want.is_empty() {
            return Ok(batch);
        }
        let taken: HashSet<i64> = self
            .store
            .take_offer_slots(&want)
            .await?
            .into_iter()
            .collect();
        for row in &mut batch {
            if taken.contains(&row.id) {
                row.offer_phone = row.phone.clone();
            }
        }
        Ok(batch)
    }

    /// The committer of [`Engine::drain`]: saves every change waiting at once, in one transaction, and
    /// answers each with its result. A batch that fails as a whole on a conflict between workers (a
    /// PostgreSQL deadlock, say) or on an error of its own is retried change by change, so that one bad
    /// change cannot sink the others; one that fails because the database is away or busy is not.
    async fn commit(
        &self,
        mut queue: tokio::sync::mpsc::UnboundedReceiver<SaveRequest>,
    ) -> Result<()> {
        let mut batch = Vec::new();
        while queue.recv_many(&mut batch, 512).await > 0 {
            // Every other case in hand gets one turn first: those whose steps are finishing join this commit
            // instead of starting the next, and a commit costs much the same for ten steps as for a hundred
            // (the pages it writes; docs/BENCHMARKS.md).
            tokio::task::yield_now().await;
            while batch.len() < 512
                && let Ok(request) = queue.try_recv()
            {
                batch.push(request);
            }
            let mut changes = Vec::with_capacity(batch.len());
            let mut leases = Vec::with_capacity(batch.len());
            let mut answers = Vec::with_capacity(batch.len());
            for (change, lease, answer) in batch.drain(..) {
                changes.push(change);
                leases.push(lease);
                answers.push(answer);
            }
            let results = self.save_batch(&changes, leases).await;
            for (answer, result) in answers.into_iter().zip(results) {
                // A worker that stopped waiting (its drain failed) no longer needs the answer.
                let _ = answer.send(result);
            }
        }
        Ok(())
    }

    /// Saves one batch of the committer, one result per change. Once the store has failed in this drain,
    /// nothing more is saved: the workers waiting for these answers fail, and the pass retries their cases
    /// (each waiting for the database in turn would only delay that).
    async fn save_batch(
        &self,
        changes: &[CaseChange],
        leases: Vec<Option<Lease>>,
    ) -> Vec<Result<Option<String>>> {
        let not_attempted = || Err(store::NotAttempted("an earlier save".into()).into());
        if self.store_failed.load(Ordering::Relaxed) {
            return changes.iter().map(|_| not_attempted()).collect();
        }
        let error = match self.store.save_many(changes, &leases).await {
            Ok(saved) => return saved.into_iter().map(Ok).collect(),
            Err(e) => e,
        };
        if error.is_transient() && !error.is_conflict() {
            // The database is unreachable or busy: no use trying these one by one.
            self.store_failed.store(true, Ordering::Relaxed);
            let cause = error.to_string();
            let mut failed = vec![Err(error.into())];
            failed
                .extend((1..changes.len()).map(|_| Err(store::NotAttempted(cause.clone()).into())));
            return failed;
        }
        debug!(
            "group commit of {} steps failed, saving one by one: {error:#}",
            changes.len()
        );
        let mut one_by_one = Vec::with_capacity(changes.len());
        for (change, lease) in changes.iter().zip(leases) {
            if self.store_failed.load(Ordering::Relaxed) {
                one_by_one.push(not_attempted());
                continue;
            }
            match self
                .store
                .save_many(std::slice::from_ref(change), &[lease])
                .await
            {
                Ok(mut saved) => one_by_one.push(Ok(saved.pop().flatten())),
                Err(e) => {
                    if e.is_transient() && !e.is_conflict() {
                        self.store_failed.store(true, Ordering::Relaxed);
                    }
                    one_by_one.push(Err(e.into()));
                }
            }
        }
        one_by_one
    }
}
