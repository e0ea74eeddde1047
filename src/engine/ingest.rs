//! The rename feed: read from the stored cursor to its end, one case per rename, the cursor moved in the
//! same transaction as the cases; and the nightly slot, claimed by one worker, caught up after downtime.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use tracing::info;

use super::{Engine, INGEST_CLAIM, LAST_INGEST_SLOT, RENAMES_CURSOR};
use crate::case::{self, transition};
use crate::store::{CaseStore, IngestReport, NewCase};

impl<S: CaseStore> Engine<S> {
    /// Reads the rename feed from the stored cursor to its end, opening one case per rename.
    pub async fn ingest(&self) -> Result<IngestReport> {
        let mut total = IngestReport::default();
        self.ingest_into(&mut total).await?;
        Ok(total)
    }

    /// [`Engine::ingest`], adding what each page's transaction did to `total` as it commits (so that an
    /// ingest retried after a failure counts the pages it had already done).
    pub(super) async fn ingest_into(&self, total: &mut IngestReport) -> Result<()> {
        let mut cursor = self.store.meta(RENAMES_CURSOR).await?;
        let read_page = |cursor: Option<String>| async move {
            self.systems
                .legal_entities
                .renames(cursor.as_deref(), 500)
                .await
                .context("reading the rename feed")
        };
        let mut next_page = Some(read_page(cursor.clone()).await?);
        while let Some(page) = next_page.take() {
            if page.renames.is_empty() && cursor.as_deref() == Some(page.next_cursor.as_str()) {
                break;
            }
            let now = self.clock.now();
            let new: Vec<NewCase> = page
                .renames
                .iter()
                .map(|r| NewCase {
                    case_key: case::case_key(&r.bin, r.at),
                    bin: r.bin.clone(),
                    rename_at: r.at,
                    from_name: r.from.clone(),
                    to_name: r.to.clone(),
                    ended: transition::rename_problem(r),
                })
                .collect();
            let done = page.renames.is_empty();
            // The next page is read while this one is stored (a backfill reads thousands of pages). Its
            // cursor moves only with the store's transaction, so a crash in between reads it again.
            let (report, read) = tokio::join!(
                self.store
                    .ingest(&new, RENAMES_CURSOR, &page.next_cursor, now),
                async {
                    if done {
                        None
                    } else {
                        Some(read_page(Some(page.next_cursor.clone())).await)
                    }
                }
            );
            let report = report?;
            total.opened += report.opened;
            total.duplicates += report.duplicates;
            total.superseded += report.superseded;
            cursor = Some(page.next_cursor);
            next_page = read.transpose()?;
        }
        if total.opened > 0 {
            info!(
                opened = total.opened,
                superseded = total.superseded,
                "ingested renames"
            );
        }
        // On the wall clock: the gauge is compared with the scraper's own time.
        crate::telemetry::ingest_succeeded(self.wall.now());
        Ok(())
    }

    /// Runs the nightly ingest if a scheduled instant has passed since the last one done (catch-up included).
    /// On a database that never ingested, the first call only records the baseline. Returns `Ok(None)` when
    /// nothing was due.
    pub async fn nightly_if_due(&self) -> Result<Option<IngestReport>> {
        let now = self.clock.now();
        let tz = self.config.tz()?;
        let slot = match self
            .config
            .cron()?
            .find_previous_occurrence(&now.with_timezone(&tz), true)
        {
            Ok(s) => s.with_timezone(&Utc),
            Err(_) => return Ok(None),
        };
        let last = self.store.meta(LAST_INGEST_SLOT).await?;
        let Some(last_text) = last else {
            self.store
                .swap_meta(LAST_INGEST_SLOT, None, &now.to_rfc3339())
                .await?;
            return Ok(None);
        };
        let last_at = DateTime::parse_from_rfc3339(&last_text)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        if slot <= last_at {
            return Ok(None);
        }
        // One worker ingests a slot: it claims it with a lease on the wall clock (`lease`), ingests, then
        // marks the slot done. A worker killed in between leaves the slot due, and its claim expires after
        // the lease, so the next tick or start ingests it (catch-up is never skipped). The ingest itself is
        // idempotent (one case per rename, the cursor moves in the same transaction), so even two workers
        // overlapping after an expired lease open nothing twice.
        let (wall, lease_until) = self.lease_from_now();
        // This worker's mark of life is held before its claim names it, and claims of workers that are
        // gone are freed.
        self.take_over_dead_claims(false).await?;
        let claim = self.store.meta(INGEST_CLAIM).await?;
        let own = self.ingest_claim.lock().expect("not poisoned").clone();
        // `slot|expiry|worker`: held while it lasts and its worker is not known to be gone (a claim of an
        // older version names no worker and lasts its lease).
        let mut held = false;
        if claim.is_some() && claim != own {
            let mut parts = claim.as_deref().unwrap_or_default().split('|');
            let (claimed_slot, expiry, worker) = (parts.next(), parts.next(), parts.next());
            held = claimed_slot == Some(slot.to_rfc3339().as_str())
                && expiry
                    .and_then(|e| e.parse::<i64>().ok())
                    .is_some_and(|e| e > wall);
            if held && let Some(worker) = worker {
                held = self.store.worker_alive(worker).await? != Some(false);
            }
        }
        if held {
            return Ok(None);
        }
        let mine = format!("{}|{lease_until}|{}", slot.to_rfc3339(), self.owner);
        // Noted before the write: a write that reached the database although it reported an error still
        // leaves a claim this worker recognises as its own.
        *self.ingest_claim.lock().expect("not poisoned") = Some(mine.clone());
        if !self
            .store
            .swap_meta(INGEST_CLAIM, claim.as_deref(), &mine)
            .await?
        {
            return Ok(None);
        }
        // A worker that read the slot as due just before another finished it and let its claim go would
        // otherwise ingest the same slot again: look once more now that the claim is ours.
        if self.store.meta(LAST_INGEST_SLOT).await?.as_deref() != Some(last_text.as_str()) {
            self.give_up_ingest_claim(&mine).await?;
            return Ok(None);
        }
        let report = self.ingest().await;
        if report.is_ok() {
            self.store
                .swap_meta(LAST_INGEST_SLOT, Some(&last_text), &slot.to_rfc3339())
                .await?;
        }
        // Give the claim up either way: done, or free for the next tick to retry.
        self.give_up_ingest_claim(&mine).await?;
        report.map(Some)
    }

    async fn give_up_ingest_claim(&self, mine: &str) -> Result<()> {
        self.store.swap_meta(INGEST_CLAIM, Some(mine), "").await?;
        *self.ingest_claim.lock().expect("not poisoned") = None;
        Ok(())
    }

    /// Whether a nightly ingest failed and waits for a retry (the slot is not marked done).
    pub async fn ingest_overdue(&self) -> Result<bool> {
        let now = self.clock.now();
        let tz = self.config.tz()?;
        let Ok(slot) = self
            .config
            .cron()?
            .find_previous_occurrence(&now.with_timezone(&tz), true)
        else {
            return Ok(false);
        };
        Ok(match self.store.meta(LAST_INGEST_SLOT).await? {
            None => false,
            Some(last) => DateTime::parse_from_rfc3339(&last)
                .map(|l| l < slot)
                .unwrap_or(true),
        })
    }
}
