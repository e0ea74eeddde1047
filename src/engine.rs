//! The runner: claims due cases, performs what the decision core asks through the adapters, and records
//! each step in one guarded transaction. Transient errors re-schedule the case with a back-off and never end
//! it; permanent ones end it as `failed`.
//!
//! Crash safety: every outward write carries an idempotency key derived from the case and step
//! (`{case_key}:{step}`), and the step is recorded only after the write returned. A process killed in
//! between repeats the write on restart with the same key, which the external system answers with its
//! first result: nothing is done twice, nothing is lost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use adapters::http::{
    HttpCivilRegistry, HttpConsentService, HttpELicense, HttpIndividuals, HttpLegalEntities,
    HttpMobileBase, HttpSdu, HttpSettings, HttpSmsGateway,
};
use adapters::{
    AdapterError, Bin, CivilRegistry, ConsentService, ELicense, IdempotencyKey, Iin, Individuals,
    LegalEntities, MobileBase, Msisdn, Sdu, SduRecord, SmsGateway,
};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::json;
use tracing::{debug, info, warn};

use crate::case::{
    self, Assessment, Choice, Ending, Facts, Need, OfferState, OfferStep, Outcome, Reason, Stage,
    Timing, Window,
};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::store::{
    self, CaseChange, CaseRow, IngestReport, Lease, NewCase, NewEvent, NewReply, OutboxEntry,
    ReplyStatus, Store, from_ms, ms,
};

mod retry;
use retry::retrying;

/// Meta key of the rename feed cursor.
pub const RENAMES_CURSOR: &str = "renames_cursor";
/// Meta key of the reply feed cursor.
pub const REPLIES_CURSOR: &str = "replies_cursor";
/// Meta key of the last nightly ingest slot done (RFC 3339).
pub const LAST_INGEST_SLOT: &str = "last_ingest_slot";
/// Meta key of the claim on a nightly slot being ingested (`slot|wall-clock expiry ms`).
pub const INGEST_CLAIM: &str = "ingest_claim";
/// What the consent is for, as sent to the consent service.
pub const CONSENT_PURPOSE: &str = "reissue_of_trusted_software_register_permit";

/// One client per external system.
#[derive(Clone)]
pub struct Systems {
    /// Legal-entity registry.
    pub legal_entities: Arc<dyn LegalEntities>,
    /// e-license.
    pub e_license: Arc<dyn ELicense>,
    /// Individuals registry.
    pub individuals: Arc<dyn Individuals>,
    /// Civil registry.
    pub civil_registry: Arc<dyn CivilRegistry>,
    /// Mobile citizens base.
    pub mobile_base: Arc<dyn MobileBase>,
    /// SMS gateway.
    pub sms: Arc<dyn SmsGateway>,
    /// Consent service.
    pub consent: Arc<dyn ConsentService>,
    /// SDU.
    pub sdu: Arc<dyn Sdu>,
}

impl Systems {
    /// HTTP clients built from the configuration; `tweak` may adjust every system's settings.
    pub fn http(config: &Config, tweak: impl Fn(&mut HttpSettings)) -> Result<Self> {
        let s = |name: &str| {
            let mut settings = config.http_settings(name);
            tweak(&mut settings);
            settings
        };
        Ok(Self {
            legal_entities: Arc::new(HttpLegalEntities::new(s("legal_entities"))?),
            e_license: Arc::new(HttpELicense::new(s("e_license"))?),
            individuals: Arc::new(HttpIndividuals::new(s("individuals"))?),
            civil_registry: Arc::new(HttpCivilRegistry::new(s("civil_registry"))?),
            mobile_base: Arc::new(HttpMobileBase::new(s("mobile_base"))?),
            sms: Arc::new(HttpSmsGateway::new(s("sms"))?),
            consent: Arc::new(HttpConsentService::new(s("consent"))?),
            sdu: Arc::new(HttpSdu::new(s("sdu"))?),
        })
    }
}

/// A rename whose data cannot make a case (a bad BIN, an unprintable new name) ends `failed`/`invalid_data`
/// at ingest, alone: the rest of the feed carries on.
fn rename_problem(rename: &adapters::RenameEvent) -> Option<Ending> {
    if let Err(e) = Bin::parse(&rename.bin) {
        return Some(Ending::invalid_data(format!(
            "the rename feed sent an invalid BIN: {e}"
        )));
    }
    adapters::ids::name_problem(&rename.to)
        .map(|problem| Ending::invalid_data(format!("the rename feed's new name {problem}")))
}

/// One finding of the checks, for dry-run traces and the case history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    /// Which registry.
    pub system: &'static str,
    /// What it said, identifiers masked.
    pub finding: serde_json::Value,
}

