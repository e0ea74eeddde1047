//! The registries as the mock serves them: an immutable base (a fixture's `registries`, or a lazily
//! generated synthetic world) under a sparse overlay holding only what changed since the start (scenario
//! `rename`/`update` events and re-issued permits), plus the writes the gateways recorded.
//!
//! The rename feed is the base feed (sorted by `(at, bin)`) merged with renames inserted later. An inserted
//! rename goes to its `(at, bin)` place, but never before a rename that is already visible at the moment it
//! is inserted: the visible part of the feed only ever grows at its end, so an offset cursor never skips or
//! repeats an entry.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::scenario::{
    CivilRecord, LegalEntity, MobileRecord, PermitRecord, PersonRecord, Registries, SystemName,
};
use crate::synthetic::SyntheticWorld;
use crate::views::{
    ConsentView, OrganizationView, PermitView, RenameView, ReplyView, SduRecordView, SentSmsView,
};

/// The lookup key of an identifier as held: a string as is, anything else as its JSON text.
pub(crate) fn key_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A fixture's registries, indexed by key.
#[derive(Debug, Default)]
pub(crate) struct FixtureBase {
    orgs: HashMap<String, OrganizationView>,
    permits: Vec<PermitRecord>,
    permit_by_id: HashMap<String, usize>,
    permits_by_bin: HashMap<String, Vec<usize>>,
    persons: HashMap<String, PersonRecord>,
    civil: HashMap<String, CivilRecord>,
    mobile: HashMap<String, MobileRecord>,
    feed: Vec<RenameView>,
}

impl FixtureBase {
    pub(crate) fn new(r: &Registries) -> Self {
        let mut base = Self::default();
        for org in &r.legal_entities {
            let mut renames = org.renames.clone();
            renames.sort_by_key(|p| p.at);
            for (j, rename) in renames.iter().enumerate() {
                let to = renames
                    .get(j + 1)
                    .map_or_else(|| org.name.clone(), |next| next.from.clone());
                base.feed.push(RenameView {
                    bin: org.bin.clone(),
                    at: rename.at.with_timezone(&Utc),
                    from: rename.from.clone(),
                    to,
                });
            }
            base.orgs.insert(key_of(&org.bin), org_view(org));
        }
        base.feed.sort_by_key(|r| (r.at, key_of(&r.bin)));
        for permit in &r.e_license {
            match base.permit_by_id.get(&permit.permit_id) {
                Some(&i) => base.permits[i] = permit.clone(),
                None => {
                    base.permit_by_id
                        .insert(permit.permit_id.clone(), base.permits.len());
                    base.permits_by_bin
                        .entry(key_of(&permit.bin))
                        .or_default()
                        .push(base.permits.len());
                    base.permits.push(permit.clone());
                }
            }
        }
        for p in &r.individuals {
            base.persons.insert(key_of(&p.iin), p.clone());
        }
        for c in &r.civil_registry {
            base.civil.insert(key_of(&c.iin), c.clone());
        }
        for m in &r.mobile_base {
            base.mobile.insert(key_of(&m.iin), m.clone());
        }
        base
    }
}

fn org_view(org: &LegalEntity) -> OrganizationView {
    OrganizationView {
        bin: org.bin.clone(),
        name: org.name.clone(),
        status: org.status,
        first_head: org.first_head.clone(),
        region: org.region.clone(),
        activity: org.activity.clone(),
    }
}

/// What the world starts from.
#[derive(Debug)]
pub(crate) enum Base {
    /// Records from a scenario file.
    Fixture(Box<FixtureBase>),
    /// Generated on demand.
    Synthetic(SyntheticWorld),
}

impl Base {
    fn org(&self, bin: &str) -> Option<OrganizationView> {
        match self {
            Self::Fixture(f) => f.orgs.get(bin).cloned(),
            Self::Synthetic(s) => s.index_of_bin(bin).map(|i| s.organization(i)),
        }
    }

    fn permit(&self, id: &str) -> Option<PermitRecord> {
        match self {
            Self::Fixture(f) => f.permit_by_id.get(id).map(|&i| f.permits[i].clone()),
            Self::Synthetic(s) => s.permit(id),
        }
    }

    fn permits_of(&self, bin: &str) -> Vec<PermitRecord> {
        match self {
            Self::Fixture(f) => f
                .permits_by_bin
                .get(bin)
                .map(|ix| ix.iter().map(|&i| f.permits[i].clone()).collect())
                .unwrap_or_default(),
            Self::Synthetic(s) => s.permits_of_bin(bin),
        }
    }

