//! The pilot's outcomes as a published data product (docs/DATA-PRODUCT.md): `sdu publish` writes a month's
//! tables as UTF-8 CSV under the disclosure control of seed 002, with the metadata of seeds 001 and 003 and a
//! Frictionless Data Package descriptor; `sdu extract` writes the de-identified research extract of seed 000.
//!
//! Everything here reads the case store through its own queries ([`sql`]) and writes nothing into the cases.
//! The same data and period give byte-identical files: no wall clock, no random number and no hash-map order
//! reaches a published file, and a release states the instant of the data it was made from.

pub mod extract;
pub mod meta;
pub mod schedule;
pub mod sql;
pub mod suppress;
pub mod tables;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};

use crate::store::Store;
use tables::{Level, Table};

/// The organisation's region and activity as the legal-entity registry's finding gave them (the engine
/// stores them on the case at the check).
pub fn dimensions(findings: &[crate::engine::Finding]) -> (Option<String>, Option<String>) {
    let Some(f) = findings.iter().find(|f| f.system == "legal_entities") else {
        return (None, None);
    };
    let text = |key: &str| {
        f.finding
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    (text("region"), text("activity"))
}

/// A calendar month in Kazakhstan's time (UTC+5, Asia/Almaty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// Year.
    pub year: i32,
    /// Month 1–12.
    pub month: u32,
}