/// Runs the checks of seed items 6–12 through the decision core, asking each registry only when the core
/// needs it. Shared by the runner and dry-run.
pub async fn gather(
    systems: &Systems,
    bin: &Bin,
    new_name: &str,
    findings: &mut Vec<Finding>,
) -> Result<Assessment, AdapterError> {
    let mut facts = Facts::default();
    loop {
        let head = || -> Option<Iin> {
            facts
                .organization
                .as_ref()
                .and_then(|o| o.as_ref())
                .and_then(|o| o.first_head.clone())
        };
        match case::assess(bin, new_name, &facts) {
            Assessment::Need(Need::Organization) => {
                let org = systems.legal_entities.organization(bin).await?;
                findings.push(Finding {
                    system: "legal_entities",
                    finding: match &org {
                        None => json!({"found": false}),
                        // DATA-PRODUCT: the record's region and activity, read back by `step_checking`.
                        Some(o) => json!({"found": true, "name": o.name, "status": o.status,
                            "first_head": o.first_head.as_ref().map(Iin::masked),
                            "region": o.region, "activity": o.activity}),
                    },
                });
                facts.organization = Some(org);
            }
            Assessment::Need(Need::Permits) => {
                let permits = systems.e_license.permits(bin, case::SERVICE).await?;
                findings.push(Finding {
                    system: "e_license",
                    finding: json!(
                        permits
                            .iter()
                            .map(|p| json!({"permit_id": p.permit_id, "service": p.service,
                        "holder_name": p.holder_name, "status": p.status}))
                            .collect::<Vec<_>>()
                    ),
                });
                facts.permits = Some(permits);
            }
            Assessment::Need(Need::Civil) => {
                let head =
                    head().expect("the core asks for the civil record only once a head is known");
                let record = systems.civil_registry.record(&head).await?;
                findings.push(Finding {
                    system: "civil_registry",
                    finding: match &record {
                        None => json!({"record": false}),
                        Some(r) => json!({"deceased": r.deceased, "declared_dead": r.declared_dead, "declared_missing": r.declared_missing}),
                    },
                });
                facts.civil = Some(record);
            }
            Assessment::Need(Need::Person) => {
                let head = head().expect("the core asks for the person only once a head is known");
                let person = systems.individuals.person(&head).await?;
                findings.push(Finding {
                    system: "individuals",
                    finding: match &person {
                        None => json!({"found": false}),
                        Some(p) => json!({"residence_abroad": p.residence_abroad, "incapacitated": p.incapacitated, "imprisoned": p.imprisoned}),
                    },
                });
                facts.person = Some(person);
            }
            Assessment::Need(Need::Phone) => {
                let head = head().expect("the core asks for the number only once a head is known");
                let phone = systems.mobile_base.number(&head).await?;
                findings.push(Finding {
                    system: "mobile_base",
                    finding: json!({"registered": phone.is_some(), "number": phone.as_deref().map(crate::privacy::mask)}),
                });
                facts.phone = Some(phone);
            }
            done => return Ok(done),
        }
    }
}

/// When a pass ingests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestMode {
    /// Read the rename feed now (`sdu run`).
    Now,
    /// Only when a nightly slot has passed since the last ingest, catch-up included (the daemon's tick).
    Nightly,
}

/// What one pass did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PassReport {
    /// Ingest, when one ran and succeeded.
    pub ingest: Option<IngestReport>,
    /// Why the ingest failed, if it did (it is retried at the next tick).
    pub ingest_error: Option<String>,
    /// Replies newly stored.
    pub replies_stored: u64,
    /// Why reading replies failed, if it did.
    pub replies_error: Option<String>,
    /// Case steps recorded.
    pub steps: u64,
}

/// Why a step did not produce a change to record.
#[derive(Debug)]
enum StepError {
    /// An external system failed: the case records it (a transient failure waits and retries, a permanent
    /// one ends the case).
    Upstream(AdapterError),
    /// The case store failed: nothing is recorded, the case keeps its claim and the pass fails, to be
    /// retried ([`Engine::pass`]). A database fault never ends or re-schedules a case.
    Store(anyhow::Error),
}

impl From<AdapterError> for StepError {
    fn from(e: AdapterError) -> Self {
        Self::Upstream(e)
    }
}

/// A step for the committer of [`Engine::drain`], the claim to keep if the worker goes on with the case,
/// and where to send its result (the new chain head, `None`
/// if another writer changed the case first).
type SaveRequest = (
    CaseChange,
    Option<Lease>,
    tokio::sync::oneshot::Sender<Result<Option<String>>>,
);
type Saves = tokio::sync::mpsc::UnboundedSender<SaveRequest>;

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

/// The orchestrator: store, systems, clock and settings.
pub struct Engine {
    /// The case store.
    pub store: Store,
    /// The external systems.
    pub systems: Systems,
    /// Business time (simulated in scenarios and with `--now`).
    pub clock: Arc<dyn Clock>,
    /// Settings.
    pub config: Config,
    timing: Timing,
    owner: String,
    steps: AtomicU64,
    stop: std::sync::OnceLock<tokio_util::sync::CancellationToken>,
    /// The nightly-slot claim this worker last took and has not given up yet (`INGEST_CLAIM`'s value): left
    /// behind by an attempt that failed on a database fault, it is no obstacle to this worker's retry.
    ingest_claim: std::sync::Mutex<Option<String>>,
    /// Set by [`Engine::drain`] when the store failed: the cases still waiting in the batch are not started
    /// (their outward writes could not be recorded), and the pass retries them once the store answers.
    store_failed: std::sync::atomic::AtomicBool,
    /// Called after every recorded step, for progress displays.
    pub on_step: Option<Arc<dyn Fn(u64) + Send + Sync>>,
}

impl Engine {
    /// An engine; `owner` names this worker in claims.
    pub fn new(
        store: Store,
        systems: Systems,
        clock: Arc<dyn Clock>,
        config: Config,
    ) -> Result<Self> {
        let window = Window {
            start: config.sms_window.start,
            end: config.sms_window.end,
            tz: config.tz()?,
        };
        let timing = Timing {
            reminder_after: config.reminder_after,
            expire_after: config.expire_after,
            window,
        };
        let owner = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
        Ok(Self {
            store,
            systems,
            clock,
            config,
            timing,
            owner,
            steps: AtomicU64::new(0),
            stop: std::sync::OnceLock::new(),
            ingest_claim: std::sync::Mutex::new(None),
            store_failed: std::sync::atomic::AtomicBool::new(false),
            on_step: None,
        })
    }

