//! The release's tables: cross-tabulations of the period's ended cases, each with row and column totals,
//! and the equations that tie their cells together (for [`super::suppress`]).

use std::collections::{BTreeMap, HashSet};

use adapters::dims::{KATO_REGIONS, OKED_SECTIONS, oked_section};

use super::sql::{CaseFact, ReplyFact};
use super::suppress::{Cell, Lattice};

/// Where a table's columns sit in the classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// As designed (oblast, OKED section, bins).
    Detailed,
    /// Collapsed to the republic: the detailed table would have been mostly `X` (seed 002).
    Republic,
}

/// One published table: key columns, value columns, inner cells and margins.
#[derive(Debug, Clone)]
pub struct Table {
    /// File stem, e.g. `outcomes_by_region`.
    pub name: &'static str,
    /// Title (Russian, as the statistics are published).
    pub title: &'static str,
    /// Names of the key columns.
    pub keys: Vec<&'static str>,
    /// Key values of each row.
    pub rows: Vec<Vec<String>>,
    /// Value column names (field names), without the total column.
    pub cols: Vec<String>,
    /// Human names of the value columns.
    pub col_titles: Vec<String>,
    /// What one unit of a value is.
    pub unit: &'static str,
    /// `(rows + 1) × (cols + 1)` values, the last row and column being the totals.
    pub values: Vec<Vec<i64>>,
    /// Distinct organisations behind each value, same shape.
    pub respondents: Vec<Vec<usize>>,
    /// Detailed or collapsed to the republic.
    pub level: Level,
    /// Suppressed cells, same shape (filled by the release).
    pub x: Vec<Vec<bool>>,
}

impl Table {
    /// Row count with the total row.
    pub fn height(&self) -> usize {
        self.rows.len() + 1
    }

    /// Column count with the total column.
    pub fn width(&self) -> usize {
        self.cols.len() + 1
    }
}

/// Counts items `(row key, column index, organisation, weight)` into a table over fixed columns.
fn crosstab(
    name: &'static str,
    title: &'static str,
    keys: Vec<&'static str>,
    cols: Vec<(String, String)>,
    unit: &'static str,
    items: impl Iterator<Item = (Vec<String>, usize, u64, i64)>,
) -> Table {
    let width = cols.len();
    let mut rows: BTreeMap<Vec<String>, Vec<(i64, HashSet<u64>)>> = BTreeMap::new();
    for (key, col, org, weight) in items {
        let row = rows
            .entry(key)
            .or_insert_with(|| vec![(0, HashSet::new()); width]);
        row[col].0 += weight;
        row[col].1.insert(org);
    }
    let mut values = Vec::new();
    let mut respondents = Vec::new();
    let mut col_sets: Vec<HashSet<u64>> = vec![HashSet::new(); width + 1];
    let mut col_sums = vec![0i64; width + 1];
    for cells in rows.values() {
        let mut vrow: Vec<i64> = cells.iter().map(|c| c.0).collect();
        let mut rrow: Vec<usize> = cells.iter().map(|c| c.1.len()).collect();
        let all: HashSet<u64> = cells.iter().flat_map(|c| c.1.iter().copied()).collect();
        vrow.push(vrow.iter().sum());
        rrow.push(all.len());
        for (c, cell) in cells.iter().enumerate() {
            col_sets[c].extend(cell.1.iter().copied());
            col_sums[c] += cell.0;
        }
        col_sets[width].extend(all);
        col_sums[width] += vrow[width];
        values.push(vrow);
        respondents.push(rrow);
    }
    values.push(col_sums);
    respondents.push(col_sets.iter().map(HashSet::len).collect());
    let (cols, col_titles) = cols.into_iter().unzip();
    let height = values.len();
    Table {
        name,
        title,
        keys,
        rows: rows.into_keys().collect(),
        cols,
        col_titles,
        unit,
        x: vec![vec![false; width + 1]; height],
        values,
        respondents,
        level: Level::Detailed,
    }
}

/// The respondent behind a case: its organisation, as a number that never leaves the process.
fn org(bin: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bin.hash(&mut h);
    h.finish()
}

fn region_cols() -> Vec<(String, String)> {
    let mut cols: Vec<_> = KATO_REGIONS
        .iter()
        .map(|(code, _, ru)| (format!("kato_{code}"), ru.to_string()))
        .collect();
    cols.push(("kato_unknown".into(), "Регион не указан".into()));
    cols
}

