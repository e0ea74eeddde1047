//! The published data product (docs/DATA-PRODUCT.md) on both backends: a month of a synthetic world of
//! 10,000 organisations is written straight into the case store (the organisations, heads, numbers and names
//! of the mock's synthetic world; outcomes, SMS and replies by a seeded mix), published and extracted; then
//! the attacker of seed 002 solves everything the release publishes, the totals are checked against the
//! store, and the extract is searched for every identifier of the world. A last test goes end to end
//! through the engine and the mock with the `sdu` binary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use sdu::publish::{self, Control, Period, suppress, tables};
use sdu::store::Store;
use sqlx::Executor as _;

mod procs;

// ---------------------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------------------

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "sdu-data-product-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path).expect("create a temporary folder");
        Self(path)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh case store on one backend (the shared harness of `tests/procs`).
struct Db {
    store: Store,
    db: procs::TestDb,
}

impl Db {
    async fn sqlite() -> Self {
        let db = procs::TestDb::sqlite("data-product");
        Self {
            store: db.open().await,
            db,
        }
    }

    /// `None` when no PostgreSQL server is named (a failure instead under CI).
    async fn postgres() -> Option<Self> {
        let server = procs::postgres_server()?;
        let db = procs::TestDb::postgres(&server, "data_product").await;
        Some(Self {
            store: db.open().await,
            db,
        })
    }

    async fn cleanup(self) {
        match self.store {
            Store::Sqlite(pool) => pool.close().await,
            Store::Postgres(pool) => pool.close().await,
        }
        self.db.remove().await;
    }
}

async fn run_on<F, Fut>(db: Db, test: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let outcome = tokio::spawn(test(db.store.clone())).await;
    db.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn exec(store: &Store, sql: String) {
    match store {
        Store::Sqlite(p) => p.execute(sqlx::AssertSqlSafe(sql)).await.map(drop),
        Store::Postgres(p) => p.execute(sqlx::AssertSqlSafe(sql)).await.map(drop),
    }
    .expect("insert");
}

async fn count(store: &Store, sql: &str) -> i64 {
    let sql = sql.to_owned();
    match store {
        Store::Sqlite(p) => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(p)
                .await
        }
        Store::Postgres(p) => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(p)
                .await
        }
    }
    .expect("count")
}

// ---------------------------------------------------------------------------------------------------------
// The world
// ---------------------------------------------------------------------------------------------------------

const N: usize = 10_000;