    fn person(&self, iin: &str) -> Option<PersonRecord> {
        match self {
            Self::Fixture(f) => f.persons.get(iin).cloned(),
            Self::Synthetic(s) => s.person(iin),
        }
    }

    fn civil(&self, iin: &str) -> Option<CivilRecord> {
        match self {
            Self::Fixture(f) => f.civil.get(iin).cloned(),
            Self::Synthetic(s) => s.civil(iin),
        }
    }

    fn mobile(&self, iin: &str) -> Option<MobileRecord> {
        match self {
            Self::Fixture(f) => f.mobile.get(iin).cloned(),
            Self::Synthetic(s) => s.mobile(iin),
        }
    }

    fn feed_entry(&self, i: u64) -> Option<RenameView> {
        match self {
            Self::Fixture(f) => f.feed.get(usize::try_from(i).ok()?).cloned(),
            Self::Synthetic(s) => (i < s.len()).then(|| s.rename(i)),
        }
    }

    /// Number of base renames with `at <= now`.
    fn feed_visible(&self, now: DateTime<Utc>) -> u64 {
        match self {
            Self::Fixture(f) => f.feed.partition_point(|r| r.at <= now) as u64,
            Self::Synthetic(s) => s.visible(now),
        }
    }

    /// Number of base renames sorting at or before `(at, bin)`.
    fn feed_count_le(&self, at: DateTime<Utc>, bin: &str) -> u64 {
        match self {
            Self::Fixture(f) => f
                .feed
                .partition_point(|r| r.at < at || (r.at == at && key_of(&r.bin).as_str() <= bin))
                as u64,
            Self::Synthetic(s) => s.count_le(at, bin),
        }
    }

    /// The base renames of one organisation.
    fn renames_of(&self, bin: &str) -> Vec<RenameView> {
        match self {
            Self::Fixture(f) => f
                .feed
                .iter()
                .filter(|r| key_of(&r.bin) == bin)
                .cloned()
                .collect(),
            Self::Synthetic(s) => s
                .index_of_bin(bin)
                .map(|i| vec![s.rename(i)])
                .unwrap_or_default(),
        }
    }

    /// Every base permit id in order, when the base is a fixture (a synthetic world has too many to list).
    fn listed_permits(&self) -> Option<&[PermitRecord]> {
        match self {
            Self::Fixture(f) => Some(&f.permits),
            Self::Synthetic(_) => None,
        }
    }
}

/// A permit as it stands, with the key that last re-issued it.
#[derive(Debug, Clone)]
pub(crate) struct PermitState {
    pub record: PermitRecord,
    pub idempotency_key: Option<String>,
    pub reissued_at: Option<DateTime<Utc>>,
}

impl PermitState {
    fn fresh(record: PermitRecord) -> Self {
        Self {
            record,
            idempotency_key: None,
            reissued_at: None,
        }
    }

    pub(crate) fn view(&self) -> PermitView {
        PermitView {
            permit_id: self.record.permit_id.clone(),
            bin: self.record.bin.clone(),
            service: self.record.service.clone(),
            holder_name: self.record.holder_name.clone(),
            status: self.record.status,
            idempotency_key: self.idempotency_key.clone(),
            reissued_at: self.reissued_at,
        }
    }
}

/// A rename inserted after the start, placed after `after_base` base renames.
#[derive(Debug, Clone)]
struct Inserted {
    after_base: u64,
    entry: RenameView,
}

/// Everything that changed since the start, and every write.
#[derive(Debug, Default)]
pub(crate) struct Data {
    orgs: HashMap<String, OrganizationView>,
    permits: HashMap<String, PermitState>,
    permits_by_bin: HashMap<String, BTreeSet<String>>,
    persons: HashMap<String, PersonRecord>,
    civil: HashMap<String, CivilRecord>,
    mobile: HashMap<String, MobileRecord>,
    inserted: Vec<Inserted>,
    /// First successful response per (system, idempotency key).
    pub idempotent: HashMap<(SystemName, String), Value>,
    pub sent: Vec<SentSmsView>,
    pub replies: Vec<ReplyView>,
    pub consents: Vec<ConsentView>,
    pub sdu: Vec<SduRecordView>,
}

/// The base and the overlay, read together.
pub(crate) struct World<'a> {
    pub base: &'a Base,
    pub data: &'a Data,
}

