//! One case's steps: ask the decision core what the due case needs ([`transition::on_due`]), perform it
//! through the adapters, hand the result back to the core, and send the transition to the committer. The
//! case goes on at once while it is due; it stops when it waits (on time, a reply, a phone or a system) or
//! ends.

use std::sync::atomic::Ordering;

use adapters::{AdapterError, Bin, Iin, SduRecord};
use anyhow::Result;
use chrono::{DateTime, Utc};
use serde_json::json;
use tracing::{Instrument, info, warn};

use super::Engine;
use super::drain::Saves;
use super::systems::gather;
use crate::case::{Case, Due, Stage, Transition, Write, WriteDone, transition};
use crate::store::{self, CaseChange, CaseRow, CaseStore, Lease, OutboxEntry, Read};

/// Why a step did not produce a transition to record.
#[derive(Debug)]
enum StepError {
    /// An external system failed: the core's [`transition::on_error`] decides what that does to the case.
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

/// A step's transition and the outward write it did, if any.
type Step = (Transition, Option<OutboxEntry>);

fn recorded(write: &Write, case: &Case, result: serde_json::Value) -> Option<OutboxEntry> {
    Some(OutboxEntry {
        key: case.key_of(write).0,
        kind: write.kind(),
        result,
    })
}

impl<S: CaseStore> Engine<S> {
    /// Advances one claimed case until it waits or ends, every log line of it in a `case` span that
    /// carries its head's [`tag`](crate::privacy::tag) once the head is known (at `warn`, so that the lines
    /// of the default filter carry it too).
    pub(super) async fn advance(&self, row: CaseRow, saves: &Saves) -> Result<()> {
        let span = tracing::warn_span!("case", person = tracing::field::Empty);
        self.advance_in_span(row, saves).instrument(span).await
    }