/// Every identifier and name of the world, for the extract's search.
#[derive(Default)]
struct Identifiers {
    bins: BTreeSet<String>,
    iins: BTreeSet<String>,
    phones: BTreeSet<String>,
    names: BTreeSet<String>,
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn opt(s: &Option<String>) -> String {
    s.as_deref().map_or("NULL".into(), q)
}

/// Writes the month of the world into the store; returns its identifiers.
async fn populate(store: &Store) -> Identifiers {
    let mock = mock_registries::Mock::synthetic(N as u64, 7);
    let epoch = mock_registries::synthetic_epoch();
    mock.set_now(epoch);
    let mut renames = Vec::new();
    let mut cursor: Option<String> = None;
    while renames.len() < N {
        let page = mock.renames(cursor.as_deref(), 1000).expect("the feed");
        assert!(!page.renames.is_empty());
        renames.extend(page.renames);
        cursor = Some(page.next_cursor);
    }
    assert_eq!(renames.len(), N);
    let month_start = Utc
        .with_ymd_and_hms(2026, 10, 31, 19, 0, 0)
        .unwrap()
        .timestamp_millis();
    let mut ids = Identifiers::default();
    let mut cases = Vec::new();
    let mut replies = Vec::new();
    for (i, r) in renames.iter().enumerate() {
        let bin = r
            .bin
            .as_str()
            .expect("synthetic BINs are strings")
            .to_owned();
        let org = mock.organization(&bin).expect("the organisation");
        let text =
            |v: &Option<serde_json::Value>| v.as_ref().and_then(|v| v.as_str()).map(str::to_owned);
        let (region, activity, head) = (
            text(&org.region),
            text(&org.activity),
            text(&org.first_head),
        );
        ids.bins.insert(bin.clone());
        ids.names.insert(r.from.clone());
        ids.names.insert(r.to.clone());
        let mut phone = None;
        if let Some(iin) = &head {
            ids.iins.insert(iin.clone());
            if let Some(p) = mock.person(iin) {
                ids.names.insert(p.name.clone());
            }
            if let Some(m) = mock.mobile_number(iin) {
                let digits: String = m
                    .phone
                    .to_string()
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect();
                if digits.len() >= 10 {
                    ids.phones.insert(digits[digits.len() - 10..].to_owned());
                    phone = Some(format!("+7{}", &digits[digits.len() - 10..]));
                }
            }
        }
        let h = mix(i as u64 ^ 0xDA7A);
        let u = (h % 10_000) as f64 / 10_000.0;
        let (status, reason, attempt) = match u {
            u if u < 0.30 => ("not_applicable", Some("no_permit"), 0),
            u if u < 0.32 => ("not_applicable", Some("already_current"), 0),
            u if u < 0.33 => ("not_applicable", Some("liquidated"), 0),
            u if u < 0.343 => ("no_head", None, 0),
            u if u < 0.36 => ("ineligible", Some("deceased"), 0),
            u if u < 0.37 => ("ineligible", Some("residence_abroad"), 0),
            u if u < 0.373 => ("ineligible", Some("imprisoned"), 0),
            u if u < 0.375 => ("ineligible", Some("incapacitated"), 0),
            u if u < 0.42 => ("no_phone", Some("not_registered"), 0),
            u if u < 0.425 => ("no_phone", Some("invalid_number"), 0),
            u if u < 0.50 => ("declined", None, 1 + (h >> 20) as i64 % 2),
            u if u < 0.60 => ("expired", None, 2),
            u if u < 0.985 => ("reissued", None, 1 + i64::from((h >> 21).is_multiple_of(5))),
            u if u < 0.992 => ("failed", Some("reissue_rejected"), 1),
            u if u < 0.994 => ("superseded", None, 0),
            _ => ("failed", Some("invalid_data"), 0),
        };
        // Ended over 30 days of November; 3 % in December (outside the period).
        let day = (h >> 32) % 100;
        let ended_at = month_start
            + if day < 97 {
                (day * 30 / 97) as i64 * 86_400_000
            } else {
                31 * 86_400_000
            }
            + ((h >> 40) % 86_400_000) as i64 / 2;
        let first_sent_at =
            (attempt > 0).then(|| ended_at - 6 * 86_400_000 + ((h >> 8) % 3_600_000) as i64);
        if let (Some(sent), Some(_), "declined" | "reissued") = (first_sent_at, &phone, status) {
            let delay = [
                600_000i64,
                7_200_000,
                43_200_000,
                100_000_000,
                300_000_000,
                540_000_000,
            ][((h >> 12) % 6) as usize]
                + ((h >> 16) % 60_000) as i64;
            let answer = if status == "declined" { "2" } else { " 1." };
            replies.push(format!(
                "({}, 'm-{i}', {}, {}, {}, {}, 'matched', {}, {})",
                i + 1,
                opt(&phone),
                opt(&phone),
                q(answer),
                sent + delay,
                i + 1,
                sent + delay
            ));
        }
        cases.push(format!(
            "({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
            i + 1,
            q(&format!("{bin}-{}", r.at.timestamp_millis())),
            q(&bin),
            r.at.timestamp_millis(),
            q(&r.from),
            q(&r.to),
            q(status),
            opt(&reason.map(str::to_owned)),
            q("a detail with free text"),
            attempt,
            opt(&head),
            opt(&phone),
            first_sent_at.map_or("NULL".into(), |t| t.to_string()),
            ended_at - 1_000,
            ended_at,
            ended_at,
            opt(&region),
            opt(&activity),
        ));
    }
    for chunk in cases.chunks(500) {
        exec(
            store,
            format!(
                "INSERT INTO cases (id, case_key, bin, rename_at, from_name, to_name, status, reason, detail, attempt, \
                 head_iin, phone, first_sent_at, created_at, updated_at, ended_at, region, activity) VALUES {}",
                chunk.join(", ")
            ),
        )
        .await;
    }
    for chunk in replies.chunks(500) {
        exec(
            store,
            format!(
                "INSERT INTO replies (id, message_id, from_raw, phone, text, received_at, status, case_id, handled_at) \
                 VALUES {}",
                chunk.join(", ")
            ),
        )
        .await;
    }
    ids
}

fn november() -> Period {
    "2026-11".parse().unwrap()
}

// ---------------------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------------------

async fn a_month_of_ten_thousand_organisations_is_published_safely(store: Store) {
    let ids = populate(&store).await;
    let control = Control::default();
    let release = publish::release(&store, november(), control, sdu::sms::OFFER_KK)
        .await
        .unwrap();
    let in_period = count(
        &store,
        "SELECT COUNT(*) FROM cases WHERE ended_at >= 1793473200000 AND ended_at < 1796065200000",
    )
    .await;
    assert_eq!(release.cases as i64, in_period);
    assert!(in_period > 9_000 && in_period < N as i64, "{in_period}");

    // Primary: every non-empty cell on fewer than min_respondents organisations is X.
    let mut suppressed = 0;
    for t in &release.tables {
        for (i, row) in t.respondents.iter().enumerate() {
            for (j, &r) in row.iter().enumerate() {
                if r > 0 && r < control.min_respondents {
                    assert!(
                        t.x[i][j],
                        "{} ({i}, {j}) rests on {r} and is published",
                        t.name
                    );
                }
                suppressed += usize::from(t.x[i][j]);
            }
        }
    }
    assert!(
        suppressed > 0,
        "a world this size has single-respondent cells"
    );

    // The attacker: everything published, every X an unknown ≥ 0, min and max of each X by LP.
    let (lattice, _) = tables::lattice(&release.tables);
    let x: Vec<bool> = release
        .tables
        .iter()
        .flat_map(|t| t.x.iter().flatten().copied())
        .collect();
    let intervals = suppress::intervals(&lattice, &x);
    assert_eq!(intervals.len(), suppressed);
    for iv in &intervals {
        assert!(
            iv.max - iv.min >= 1.0 - 1e-6,
            "X cell {} is recoverable: {iv:?}",
            iv.cell
        );
        let truth = lattice.cells[iv.cell].value as f64;
        assert!(
            iv.min - 1e-6 <= truth && truth <= iv.max + 1e-6,
            "{iv:?} excludes {truth}"
        );
    }

    // Unsuppressed totals match the store exactly.
    let by_activity = &release.tables[1];
    let w = by_activity.width() - 1;
    for (i, key) in by_activity.rows.iter().enumerate() {
        let stored = count(
            &store,
            &format!(
                "SELECT COUNT(*) FROM cases WHERE status = '{}' AND ended_at >= 1793473200000 AND ended_at < 1796065200000",
                key[0]
            ),
        )
        .await;
        if !by_activity.x[i][w] {
            assert_eq!(by_activity.values[i][w], stored, "{}", key[0]);
        }
    }
    let by_region = &release.tables[0];
    if by_region.level == tables::Level::Detailed {
        let last = by_region.height() - 1;
        for (j, col) in by_region.cols.iter().enumerate() {
            let Some(code) = col.strip_prefix("kato_").filter(|c| *c != "unknown") else {
                continue;
            };
            let stored = count(
                &store,
                &format!(
                    "SELECT COUNT(*) FROM cases WHERE region LIKE '{code}%' AND ended_at >= 1793473200000 AND ended_at < 1796065200000"
                ),
            )
            .await;
            if !by_region.x[last][j] {
                assert_eq!(by_region.values[last][j], stored, "{col}");
            }
        }
    }
    let sent = count(
        &store,
        "SELECT COUNT(*) FROM cases WHERE first_sent_at IS NOT NULL AND ended_at >= 1793473200000 AND ended_at < 1796065200000",
    )
    .await;
    let offers = &release.tables[2];
    assert_eq!(offers.values[offers.height() - 1][offers.width() - 1], sent);

    // Reproducible: byte-identical files, the data's instant stated.
    let (a, b) = (TempDir::new(), TempDir::new());
    publish::write(&release, a.path()).unwrap();
    // SDU_DATA_PRODUCT_KEEP=DIR keeps a copy of the release for a reader (or `frictionless validate`).
    if let Ok(keep) = std::env::var("SDU_DATA_PRODUCT_KEEP") {
        publish::write(&release, Path::new(&keep)).unwrap();
    }
    let again = publish::release(&store, november(), control, sdu::sms::OFFER_KK)
        .await
        .unwrap();
    publish::write(&again, b.path()).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(a.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names.len(), 9);
    for name in &names {
        assert_eq!(
            std::fs::read(a.path().join(name)).unwrap(),
            std::fs::read(b.path().join(name)).unwrap()
        );
    }
    let max_updated = count(
        &store,
        "SELECT MAX(updated_at) FROM cases WHERE ended_at >= 1793473200000 AND ended_at < 1796065200000",
    )
    .await;
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.path().join("metadata.json")).unwrap()).unwrap();
    assert_eq!(
        meta["data_as_of"],
        sdu::store::from_ms(max_updated).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    let register: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.path().join("register_entry.json")).unwrap())
            .unwrap();
    assert_eq!(register.as_object().unwrap().len(), 8);
    let passport: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.path().join("passport.json")).unwrap()).unwrap();
    let described = passport["attributes"].as_array().unwrap().len();
    let columns: usize = release
        .tables
        .iter()
        .map(|t| t.keys.len() + t.cols.len() + 1)
        .sum();
    // Every field of seed 003's passport (appendix 2) is filled.
    for (section, fields) in [
        (
            "general",
            &[
                "full_name",
                "short_name",
                "category",
                "provider",
                "description",
                "keywords",
            ][..],
        ),
        ("update", &["frequency"][..]),
        (
            "geo_binding",
            &["present", "geometry", "kind", "address_attribute"][..],
        ),
    ] {
        for f in fields {
            let v = &passport[section][f];
            assert!(
                !v.is_null() && v != "" && v != &serde_json::json!([]),
                "{section}.{f}"
            );
        }
    }
    for a in passport["attributes"].as_array().unwrap() {
        for f in [
            "technical_name",
            "name",
            "group_attribute",
            "type",
            "mandatory",
        ] {
            assert!(!a[f].is_null(), "attribute {a} lacks {f}");
        }
    }
    assert_eq!(
        passport["value_requirements"].as_array().unwrap().len(),
        described
    );
    assert_eq!(
        passport["validation_examples"].as_array().unwrap().len(),
        release.tables.len()
    );
    assert_eq!(
        described, columns,
        "every attribute of every table is in the passport"
    );

    // Nothing published names anyone.
    let mut published = String::new();
    for name in &names {
        published.push_str(&std::fs::read_to_string(a.path().join(name)).unwrap());
    }
    assert_no_identifier(&published, &ids);

    // The research extract: no identifier, k-anonymous, its grant recorded.
    let dir = TempDir::new();
    let file = dir.path().join("extract.csv");
    let cmd = publish::extract::ExtractCommand {
        command: None,
        period: Some(november()),
        researcher: Some("Researcher A".into()),
        approved_by: Some("InfoSec B".into()),
        delete_by: Some(chrono::NaiveDate::from_ymd_opt(2027, 6, 30).unwrap()),
        out: Some(file.clone()),
        k: Some(5),
    };
    let now = Utc.with_ymd_and_hms(2026, 12, 5, 6, 0, 0).unwrap();
    let said = publish::extract::run(&cmd, &store, now, 5).await.unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    assert_no_identifier(&text, &ids);
    assert!(!text.contains("free text"));
    let mut groups: BTreeMap<Vec<&str>, usize> = BTreeMap::new();
    let mut lines = 0;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 7, "{line}");
        *groups.entry(vec![f[1], f[2], f[3], f[4]]).or_default() += 1;
        lines += 1;
    }
    assert!(
        lines as i64 > in_period * 9 / 10,
        "{lines} of {in_period} kept"
    );
    for (qi, n) in &groups {
        assert!(*n >= 5, "{qi:?} is shared by {n} lines only");
    }
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()));
    assert!(said.contains(&sha), "{said}");
    let list = publish::extract::run(
        &publish::extract::ExtractCommand {
            command: Some(publish::extract::ExtractSub::List),
            period: None,
            researcher: None,
            approved_by: None,
            delete_by: None,
            out: None,
            k: None,
        },
        &store,
        now,
        5,
    )
    .await
    .unwrap();
    assert!(
        list.contains(&sha)
            && list.contains("Researcher A")
            && list.contains("InfoSec B")
            && list.contains("2027-06-30")
    );
    // A second extract uses a new key: no pseudonym in common.
    let file2 = dir.path().join("extract2.csv");
    let cmd2 = publish::extract::ExtractCommand {
        out: Some(file2.clone()),
        ..cmd
    };
    publish::extract::run(&cmd2, &store, now, 5).await.unwrap();
    let first: BTreeSet<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    let second = std::fs::read_to_string(&file2).unwrap();
    assert!(
        second
            .lines()
            .skip(1)
            .all(|l| !first.contains(l.split(',').next().unwrap()))
    );
}

