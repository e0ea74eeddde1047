//! Child processes for the kill and shutdown tests: the `sdu` binary cargo built for the test, the
//! `mock-registries` binary beside it, and a fresh database per run.
//!
//! `cargo test -p sdu` builds only sdu's own binaries, so [`mock_bin`] builds `mock-registries` itself when
//! the binary is missing or older than its sources (one `cargo build`, shared by every test of the binary).

#![allow(dead_code)] // each test binary uses its own part of this module

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use mock_registries::{RenameView, RenamesPageView, SentSmsView, StateView};
use sdu::store::Store;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// The `sdu` binary under test.
pub fn sdu_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sdu"))
}

/// The `mock-registries` binary of the same profile, built first if it is missing or stale.
pub fn mock_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(build_mock).clone()
}

fn build_mock() -> PathBuf {
    let bin = sdu_bin().with_file_name(format!("mock-registries{}", std::env::consts::EXE_SUFFIX));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    let sources = newest(&root.join("mock-registries"));
    if built.is_some_and(|b| sources.is_none_or(|s| s <= b)) {
        return bin;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = std::process::Command::new(cargo);
    build.current_dir(root).args([
        "build",
        "--quiet",
        "-p",
        "mock-registries",
        "--bin",
        "mock-registries",
    ]);
    if bin.parent().and_then(Path::file_name) == Some("release".as_ref()) {
        build.arg("--release");
    }
    let status = build.status().expect("cargo can be started");
    assert!(status.success(), "cargo build -p mock-registries failed");
    bin
}

/// The newest modification time of the sources under `dir` (its `src/` and `Cargo.toml`).
fn newest(dir: &Path) -> Option<SystemTime> {
    fn walk(path: &Path, best: &mut Option<SystemTime>) {
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        if meta.is_dir() {
            for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
                walk(&entry.path(), best);
            }
        } else if let Ok(t) = meta.modified() {
            *best = Some(best.map_or(t, |b| b.max(t)));
        }
    }
    let mut best = None;
    walk(&dir.join("src"), &mut best);
    walk(&dir.join("Cargo.toml"), &mut best);
    best
}

/// A `mock-registries` child process and a client of its control endpoints.
pub struct MockChild {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    http: reqwest::Client,
}

