//! The external systems the engine acts through, and the checks of seed items 6–12: the decision core
//! ([`case::assess`]) says which registry it needs next, this asks it and records what it said.

use std::sync::Arc;

use adapters::http::{
    HttpCivilRegistry, HttpConsentService, HttpELicense, HttpIndividuals, HttpLegalEntities,
    HttpMobileBase, HttpSdu, HttpSettings, HttpSmsGateway,
};
use adapters::{
    AdapterError, Bin, CivilRegistry, ConsentService, ELicense, Individuals, LegalEntities,
    MobileBase, Sdu, SmsGateway,
};
use anyhow::Result;
use serde_json::json;

use crate::case::{self, Assessment, Facts, Need, Service};
use crate::config::Config;

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
    /// HTTP clients built from the configuration, reporting to the process's metrics
    /// ([`crate::telemetry::observer`]); `tweak` may adjust every system's settings.
    pub fn http(config: &Config, tweak: impl Fn(&mut HttpSettings)) -> Result<Self> {
        let s = |name: &str| {
            let mut settings = config.http_settings(name);
            settings.observer = Some(crate::telemetry::observer());
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

/// One finding of the checks, for dry-run traces and the case history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    /// Which registry.
    pub system: &'static str,
    /// What it said, identifiers masked.
    pub finding: serde_json::Value,
}

/// Runs the checks of seed items 6–12 through the decision core, asking each registry only when the core
/// needs it. Shared by the runner and dry-run. The head's IIN is read (and shown masked) only once the core
/// asks about the person, which it does only after the permits said a head is needed.
pub async fn gather(
    systems: &Systems,
    bin: &Bin,
    new_name: &str,
    service: &Service,
    findings: &mut Vec<Finding>,
) -> Result<Assessment, AdapterError> {
    let mut facts = Facts::default();
    loop {
        let head = || {
            facts
                .organization
                .as_ref()
                .and_then(|o| o.as_ref())
                .and_then(|o| case::head_of(o).ok().flatten())
        };
        match case::assess(bin, new_name, &facts, service) {
            Assessment::Need(Need::Organization) => {
                let org = systems.legal_entities.organization(bin).await?;
                findings.push(Finding {
                    system: "legal_entities",
                    finding: match &org {
                        None => json!({"found": false}),
                        Some(o) => json!({"found": true, "name": o.name, "status": o.status,
                            "names_a_head": o.first_head.is_some(),
                            "region": o.region, "activity": o.activity}),
                    },
                });
                facts.organization = Some(org);
            }
            Assessment::Need(Need::Permits) => {
                let permits = systems.e_license.permits(bin, &service.code).await?;
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
                        None => json!({"head": head.masked(), "record": false}),
                        Some(r) => json!({"head": head.masked(), "deceased": r.deceased, "declared_dead": r.declared_dead, "declared_missing": r.declared_missing}),
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
