//! `sdu dry-run`: the checks and decisions of the real engine for one organisation, with every write and
//! send switched off. It opens no database and calls only the registries' read endpoints.

use std::fmt::Write as _;

use adapters::Bin;
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::case::{Assessment, Window};
use crate::config::Config;
use crate::engine::{Finding, Systems, gather};
use crate::sms;

/// The trace of one dry run.
#[derive(Debug, Clone, Serialize)]
pub struct Trace {
    /// The organisation (a BIN is not personal data).
    pub bin: String,
    /// The name the permits would be re-issued under (the organisation's current name).
    pub new_name: Option<String>,
    /// Each registry's answer, in the order asked; identifiers masked.
    pub findings: Vec<Finding>,
    /// The decision: an outcome, or `offer`.
    pub decision: String,
    /// The outcome's reason, if any.
    pub reason: Option<String>,
    /// Why, in words.
    pub detail: String,
    /// The SMS it would send, if it would offer.
    pub sms: Option<SmsPreview>,
    /// The permits it would re-issue after a "1".
    pub permits_to_reissue: Vec<String>,
    /// Confirms nothing was written.
    pub writes: &'static str,
}

/// The SMS a dry run would send.
#[derive(Debug, Clone, Serialize)]
pub struct SmsPreview {
    /// Masked number.
    pub to: String,
    /// When it would go (now, or the next opening of the SMS window), in the configured local zone.
    pub at: DateTime<chrono::FixedOffset>,
    /// The exact text.
    pub text: String,
    /// `GSM-7` or `UCS-2`.
    pub encoding: &'static str,
    /// Characters counted for the encoding.
    pub units: usize,
    /// SMS parts.
    pub segments: usize,
}

/// Traces one organisation.
pub async fn trace(
    systems: &Systems,
    config: &Config,
    bin: &Bin,
    now: DateTime<Utc>,
) -> Result<Trace> {
    let org = systems
        .legal_entities
        .organization(bin)
        .await
        .context("legal-entity registry")?;
    let new_name = org.as_ref().map(|o| o.name.clone());
    let mut findings = Vec::new();
    let assessment = gather(
        systems,
        bin,
        new_name.as_deref().unwrap_or_default(),
        &config.service,
        &mut findings,
    )
    .await
    .context("checking")?;
    let window = Window {
        start: config.sms_window.start,
        end: config.sms_window.end,
        tz: config.tz()?,
    };
    let mut trace = Trace {
        bin: bin.to_string(),
        new_name,
        findings,
        decision: String::new(),
        reason: None,
        detail: String::new(),
        sms: None,
        permits_to_reissue: vec![],
        writes: "none: dry run",
    };
    match assessment {
        Assessment::End(ending) => {
            trace.decision = ending.outcome.to_string();
            trace.reason = ending.reason.map(|r| r.to_string());
            trace.detail = ending.detail;
        }
        Assessment::Ready(offer) => {
            let text = config
                .service
                .text(config.sms_language.code())
                .context("the service has no text in the configured language")?;
            let enc = sms::encoding(text);
            trace.decision = "offer".into();
            trace.detail =
                "eligible head with a usable number: the re-issue would be offered by SMS".into();
            trace.sms = Some(SmsPreview {
                to: offer.phone.masked(),
                at: window
                    .next_open(now)
                    .with_timezone(&window.tz)
                    .fixed_offset(),
                text: text.to_owned(),
                encoding: enc.name,
                units: enc.units,
                segments: enc.segments,
            });
            trace.permits_to_reissue = offer.permits;
        }
        Assessment::Need(_) => unreachable!("gather returns only final assessments"),
    }
    Ok(trace)
}

impl Trace {
    /// The trace as text for a terminal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "dry run for BIN {} (nothing is written or sent)",
            self.bin
        );
        for (i, f) in self.findings.iter().enumerate() {
            let _ = writeln!(out, "  {}. {:<15} {}", i + 1, f.system, f.finding);
        }
        match &self.reason {
            Some(r) => {
                let _ = writeln!(out, "decision: {} / {} — {}", self.decision, r, self.detail);
            }
            None => {
                let _ = writeln!(out, "decision: {} — {}", self.decision, self.detail);
            }
        }
        if let Some(sms) = &self.sms {
            let _ = writeln!(
                out,
                "would send to {} at {} ({}, {} characters, {} SMS part(s)):\n  {}",
                sms.to,
                sms.at.to_rfc3339(),
                sms.encoding,
                sms.units,
                sms.segments,
                sms.text
            );
            let _ = writeln!(
                out,
                "on reply 1 would re-issue: {}",
                self.permits_to_reissue.join(", ")
            );
        }
        out
    }
}
