//! The proactive service as data: which e-license service's permits are re-issued, what the consent is
//! for, the SMS texts, the eligibility criteria in order, the reply vocabulary and the offer's timers.
//!
//! Today's service (the trusted-software register, order No. 204/НҚ) is the built-in default; a
//! configuration's `[service]` section defines another one without a change to the engine or the core
//! (docs/PROCESS.md "The service as data").

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Reason, Window};

/// One proactive re-issue service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Service {
    /// The e-license service code whose permits are re-issued.
    pub code: String,
    /// What the consent is for, as sent to the consent service.
    pub consent_purpose: String,
    /// The offer SMS per language code (`kk`, `ru`, …).
    pub texts: BTreeMap<String, String>,
    /// The eligibility criteria, in the order in which the first that applies excludes the head. Each is an
    /// exclusion reason of docs/RULES.md §1 (`deceased`, `declared_dead`, `declared_missing`,
    /// `residence_abroad`, `incapacitated`, `imprisoned`); a service may leave some out.
    pub criteria: Vec<Reason>,
    /// Replies that agree (compared after trimming white space and one trailing `.`).
    pub agree: Vec<String>,
    /// Replies that refuse.
    pub refuse: Vec<String>,
}

impl Default for Service {
    fn default() -> Self {
        Self {
            code: adapters::TRUSTED_SOFTWARE_SERVICE.to_owned(),
            consent_purpose: "reissue_of_trusted_software_register_permit".to_owned(),
            texts: BTreeMap::from([
                ("kk".to_owned(), crate::sms::OFFER_KK.to_owned()),
                ("ru".to_owned(), crate::sms::OFFER_RU.to_owned()),
            ]),
            criteria: vec![
                Reason::Deceased,
                Reason::DeclaredDead,
                Reason::DeclaredMissing,
                Reason::ResidenceAbroad,
                Reason::Incapacitated,
                Reason::Imprisoned,
            ],
            agree: vec!["1".to_owned()],
            refuse: vec!["2".to_owned()],
        }
    }
}

impl Service {
    /// Why this definition cannot run, if it cannot: an empty code or text, a criterion that is not an
    /// exclusion reason, a reply in both vocabularies.
    pub fn problem(&self) -> Option<String> {
        if self.code.trim().is_empty() {
            return Some("service.code is empty".into());
        }
        if self.consent_purpose.trim().is_empty() {
            return Some("service.consent_purpose is empty".into());
        }
        if self.texts.is_empty() || self.texts.values().any(|t| t.trim().is_empty()) {
            return Some("service.texts needs a non-empty text per language".into());
        }
        if let Some(bad) = self.criteria.iter().find(|r| r.criterion().is_none()) {
            return Some(format!(
                "service.criteria: `{bad}` is not an eligibility criterion"
            ));
        }
        if self.agree.is_empty() || self.refuse.is_empty() {
            return Some("service.agree and service.refuse each need at least one reply".into());
        }
        if let Some(both) = self.agree.iter().find(|a| self.refuse.contains(a)) {
            return Some(format!("service reply `{both}` both agrees and refuses"));
        }
        None
    }

    /// Whether every civil-registry criterion comes before every individuals-registry one: a civil record
    /// that excludes the head then decides without the individuals registry being asked.
    pub fn civil_criteria_first(&self) -> bool {
        let kinds: Vec<_> = self.criteria.iter().filter_map(|c| c.criterion()).collect();
        kinds
            .windows(2)
            .all(|w| !(w[0] == super::Registry::Individuals && w[1] == super::Registry::Civil))
    }

    /// The offer text in `language`, if the service has one.
    pub fn text(&self, language: &str) -> Option<&str> {
        self.texts.get(language).map(String::as_str)
    }
}

/// Everything the core's transitions read besides the case and the observation.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The service.
    pub service: Service,
    /// The language of the offer SMS (a key of [`Service::texts`]).
    pub language: String,
    /// First SMS accepted → reminder.
    pub reminder_after: Duration,
    /// Reminder accepted → expiry.
    pub expire_after: Duration,
    /// When SMS may go.
    pub window: Window,
}

impl Settings {
    /// The offer text in the configured language.
    pub fn offer_text(&self) -> &str {
        self.service
            .text(&self.language)
            .expect("the configuration checks that the service has a text in its language")
    }
}
