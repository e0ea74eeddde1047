//! Replies: read from the gateway's feed and stored before anything looks at them (a message id seen
//! twice counts once), then matched in arrival order to the offer their number holds, by the decision
//! core's [`transition::on_reply`].

use std::collections::{HashMap, HashSet};

use adapters::Msisdn;
use anyhow::{Context, Result};
use tracing::debug;

use super::{Engine, REPLIES_CURSOR};
use crate::case::{ReplyDecision, transition};
use crate::store::{CaseChange, CaseRow, CaseStore, NewReply, Read, ReplyStatus, from_ms};

impl<S: CaseStore> Engine<S> {
    /// Reads new replies from the gateway and stores them before anything else looks at them.
    pub async fn poll_replies(&self) -> Result<u64> {
        let mut stored = 0;
        self.poll_replies_into(&mut stored).await?;
        Ok(stored)
    }

    /// [`Engine::poll_replies`], adding to `stored` as each page's transaction commits.
    pub(super) async fn poll_replies_into(&self, stored: &mut u64) -> Result<()> {
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
        let mut waiting: HashSet<i64> = HashSet::new();
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
            let mut numbers: HashSet<String> = HashSet::new();
            // The offer holders of every number of the batch, read at once; a number whose case a saved
            // group changed is read again.
            let phones: Vec<&str> = batch.iter().filter_map(|r| r.phone.as_deref()).collect();
            let mut holders: HashMap<String, CaseRow> = self
                .store
                .offer_holders(&phones)
                .await?
                .into_iter()
                .filter_map(|c| Some((c.offer_phone.clone()?, c)))
                .collect();
            let mut stale: HashSet<String> = HashSet::new();
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
                let holder = match &reply.phone {
                    Some(phone) if stale.contains(phone) => self.store.offer_holder(phone).await?,
                    Some(phone) => holders.get(phone).cloned(),
                    None => None,
                };
                let read = holder.as_ref().map(CaseRow::read);
                let decision = match &read {
                    // A holder that cannot be read is ended by the drain; the reply then finds no offer.
                    Some(Read::Unreadable(..)) => ReplyDecision::Wait,
                    Some(Read::Case(case)) => transition::on_reply(
                        &reply.text,
                        &reply.message_id,
                        from_ms(reply.received_at),
                        Some(case),
                        now,
                        &self.settings.service,
                    ),
                    None => transition::on_reply(
                        &reply.text,
                        &reply.message_id,
                        from_ms(reply.received_at),
                        None,
                        now,
                        &self.settings.service,
                    ),
                };
                let matched_to = match decision {
                    ReplyDecision::Wait => {
                        waiting.insert(reply.id);
                        deferred += 1;
                        continue;
                    }
                    ReplyDecision::Invalid | ReplyDecision::NoOffer => {
                        let status = if decision == ReplyDecision::Invalid {
                            ReplyStatus::Invalid
                        } else {
                            ReplyStatus::NoOffer
                        };
                        crate::telemetry::reply_unmatched(if status == ReplyStatus::Invalid {
                            "invalid"
                        } else {
                            "no_offer"
                        });
                        // The number as a tag: the same as the tag of the offer's number, if any.
                        let phone = reply.phone.as_deref().map(crate::privacy::tag);
                        debug!(
                            reply = reply.id,
                            ?status,
                            phone,
                            "reply recorded, changes nothing"
                        );
                        self.store
                            .resolve_reply(reply.id, status, None, now)
                            .await?;
                        handled += 1;
                        continue;
                    }
                    ReplyDecision::Matched(transition) => *transition,
                };
                let mut row = holder.expect("a matched reply has its offer's case");
                let version = row.version;
                row.set_state(&matched_to.case, now);
                let change = CaseChange {
                    row,
                    expected_version: version,
                    events: matched_to.events,
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
        waiting: &mut HashSet<i64>,
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
}