    /// Stops claiming new work once `token` is cancelled (the step in hand still completes).
    pub fn stop_on(&self, token: tokio_util::sync::CancellationToken) {
        let _ = self.stop.set(token);
    }

    fn stopping(&self) -> bool {
        self.stop.get().is_some_and(|t| t.is_cancelled())
    }

    /// The decision core's timing settings.
    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// One pass: ingest (always for `sdu run`, when a nightly slot is due for the daemon), read and apply
    /// replies, then drive every due case as far as it goes now.
    ///
    /// A transient database fault (a lost connection, a server restarting, SQLite busy) does not end the pass:
    /// the part that failed is done again after a back-off, for up to `database_retry_for` of failures in a
    /// row, and only then does the pass fail (see [`retry`]). An upstream system that is down
    /// fails only its part: the ingest or the reply poll waits for the next pass, a case waits for its retry.
    pub async fn pass(&self, ingest: IngestMode) -> Result<PassReport> {
        let mut report = PassReport::default();
        let steps_before = self.steps.load(Ordering::Relaxed);
        let mut opened = IngestReport::default();
        let ingested = match ingest {
            IngestMode::Now => {
                retrying!(self, self.ingest_into(&mut opened)).map(|()| Some(opened))
            }
            IngestMode::Nightly => retrying!(self, self.nightly_if_due()),
        };
        match ingested {
            Ok(r) => report.ingest = r,
            Err(e) if store::is_store_error(&e) => return Err(e),
            Err(e) => report.ingest_error = Some(format!("{e:#}")),
        }
        let mut stored = 0;
        match retrying!(self, self.poll_replies_into(&mut stored)) {
            Ok(()) => {}
            Err(e) if store::is_store_error(&e) => return Err(e),
            Err(e) => report.replies_error = Some(format!("{e:#}")),
        }
        report.replies_stored = stored;
        let (_, deferred) = retrying!(self, self.handle_replies())?;
        retrying!(self, self.drain())?;
        if deferred > 0 {
            // The sends those replies waited for are recorded now.
            retrying!(self, self.handle_replies())?;
            retrying!(self, self.drain())?;
        }
        // Counted by the engine, so that steps recorded by an attempt that failed later are counted too.
        report.steps = self.steps.load(Ordering::Relaxed) - steps_before;
        Ok(report)
    }

    /// Reads the rename feed from the stored cursor to its end, opening one case per rename.
    pub async fn ingest(&self) -> Result<IngestReport> {
        let mut total = IngestReport::default();
        self.ingest_into(&mut total).await?;
        Ok(total)
    }