fn region_col(region: Option<&str>) -> usize {
    region
        .and_then(|r| {
            KATO_REGIONS
                .iter()
                .position(|(code, _, _)| r.starts_with(code))
        })
        .unwrap_or(KATO_REGIONS.len())
}

fn section_cols() -> Vec<(String, String)> {
    let mut cols: Vec<_> = OKED_SECTIONS
        .iter()
        .map(|(letter, _, _, ru)| (format!("oked_{letter}"), ru.to_string()))
        .collect();
    cols.push(("oked_unknown".into(), "Вид деятельности не указан".into()));
    cols
}

fn section_col(activity: Option<&str>) -> usize {
    activity
        .and_then(oked_section)
        .and_then(|s| {
            OKED_SECTIONS
                .iter()
                .position(|(letter, _, _, _)| *letter == s)
        })
        .unwrap_or(OKED_SECTIONS.len())
}

/// Reply-delay bins from the first SMS: (field name, title, upper bound in ms, exclusive).
pub const DELAY_BINS: [(&str, &str, i64); 6] = [
    ("under_1h", "до 1 часа", 3_600_000),
    ("1h_6h", "от 1 до 6 часов", 6 * 3_600_000),
    ("6h_24h", "от 6 до 24 часов", 24 * 3_600_000),
    ("1d_3d", "от 1 до 3 суток", 3 * 86_400_000),
    ("3d_6d", "от 3 до 6 суток", 6 * 86_400_000),
    ("6d_plus", "6 суток и более", i64::MAX),
];

/// `1`, `2`, or `None` for a matched reply's text (the first of the two digits it holds).
fn answer(text: &str) -> Option<&'static str> {
    text.chars().find_map(|c| match c {
        '1' => Some("1"),
        '2' => Some("2"),
        _ => None,
    })
}

/// The five tables of a release, in file order, and the SMS parts of one message.
pub fn build(cases: &[CaseFact], replies: &[ReplyFact], parts_per_sms: i64) -> Vec<Table> {
    let by_region = crosstab(
        "outcomes_by_region",
        "Исходы проактивного переоформления по причинам и регионам",
        vec!["outcome", "reason"],
        region_cols(),
        "cases",
        cases.iter().map(|c| {
            let key = vec![c.status.clone(), c.reason.clone().unwrap_or_default()];
            (key, region_col(c.region.as_deref()), org(&c.bin), 1)
        }),
    );
    let by_activity = crosstab(
        "outcomes_by_activity",
        "Исходы проактивного переоформления по секциям ОКЭД",
        vec!["outcome"],
        section_cols(),
        "cases",
        cases.iter().map(|c| {
            (
                vec![c.status.clone()],
                section_col(c.activity.as_deref()),
                org(&c.bin),
                1,
            )
        }),
    );
    let offers = crosstab(
        "sms_offers",
        "Отправленные SMS-предложения по исходам",
        vec!["outcome"],
        vec![
            ("offer_only".into(), "Только предложение".into()),
            (
                "offer_and_reminder".into(),
                "Предложение и напоминание".into(),
            ),
        ],
        "cases",
        cases.iter().filter(|c| c.attempt >= 1).map(|c| {
            let col = usize::from(c.attempt >= 2);
            (vec![c.status.clone()], col, org(&c.bin), 1)
        }),
    );
    let delays = crosstab(
        "reply_delay",
        "Ответы на SMS-предложение по времени от первого SMS",
        vec!["delay"],
        vec![
            ("reply_1".into(), "Ответ 1 (согласие)".into()),
            ("reply_2".into(), "Ответ 2 (отказ)".into()),
        ],
        "replies",
        replies.iter().filter_map(|r| {
            let col = match answer(&r.text)? {
                "1" => 0,
                _ => 1,
            };
            let delay = r.received_at - r.first_sent_at?;
            let bin = DELAY_BINS
                .iter()
                .position(|(_, _, upper)| delay < *upper)
                .unwrap_or(DELAY_BINS.len() - 1);
            // The bin's position keeps the rows in time order.
            let key = vec![format!("{}_{}", bin + 1, DELAY_BINS[bin].0)];
            Some((key, col, org(&r.bin), 1))
        }),
    );
    let parts = crosstab(
        "sms_parts",
        "Отправленные части SMS (UCS-2)",
        vec!["message"],
        vec![("parts".into(), "Частей SMS".into())],
        "SMS parts",
        cases.iter().flat_map(|c| {
            let o = org(&c.bin);
            let first =
                (c.attempt >= 1).then(|| (vec!["1_offer".to_string()], 0, o, parts_per_sms));
            let second =
                (c.attempt >= 2).then(|| (vec!["2_reminder".to_string()], 0, o, parts_per_sms));
            first.into_iter().chain(second)
        }),
    );
    vec![by_region, by_activity, offers, delays, parts]
}

