//! Taking over the claims of workers that are gone. Each worker holds a mark of life that the operating
//! system or the database ends with its process ([`crate::store::WorkerLock`]); the claims of a worker
//! whose mark is gone are freed at once instead of after their `lease`, and a live worker's claims are
//! never taken (a worker whose liveness cannot be told keeps its claims until they expire).

use anyhow::Result;
use tracing::{info, warn};

use super::Engine;
use crate::store::{CaseStore, WorkerLock, ms};

/// How often a worker that is draining looks for the claims of workers that are gone.
pub const LIVENESS_EVERY: chrono::Duration = chrono::Duration::seconds(5);

impl<S: CaseStore> Engine<S> {
    /// Holds this worker's mark of life (taken once), then frees the claims of every worker that is
    /// certainly gone; returns how many claims it freed. Unless `now`, it looks at most every
    /// [`LIVENESS_EVERY`].
    pub async fn take_over_dead_claims(&self, now: bool) -> Result<u64> {
        let wall = self.wall.now();
        self.worker_lock
            .get_or_init(|| async {
                let lock = match self.store.hold_worker_lock(&self.owner).await {
                    Ok(lock) => lock,
                    Err(e) => {
                        warn!("cannot hold this worker's mark of life; its claims expire by their lease: {e:#}");
                        return WorkerLock::None;
                    }
                };
                // Registered once the mark is held, and before the first claim: another worker that finds
                // the row and not the mark knows this one is gone.
                if !matches!(lock, WorkerLock::None)
                    && let Err(e) = self.store.register_worker(&self.owner, ms(wall)).await
                {
                    warn!("cannot register this worker; its claims expire by their lease if it dies: {e:#}");
                }
                lock
            })
            .await;
        {
            let mut last = self.liveness_checked.lock().expect("not poisoned");
            if !now && last.is_some_and(|t| wall - t < LIVENESS_EVERY) {
                return Ok(0);
            }
            *last = Some(wall);
        }
        let mut freed = 0;
        // The registered workers, not the claims: reading every case for their owners cost a scan of the
        // table every few seconds per worker (0.3 s at 1,000,000 cases on PostgreSQL).
        for owner in self.store.known_workers().await? {
            // A registered worker took its mark before it registered, so a mark that cannot be found is
            // gone too (its file removed at a clean exit, or by a worker that found it dead and then died
            // before freeing its claims).
            if owner == self.owner || self.store.worker_alive(&owner).await? == Some(true) {
                continue;
            }
            let claims = self.store.release_all_of(&owner).await?;
            // Forgotten after its claims are freed: a worker that dies in between leaves the row for the
            // next one to find.
            self.store.forget_worker(&owner).await?;
            if claims > 0 {
                info!(
                    worker = %owner,
                    claims,
                    "took over the claims of a worker that is gone"
                );
            }
            freed += claims;
        }
        Ok(freed)
    }
}
