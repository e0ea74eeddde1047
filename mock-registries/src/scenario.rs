//! The scenario file model of docs/RULES.md §6, shared by the mock (its `registries` section) and by the
//! orchestrator's scenario runner (events and expectations).
//!
//! Loading rejects structural faults (unknown key, wrong type, bad timestamp) with the file, line and key,
//! but identifiers and phone numbers inside `registries` are kept exactly as written, even as YAML integers,
//! since a fixture may hold bad data on purpose: the orchestrator's own validation is what is under test.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

/// An identifier or phone number exactly as the fixture wrote it (a string, or a number if unquoted).
pub type RawValue = serde_json::Value;

/// A whole scenario file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, printed by the runner.
    pub name: String,
    /// What the scenario proves.
    #[serde(default)]
    pub description: String,
    /// Simulated clock at the start.
    pub start: DateTime<FixedOffset>,
    /// The runner advances the clock to here.
    pub run_until: DateTime<FixedOffset>,
    /// Setting overrides, the same keys as the TOML configuration.
    #[serde(default)]
    pub config: BTreeMap<String, RawValue>,
    /// What every external system holds at the start.
    #[serde(default)]
    pub registries: Registries,
    /// What the outside world does, at simulated instants.
    #[serde(default)]
    pub events: Vec<Event>,
    /// What must hold at `run_until`.
    #[serde(default)]
    pub expect: Expect,
}

/// The `registries` section: one list of records per system.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Registries {
    /// Organisations.
    #[serde(default)]
    pub legal_entities: Vec<LegalEntity>,
    /// Permits.
    #[serde(default)]
    pub e_license: Vec<PermitRecord>,
    /// People.
    #[serde(default)]
    pub individuals: Vec<PersonRecord>,
    /// Civil-status records.
    #[serde(default)]
    pub civil_registry: Vec<CivilRecord>,
    /// Registered mobile numbers.
    #[serde(default)]
    pub mobile_base: Vec<MobileRecord>,
}

/// Organisation status in the legal-entity registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OrgStatus {
    /// Operating.
    #[default]
    Active,
    /// Liquidated.
    Liquidated,
}

/// An organisation.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LegalEntity {
    /// BIN, as written.
    pub bin: RawValue,
    /// Current name.
    pub name: String,
    /// Active or liquidated.
    #[serde(default)]
    pub status: OrgStatus,
    /// The first head's IIN, as written; absent when the registry names none.
    #[serde(default)]
    pub first_head: Option<RawValue>,
    /// The KATO code of the registered address, as written (optional: older files have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RawValue>,
    /// The OKED code of the main activity, as written (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<RawValue>,
    /// Past renames, any order.
    #[serde(default)]
    pub renames: Vec<PastRename>,
}

/// One past rename of an organisation.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PastRename {
    /// When it took effect.
    pub at: DateTime<FixedOffset>,
    /// The name before it.
    pub from: String,
}

/// Permit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PermitStatus {
    /// In force.
    #[default]
    Active,
    /// Withdrawn.
    Revoked,
}

/// A permit in e-license.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PermitRecord {
    /// e-license's permit id.
    pub permit_id: String,
    /// Holder's BIN, as written.
    pub bin: RawValue,
    /// Service code, e.g. `trusted_software_register`.
    pub service: String,
    /// Holder's name on the permit.
    pub holder_name: String,
    /// Active or revoked.
    #[serde(default)]
    pub status: PermitStatus,
}

/// A person in the individuals registry.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PersonRecord {
    /// IIN, as written.
    pub iin: RawValue,
    /// Full name.
    #[serde(default)]
    pub name: String,
    /// Permanently residing abroad.
    #[serde(default)]
    pub residence_abroad: bool,
    /// Legally incapacitated.
    #[serde(default)]
    pub incapacitated: bool,
    /// Held in a place of deprivation of liberty.
    #[serde(default)]
    pub imprisoned: bool,
}

/// A civil-registry record.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CivilRecord {
    /// IIN, as written.
    pub iin: RawValue,
    /// A death record exists.
    #[serde(default)]
    pub deceased: bool,
    /// Declared dead by a court.
    #[serde(default)]
    pub declared_dead: bool,
    /// Declared missing by a court.
    #[serde(default)]
    pub declared_missing: bool,
}

/// A registered mobile number.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MobileRecord {
    /// IIN, as written.
    pub iin: RawValue,
    /// The number, as written.
    pub phone: RawValue,
}