    /// [`Engine::ingest`], adding what each page's transaction did to `total` as it commits (so that an
    /// ingest retried after a failure counts the pages it had already done).
    async fn ingest_into(&self, total: &mut IngestReport) -> Result<()> {
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
                    ended: rename_problem(r),
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
        let wall = ms(SystemClock.now());
        let claim = self.store.meta(INGEST_CLAIM).await?;
        let own = self.ingest_claim.lock().expect("not poisoned").clone();
        let held = claim.is_some()
            && claim != own
            && claim
                .as_deref()
                .and_then(|c| c.split_once('|'))
                .is_some_and(|(claimed_slot, expiry)| {
                    claimed_slot == slot.to_rfc3339()
                        && expiry.parse::<i64>().is_ok_and(|e| e > wall)
                });
        if held {
            return Ok(None);
        }
        let mine = format!(
            "{}|{}",
            slot.to_rfc3339(),
            wall + self.config.lease.as_millis() as i64
        );
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

    /// The next scheduled ingest instant after `now`.
    pub fn next_ingest_after(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
        let tz = self.config.tz()?;
        let next = self
            .config
            .cron()?
            .find_next_occurrence(&now.with_timezone(&tz), false)?;
        Ok(next.with_timezone(&Utc))
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

    /// Reads new replies from the gateway and stores them before anything else looks at them.
    pub async fn poll_replies(&self) -> Result<u64> {
        let mut stored = 0;
        self.poll_replies_into(&mut stored).await?;
        Ok(stored)
    }

    /// [`Engine::poll_replies`], adding to `stored` as each page's transaction commits.
    async fn poll_replies_into(&self, stored: &mut u64) -> Result<()> {
        let mut cursor = self.store.meta(REPLIES_CURSOR).await?;
        loop {
            let page = self
                .systems
                .sms
                .replies(cursor.as_deref(), 500)
                .await
                .context("reading SMS replies")?;
            let done = page.replies.is_empty();
            if done && cursor.as_deref() == Some(page.next_cursor.as_str()) {
                break;
            }
            let replies: Vec<NewReply> = page
                .replies
                .iter()
                .map(|r| NewReply {
                    message_id: r.message_id.clone(),
                    from_raw: r.from.clone(),
                    phone: Msisdn::parse(&r.from).ok().map(|m| m.to_string()),
                    text: r.text.clone(),
                    received_at: r.received_at,
                })
                .collect();
            *stored += self
                .store
                .store_replies(&replies, REPLIES_CURSOR, &page.next_cursor)
                .await?;
            cursor = Some(page.next_cursor);
            if done {
                break;
            }
        }
        Ok(())
    }

    /// Matches stored replies to open offers, in arrival order. Returns how many were handled and how many
    /// wait: a reply from a number whose case holds the offer slot but has not yet recorded its SMS as sent
    /// (a process killed between the gateway's acceptance and our record) stays pending until the send is
    /// recorded, so that a "1" answering that SMS is never lost.
    pub async fn handle_replies(&self) -> Result<(u64, u64)> {
        let (mut handled, mut deferred) = (0, 0);
        let mut waiting: std::collections::HashSet<i64> = std::collections::HashSet::new();
        // Where the last page ended: each page is read on from there (a reply that waits is not read again
        // in this call, and the pages are not sorted again from the start).
        let mut after = (i64::MIN, i64::MIN);
        loop {
            let page = self.store.pending_replies_after(after, 500).await?;
            let Some(last) = page.last() else {
                return Ok((handled, deferred));
            };
            after = (last.received_at, last.id);
            let batch: Vec<_> = page
                .into_iter()
                .filter(|r| !waiting.contains(&r.id))
                .collect();
            // Matches are saved together (one transaction), in reply order; a second reply from a number
            // already matched in this group first waits for the group to be saved, so that it sees the case
            // as the first reply left it.
            let mut matched: Vec<CaseChange> = Vec::new();
            let mut numbers: std::collections::HashSet<String> = std::collections::HashSet::new();
            // The offer holders of every number of the batch, read at once; a number whose case a saved
            // group changed is read again.
            let phones: Vec<&str> = batch.iter().filter_map(|r| r.phone.as_deref()).collect();
            let mut holders: std::collections::HashMap<String, CaseRow> = self
                .store
                .offer_holders(&phones)
                .await?
                .into_iter()
                .filter_map(|c| Some((c.offer_phone.clone()?, c)))
                .collect();
            let mut stale: std::collections::HashSet<String> = std::collections::HashSet::new();
            for reply in batch {
                if reply.phone.as_ref().is_some_and(|p| numbers.contains(p)) {
                    let (h, d) = self.save_matches(&mut matched, &mut waiting).await?;
                    (handled, deferred) = (handled + h, deferred + d);
                    for number in numbers.drain() {
                        holders.remove(&number);
                        stale.insert(number);
                    }
                }
                let now = self.clock.now();
                let Some(choice) = case::parse_reply(&reply.text) else {
                    debug!(reply = reply.id, "invalid reply recorded");
                    self.store
                        .resolve_reply(reply.id, ReplyStatus::Invalid, None, now)
                        .await?;
                    handled += 1;
                    continue;
                };
                let holder = match &reply.phone {
                    Some(phone) if stale.contains(phone) => self.store.offer_holder(phone).await?,
                    Some(phone) => holders.get(phone).cloned(),
                    None => None,
                };
                if holder
                    .as_ref()
                    .is_some_and(|c| c.stage() == Some(Stage::Queued))
                {
                    waiting.insert(reply.id);
                    deferred += 1;
                    continue;
                }
                let offer = holder.filter(|c| {
                    c.stage() == Some(Stage::AwaitingReply)
                        && c.first_sent_at.is_some_and(|t| t <= reply.received_at)
                });
                let Some(mut row) = offer else {
                    self.store
                        .resolve_reply(reply.id, ReplyStatus::NoOffer, None, now)
                        .await?;
                    handled += 1;
                    continue;
                };
                let version = row.version;
                let mut events = vec![NewEvent::new(
                    "reply",
                    json!({"message_id": reply.message_id, "choice": choice, "received_at": from_ms(reply.received_at)}),
                )];
                match choice {
                    Choice::Agree => row.advance(Stage::ConsentPending, Some(now)),
                    Choice::Refuse => {
                        let ending = Ending::new(
                            Outcome::Declined,
                            None,
                            "the head replied 2: general procedure",
                        );
                        row.end(&ending, now);
                        events.push(NewEvent::new("ended", json!(ending)));
                    }
                }
                let change = CaseChange {
                    row,
                    expected_version: version,
                    events,
                    outbox: vec![],
                    reply: Some((reply.id, ReplyStatus::Matched)),
                    now,
                };
                numbers.extend(reply.phone.clone());
                matched.push(change);
            }
            let (h, d) = self.save_matches(&mut matched, &mut waiting).await?;
            (handled, deferred) = (handled + h, deferred + d);
        }
    }

    /// Saves the matches of [`Engine::handle_replies`] in one transaction; returns how many were handled and
    /// how many wait. If another worker changed a case meanwhile, its reply stays pending and is matched
    /// again.
    async fn save_matches(
        &self,
        matched: &mut Vec<CaseChange>,
        waiting: &mut std::collections::HashSet<i64>,
    ) -> Result<(u64, u64)> {
        let (mut handled, mut deferred) = (0, 0);
        if matched.is_empty() {
            return Ok((0, 0));
        }
        let saved = self.store.save_many(matched, &[]).await?;
        for (change, saved) in matched.drain(..).zip(saved) {
            if saved.is_some() {
                handled += 1;
            } else if let Some((reply_id, _)) = change.reply {
                waiting.insert(reply_id);
                deferred += 1;
            }
        }
        Ok((handled, deferred))
    }

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
        let concurrency = self.config.concurrency;
        let (saves, queue) = tokio::sync::mpsc::unbounded_channel();
        // The work owns the sender: when it ends, the committer sees the channel close and ends too.
        let work = async move {
            let saves: Saves = saves;
            let claim_size = concurrency * 2;
            let mut ready: std::collections::VecDeque<CaseRow> = Default::default();
            let mut held: Vec<CaseRow> = Vec::new();
            // Cases of `ready` and `in_flight` that are being checked.
            let mut checking = 0usize;
            let mut in_flight = futures::stream::FuturesUnordered::new();
            let mut refill: Option<futures::future::BoxFuture<'_, Result<Refill>>> = None;
            // The last claim found fewer cases than it asked for: the next waits until no case is in hand.
            let mut exhausted = false;
            let mut errors: Vec<anyhow::Error> = Vec::new();
            loop {
                while in_flight.len() < concurrency
                    && let Some(row) = ready.pop_front()
                {
                    let was_checking = row.stage() == Some(Stage::Checking);
                    let saves = &saves;
                    in_flight.push(async move {
                        let result = self.advance(row, saves).await;
                        if result.as_ref().is_err_and(store::is_store_error) {
                            self.store_failed.store(true, Ordering::Relaxed);
                        }
                        (was_checking, result)
                    });
                }
                if refill.is_none() {
                    if checking == 0 && !held.is_empty() {
                        let rows = std::mem::take(&mut held);
                        refill = Some(Box::pin(async move {
                            let now = self.clock.now();
                            Ok(Refill::Released(self.take_offer_slots(rows, now).await?))
                        }));
                    } else if errors.is_empty()
                        && !self.stopping()
                        && held.is_empty()
                        && ready.len() < concurrency
                        && (!exhausted || in_flight.is_empty())
                    {
                        // Offer slots are taken with the claim only when no case of the drain is being
                        // checked; otherwise the queued cases of the batch are held until none is (above),
                        // then take their slots together.
                        let take_slots = checking == 0;
                        refill = Some(Box::pin(async move {
                            self.claim_batch(claim_size, take_slots).await
                        }));
                    }
                }
                if refill.is_none() && in_flight.is_empty() {
                    break;
                }
                tokio::select! {
                    filled = async { refill.as_mut().expect("guarded").await }, if refill.is_some() => {
                        refill = None;
                        match filled {
                            Ok(Refill::Claimed { rows, slots_taken }) => {
                                exhausted = rows.len() < claim_size;
                                if rows.is_empty() && in_flight.is_empty() && ready.is_empty() {
                                    break;
                                }
                                for row in rows {
                                    if row.stage() == Some(Stage::Checking) {
                                        checking += 1;
                                    } else if !slots_taken && row.stage() == Some(Stage::Queued) {
                                        held.push(row);
                                        continue;
                                    }
                                    ready.push_back(row);
                                }
                            }
                            Ok(Refill::Released(rows)) => ready.extend(rows),
                            Err(e) => errors.push(e),
                        }
                    }
                    Some((was_checking, result)) = in_flight.next(), if !in_flight.is_empty() => {
                        if was_checking {
                            checking -= 1;
                        }
                        if let Err(e) = result {
                            errors.push(e);
                        }
                    }
                }
            }
            // The error that says why, rather than one of the steps left out after it.
            errors.sort_by_key(|e| e.is::<store::NotAttempted>());
            match errors.into_iter().next() {
                Some(e) => Err(e),
                None => Ok::<_, anyhow::Error>(()),
            }
        };
        let (worked, committed) = tokio::join!(work, self.commit(queue));
        worked?;
        committed?;
        Ok(self.steps.load(Ordering::Relaxed) - start)
    }

    /// Claims up to `limit` due cases for this worker; with `take_slots`, also takes the offer slots of the
    /// queued ones that send their first SMS now.
    async fn claim_batch(&self, limit: usize, take_slots: bool) -> Result<Refill> {
        let now = self.clock.now();
        let wall = ms(SystemClock.now());
        let lease_until = wall + self.config.lease.as_millis() as i64;
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
        if !self.timing.window.contains(now) {
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
        let taken: std::collections::HashSet<i64> = self
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
    /// answers each with its result. A batch that fails as a whole (a deadlock between two workers on
    /// PostgreSQL, say) is retried change by change, so that one bad change cannot sink the others; one that
    /// fails because the database is away or busy is not.
    async fn commit(
        &self,
        mut queue: tokio::sync::mpsc::UnboundedReceiver<SaveRequest>,
    ) -> Result<()> {
        let mut batch = Vec::new();
        while queue.recv_many(&mut batch, 512).await > 0 {
            // Every other case in hand gets one turn first: those whose steps are finishing join this commit
            // instead of starting the next, and a commit costs much the same for ten steps as for a hundred
            // (the pages it writes). `sdu bench` N = 10,000, alternated runs: median 10.7 s → 10.0 s.
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
            // Once the store has failed in this drain, nothing more is saved: the workers waiting for these
            // answers fail, and the pass retries their cases (each waiting for the database in turn would
            // only delay that).
            if self.store_failed.load(Ordering::Relaxed) {
                for answer in answers {
                    let _ = answer.send(Err(store::NotAttempted("an earlier save".into()).into()));
                }
                continue;
            }
            let results: Vec<Result<Option<String>>> =
                match self.store.save_many(&changes, &leases).await {
                    Ok(saved) => saved.into_iter().map(Ok).collect(),
                    // The database is unreachable or busy: no use trying these one by one.
                    Err(e) if store::is_transient(&e) && !store::is_conflict(&e) => {
                        self.store_failed.store(true, Ordering::Relaxed);
                        let cause = format!("{e:#}");
                        let mut failed = vec![Err(e)];
                        failed.extend(
                            (1..changes.len())
                                .map(|_| Err(store::NotAttempted(cause.clone()).into())),
                        );
                        failed
                    }
                    Err(e) => {
                        debug!(
                            "group commit of {} steps failed, saving one by one: {e:#}",
                            changes.len()
                        );
                        let mut one_by_one = Vec::with_capacity(changes.len());
                        for (change, lease) in changes.iter().zip(leases) {
                            if self.store_failed.load(Ordering::Relaxed) {
                                one_by_one.push(Err(
                                    store::NotAttempted("an earlier save".into()).into()
                                ));
                                continue;
                            }
                            let saved = self
                                .store
                                .save_many(std::slice::from_ref(change), &[lease])
                                .await;
                            if saved
                                .as_ref()
                                .is_err_and(|e| store::is_transient(e) && !store::is_conflict(e))
                            {
                                self.store_failed.store(true, Ordering::Relaxed);
                            }
                            one_by_one.push(saved.map(|mut saved| saved.pop().flatten()));
                        }
                        one_by_one
                    }
                };
            for (answer, result) in answers.into_iter().zip(results) {
                // A worker that stopped waiting (its drain failed) no longer needs the answer.
                let _ = answer.send(result);
            }
        }
        Ok(())
    }

    /// Advances one claimed case until it waits (on time, a reply, a phone or a system) or ends.
    async fn advance(&self, mut row: CaseRow, saves: &Saves) -> Result<()> {
        // Eligibility was checked by this call's consent step, just before the consent it recorded and the
        // re-issue that follows at once: checking it again a few milliseconds later asks the two registries
        // the same question twice (2 of the ~7 calls of a consenting case). A case that waited in between
        // (a re-issue retried later, a restart) is checked again.
        let mut checked_just_now = false;
        loop {
            if self.store_failed.load(Ordering::Relaxed) {
                return Err(store::NotAttempted("an earlier step of this pass".into()).into());
            }
            let now = self.clock.now();
            let Some(stage) = row.stage() else {
                self.store.release(row.id).await?;
                return Ok(());
            };
            let version = row.version;
            let step = match stage {
                Stage::Checking => self.step_checking(&row, now).await,
                Stage::Queued | Stage::AwaitingReply => self.step_offer(&row, now).await,
                Stage::ConsentPending => self.step_consent(&row, now).await,
                Stage::Reissuing => self.step_reissue(&row, now, checked_just_now).await,
                Stage::WritingBack => self.step_write_back(&row, now).await,
            };
            let mut change = match step {
                Ok(change) => change,
                Err(StepError::Upstream(error)) => self.on_error(&row, stage, error, now),
                Err(StepError::Store(error)) => return Err(error),
            };
            change.expected_version = version;
            change.now = now;
            // A case just checked goes back to the due list instead of straight on to its offer: every case
            // of this batch is then queued before any of them takes a phone's offer slot, so that of two
            // organisations of one head the earlier rename gets the first offer even when the later one's
            // checks finish first (`take_offer_slot` orders queued cases, not cases still being checked).
            let just_checked = stage == Stage::Checking;
            let goes_on = !just_checked
                && change.row.status == "open"
                && change.row.due_at.is_some_and(|d| d <= ms(now));
            // Going on, the worker keeps its claim through the save: released, the case could be claimed by
            // another worker, which would send this case's next write too.
            let lease = goes_on.then(|| Lease {
                owner: self.owner.clone(),
                until: ms(SystemClock.now()) + self.config.lease.as_millis() as i64,
            });
            let next_row = change.row.clone();
            let (answer, saved) = tokio::sync::oneshot::channel();
            saves
                .send((change, lease, answer))
                .map_err(|_| anyhow::anyhow!("the committer stopped"))?;
            let saved = saved
                .await
                .map_err(|_| anyhow::anyhow!("the committer stopped"))??;
            let Some(last_hash) = saved else {
                warn!(
                    case = row.id,
                    "case changed by another writer; step dropped"
                );
                // If the "other writer" was this worker (a commit that went through although the database
                // reported an error, then retried), the case still bears this worker's claim: let it go, or
                // the case would wait for the claim to expire.
                self.store.release_if_owner(row.id, &self.owner).await?;
                return Ok(());
            };
            let n = self.steps.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(cb) = &self.on_step {
                cb(n);
            }
            checked_just_now =
                stage == Stage::ConsentPending && next_row.stage() == Some(Stage::Reissuing);
            row = next_row;
            row.version = version + 1;
            row.last_hash = last_hash;
            if !goes_on {
                return Ok(());
            }
            if self.stopping() {
                self.store.release(row.id).await?;
                return Ok(());
            }
        }
    }

    fn on_error(
        &self,
        row: &CaseRow,
        stage: Stage,
        error: AdapterError,
        now: DateTime<Utc>,
    ) -> CaseChange {
        let mut next = row.clone();
        let mut events = Vec::new();
        match &error {
            AdapterError::Transient { system, detail } => {
                let delay = case::retry_delay(row.retries as u32);
                next.retries += 1;
                next.due_at = Some(ms(now + delay));
                info!(
                    case = row.id,
                    system,
                    retry_in_s = delay.as_secs(),
                    "transient failure; the case retries later"
                );
                events.push(NewEvent::new(
                    "transient",
                    json!({"system": system, "detail": detail, "retry_in_s": delay.as_secs()}),
                ));
            }
            permanent => {
                let reason = if stage == Stage::Reissuing
                    && matches!(permanent, AdapterError::Permanent { .. })
                {
                    Reason::ReissueRejected
                } else {
                    Reason::InvalidData
                };
                let ending = Ending::new(Outcome::Failed, Some(reason), permanent.to_string());
                warn!(case = row.id, reason = %reason, "case failed: {permanent}");
                next.end(&ending, now);
                events.push(NewEvent::new("ended", json!(ending)));
            }
        }
        self.change(next, events, vec![])
    }

    fn change(&self, row: CaseRow, events: Vec<NewEvent>, outbox: Vec<OutboxEntry>) -> CaseChange {
        CaseChange {
            expected_version: row.version,
            row,
            events,
            outbox,
            reply: None,
            now: self.clock.now(),
        }
    }

    fn bin(row: &CaseRow) -> Result<Bin, AdapterError> {
        Bin::parse(&row.bin).map_err(|e| AdapterError::InvalidData {
            system: "store",
            detail: format!("stored BIN: {e}"),
        })
    }

    fn head(row: &CaseRow) -> Result<Iin, AdapterError> {
        row.head_iin
            .as_deref()
            .and_then(|h| Iin::parse(h).ok())
            .ok_or_else(|| AdapterError::InvalidData {
                system: "store",
                detail: "case has no valid head".into(),
            })
    }

    async fn step_checking(
        &self,
        row: &CaseRow,
        now: DateTime<Utc>,
    ) -> Result<CaseChange, StepError> {
        let bin = Self::bin(row)?;
        let mut findings = Vec::new();
        let assessment = gather(&self.systems, &bin, &row.to_name, &mut findings).await?;
        let mut next = row.clone();
        // DATA-PRODUCT: the organisation's region and activity go on the case.
        (next.region, next.activity) = crate::publish::dimensions(&findings);
        let mut events = vec![NewEvent::new("checked", json!(findings))];
        match assessment {
            Assessment::End(ending) => {
                next.end(&ending, now);
                events.push(NewEvent::new("ended", json!(ending)));
            }
            Assessment::Ready(offer) => {
                next.head_iin = Some(offer.head.to_string());
                next.phone = Some(offer.phone.to_string());
                next.permits = json!(offer.permits).to_string();
                // Outside the SMS window the case is due when it opens: no second look before then.
                let fresh = OfferState {
                    stage: Stage::Queued,
                    attempt: 0,
                    first_sent_at: None,
                    second_sent_at: None,
                };
                let due = match case::offer_step(&fresh, now, &self.timing) {
                    OfferStep::WaitUntil(t) => t,
                    _ => now,
                };
                next.advance(Stage::Queued, Some(due));
                events.push(NewEvent::new(
                    "queued",
                    json!({"permits": offer.permits, "phone": offer.phone.masked()}),
                ));
            }
            Assessment::Need(_) => unreachable!("gather returns only final assessments"),
        }
        Ok(self.change(next, events, vec![]))
    }

    async fn step_offer(&self, row: &CaseRow, now: DateTime<Utc>) -> Result<CaseChange, StepError> {
        let state = OfferState {
            stage: row.stage().unwrap_or(Stage::Queued),
            attempt: row.attempt as u8,
            first_sent_at: row.first_sent_at.map(from_ms),
            second_sent_at: row.second_sent_at.map(from_ms),
        };
        let mut next = row.clone();
        match case::offer_step(&state, now, &self.timing) {
            OfferStep::WaitUntil(t) => {
                next.due_at = Some(ms(t));
                Ok(self.change(next, vec![], vec![]))
            }
            OfferStep::Expire => {
                let ending = Ending::new(Outcome::Expired, None, "no reply after the reminder");
                next.end(&ending, now);
                Ok(self.change(next, vec![NewEvent::new("ended", json!(ending))], vec![]))
            }
            OfferStep::Send { attempt } => {
                if next.offer_phone.is_none() {
                    let taken = self
                        .store
                        .take_offer_slot(row)
                        .await
                        .map_err(StepError::Store)?;
                    if !taken {
                        // An earlier case holds this phone's offer; its end wakes this one. The fallback due
                        // time only guards against a missed wake-up.
                        next.due_at = Some(ms(now + chrono::Duration::hours(6)));
                        return Ok(self.change(next, vec![], vec![]));
                    }
                    next.offer_phone = next.phone.clone();
                }
                let phone = next
                    .phone
                    .as_deref()
                    .and_then(|p| Msisdn::from_stored(p).ok())
                    .ok_or_else(|| AdapterError::InvalidData {
                        system: "store",
                        detail: "case has no valid phone".into(),
                    })?;
                let key = IdempotencyKey::for_step(&row.case_key, &format!("sms:{attempt}"));
                let text = crate::sms::offer_text(self.config.sms_language);
                let sent = self.systems.sms.send(&key, &phone, text).await?;
                next.attempt = i64::from(attempt);
                if attempt == 1 {
                    next.first_sent_at = Some(ms(sent.accepted_at));
                } else {
                    next.second_sent_at = Some(ms(sent.accepted_at));
                }
                let due = match attempt {
                    1 => sent.accepted_at + self.timing.reminder_after,
                    _ => sent.accepted_at + self.timing.expire_after,
                };
                next.advance(Stage::AwaitingReply, Some(due));
                info!(case = row.id, attempt, to = %phone.masked(), "offer SMS sent");
                let event = NewEvent::new(
                    "sms_sent",
                    json!({"attempt": attempt, "to": phone.masked(), "message_id": sent.message_id, "accepted_at": sent.accepted_at}),
                );
                let outbox = OutboxEntry {
                    key: key.0,
                    kind: "sms",
                    result: json!({"message_id": sent.message_id, "accepted_at": sent.accepted_at}),
                };
                Ok(self.change(next, vec![event], vec![outbox]))
            }
        }
    }

    /// The eligibility re-check; `Some` ends the case.
    async fn recheck(&self, head: &Iin) -> Result<Option<Ending>, AdapterError> {
        let civil = self.systems.civil_registry.record(head).await?;
        if let Some(reason) = case::recheck(civil.as_ref(), None) {
            return Ok(Some(Ending::new(
                Outcome::Ineligible,
                Some(reason),
                format!("excluded at the re-check: {reason}"),
            )));
        }
        let person = self.systems.individuals.person(head).await?;
        if let Some(p) = &person
            && &p.iin != head
        {
            return Ok(Some(Ending::invalid_data(
                "the individuals registry answered for another IIN",
            )));
        }
        Ok(case::recheck(None, person.as_ref()).map(|reason| {
            Ending::new(
                Outcome::Ineligible,
                Some(reason),
                format!("excluded at the re-check: {reason}"),
            )
        }))
    }

    async fn step_consent(
        &self,
        row: &CaseRow,
        now: DateTime<Utc>,
    ) -> Result<CaseChange, StepError> {
        let (bin, head) = (Self::bin(row)?, Self::head(row)?);
        let mut next = row.clone();
        if let Some(ending) = self.recheck(&head).await? {
            next.end(&ending, now);
            return Ok(self.change(next, vec![NewEvent::new("ended", json!(ending))], vec![]));
        }
        let key = IdempotencyKey::for_step(&row.case_key, "consent");
        let receipt = self
            .systems
            .consent
            .record(&key, &head, &bin, CONSENT_PURPOSE)
            .await?;
        next.advance(Stage::Reissuing, Some(now));
        let event = NewEvent::new(
            "consent_recorded",
            json!({"consent_id": receipt.consent_id, "recorded_at": receipt.recorded_at}),
        );
        let outbox = OutboxEntry {
            key: key.0,
            kind: "consent",
            result: json!({"consent_id": receipt.consent_id}),
        };
        Ok(self.change(next, vec![event], vec![outbox]))
    }

    /// Re-issues the next permit; before the first, checks eligibility again unless `checked_just_now`
    /// (the consent step of the same [`Engine::advance`] did, with nothing but the consent call between).
    async fn step_reissue(
        &self,
        row: &CaseRow,
        now: DateTime<Utc>,
        checked_just_now: bool,
    ) -> Result<CaseChange, StepError> {
        let bin = Self::bin(row)?;
        let mut next = row.clone();
        let mut reissued = row.reissued_ids();
        if reissued.is_empty() && !checked_just_now {
            let head = Self::head(row)?;
            if let Some(ending) = self.recheck(&head).await? {
                next.end(&ending, now);
                return Ok(self.change(next, vec![NewEvent::new("ended", json!(ending))], vec![]));
            }
        }
        let Some(permit_id) = row.permit_ids().into_iter().find(|p| !reissued.contains(p)) else {
            next.advance(Stage::WritingBack, Some(now));
            return Ok(self.change(next, vec![], vec![]));
        };
        let key = IdempotencyKey::for_step(&row.case_key, &format!("reissue:{permit_id}"));
        let permit = self
            .systems
            .e_license
            .reissue(&key, &permit_id, &bin, &row.to_name)
            .await?;
        reissued.push(permit_id.clone());
        next.reissued = json!(reissued).to_string();
        next.retries = 0;
        next.due_at = Some(ms(now));
        if reissued.len() == row.permit_ids().len() {
            next.advance(Stage::WritingBack, Some(now));
        }
        let event = NewEvent::new(
            "permit_reissued",
            json!({"permit_id": permit.permit_id, "holder_name": permit.holder_name}),
        );
        let outbox = OutboxEntry {
            key: key.0,
            kind: "reissue",
            result: json!({"permit_id": permit.permit_id}),
        };
        Ok(self.change(next, vec![event], vec![outbox]))
    }

    async fn step_write_back(
        &self,
        row: &CaseRow,
        now: DateTime<Utc>,
    ) -> Result<CaseChange, StepError> {
        let (bin, head) = (Self::bin(row)?, Self::head(row)?);
        let key = IdempotencyKey::for_step(&row.case_key, "sdu");
        let record = SduRecord {
            case_id: row.id,
            bin,
            new_name: row.to_name.clone(),
            head_iin: head,
            permit_ids: row.reissued_ids(),
        };
        let receipt = self.systems.sdu.write_back(&key, &record).await?;
        let mut next = row.clone();
        let ending = Ending::new(
            Outcome::Reissued,
            None,
            "permits re-issued and written to SDU",
        );
        next.end(&ending, now);
        let events = vec![
            NewEvent::new("sdu_written", json!({"record_id": receipt.record_id})),
            NewEvent::new("ended", json!(ending)),
        ];
        let outbox = OutboxEntry {
            key: key.0,
            kind: "sdu",
            result: json!({"record_id": receipt.record_id}),
        };
        Ok(self.change(next, events, vec![outbox]))
    }

    /// Counts of cases per status and stage or reason.
    pub async fn summary(&self) -> Result<BTreeMap<String, i64>> {
        let mut out = BTreeMap::new();
        for row in self.store.summary().await? {
            let key = match row.detail {
                Some(d) => format!("{}/{}", row.status, d),
                None => row.status,
            };
            *out.entry(key).or_default() += row.count;
        }
        Ok(out)
    }
}