impl World<'_> {
    pub fn org(&self, bin: &str) -> Option<OrganizationView> {
        self.data
            .orgs
            .get(bin)
            .cloned()
            .or_else(|| self.base.org(bin))
    }

    pub fn permit(&self, id: &str) -> Option<PermitState> {
        self.data
            .permits
            .get(id)
            .cloned()
            .or_else(|| self.base.permit(id).map(PermitState::fresh))
    }

    /// Every permit whose holder BIN is `bin`, base order first, then permits added later.
    pub fn permits_of(&self, bin: &str) -> Vec<PermitState> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for p in self.base.permits_of(bin) {
            seen.insert(p.permit_id.clone());
            match self.data.permits.get(&p.permit_id) {
                Some(s) if key_of(&s.record.bin) == bin => out.push(s.clone()),
                Some(_) => {}
                None => out.push(PermitState::fresh(p)),
            }
        }
        if let Some(ids) = self.data.permits_by_bin.get(bin) {
            for id in ids {
                if !seen.contains(id)
                    && let Some(s) = self.data.permits.get(id)
                {
                    out.push(s.clone());
                }
            }
        }
        out
    }

    pub fn person(&self, iin: &str) -> Option<PersonRecord> {
        self.data
            .persons
            .get(iin)
            .cloned()
            .or_else(|| self.base.person(iin))
    }

    pub fn civil(&self, iin: &str) -> Option<CivilRecord> {
        self.data
            .civil
            .get(iin)
            .cloned()
            .or_else(|| self.base.civil(iin))
    }

    pub fn mobile(&self, iin: &str) -> Option<MobileRecord> {
        self.data
            .mobile
            .get(iin)
            .cloned()
            .or_else(|| self.base.mobile(iin))
    }

    /// Merged feed position of the `j`-th inserted rename.
    fn inserted_pos(&self, j: usize) -> u64 {
        self.data.inserted[j].after_base + j as u64
    }

    /// Up to `limit` visible renames from merged position `offset`, and the position after them.
    pub fn feed_page(&self, offset: u64, limit: u64, now: DateTime<Utc>) -> (Vec<RenameView>, u64) {
        let ins = &self.data.inserted;
        // j = number of inserted renames placed before `offset`.
        let (mut lo, mut hi) = (0usize, ins.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.inserted_pos(mid) < offset {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let mut j = lo;
        let mut b = offset.saturating_sub(j as u64);
        let mut pos = offset;
        let mut out = Vec::new();
        while (out.len() as u64) < limit {
            let entry = if j < ins.len() && self.inserted_pos(j) == pos {
                j += 1;
                ins[j - 1].entry.clone()
            } else if let Some(e) = self.base.feed_entry(b) {
                b += 1;
                e
            } else {
                break;
            };
            if entry.at > now {
                break;
            }
            out.push(entry);
            pos += 1;
        }
        let next = offset + out.len() as u64;
        (out, next)
    }

    /// Every rename of one organisation (base and inserted), by time.
    fn renames_of(&self, bin: &str) -> Vec<RenameView> {
        let mut all = self.base.renames_of(bin);
        all.extend(
            self.data
                .inserted
                .iter()
                .filter(|i| key_of(&i.entry.bin) == bin)
                .map(|i| i.entry.clone()),
        );
        all.sort_by_key(|r| r.at);
        all
    }

    /// Every permit as it stands: with a fixture all of them, in a synthetic world only the changed ones.
    pub fn all_permits(&self) -> Vec<PermitView> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        if let Some(listed) = self.base.listed_permits() {
            for p in listed {
                seen.insert(p.permit_id.as_str());
                match self.data.permits.get(&p.permit_id) {
                    Some(s) => out.push(s.view()),
                    None => out.push(PermitState::fresh(p.clone()).view()),
                }
            }
        }
        let mut extra: Vec<&PermitState> = self
            .data
            .permits
            .values()
            .filter(|s| !seen.contains(s.record.permit_id.as_str()))
            .collect();
        extra.sort_by(|a, b| a.record.permit_id.cmp(&b.record.permit_id));
        out.extend(extra.into_iter().map(PermitState::view));
        out
    }
}

/// Changes to the overlay: each takes the base for reading.
impl Data {
    pub(crate) fn world<'a>(&'a self, base: &'a Base) -> World<'a> {
        World { base, data: self }
    }