fn assert_no_identifier(text: &str, ids: &Identifiers) {
    let digits: String = text
        .chars()
        .map(|c| if c.is_ascii_digit() { c } else { ' ' })
        .collect();
    let numbers: BTreeSet<&str> = digits.split_whitespace().collect();
    // Every identifier is a run of digits: look for it in every run, at every offset.
    for n in &numbers {
        for w in 0..n.len().saturating_sub(9) {
            let ten = &n[w..w + 10];
            assert!(!ids.phones.contains(ten), "a phone is published");
            if w + 12 <= n.len() {
                let twelve = &n[w..w + 12];
                assert!(
                    !ids.bins.contains(twelve) && !ids.iins.contains(twelve),
                    "an identifier is published: {twelve}"
                );
            }
        }
    }
    // A name can appear only if each of its words does: look words up first, then search for the name.
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let present: BTreeSet<String> = words(text).into_iter().collect();
    for name in &ids.names {
        if words(name).iter().all(|w| present.contains(w)) {
            assert!(!text.contains(name.as_str()), "a name is published: {name}");
        }
    }
}

mod sqlite {
    #[tokio::test]
    async fn a_month_of_ten_thousand_organisations_is_published_safely() {
        super::run_on(
            super::Db::sqlite().await,
            super::a_month_of_ten_thousand_organisations_is_published_safely,
        )
        .await;
    }
}