/// Collapses a table's columns into one: the republic.
pub fn to_republic(t: &Table) -> Table {
    let mut r = t.clone();
    r.cols = vec!["kazakhstan".into()];
    r.col_titles = vec!["Республика Казахстан".into()];
    let w = t.cols.len();
    r.values = t.values.iter().map(|row| vec![row[w], row[w]]).collect();
    r.respondents = t
        .respondents
        .iter()
        .map(|row| vec![row[w], row[w]])
        .collect();
    r.x = vec![vec![false; 2]; r.values.len()];
    r.level = Level::Republic;
    r
}

/// The cells of every table and the equations between them. Returns the lattice and each table's first
/// cell index (cell `(i, j)` of table `t` is `offsets[t] + i * width + j`).
pub fn lattice(tables: &[Table]) -> (Lattice, Vec<usize>) {
    let mut l = Lattice::default();
    let mut offsets = Vec::new();
    for t in tables {
        let off = l.cells.len();
        offsets.push(off);
        let (h, w) = (t.height(), t.width());
        for i in 0..h {
            for j in 0..w {
                l.cells.push(Cell {
                    value: t.values[i][j],
                    respondents: t.respondents[i][j],
                    margin: i == h - 1 || j == w - 1,
                });
            }
        }
        let at = |i: usize, j: usize| off + i * w + j;
        for i in 0..h {
            let mut eq: Vec<_> = (0..w - 1).map(|j| (at(i, j), 1.0)).collect();
            eq.push((at(i, w - 1), -1.0));
            l.equations.push(eq);
        }
        for j in 0..w {
            let mut eq: Vec<_> = (0..h - 1).map(|i| (at(i, j), 1.0)).collect();
            eq.push((at(h - 1, j), -1.0));
            l.equations.push(eq);
        }
    }
    let cell = |t: usize, i: usize, j: usize| offsets[t] + i * tables[t].width() + j;
    // Shared margins: each outcome's total by region equals its total by activity.
    let (region, activity) = (&tables[0], &tables[1]);
    for (k, key) in activity.rows.iter().enumerate() {
        let mut eq: Vec<_> = region
            .rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r[0] == key[0])
            .map(|(i, _)| (cell(0, i, region.width() - 1), 1.0))
            .collect();
        eq.push((cell(1, k, activity.width() - 1), -1.0));
        l.equations.push(eq);
    }
    l.equations.push(vec![
        (cell(0, region.height() - 1, region.width() - 1), 1.0),
        (cell(1, activity.height() - 1, activity.width() - 1), -1.0),
    ]);
    // SMS parts are the SMS counts of the offers table times the parts of one SMS.
    let (offers, parts) = (&tables[2], &tables[4]);
    if let Some(per) = parts_per(parts, offers) {
        let (oh, ow) = (offers.height() - 1, offers.width() - 1);
        for (i, key) in parts.rows.iter().enumerate() {
            let sms = match key[0].as_str() {
                "1_offer" => cell(2, oh, ow),
                _ => cell(2, oh, 1),
            };
            l.equations.push(vec![(cell(4, i, 0), 1.0), (sms, -per)]);
        }
    }
    (l, offsets)
}

/// The parts of one SMS, read back from the tables (0 when nothing was sent).
fn parts_per(parts: &Table, offers: &Table) -> Option<f64> {
    let sent = *offers.values.last()?.last()?;
    let first = parts.rows.iter().position(|k| k[0] == "1_offer")?;
    (sent > 0).then(|| parts.values[first][0] as f64 / sent as f64)
}