    /// Inserts a rename into the feed (see the module documentation for where it goes).
    fn insert_rename(&mut self, base: &Base, entry: RenameView, now: DateTime<Utc>) {
        let bin = key_of(&entry.bin);
        let after_base = base
            .feed_count_le(entry.at, &bin)
            .max(base.feed_visible(now));
        let at = entry.at;
        let idx = self.inserted.partition_point(|e| {
            e.after_base < after_base
                || (e.after_base == after_base
                    && (e.entry.at <= now
                        || (e.entry.at, key_of(&e.entry.bin)) <= (at, bin.clone())))
        });
        self.inserted.insert(idx, Inserted { after_base, entry });
    }

    /// A scenario `rename`: the organisation's name becomes `to`, and the rename joins the feed.
    pub(crate) fn rename(
        &mut self,
        base: &Base,
        bin: &str,
        to: &str,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        let mut org = self
            .world(base)
            .org(bin)
            .ok_or_else(|| format!("no organisation with BIN {bin}"))?;
        let entry = RenameView {
            bin: org.bin.clone(),
            at,
            from: org.name.clone(),
            to: to.to_string(),
        };
        org.name = to.to_string();
        self.orgs.insert(bin.to_string(), org);
        self.insert_rename(base, entry, now);
        Ok(())
    }

    /// Replaces (or adds) a permit.
    pub(crate) fn set_permit(&mut self, state: PermitState) {
        let id = state.record.permit_id.clone();
        if let Some(old) = self.permits.get(&id)
            && let Some(set) = self.permits_by_bin.get_mut(&key_of(&old.record.bin))
        {
            set.remove(&id);
        }
        self.permits_by_bin
            .entry(key_of(&state.record.bin))
            .or_default()
            .insert(id.clone());
        self.permits.insert(id, state);
    }

    /// A scenario `update`: replaces or adds the record with the same key in one registry.
    pub(crate) fn update(
        &mut self,
        base: &Base,
        system: SystemName,
        record: serde_json::Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        for (field, v) in &record {
            let id_field = matches!(
                field.as_str(),
                "bin" | "iin" | "phone" | "first_head" | "region" | "activity"
            );
            let allowed = v.is_string()
                || v.is_number()
                || (matches!(field.as_str(), "first_head" | "region" | "activity") && v.is_null());
            if id_field && !allowed {
                return Err(format!("`{field}` must be a string or a number"));
            }
        }
        let value = Value::Object(record);
        match system {
            SystemName::LegalEntities => {
                let org: LegalEntity = serde_json::from_value(value).map_err(|e| e.to_string())?;
                let bin = key_of(&org.bin);
                let existing = self.world(base).renames_of(&bin);
                let mut fresh: Vec<_> = org
                    .renames
                    .iter()
                    .filter(|r| {
                        let at = r.at.with_timezone(&Utc);
                        !existing.iter().any(|e| e.at == at && e.from == r.from)
                    })
                    .map(|r| (r.at.with_timezone(&Utc), r.from.clone()))
                    .collect();
                fresh.sort();
                let mut timeline: Vec<(DateTime<Utc>, String)> = existing
                    .iter()
                    .map(|e| (e.at, e.from.clone()))
                    .chain(fresh.iter().cloned())
                    .collect();
                timeline.sort();
                for (at, from) in fresh {
                    let to = timeline
                        .iter()
                        .find(|(t, _)| *t > at)
                        .map_or_else(|| org.name.clone(), |(_, next)| next.clone());
                    let entry = RenameView {
                        bin: org.bin.clone(),
                        at,
                        from,
                        to,
                    };
                    self.insert_rename(base, entry, now);
                }
                self.orgs.insert(bin, org_view(&org));
            }
            SystemName::ELicense => {
                let permit: PermitRecord =
                    serde_json::from_value(value).map_err(|e| e.to_string())?;
                self.set_permit(PermitState::fresh(permit));
            }
            SystemName::Individuals => {
                let p: PersonRecord = serde_json::from_value(value).map_err(|e| e.to_string())?;
                self.persons.insert(key_of(&p.iin), p);
            }
            SystemName::CivilRegistry => {
                let c: CivilRecord = serde_json::from_value(value).map_err(|e| e.to_string())?;
                self.civil.insert(key_of(&c.iin), c);
            }
            SystemName::MobileBase => {
                let m: MobileRecord = serde_json::from_value(value).map_err(|e| e.to_string())?;
                self.mobile.insert(key_of(&m.iin), m);
            }
            other => {
                return Err(format!(
                    "system `{}` has no records to update",
                    other.as_str()
                ));
            }
        }
        Ok(())
    }
}