impl MockChild {
    /// Starts `mock-registries ARGS --listen 127.0.0.1:0` and waits for its `listening on` line.
    pub async fn start(args: &[&str]) -> Self {
        let mut child = Command::new(mock_bin())
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("mock-registries starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("mock-registries prints its address")
            .expect("mock-registries stdout")
            .expect("a `listening on` line");
        let url = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from mock-registries: {line}"))
            .trim()
            .to_owned();
        Self {
            child,
            url,
            http: reqwest::Client::new(),
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// Sets the mock's clock.
    pub async fn set_clock(&self, now: DateTime<Utc>) {
        self.send(
            reqwest::Method::POST,
            "/_control/clock",
            Some(json!({"now": now.to_rfc3339()})),
        )
        .await;
    }

    /// A head answers, at the mock's now.
    pub async fn reply(&self, from: &str, text: &str) {
        self.send(
            reqwest::Method::POST,
            "/_control/sms/reply",
            Some(json!({"from": from, "text": text})),
        )
        .await;
    }

    /// Renames an organisation again, at `at`.
    pub async fn rename(&self, bin: &str, to: &str, at: DateTime<Utc>) {
        self.send(
            reqwest::Method::POST,
            "/_control/rename",
            Some(json!({"bin": bin, "to": to, "at": at.to_rfc3339()})),
        )
        .await;
    }

    /// Replaces or adds one record of a system, as a scenario `update` event does (a registry's data
    /// corrected).
    pub async fn update(&self, system: &str, record: Value) {
        self.send(
            reqwest::Method::POST,
            "/_control/update",
            Some(json!({"system": system, "record": record})),
        )
        .await;
    }

    /// Switches a fault on (`{"system", "mode", "rate", "delay_ms"}`).
    pub async fn set_fault(&self, fault: Value) {
        self.send(reqwest::Method::POST, "/_control/faults", Some(fault))
            .await;
    }

    /// Clears every fault.
    pub async fn clear_faults(&self) {
        self.send(reqwest::Method::DELETE, "/_control/faults", None)
            .await;
    }

    /// Requests served per system so far.
    pub async fn calls(&self) -> BTreeMap<String, u64> {
        self.get("/_control/calls").await
    }

    /// Every SMS the gateway accepted.
    pub async fn sent(&self) -> Vec<SentSmsView> {
        self.get("/_control/sms/sent").await
    }

    /// Permits, consents and SDU records as they stand.
    pub async fn state(&self) -> StateView {
        self.get("/_control/state").await
    }

    /// The whole rename feed as it stands at the mock's now.
    pub async fn feed(&self) -> Vec<RenameView> {
        let mut all = Vec::new();
        let mut cursor = String::new();
        loop {
            let page: RenamesPageView = self
                .get(&format!(
                    "/legal_entities/renames?limit=5000&cursor={cursor}"
                ))
                .await;
            if page.renames.is_empty() {
                return all;
            }
            all.extend(page.renames);
            cursor = page.next_cursor;
        }
    }

    /// Stops the mock.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Where one run keeps its cases: a fresh SQLite file or a fresh PostgreSQL database, dropped at the end.
pub struct TestDb {
    /// The `--database` URL.
    pub url: String,
    dir: Option<PathBuf>,
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// A new SQLite file in a new temporary folder.
    pub fn sqlite(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sdu-{tag}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temporary folder");
        Self {
            url: format!("sqlite://{}", dir.join("k.db").display()),
            dir: Some(dir),
            postgres: None,
        }
    }

    /// A new database on the PostgreSQL server `server` (a URL naming any database on it).
    pub async fn postgres(server: &str, tag: &str) -> Self {
        use sqlx::Executor;
        let name = format!("sdu_{tag}_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(server)
            .await
            .expect("PostgreSQL at SDU_TEST_POSTGRES answers");
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("CREATE DATABASE");
        admin.close().await;
        Self {
            url: sdu::scenario::replace_database(server, &name),
            dir: None,
            postgres: Some((server.to_owned(), name)),
        }
    }

    /// Opens the store (migrating it, as every command does).
    pub async fn open(&self) -> Store {
        Store::open(&self.url).await.expect("the case store opens")
    }

    /// Removes the file or drops the database.
    pub async fn remove(self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some((server, name)) = &self.postgres {
            use sqlx::Executor;
            if let Ok(admin) = sqlx::PgPool::connect(server).await {
                let _ = admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .await;
                admin.close().await;
            }
        }
    }
}

/// One integer from an SQL query both backends accept.
pub async fn scalar(store: &Store, sql: &'static str) -> i64 {
    match store {
        Store::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        Store::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await,
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// One text column of an SQL query both backends accept.
pub async fn texts(store: &Store, sql: &'static str) -> Vec<String> {
    match store {
        Store::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await,
        Store::Postgres(p) => sqlx::query_scalar(sql).fetch_all(p).await,
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Every case, in id order.
pub async fn all_cases(store: &Store) -> Vec<sdu::store::CaseRow> {
    let mut out = Vec::new();
    loop {
        let after = out.last().map_or(0, |c: &sdu::store::CaseRow| c.id);
        let page = store.cases_page(after, 5000).await.expect("cases");
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// How to start `sdu` against one mock and one database.
#[derive(Debug, Clone)]
pub struct Sdu {
    /// `--database`.
    pub database: String,
    /// `SDU_BASE_URL`.
    pub base_url: String,
    /// Further `SDU_*` settings.
    pub env: Vec<(String, String)>,
}

impl Sdu {
    /// `sdu --database … --now NOW ARGS`, with only the settings given here (the test's own `SDU_*`
    /// variables are not passed on).
    pub fn command(&self, now: DateTime<Utc>, args: &[&str]) -> Command {
        let mut command = Command::new(sdu_bin());
        for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("SDU_")) {
            command.env_remove(name);
        }
        command
            .env("SDU_BASE_URL", &self.base_url)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(["--database", &self.database, "--now", &now.to_rfc3339()])
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Runs `sdu ARGS` to the end; returns its status, stdout and stderr.
    pub async fn output(&self, now: DateTime<Utc>, args: &[&str]) -> (ExitStatus, String, String) {
        let out = self
            .command(now, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .await
            .expect("sdu starts");
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// A running `sdu daemon`; its output is collected in the background (a closed stdout would make its
/// last `println!` fail).
pub struct Daemon {
    child: Child,
    /// The operator API, `http://ADDR`.
    pub api: String,
    stdout: tokio::task::JoinHandle<String>,
    stderr: tokio::task::JoinHandle<String>,
}

impl Daemon {
    /// Starts `sdu daemon` and waits until it prints its operator API address: from then on it handles
    /// SIGTERM.
    pub async fn start(sdu: &Sdu, now: DateTime<Utc>) -> Self {
        let mut child = sdu
            .command(now, &["daemon"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sdu daemon starts");
        let stderr = tokio::spawn(drain(child.stderr.take()));
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let api = tokio::time::timeout(Duration::from_secs(120), async {
            while let Some(line) = lines.next_line().await.ok().flatten() {
                if let Some(rest) = line.strip_prefix("sdu daemon: operator API on ") {
                    return rest.split(';').next().map(str::to_owned);
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        let Some(api) = api else {
            let _ = child.start_kill();
            let _ = child.wait().await;
            let stderr = stderr.await.unwrap_or_default();
            panic!("sdu daemon did not start: {stderr}");
        };
        let stdout = tokio::spawn(async move {
            let mut rest = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                rest.push_str(&line);
                rest.push('\n');
            }
            rest
        });
        Self {
            child,
            api,
            stdout,
            stderr,
        }
    }

    /// The exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("daemon status")
    }

    /// SIGTERM, then waits up to `within` for the exit; returns the status (`None` if it did not exit in
    /// time, in which case it is killed) and everything it printed after its start line.
    pub async fn terminate(mut self, within: Duration) -> (Option<ExitStatus>, String) {
        terminate(&self.child);
        let status = match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => Some(status.expect("daemon status")),
            Err(_) => {
                let _ = self.child.kill().await;
                None
            }
        };
        (status, self.output().await)
    }

    /// SIGKILL; returns what it printed.
    pub async fn kill(mut self) -> String {
        let _ = self.child.kill().await;
        self.output().await
    }

    async fn output(self) -> String {
        let stdout = self.stdout.await.unwrap_or_default();
        let stderr = self.stderr.await.unwrap_or_default();
        format!("{stdout}{stderr}")
    }
}

/// Sends SIGTERM to a child (through `kill(1)`, to need no FFI).
pub fn terminate(child: &Child) {
    let pid = child.id().expect("the child is still running");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill(1) runs");
    assert!(status.success(), "kill -TERM {pid} failed");
}

/// Reads what is left of a piped stream (for failure messages).
pub async fn drain<R: tokio::io::AsyncRead + Unpin>(stream: Option<R>) -> String {
    let mut text = String::new();
    if let Some(mut s) = stream {
        let _ = s.read_to_string(&mut text).await;
    }
    text
}

/// A small seeded generator (SplitMix64), so that a failing run can be repeated with its seed.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// `SDU_TEST_POSTGRES`, or `None` after printing the skip line; with `CI` set, a panic instead of the skip
/// (every PostgreSQL test goes through here or [`skip_postgres`]).
pub fn postgres_server() -> Option<String> {
    match std::env::var("SDU_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            skip_postgres("SDU_TEST_POSTGRES not set");
            None
        }
    }
}

/// Says why a PostgreSQL test is skipped, or, when the environment variable `CI` is set (to anything but
/// empty, `0` or `false`), fails the test: CI never skips the PostgreSQL tests silently.
pub fn skip_postgres(why: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"));
    assert!(
        !ci,
        "CI is set but this PostgreSQL test cannot run: {why} (set SDU_TEST_POSTGRES to a server, e.g. \
         postgres://postgres@127.0.0.1:5432/test)"
    );
    println!("skipped: {why}");
}

/// The keys of the consents, SDU records and re-issued permits (permit id, key, holder name) the mock holds.
pub struct ReissueWrites {
    pub consents: std::collections::BTreeSet<String>,
    pub sdu_records: std::collections::BTreeSet<String>,
    pub permits: std::collections::BTreeSet<(String, String, String)>,
}

/// Consents, re-issues and write-backs in the mock's `state`: each written once, exactly one per step of each
/// re-issued case of `cases`, none elsewhere, every permit under the case's new name. Shared by the kill
/// harness and the database-fault tests.
pub fn assert_reissue_writes_once(
    state: &StateView,
    cases: &[sdu::store::CaseRow],
) -> ReissueWrites {
    use std::collections::BTreeSet;
    let consents: BTreeSet<String> = state
        .consents
        .iter()
        .map(|c| c.idempotency_key.clone())
        .collect();
    assert_eq!(
        consents.len(),
        state.consents.len(),
        "a consent recorded twice"
    );
    let sdu_records: BTreeSet<String> = state
        .sdu_records
        .iter()
        .map(|r| r.idempotency_key.clone())
        .collect();
    assert_eq!(
        sdu_records.len(),
        state.sdu_records.len(),
        "an SDU record written twice"
    );
    let reissued: Vec<_> = cases.iter().filter(|c| c.status == "reissued").collect();
    assert!(!reissued.is_empty(), "the plan re-issues permits");
    let want = |step: &str| -> BTreeSet<String> {
        reissued
            .iter()
            .map(|c| format!("{}:{step}", c.case_key))
            .collect()
    };
    assert_eq!(consents, want("consent"), "consents vs re-issued cases");
    assert_eq!(sdu_records, want("sdu"), "SDU records vs re-issued cases");
    let mut want_permits = BTreeSet::new();
    for c in &reissued {
        assert_eq!(
            c.reissued_ids(),
            c.permit_ids(),
            "case {}: permits re-issued",
            c.id
        );
        for p in c.permit_ids() {
            want_permits.insert((
                p.clone(),
                format!("{}:reissue:{p}", c.case_key),
                c.to_name.clone(),
            ));
        }
    }
    let permit_writes: Vec<_> = state
        .permits
        .iter()
        .filter_map(|p| {
            let key = p.idempotency_key.clone()?;
            Some((p.permit_id.clone(), key, p.holder_name.clone()))
        })
        .collect();
    let permits: BTreeSet<_> = permit_writes.iter().cloned().collect();
    assert_eq!(
        permits.len(),
        permit_writes.len(),
        "a permit re-issued twice"
    );
    assert_eq!(
        permits, want_permits,
        "permits re-issued vs re-issued cases"
    );
    ReissueWrites {
        consents,
        sdu_records,
        permits,
    }
}

/// The monotonic clock, for the tests' own timing (deadlines, elapsed times): the test crate's one
/// sanctioned reading of it.
#[allow(clippy::disallowed_methods)] // tests time real processes and servers
pub fn now() -> std::time::Instant {
    std::time::Instant::now()
}

/// An RFC 3339 instant of a test's plan.
pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("plan times are RFC 3339")
        .with_timezone(&Utc)
}

/// Waits up to `within` for `condition`; false if it never held.
pub async fn eventually<F, Fut>(within: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    tokio::time::timeout(within, async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .is_ok()
}