mod postgres {
    #[tokio::test]
    async fn a_month_of_ten_thousand_organisations_is_published_safely() {
        let Some(db) = super::Db::postgres().await else {
            return;
        };
        super::run_on(
            db,
            super::a_month_of_ten_thousand_organisations_is_published_safely,
        )
        .await;
    }
}

/// Through the engine and the mock: `sdu run` over a synthetic world stores each case's region and
/// activity, and `sdu publish` counts every case that ended.
#[test]
fn end_to_end_through_the_engine_and_the_mock() {
    let dir = TempDir::new();
    let db = format!("sqlite://{}", dir.path().join("e2e.db").display());
    let sdu = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sdu"))
            .args(args)
            .args(["--database", &db])
            .env_remove("SDU_DATABASE_URL")
            .output()
            .expect("run sdu");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    sdu(&[
        "run",
        "--mock",
        "synthetic:400",
        "--now",
        "2026-11-02T10:00:00+05:00",
    ]);
    let out = dir.path().join("release");
    let said = sdu(&[
        "publish",
        "--period",
        "2026-11",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(said.contains("published"), "{said}");
    let csv = std::fs::read_to_string(out.join("outcomes_by_region.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let total: Vec<&str> = csv.lines().last().unwrap().split(',').collect();
    assert_eq!(total[0], "total");
    // The engine stored the regions: the grand total is not all in the "unknown" column.
    let unknown = header.iter().position(|h| *h == "kato_unknown");
    let grand = total
        .last()
        .unwrap()
        .parse::<i64>()
        .expect("the grand total is published");
    assert!(grand > 50, "{grand}");
    if let Some(u) = unknown {
        assert_ne!(total[u], total.last().unwrap().to_string());
    }
    let listing = sdu(&["extract", "list"]);
    assert!(listing.starts_with("id\tperiod"));
}
