//! `sdu daemon`: the nightly ingest on its cron schedule (tokio-cron-scheduler, in the configured zone), a
//! tick for due work and replies, and the operator API, until SIGINT or SIGTERM.
//!
//! Shutdown: the signal cancels a token; the tick loop finishes the step in hand (each step is one
//! transaction, so none is left half-done), stops claiming work, and the process exits.

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::Notify;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::engine::{Engine, IngestMode};

/// Runs until a shutdown signal.
pub async fn run(engine: Arc<Engine>) -> Result<()> {
    let shutdown = CancellationToken::new();
    // Listen for the signals first, synchronously: from here on SIGTERM means a clean stop, never the default
    // action (death by signal), however long the scheduler and the API take to start.
    let signals = Signals::listen()?;
    let nightly = Arc::new(Notify::new());

    let mut scheduler = JobScheduler::new()
        .await
        .context("starting the scheduler")?;
    let tz = engine.config.tz()?;
    let notify = nightly.clone();
    let job = Job::new_async_tz(engine.config.ingest_cron.as_str(), tz, move |_id, _lock| {
        let notify = notify.clone();
        Box::pin(async move { notify.notify_one() })
    })
    .context("ingest_cron")?;
    scheduler.add(job).await?;
    // The monthly release (docs/DATA-PRODUCT.md), when a folder is configured for it.
    let monthly = Arc::new(Notify::new());
    if engine.config.publish_dir.is_some() {
        engine.config.publish_schedule()?;
        let notify = monthly.clone();
        let job = Job::new_async_tz(
            engine.config.publish_cron.as_str(),
            tz,
            move |_id, _lock| {
                let notify = notify.clone();
                Box::pin(async move { notify.notify_one() })
            },
        )
        .context("publish_cron")?;
        scheduler.add(job).await?;
        // A month that ended while the daemon was down is published at its start.
        monthly.notify_one();
    }
    scheduler.start().await?;

    let console = Arc::new(crate::console::Console::new(
        engine.clone(),
        nightly.clone(),
    ));
    let api = crate::api::serve(console, shutdown.clone()).await?;
    println!(
        "sdu daemon: operator API on http://{api}; nightly ingest `{}` ({}), tick every {}",
        engine.config.ingest_cron,
        engine.config.timezone,
        humantime::format_duration(engine.config.tick)
    );

    let cancel = shutdown.clone();
    tokio::spawn(async move {
        signals.recv().await;
        info!("shutdown requested");
        cancel.cancel();
    });

    let mut tick = tokio::time::interval(engine.config.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    engine.stop_on(shutdown.clone());
    // Between ticks, the claims of a worker that died are looked for often, so that they are taken over
    // within seconds rather than at the next tick or after their lease.
    let mut liveness = tokio::time::interval(
        crate::engine::LIVENESS_EVERY
            .to_std()
            .expect("a positive interval"),
    );
    liveness.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
            _ = nightly.notified() => {}
            _ = monthly.notified() => {
                publish_month(&engine).await;
                continue;
            }
            _ = liveness.tick() => match engine.take_over_dead_claims(true).await {
                Ok(0) => continue,
                Ok(_) => {}
                Err(e) => {
                    warn!("looking for the claims of workers that are gone failed: {e:#}");
                    continue;
                }
            },
        }
        // Catch-up is the same check: a slot that passed while the daemon was down is due at once.
        match engine.pass(IngestMode::Nightly).await {
            Ok(report) => {
                if let Some(e) = report.ingest_error {
                    warn!("nightly ingest failed, retried at the next tick: {e}");
                }
            }
            Err(e) => warn!("tick failed: {e:#}"),
        }
    }
    scheduler.shutdown().await.ok();
    println!("sdu daemon: stopped");
    Ok(())
}

/// Publishes last month's release into `publish_dir` unless it is there; a failure is logged and retried
/// at the next start or schedule.
async fn publish_month(engine: &Engine) {
    let Some(dir) = &engine.config.publish_dir else {
        return;
    };
    match crate::publish::schedule::publish_due(
        &engine.store,
        &engine.config,
        dir,
        engine.clock.now(),
    )
    .await
    {
        Ok(Some(period)) => info!("published the release of {period} into {}", dir.display()),
        Ok(None) => {}
        Err(e) => warn!("publishing last month's release failed: {e:#}"),
    }
}

/// SIGINT and SIGTERM, registered when created (not when first awaited). Public for `sdu-bench`, which
/// drops its database when stopped.
pub struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    /// Registers the handlers.
    pub fn listen() -> Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt()).context("SIGINT handler")?,
                terminate: signal(SignalKind::terminate()).context("SIGTERM handler")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Waits for the first of the two signals.
    pub async fn recv(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