/// One event: exactly one of the kinds is present.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// When it happens.
    pub at: DateTime<FixedOffset>,
    /// A head answers an SMS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_reply: Option<SmsReply>,
    /// A system misbehaves from `at` to `until`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultEvent>,
    /// The organisation takes a new name at `at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rename: Option<RenameEvent>,
    /// A registry record is replaced or added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateEvent>,
    /// Testers only: the orchestrator's stored state of an open case is damaged (as a faulty upgrade or a
    /// hand edit of the database would), to show that the orchestrator ends such a case instead of acting
    /// on it or looping. The mock registries ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupt_case: Option<CorruptCase>,
}

/// A damaged stored case: the open case of `bin` gets `stage` (absent or `null`: no stage at all).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CorruptCase {
    /// The organisation's BIN, as written.
    pub bin: RawValue,
    /// The stage text to store.
    #[serde(default)]
    pub stage: Option<String>,
}

/// The kind of an [`Event`], once checked that exactly one is present.
#[derive(Debug, Clone, Copy)]
pub enum EventKind<'a> {
    /// See [`Event::sms_reply`].
    SmsReply(&'a SmsReply),
    /// See [`Event::fault`].
    Fault(&'a FaultEvent),
    /// See [`Event::rename`].
    Rename(&'a RenameEvent),
    /// See [`Event::update`].
    Update(&'a UpdateEvent),
    /// See [`Event::corrupt_case`].
    CorruptCase(&'a CorruptCase),
}

impl Event {
    /// The single kind of this event.
    pub fn kind(&self) -> Result<EventKind<'_>, String> {
        let mut kinds = Vec::new();
        if let Some(e) = &self.sms_reply {
            kinds.push(EventKind::SmsReply(e));
        }
        if let Some(e) = &self.fault {
            kinds.push(EventKind::Fault(e));
        }
        if let Some(e) = &self.rename {
            kinds.push(EventKind::Rename(e));
        }
        if let Some(e) = &self.update {
            kinds.push(EventKind::Update(e));
        }
        if let Some(e) = &self.corrupt_case {
            kinds.push(EventKind::CorruptCase(e));
        }
        match kinds.as_slice() {
            [one] => Ok(*one),
            [] => Err("needs one of sms_reply, fault, rename, update, corrupt_case".into()),
            _ => Err("has more than one of sms_reply, fault, rename, update, corrupt_case".into()),
        }
    }
}

/// A reply reaching the SMS gateway.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmsReply {
    /// Sender's number, as written.
    pub from: RawValue,
    /// The reply text.
    pub text: String,
}

/// The external system names of docs/RULES.md §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemName {
    /// Legal-entity registry.
    LegalEntities,
    /// e-license.
    ELicense,
    /// Individuals registry.
    Individuals,
    /// Civil registry.
    CivilRegistry,
    /// Mobile citizens base.
    MobileBase,
    /// SMS gateway.
    Sms,
    /// Consent service.
    Consent,
    /// SDU write-back.
    Sdu,
}

impl SystemName {
    /// Every system, in docs/RULES.md §4 order.
    pub const ALL: [SystemName; 8] = [
        Self::LegalEntities,
        Self::ELicense,
        Self::Individuals,
        Self::CivilRegistry,
        Self::MobileBase,
        Self::Sms,
        Self::Consent,
        Self::Sdu,
    ];

    /// The snake_case name, which is also the URL path prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LegalEntities => "legal_entities",
            Self::ELicense => "e_license",
            Self::Individuals => "individuals",
            Self::CivilRegistry => "civil_registry",
            Self::MobileBase => "mobile_base",
            Self::Sms => "sms",
            Self::Consent => "consent",
            Self::Sdu => "sdu",
        }
    }
}

/// How a faulty system misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultMode {
    /// 503.
    Unavailable,
    /// 500.
    Error,
    /// Answers after `delay_ms`.
    Slow,
    /// 200 with a truncated or non-JSON body.
    Malformed,
}

/// A fault switched on at the event's `at` until `until`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultEvent {
    /// The faulty system.
    pub system: SystemName,
    /// How it misbehaves.
    pub mode: FaultMode,
    /// When the fault ends.
    pub until: DateTime<FixedOffset>,
    /// Chance per request, 0..1 (default 1).
    #[serde(default = "one")]
    pub rate: f64,
    /// Delay for `slow`, in milliseconds.
    #[serde(default)]
    pub delay_ms: u64,
}

fn one() -> f64 {
    1.0
}

