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
        self.worker_lock
            .get_or_init(|| async {
                self.store
                    .hold_worker_lock(&self.owner)
                    .await
                    .unwrap_or_else(|e| {
                        warn!("cannot hold this worker's mark of life; its claims expire by their lease: {e:#}");
                        WorkerLock::None
                    })
            })
            .await;
        let wall = self.wall.now();
        {
            let mut last = self.liveness_checked.lock().expect("not poisoned");
            if !now && last.is_some_and(|t| wall - t < LIVENESS_EVERY) {
                return Ok(0);
            }
            *last = Some(wall);
        }
        let mut freed = 0;
        for owner in self.store.lease_owners(ms(wall)).await? {
            if owner == self.owner || self.store.worker_alive(&owner).await? != Some(false) {
                continue;
            }
            let claims = self.store.release_all_of(&owner).await?;
            info!(
                worker = %owner,
                claims,
                "took over the claims of a worker that is gone"
            );
            freed += claims;
        }
        Ok(freed)
    }
}
