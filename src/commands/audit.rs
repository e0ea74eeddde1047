//! `sdu audit verify`: walks every case's event hash chain and reports the first broken link.

use std::collections::HashMap;

use anyhow::Result;

use crate::store::{Store, event_hash};

/// A link that does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    /// The case.
    pub case_id: i64,
    /// The event.
    pub event_id: i64,
    /// What is wrong.
    pub problem: String,
}

/// Checks every chain; `None` when all hold.
pub async fn verify(store: &Store) -> Result<Option<BrokenLink>> {
    let mut heads: HashMap<i64, String> = HashMap::new();
    let mut after = 0;
    loop {
        let page = store.events_page(after, 5000).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for e in page {
            let prev = heads.get(&e.case_id).cloned().unwrap_or_default();
            if e.prev_hash != prev {
                return Ok(Some(BrokenLink {
                    case_id: e.case_id,
                    event_id: e.id,
                    problem: "does not follow the previous event (one was removed or reordered)"
                        .into(),
                }));
            }
            if event_hash(&e.prev_hash, e.case_id, e.at, &e.kind, &e.detail) != e.hash {
                return Ok(Some(BrokenLink {
                    case_id: e.case_id,
                    event_id: e.id,
                    problem: "content changed after it was written".into(),
                }));
            }
            heads.insert(e.case_id, e.hash);
        }
    }
    let mut after = 0;
    loop {
        let cases = store.cases_page(after, 5000).await?;
        let Some(last) = cases.last() else { break };
        after = last.id;
        for c in cases {
            let head = heads.get(&c.id).cloned().unwrap_or_default();
            if head != c.last_hash {
                return Ok(Some(BrokenLink {
                    case_id: c.id,
                    event_id: 0,
                    problem: "the case's last events are missing".into(),
                }));
            }
        }
    }
    Ok(None)
}