/// A rename happening during the scenario.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RenameEvent {
    /// The organisation's BIN, as written.
    pub bin: RawValue,
    /// Its new name.
    pub to: String,
}

/// A record replaced or added in one registry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateEvent {
    /// Which registry.
    pub system: SystemName,
    /// The new record, in that registry's fixture shape (checked at load).
    pub record: serde_json::Map<String, RawValue>,
}

/// The `expect` section; every key optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// One entry per rename, in rename order, for each listed BIN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cases: Option<Vec<ExpectedCase>>,
    /// SMS the gateway accepted, all cases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_total: Option<u64>,
    /// SMS accepted per number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_to: Option<BTreeMap<String, u64>>,
    /// Permits and the holder name they must bear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permits: Option<Vec<ExpectedPermit>>,
    /// Number of SDU write-backs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdu_records: Option<u64>,
    /// Number of consents recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consents: Option<u64>,
    /// Cases still open at `run_until`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_cases: Option<u64>,
    /// Text that every SMS the gateway accepted contains (which service's offer went out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_text_contains: Option<String>,
}

/// What one case must have become.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedCase {
    /// The organisation.
    pub bin: String,
    /// An outcome of docs/RULES.md §1, or `open`.
    pub outcome: String,
    /// The outcome's reason, when one is expected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// SMS sent for this case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_sent: Option<u64>,
    /// For an open case: its stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// For an open case awaiting a reply: 1 or 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
}

/// A permit and the name it must bear.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedPermit {
    /// e-license's permit id.
    pub permit_id: String,
    /// The expected holder name.
    pub holder_name: String,
}

/// A scenario file that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML is malformed or does not fit the format (the message names the line and key).
    #[error("{file}: {message}")]
    Format {
        /// The file.
        file: String,
        /// The parser's message, with line, column and key.
        message: String,
    },
}

impl Scenario {
    /// Reads and checks one scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            file: file.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ScenarioError::Format { file, message })
    }

    /// Parses and checks scenario text; the error names the line and key.
    pub fn parse(text: &str) -> Result<Self, String> {
        // No source snippet in the message: the lines around a fault may hold IINs, numbers and names.
        let mut options = serde_saphyr::Options::default();
        options.with_snippet = false;
        let mut key = None;
        let parsed = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
            serde_path_to_error::deserialize(de).map_err(|e| {
                key = Some(e.path().to_string());
                e.into_inner()
            })
        });
        let scenario: Scenario = parsed.map_err(|e| {
            let message = e.to_string();
            let first = message.lines().next().unwrap_or_default().trim().to_owned();
            match key.as_deref().filter(|k| !k.is_empty() && *k != ".") {
                Some(k) => format!("{first} (key `{k}`)"),
                None => first,
            }
        })?;
        scenario.check()?;
        Ok(scenario)
    }

    /// Structural checks serde cannot express.
    fn check(&self) -> Result<(), String> {
        if self.run_until < self.start {
            return Err("key `run_until`: is before `start`".into());
        }
        for (i, event) in self.events.iter().enumerate() {
            let kind = event
                .kind()
                .map_err(|e| format!("key `events[{i}]`: {e}"))?;
            match kind {
                EventKind::Fault(f) => {
                    if !(0.0..=1.0).contains(&f.rate) {
                        return Err(format!(
                            "key `events[{i}].fault.rate`: must be between 0.0 and 1.0"
                        ));
                    }
                    if f.until < event.at {
                        return Err(format!("key `events[{i}].fault.until`: is before `at`"));
                    }
                }
                EventKind::Update(u) => {
                    check_update_record(u)
                        .map_err(|e| format!("key `events[{i}].update.record`: {e}"))?;
                }
                EventKind::SmsReply(_) | EventKind::Rename(_) | EventKind::CorruptCase(_) => {}
            }
        }
        Ok(())
    }
}