    async fn advance_in_span(&self, mut row: CaseRow, saves: &Saves) -> Result<()> {
        // Recorded once: a span's field recorded again is printed twice in text lines.
        let mut tagged = false;
        let mut tag_person = |case: &Case| {
            if !tagged && let Some(head) = &case.head {
                let tag = crate::privacy::tag(head.as_str());
                tracing::Span::current().record("person", tracing::field::display(tag));
                tagged = true;
            }
        };
        // Eligibility was checked by this call's consent step, just before the consent it recorded and the
        // re-issue that follows at once: the core then skips asking the registries the same question again.
        let mut rechecked = false;
        loop {
            if self.store_failed.load(Ordering::Relaxed) {
                return Err(store::NotAttempted("an earlier step of this pass".into()).into());
            }
            let now = self.clock.now();
            let (stage, (transition, outbox)) = match row.read() {
                Read::Unreadable(case, problem) => {
                    warn!(case = row.id, "the stored case cannot be read: {problem}");
                    (None, (transition::on_unreadable(&case, &problem), None))
                }
                Read::Case(case) if case.is_ended() => {
                    self.store.release(row.id).await?;
                    return Ok(());
                }
                Read::Case(case) => {
                    tag_person(&case);
                    let step = match self.step(&row, &case, now, rechecked).await {
                        Ok(step) => step,
                        Err(StepError::Upstream(error)) => {
                            let t = transition::on_error(&case, &error, now);
                            if t.case.is_ended() {
                                warn!(case = row.id, "case failed: {error}");
                            } else {
                                info!(
                                    case = row.id,
                                    "transient failure; the case retries later: {error}"
                                );
                            }
                            (t, None)
                        }
                        Err(StepError::Store(error)) => return Err(error),
                    };
                    (case.stage(), step)
                }
            };
            // A case just checked goes back to the due list instead of straight on to its offer: every case
            // of this batch is then queued before any of them takes a phone's offer slot, so that of two
            // organisations of one head the earlier rename gets the first offer even when the later one's
            // checks finish first (`take_offer_slot` orders queued cases, not cases still being checked).
            tag_person(&transition.case);
            let goes_on = stage != Some(Stage::Checking) && transition.goes_on(now);
            rechecked = stage == Some(Stage::ConsentPending)
                && transition.case.stage() == Some(Stage::Reissuing);
            // Going on, the worker keeps its claim through the save: released, the case could be claimed by
            // another worker, which would send this case's next write too.
            let lease = goes_on.then(|| {
                let (_, until) = self.lease_from_now();
                Lease {
                    owner: self.owner.clone(),
                    until,
                }
            });
            let version = row.version;
            row.set_state(&transition.case, now);
            let change = CaseChange {
                row: row.clone(),
                expected_version: version,
                events: transition.events,
                outbox: outbox.into_iter().collect(),
                reply: None,
                now,
            };
            let Some(last_hash) = self.save(change, lease, saves).await? else {
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

    /// Hands a change to the committer and waits for its result.
    async fn save(
        &self,
        change: CaseChange,
        lease: Option<Lease>,
        saves: &Saves,
    ) -> Result<Option<String>> {
        let (answer, saved) = tokio::sync::oneshot::channel();
        saves
            .send((change, lease, answer))
            .map_err(|_| anyhow::anyhow!("the committer stopped"))?;
        saved
            .await
            .map_err(|_| anyhow::anyhow!("the committer stopped"))?
    }

    /// Performs what the core says the due case needs, and returns the core's transition for the result.
    async fn step(
        &self,
        row: &CaseRow,
        case: &Case,
        now: DateTime<Utc>,
        rechecked: bool,
    ) -> Result<Step, StepError> {
        let settings = &self.settings;
        let due = transition::on_due(case, now, settings, rechecked, self.sending());
        let _timer = crate::telemetry::StepTimer::start(&due);
        match due {
            Due::Decided(t) => Ok((*t, None)),
            Due::Check => {
                let bin = bin_of(case)?;
                let mut findings = Vec::new();
                let assessment = gather(
                    &self.systems,
                    &bin,
                    &case.to_name,
                    &settings.service,
                    &mut findings,
                )
                .await?;
                let mut t =
                    transition::on_checked(case, assessment, json!(findings), now, settings);
                // The organisation's statistical dimensions, as the registry gave them.
                (t.case.region, t.case.activity) = crate::publish::dimensions(&findings);
                Ok((t, None))
            }
            Due::Send { attempt, take_slot } => {
                if take_slot
                    && !self
                        .store
                        .take_offer_slot(row)
                        .await
                        .map_err(|e| StepError::Store(e.into()))?
                {
                    return Ok((transition::on_slot_busy(case, now), None));
                }
                let phone = case
                    .phone
                    .as_ref()
                    .expect("a readable case at an offer has a number");
                let write = Write::Sms(attempt);
                let sent = self
                    .systems
                    .sms
                    .send(&case.key_of(&write), phone, settings.offer_text())
                    .await?;
                crate::telemetry::sms_sent(settings.offer_text());
                info!(case = case.id, attempt, phone = %crate::privacy::tag(phone.as_str()), "offer SMS sent");
                let t = transition::on_send_accepted(
                    case,
                    attempt,
                    sent.accepted_at,
                    &sent.message_id,
                    settings,
                );
                let result =
                    json!({"message_id": sent.message_id, "accepted_at": sent.accepted_at});
                Ok((t, recorded(&write, case, result)))
            }
            Due::RecordConsent => {
                if let Some(ended) = self.recheck(case).await? {
                    return Ok((ended, None));
                }
                let write = Write::Consent;
                let receipt = self
                    .systems
                    .consent
                    .record(
                        &case.key_of(&write),
                        head_of(case)?,
                        &bin_of(case)?,
                        &settings.service.consent_purpose,
                    )
                    .await?;
                let result = json!({"consent_id": receipt.consent_id});
                let done = WriteDone::Consent {
                    consent_id: receipt.consent_id,
                    recorded_at: receipt.recorded_at,
                };
                Ok((
                    transition::on_write_done(case, done, now),
                    recorded(&write, case, result),
                ))
            }
            Due::Reissue { permit, recheck } => {
                if recheck && let Some(ended) = self.recheck(case).await? {
                    return Ok((ended, None));
                }
                let bin = bin_of(case)?;
                let org = self.systems.legal_entities.organization(&bin).await?;
                let name = match transition::on_current_name(case, org.as_ref()) {
                    Ok(name) => name,
                    Err(ended) => return Ok((*ended, None)),
                };
                let write = Write::Reissue(permit.clone());
                let reissued = self
                    .systems
                    .e_license
                    .reissue(&case.key_of(&write), &permit, &bin, &name)
                    .await?;
                let result = json!({"permit_id": reissued.permit_id});
                let done = WriteDone::Reissue {
                    permit_id: reissued.permit_id,
                    holder_name: reissued.holder_name,
                };
                Ok((
                    transition::on_write_done(case, done, now),
                    recorded(&write, case, result),
                ))
            }
            Due::WriteBack => {
                let write = Write::Sdu;
                let record = SduRecord {
                    case_id: case.id,
                    bin: bin_of(case)?,
                    new_name: case
                        .reissue_name
                        .clone()
                        .unwrap_or_else(|| case.to_name.clone()),
                    head_iin: head_of(case)?.clone(),
                    permit_ids: case.reissued.clone(),
                };
                let receipt = self
                    .systems
                    .sdu
                    .write_back(&case.key_of(&write), &record)
                    .await?;
                let result = json!({"record_id": receipt.record_id});
                let done = WriteDone::Sdu {
                    record_id: receipt.record_id,
                };
                Ok((
                    transition::on_write_done(case, done, now),
                    recorded(&write, case, result),
                ))
            }
        }
    }

    /// The eligibility re-check: reads the records of the service's criteria (the civil registry first, and
    /// the individuals registry only if the civil record excludes no one) and asks the core; `Some` ends the
    /// case.
    async fn recheck(&self, case: &Case) -> Result<Option<Transition>, AdapterError> {
        let head = head_of(case)?;
        let service = &self.settings.service;
        let civil = self.systems.civil_registry.record(head).await?;
        if service.civil_criteria_first()
            && let Some(ended) = transition::on_recheck(case, civil.as_ref(), None, service)
        {
            return Ok(Some(ended));
        }
        let person = self.systems.individuals.person(head).await?;
        Ok(transition::on_recheck(
            case,
            civil.as_ref(),
            person.as_ref(),
            service,
        ))
    }
}

/// The case's BIN, validated (as at every boundary where it is used).
fn bin_of(case: &Case) -> Result<Bin, AdapterError> {
    Bin::parse(&case.bin).map_err(|e| AdapterError::InvalidData {
        system: "store",
        detail: format!("stored BIN: {e}"),
    })
}

/// The case's head: every readable case past its checks has one ([`Case::problem`]).
fn head_of(case: &Case) -> Result<&Iin, AdapterError> {
    case.head.as_ref().ok_or_else(|| AdapterError::InvalidData {
        system: "store",
        detail: "case has no valid head".into(),
    })
}