impl std::str::FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a month YYYY-MM");
        let (y, m) = s.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let (year, month) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        NaiveDate::from_ymd_opt(year, month, 1).ok_or_else(bad)?;
        Ok(Self { year, month })
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl Period {
    fn local_start(year: i32, month: u32) -> DateTime<Utc> {
        chrono_tz::Asia::Almaty
            .with_ymd_and_hms(year, month, 1, 0, 0, 0)
            .single()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    /// First instant of the month.
    pub fn start(&self) -> DateTime<Utc> {
        Self::local_start(self.year, self.month)
    }

    /// First instant of the next month.
    pub fn end(&self) -> DateTime<Utc> {
        let (y, m) = if self.month == 12 {
            (self.year + 1, 1)
        } else {
            (self.year, self.month + 1)
        };
        Self::local_start(y, m)
    }

    /// The last day of the month.
    pub fn last_day(&self) -> NaiveDate {
        (self.end() - chrono::Duration::days(1))
            .with_timezone(&chrono_tz::Asia::Almaty)
            .date_naive()
    }
}

/// Settings of the disclosure control.
#[derive(Debug, Clone, Copy)]
pub struct Control {
    /// A non-empty cell resting on fewer organisations than this is `X` (2: a single respondent is `X`).
    pub min_respondents: usize,
    /// A detailed table whose non-empty inner cells would be more than this share `X` is published at
    /// republic level instead.
    pub republic_above: f64,
}

impl Default for Control {
    fn default() -> Self {
        Self {
            min_respondents: 2,
            republic_above: 0.5,
        }
    }
}

/// A release: the tables with their suppression, and what they were made from.
#[derive(Debug, Clone)]
pub struct Release {
    /// The month.
    pub period: Period,
    /// The instant of the data: the last change of any case the release counts (the period's end when it
    /// counts none).
    pub data_as_of: DateTime<Utc>,
    /// The tables, in file order.
    pub tables: Vec<Table>,
    /// The disclosure control applied.
    pub control: Control,
    /// Parts of one offer SMS (UCS-2).
    pub parts_per_sms: i64,
    /// Cases counted.
    pub cases: usize,
}

/// Reads the period's ended cases and makes the release.
pub async fn release(
    store: &Store,
    period: Period,
    control: Control,
    offer_text: &str,
) -> Result<Release> {
    let (from, to) = (
        period.start().timestamp_millis(),
        period.end().timestamp_millis(),
    );
    let cases = sql::ended_cases(store, from, to).await?;
    let replies = sql::replies(store, from, to).await?;
    let parts_per_sms = crate::sms::encoding(offer_text).segments as i64;
    let data_as_of = cases
        .iter()
        .map(|c| c.updated_at)
        .max()
        .map(crate::store::from_ms)
        .unwrap_or_else(|| period.end());
    let tables = tables::build(&cases, &replies, parts_per_sms);
    Ok(Release {
        period,
        data_as_of,
        tables: protect(tables, control),
        control,
        parts_per_sms,
        cases: cases.len(),
    })
}

/// Applies the disclosure control to a release's tables: republic level where a detailed table would be
/// mostly `X`, then primary and secondary suppression over all tables together.
pub fn protect(mut tables: Vec<Table>, control: Control) -> Vec<Table> {
    // Only the two classified tables (by region, by activity) have a higher level to go to.
    for t in 0..2 {
        let (l, offsets) = tables::lattice(&tables);
        let primary = suppress::primary(&l, control.min_respondents);
        let table = &tables[t];
        let (mut filled, mut hidden) = (0usize, 0usize);
        for i in 0..table.height() - 1 {
            for j in 0..table.width() - 1 {
                if table.values[i][j] > 0 {
                    filled += 1;
                    hidden += usize::from(primary[offsets[t] + i * table.width() + j]);
                }
            }
        }
        if filled > 0 && hidden as f64 / filled as f64 > control.republic_above {
            tables[t] = tables::to_republic(&tables[t]);
        }
    }
    let (l, offsets) = tables::lattice(&tables);
    let x = suppress::suppress(&l, control.min_respondents);
    for (t, table) in tables.iter_mut().enumerate() {
        let w = table.width();
        for (i, row) in table.x.iter_mut().enumerate() {
            for (j, cell) in row.iter_mut().enumerate() {
                *cell = x[offsets[t] + i * w + j];
            }
        }
    }
    tables
}

/// A table as CSV: header, one line per row, the total row last; `X` for a suppressed value.
pub fn csv(t: &Table) -> String {
    let mut out = String::new();
    let mut header: Vec<String> = t.keys.iter().map(|k| k.to_string()).collect();
    header.extend(t.cols.iter().cloned());
    header.push("total".into());
    out.push_str(&header.join(","));
    out.push('\n');
    for i in 0..t.height() {
        let mut line: Vec<String> = if i < t.rows.len() {
            t.rows[i].iter().map(|k| quote(k)).collect()
        } else {
            let mut keys = vec!["total".to_string()];
            keys.resize(t.keys.len(), String::new());
            keys
        };
        for j in 0..t.width() {
            line.push(if t.x[i][j] {
                "X".into()
            } else {
                t.values[i][j].to_string()
            });
        }
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Writes the release into `dir`: the CSV tables and the metadata files. Returns the paths written.
pub fn write(release: &Release, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut files: Vec<(String, String)> = release
        .tables
        .iter()
        .map(|t| (format!("{}.csv", t.name), csv(t)))
        .collect();
    files.extend(meta::files(release)?);
    let mut written = Vec::new();
    for (name, text) in files {
        let path = dir.join(&name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// `sdu publish`.
#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// The month, YYYY-MM (Kazakhstan time): cases that ended in it.
    #[arg(long)]
    pub period: Period,
    /// Folder to write the release into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Least number of organisations a published non-empty cell rests on (overrides `min_respondents`).
    #[arg(long)]
    pub min_respondents: Option<usize>,
}

/// `sdu publish`: makes and writes the release; the line to print.
pub async fn run(
    args: &PublishArgs,
    store: &Store,
    config: &crate::config::Config,
) -> Result<String> {
    let min_respondents = args.min_respondents.unwrap_or(config.min_respondents);
    if min_respondents == 0 {
        bail!("--min-respondents must be at least 1");
    }
    let control = Control {
        min_respondents,
        ..Control::default()
    };
    let offer_text = config
        .service
        .text(config.sms_language.code())
        .context("the service has no offer text in sms_language")?;
    let release = release(store, args.period, control, offer_text).await?;
    let files = write(&release, &args.out)?;
    let suppressed: usize = release
        .tables
        .iter()
        .map(|t| t.x.iter().flatten().filter(|x| **x).count())
        .sum();
    let republic: Vec<&str> = release
        .tables
        .iter()
        .filter(|t| t.level == Level::Republic)
        .map(|t| t.name)
        .collect();
    Ok(format!(
        "published {} for {}: {} cases, {} files, {} cells X{}; data as of {}",
        args.out.display(),
        release.period,
        release.cases,
        files.len(),
        suppressed,
        if republic.is_empty() {
            String::new()
        } else {
            format!(", at republic level: {}", republic.join(", "))
        },
        release
            .data_as_of
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    ))
}

/// The ISO week of an instant in Kazakhstan's time, `YYYY-Www`.
pub fn iso_week(at: DateTime<Utc>) -> String {
    let w = at.with_timezone(&chrono_tz::Asia::Almaty).iso_week();
    format!("{:04}-W{:02}", w.year(), w.week())
}

#[cfg(test)]
mod tests {
    use super::sql::{CaseFact, ReplyFact};
    use super::*;

    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A generated month of `n` cases: skewed regions and sections, a rare-reason tail, replies.
    fn world(n: usize, seed: u64) -> (Vec<CaseFact>, Vec<ReplyFact>) {
        const OUTCOMES: [(&str, Option<&str>); 8] = [
            ("not_applicable", Some("no_permit")),
            ("reissued", None),
            ("expired", None),
            ("declined", None),
            ("no_phone", Some("not_registered")),
            ("ineligible", Some("deceased")),
            ("ineligible", Some("imprisoned")),
            ("failed", Some("reissue_rejected")),
        ];
        let mut cases = Vec::new();
        let mut replies = Vec::new();
        for i in 0..n {
            let h = mix(seed ^ mix(i as u64));
            // Squaring skews towards the first entries, as real distributions are.
            let skew = |x: u64, len: usize| {
                let u = (x % 1000) as f64 / 1000.0;
                ((u * u) * len as f64) as usize
            };
            let (status, reason) = OUTCOMES[skew(h, OUTCOMES.len())];
            let region = adapters::dims::KATO_REGIONS[skew(h >> 10, 20)].0;
            let section = adapters::dims::OKED_SECTIONS[skew(h >> 20, 21)];
            let attempt = match status {
                "reissued" | "declined" => 1 + (h >> 30) as i64 % 2,
                "expired" => 2,
                _ => 0,
            };
            let ended_at = 1_793_473_200_000 + (h >> 34) as i64 % 2_500_000_000;
            let first_sent_at = (attempt > 0).then_some(ended_at - 400_000_000);
            if let (Some(sent), "reissued" | "declined") = (first_sent_at, status) {
                replies.push(ReplyFact {
                    case_id: i as i64,
                    bin: format!("b{}", i % (n - n / 20)),
                    text: if status == "reissued" { "1" } else { "2" }.into(),
                    received_at: sent + (h >> 40) as i64 % 500_000_000,
                    first_sent_at,
                });
            }
            cases.push(CaseFact {
                id: i as i64,
                // A few organisations with two cases.
                bin: format!("b{}", i % (n - n / 20)),
                status: status.into(),
                reason: reason.map(str::to_owned),
                region: Some(format!("{region}0000000")),
                activity: Some(format!("{:02}000", section.1)),
                attempt,
                first_sent_at,
                ended_at,
                updated_at: ended_at,
            });
        }
        (cases, replies)
    }

    /// The attacker on releases of many generated worlds, small (mostly `X`, republic level) to large.
    #[test]
    fn no_suppressed_cell_of_a_generated_release_is_recoverable() {
        let mut republic = 0;
        for (n, seed) in [
            (40, 1),
            (120, 2),
            (300, 3),
            (800, 4),
            (2_000, 5),
            (5_000, 6),
        ] {
            let (cases, replies) = world(n, seed);
            let control = Control::default();
            let tables = protect(tables::build(&cases, &replies, 11), control);
            republic += tables.iter().filter(|t| t.level == Level::Republic).count();
            let (lattice, _) = tables::lattice(&tables);
            let x: Vec<bool> = tables
                .iter()
                .flat_map(|t| t.x.iter().flatten().copied())
                .collect();
            for (cell, c) in lattice.cells.iter().enumerate() {
                if c.respondents > 0 && c.respondents < control.min_respondents {
                    assert!(
                        x[cell],
                        "n = {n}: cell {cell} on {} respondents published",
                        c.respondents
                    );
                }
            }
            for iv in suppress::intervals(&lattice, &x) {
                assert!(iv.max - iv.min >= 1.0 - 1e-6, "n = {n}: {iv:?} recoverable");
            }
            // Totals are exact.
            let grand = &tables[0].values[tables[0].height() - 1];
            assert_eq!(grand[grand.len() - 1], n as i64);
        }
        assert!(republic > 0, "the smallest worlds go to republic level");
    }

    #[test]
    fn a_mostly_x_table_is_published_at_republic_level() {
        let (cases, replies) = world(40, 9);
        let tables = protect(tables::build(&cases, &replies, 11), Control::default());
        assert_eq!(tables[0].level, Level::Republic);
        assert_eq!(tables[0].cols, vec!["kazakhstan".to_string()]);
        assert!(csv(&tables[0]).starts_with("outcome,reason,kazakhstan,total\n"));
    }

    #[test]
    fn periods_are_months_in_kazakhstan_time() {
        let p: Period = "2026-11".parse().unwrap();
        assert_eq!(p.start().timestamp_millis(), 1_793_473_200_000);
        assert_eq!(p.end().timestamp_millis(), 1_796_065_200_000);
        assert_eq!(p.last_day().to_string(), "2026-11-30");
        let dec: Period = "2026-12".parse().unwrap();
        assert_eq!(
            dec.end(),
            Period {
                year: 2027,
                month: 1
            }
            .start()
        );
        for bad in ["2026-13", "2026-1", "26-11", "2026/11", ""] {
            assert!(bad.parse::<Period>().is_err(), "{bad}");
        }
    }
}