/// Checks that an update record has the shape of its registry's fixture records.
fn check_update_record(update: &UpdateEvent) -> Result<(), String> {
    let value = serde_json::Value::Object(update.record.clone());
    let result = match update.system {
        SystemName::LegalEntities => serde_json::from_value::<LegalEntity>(value).map(drop),
        SystemName::ELicense => serde_json::from_value::<PermitRecord>(value).map(drop),
        SystemName::Individuals => serde_json::from_value::<PersonRecord>(value).map(drop),
        SystemName::CivilRegistry => serde_json::from_value::<CivilRecord>(value).map(drop),
        SystemName::MobileBase => serde_json::from_value::<MobileRecord>(value).map(drop),
        other => {
            return Err(format!(
                "system `{}` has no records to update",
                other.as_str()
            ));
        }
    };
    result.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
name: syntax-example
start: 2026-11-02T01:00:00+05:00
run_until: 2026-11-12T00:00:00+05:00
config:
  reminder_after: 72h
registries:
  legal_entities:
    - bin: "201140000017"
      name: "ТОО «Жаңа Технологиялар»"
      status: active
      first_head: "850214300013"
      renames:
        - { at: 2026-11-01T15:00:00+05:00, from: "ТОО «Ескі Технологиялар»" }
  e_license:
    - { permit_id: "KZ-TS-0001", bin: "201140000017", service: trusted_software_register,
        holder_name: "ТОО «Ескі Технологиялар»", status: active }
  mobile_base:
    - { iin: "850214300013", phone: 87011234567 }
events:
  - at: 2026-11-02T12:30:00+05:00
    sms_reply: { from: "+77011234567", text: "1" }
  - at: 2026-11-03T00:00:00+05:00
    fault: { system: e_license, mode: unavailable, until: 2026-11-03T06:00:00+05:00 }
  - at: 2026-11-04T11:00:00+05:00
    update: { system: civil_registry, record: { iin: "850214300013", deceased: true } }
expect:
  cases:
    - { bin: "201140000017", outcome: reissued, sms_sent: 1 }
  sms_to: { "+77011234567": 1 }
"#;

    #[test]
    fn the_contract_example_loads() {
        let s = Scenario::parse(EXAMPLE).unwrap();
        assert_eq!(s.registries.legal_entities.len(), 1);
        assert_eq!(s.events.len(), 3);
        assert_eq!(s.events[1].fault.as_ref().unwrap().rate, 1.0);
        // An unquoted number is kept as written, for the orchestrator to reject.
        assert!(s.registries.mobile_base[0].phone.is_number());
    }

    #[test]
    fn an_unknown_key_is_rejected_with_its_line() {
        let bad = EXAMPLE.replace(
            "status: active\n      first_head",
            "statuz: active\n      first_head",
        );
        let err = Scenario::parse(&bad).unwrap_err();
        assert!(err.contains("statuz"), "{err}");
        assert!(err.contains("line"), "{err}");
    }

    #[test]
    fn a_bad_timestamp_is_rejected() {
        let bad = EXAMPLE.replace(
            "run_until: 2026-11-12T00:00:00+05:00",
            "run_until: tomorrow",
        );
        assert!(Scenario::parse(&bad).is_err());
    }

    #[test]
    fn an_event_with_two_kinds_is_rejected() {
        let bad = EXAMPLE.replace(
            "sms_reply: { from: \"+77011234567\", text: \"1\" }",
            "sms_reply: { from: \"+77011234567\", text: \"1\" }\n    rename: { bin: \"201140000017\", to: \"X\" }",
        );
        let err = Scenario::parse(&bad).unwrap_err();
        assert!(err.contains("events[0]"), "{err}");
    }
}

#[cfg(test)]
mod dimension_tests {
    use super::*;

    /// The organisation's region and activity are optional: a file without them still loads, one with them
    /// serves them from the legal-entity registry as written.
    #[test]
    fn region_and_activity_are_optional_fields_of_an_organisation() {
        let with = r#"
name: dims
start: 2026-11-02T01:00:00+05:00
run_until: 2026-11-02T12:00:00+05:00
registries:
  legal_entities:
    - { bin: "201140000017", name: "ТОО «Жаңа»", region: "751110000", activity: "62010" }
    - { bin: "150340517501", name: "ТОО «Басқа»" }
"#;
        let s = Scenario::parse(with).unwrap();
        let orgs = &s.registries.legal_entities;
        assert_eq!(orgs[0].region, Some(RawValue::String("751110000".into())));
        assert_eq!(orgs[0].activity, Some(RawValue::String("62010".into())));
        assert_eq!(
            (orgs[1].region.clone(), orgs[1].activity.clone()),
            (None, None)
        );
        let mock = crate::Mock::from_registries(&s.registries, 1);
        let served = serde_json::to_value(mock.organization("201140000017").unwrap()).unwrap();
        assert_eq!(served["region"], "751110000");
        assert_eq!(served["activity"], "62010");
        let plain = serde_json::to_value(mock.organization("150340517501").unwrap()).unwrap();
        assert!(plain.get("region").is_none() && plain.get("activity").is_none());
        assert!(Scenario::parse(&with.replace("activity:", "activty:")).is_err());
    }
}
