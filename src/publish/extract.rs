//! The de-identified research extract of seed 000: one line per ended case of a month, with no BIN, IIN,
//! phone, name or free text. The organisation appears only as a pseudonym, an HMAC-SHA-256 of its BIN under
//! a key drawn fresh for each extract and never stored, so two extracts cannot be joined and nobody can
//! reverse one. Dates are generalised to the ISO week, the region to the oblast, the activity to the OKED
//! section; every combination of the quasi-identifiers (region, section, outcome, week) is shared by at
//! least `k` lines, the rarer ones generalised further (week → month, region → republic, section → any)
//! or, failing that, dropped. The grant — who approved it, for whom, until when, the file's SHA-256 — is
//! recorded in the store (`extract_grants`) and listed by `sdu extract list`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use hmac::{KeyInit, Mac};
use sha2::Digest;

use super::Period;
use super::sql::{self, CaseFact, Grant};
use crate::store::Store;

/// `sdu extract`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ExtractCommand {
    /// `list`: the grants recorded.
    #[command(subcommand)]
    pub command: Option<ExtractSub>,
    /// The month, YYYY-MM: cases that ended in it.
    #[arg(long)]
    pub period: Option<Period>,
    /// For whom (the researcher or the organisation).
    #[arg(long)]
    pub researcher: Option<String>,
    /// Who approved it after the information-security check.
    #[arg(long)]
    pub approved_by: Option<String>,
    /// The date by which the researcher has committed to delete the file (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    pub delete_by: Option<NaiveDate>,
    /// The file to write (CSV).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Least number of lines sharing each combination of quasi-identifiers (overrides `extract_k`).
    #[arg(long)]
    pub k: Option<usize>,
}

/// `sdu extract list`.
#[derive(Debug, clap::Subcommand)]
pub enum ExtractSub {
    /// The grants recorded, oldest first.
    List,
}

/// One line of the extract.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Line {
    /// Quasi-identifiers: week (or month), oblast (or `KZ`), OKED section (or `*`), outcome.
    pub when: String,
    /// Oblast code, `unknown` or `KZ`.
    pub region: String,
    /// Section letter, `unknown` or `*`.
    pub section: String,
    /// Outcome.
    pub outcome: String,
    /// Organisation pseudonym.
    pub org: String,
    /// Outcome reason; blank for `ineligible`, whose reasons describe the head in person.
    pub reason: String,
    /// SMS sent.
    pub sms_sent: i64,
}

/// The lines of an extract of `cases` under `key`, k-anonymous over the quasi-identifiers.
pub fn lines(cases: &[CaseFact], period: Period, key: &[u8], k: usize) -> Vec<Line> {
    let pseudonym = |bin: &str| {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key");
        mac.update(bin.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..8])
    };
    let mut pending: Vec<Line> = cases
        .iter()
        .map(|c| Line {
            when: super::iso_week(crate::store::from_ms(c.ended_at)),
            region: c
                .region
                .as_deref()
                .and_then(|r| adapters::Kato::parse(r).ok())
                .map_or("unknown".into(), |r| r.oblast().to_string()),
            section: c
                .activity
                .as_deref()
                .and_then(adapters::dims::oked_section)
                .map_or("unknown".into(), |s| s.to_string()),
            outcome: c.status.clone(),
            org: pseudonym(&c.bin),
            reason: if c.status == "ineligible" {
                String::new()
            } else {
                c.reason.clone().unwrap_or_default()
            },
            sms_sent: c.attempt,
        })
        .collect();
    let steps: [fn(&mut Line, &str); 3] = [
        |l, month| l.when = month.to_string(),
        |l, _| l.region = "KZ".into(),
        |l, _| l.section = "*".into(),
    ];
    let month = period.to_string();
    let mut kept = Vec::new();
    for step in 0..=steps.len() {
        let mut groups: BTreeMap<(String, String, String, String), Vec<Line>> = BTreeMap::new();
        for l in pending.drain(..) {
            groups
                .entry((
                    l.when.clone(),
                    l.region.clone(),
                    l.section.clone(),
                    l.outcome.clone(),
                ))
                .or_default()
                .push(l);
        }
        for (_, group) in groups {
            if group.len() >= k {
                kept.extend(group);
            } else if step < steps.len() {
                pending.extend(group.into_iter().map(|mut l| {
                    steps[step](&mut l, &month);
                    l
                }));
            }
            // After the last step a group still below k is dropped.
        }
    }
    kept.sort();
    kept
}

/// The extract as CSV.
pub fn csv(lines: &[Line]) -> String {
    let mut out =
        String::from("org_pseudonym,period,region_oblast,oked_section,outcome,reason,sms_sent\n");
    for l in lines {
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            l.org, l.when, l.region, l.section, l.outcome, l.reason, l.sms_sent
        ));
    }
    out
}

/// A fresh 32-byte key from the operating system's generator (through UUID v4), never stored.
fn fresh_key() -> Vec<u8> {
    let mut key = uuid::Uuid::new_v4().as_bytes().to_vec();
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    key
}

/// `sdu extract …` and `sdu extract list`: the text to print.
pub async fn run(
    cmd: &ExtractCommand,
    store: &Store,
    now: chrono::DateTime<chrono::Utc>,
    default_k: usize,
) -> Result<String> {
    let k = cmd.k.unwrap_or(default_k);
    if let Some(ExtractSub::List) = cmd.command {
        let mut out =
            String::from("id\tperiod\tresearcher\tapproved_by\tdelete_by\trecords\tk\tsha256\n");
        for g in sql::grants(store).await? {
            out.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                g.id, g.period, g.researcher, g.approved_by, g.delete_by, g.records, g.k, g.sha256
            ));
        }
        return Ok(out);
    }
    let (Some(period), Some(researcher), Some(approved_by), Some(delete_by), Some(out)) = (
        cmd.period,
        &cmd.researcher,
        &cmd.approved_by,
        cmd.delete_by,
        &cmd.out,
    ) else {
        bail!(
            "sdu extract needs --period, --researcher, --approved-by, --delete-by and --out (or `list`)"
        );
    };
    if researcher.trim().is_empty() || approved_by.trim().is_empty() {
        bail!("--researcher and --approved-by must name someone");
    }
    if delete_by <= now.with_timezone(&chrono_tz::Asia::Almaty).date_naive() {
        bail!("--delete-by must be a date after today");
    }
    if k < 2 {
        bail!("--k must be at least 2");
    }
    let cases = sql::ended_cases(
        store,
        period.start().timestamp_millis(),
        period.end().timestamp_millis(),
    )
    .await?;
    let lines = lines(&cases, period, &fresh_key(), k);
    let text = csv(&lines);
    std::fs::write(out, &text).with_context(|| format!("cannot write {}", out.display()))?;
    let sha256 = hex::encode(sha2::Sha256::digest(text.as_bytes()));
    sql::record_grant(
        store,
        &Grant {
            id: 0,
            period: period.to_string(),
            researcher: researcher.clone(),
            approved_by: approved_by.clone(),
            delete_by: delete_by.to_string(),
            sha256: sha256.clone(),
            records: lines.len() as i64,
            k: k as i64,
            created_at: now.timestamp_millis(),
        },
    )
    .await?;
    Ok(format!(
        "extract {} for {researcher} (approved by {approved_by}, delete by {delete_by}): {} of {} cases, k = {}, sha256 {sha256}",
        out.display(),
        lines.len(),
        cases.len(),
        k
    ))
}
