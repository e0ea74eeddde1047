//! The `sdu` command line as operators and scripts use it (docs/RULES.md §3): the built binary runs as a child
//! process in a private temporary folder, with a clean environment.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

mod procs;

use serde_json::Value;
use tokio::io::AsyncBufReadExt as _;
use tokio::process::Command;

const DEMO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/mock-registries/fixtures/demo.yaml"
);
/// A demo organisation whose head is eligible and has a usable number: it gets an offer.
const OFFERED_BIN: &str = "150340517501";
const OFFERED_HEAD_IIN: &str = "580403372196";
const OFFERED_PHONE: &str = "+77011234567";
const OFFERED_HEAD_NAME: &str = "Ерлан";
const OFFER_TEXT_START: &str = "Құрметті көрсетілетін қызметті алушы!";

// ---------------------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------------------

/// A temporary folder removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("sdu-cli-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).expect("create a temporary folder");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .expect("read the temporary folder")
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a run of `sdu` left behind.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Run {
    fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{self}"))
    }
}

/// Runs `sdu args…` in `cwd` with only the given `SDU_*` variables set.
async fn sdu(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sdu"));
    command
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command.output().await.expect("run sdu").into()
}

fn sqlite_url(dir: &TempDir, name: &str) -> String {
    format!("sqlite://{}", dir.join(name).display())
}

/// The mock registries serving `fixture`, outside the `sdu` process: the `mock-registries` binary when it
/// has been built beside `sdu` (as `cargo test --workspace` does), otherwise the same mock from its library,
/// served from this test process.
struct ExternalMock {
    base_url: String,
    /// The child process (killed on drop), when the binary serves.
    _process: Option<tokio::process::Child>,
    /// The mock, when this process serves it.
    _in_process: Option<mock_registries::Mock>,
}

impl ExternalMock {
    async fn start(fixture: &str) -> Self {
        let binary = Path::new(env!("CARGO_BIN_EXE_sdu"))
            .with_file_name(format!("mock-registries{}", std::env::consts::EXE_SUFFIX));
        if binary.exists() {
            Self::start_binary(&binary, fixture).await
        } else {
            println!(
                "note: {} is not built; serving the mock from its library in this process",
                binary.display()
            );
            Self::start_in_process(fixture).await
        }
    }

    async fn start_binary(binary: &Path, fixture: &str) -> Self {
        let mut child = Command::new(binary)
            .args(["--fixture", fixture, "--listen", "127.0.0.1:0"])
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start mock-registries");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = lines
            .next_line()
            .await
            .expect("read mock-registries' first line")
            .expect("mock-registries prints its address before anything else");
        let base_url = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from mock-registries: {line}"))
            .to_owned();
        Self {
            base_url,
            _process: Some(child),
            _in_process: None,
        }
    }

    async fn start_in_process(fixture: &str) -> Self {
        let scenario = mock_registries::Scenario::load(Path::new(fixture)).expect("load fixture");
        let mock = mock_registries::Mock::from_registries(&scenario.registries, 0);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = mock.spawn(listener).await.expect("serve the mock");
        Self {
            base_url: format!("http://{addr}"),
            _process: None,
            _in_process: Some(mock),
        }
    }

    async fn get(&self, path: &str) -> Value {
        let response = reqwest::get(format!("{}{path}", self.base_url))
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().await.expect("a JSON body")
    }
}

/// Asserts that output meant for people carries no full identifier of the offered head.
fn assert_no_personal_data(text: &str) {
    for secret in [
        OFFERED_HEAD_IIN,
        OFFERED_PHONE,
        "7011234567",
        OFFERED_HEAD_NAME,
    ] {
        assert!(
            !text.contains(secret),
            "output reveals personal data (…{}):\n{text}",
            &secret[secret.len().saturating_sub(4)..]
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// dry-run
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn dry_run_with_an_invalid_bin_prints_one_line_and_exits_2() {
    let dir = TempDir::new();
    let rows = [
        ("too short", "123"),
        ("a wrong control digit", "201140000018"),
        ("letters", "20114000001X"),
    ];
    for (why, bin) in rows {
        let run = sdu(
            dir.path(),
            &[
                "--database",
                &sqlite_url(&dir, "x.db"),
                "dry-run",
                "--bin",
                bin,
            ],
            &[],
        )
        .await;

        assert_eq!(run.code, Some(2), "{why}: {run}");
        let lines = run.stderr_lines();
        assert_eq!(lines.len(), 1, "{why}: one line on stderr: {run}");
        assert!(lines[0].starts_with("sdu: "), "{why}: {run}");
        assert!(lines[0].contains("BIN"), "{why}: says what is wrong: {run}");
        assert!(
            !run.stderr.contains("panicked"),
            "{why}: no stack trace: {run}"
        );
        assert!(run.stdout.is_empty(), "{why}: {run}");
    }
    assert!(
        dir.entries().is_empty(),
        "nothing was created: {:?}",
        dir.entries()
    );
}

#[tokio::test]
async fn dry_run_traces_an_offer_with_its_sms_and_writes_nothing() {
    let dir = TempDir::new();

    let run = sdu(
        dir.path(),
        &[
            "--database",
            &sqlite_url(&dir, "x.db"),
            "--now",
            "2026-11-02T10:00:00+05:00",
            "dry-run",
            "--bin",
            OFFERED_BIN,
            "--mock",
            DEMO,
        ],
        &[],
    )
    .await;

    assert_eq!(run.code, Some(0), "{run}");
    for finding in [
        "legal_entities",
        "e_license",
        "civil_registry",
        "individuals",
        "mobile_base",
    ] {
        assert!(
            run.stdout.contains(finding),
            "the {finding} finding is shown: {run}"
        );
    }
    assert!(run.stdout.contains("decision: offer"), "{run}");
    assert!(
        run.stdout.contains(OFFER_TEXT_START),
        "the SMS text is shown: {run}"
    );
    assert!(
        run.stdout.contains("KZ-TS-0101"),
        "the permit to re-issue is shown: {run}"
    );
    assert!(
        run.stdout.contains("4567"),
        "the number is shown masked: {run}"
    );
    assert_no_personal_data(&run.stdout);
    assert_no_personal_data(&run.stderr);
    assert!(
        !dir.join("x.db").exists() && !dir.join("sdu.db").exists(),
        "a dry run opens no database: {:?}",
        dir.entries()
    );
    assert!(dir.entries().is_empty(), "{:?}", dir.entries());
}

#[tokio::test]
async fn dry_run_json_gives_the_decision_of_each_kind_of_organisation() {
    let dir = TempDir::new();
    let rows = [
        ("an eligible head with a number", OFFERED_BIN, "offer", None),
        (
            "only another service's permit",
            "231140246241",
            "not_applicable",
            Some("no_permit"),
        ),
        ("no first head", "240440650661", "no_head", None),
        (
            "a deceased head",
            "220740411754",
            "ineligible",
            Some("deceased"),
        ),
        (
            "no registered number",
            "070940751073",
            "no_phone",
            Some("not_registered"),
        ),
        (
            "a Russian number",
            "150640911330",
            "no_phone",
            Some("invalid_number"),
        ),
    ];
    for (why, bin, decision, reason) in rows {
        let run = sdu(
            dir.path(),
            &[
                "--now",
                "2026-11-02T10:00:00+05:00",
                "dry-run",
                "--bin",
                bin,
                "--mock",
                DEMO,
                "--json",
            ],
            &[],
        )
        .await;

        assert_eq!(run.code, Some(0), "{why}: {run}");
        let trace = run.json();
        assert_eq!(trace["bin"], bin, "{why}");
        assert_eq!(trace["decision"], decision, "{why}: {run}");
        assert_eq!(trace["reason"].as_str(), reason, "{why}: {run}");
        let sms = &trace["sms"];
        if decision == "offer" {
            assert!(
                sms["text"].as_str().unwrap().starts_with(OFFER_TEXT_START),
                "{why}"
            );
            assert_eq!(sms["encoding"], "UCS-2", "{why}: Kazakh letters need UCS-2");
            assert_eq!(
                trace["permits_to_reissue"],
                serde_json::json!(["KZ-TS-0101"])
            );
        } else {
            assert!(sms.is_null(), "{why}: no SMS without an offer: {run}");
        }
        assert_no_personal_data(&run.stdout);
    }
    assert!(dir.entries().is_empty(), "{:?}", dir.entries());
}

#[tokio::test]
async fn dry_run_against_a_separately_started_mock_sends_and_writes_nothing() {
    let dir = TempDir::new();
    let mock = ExternalMock::start(DEMO).await;
    let state_before = mock.get("/_control/state").await;

    let run = sdu(
        dir.path(),
        &[
            "--database",
            &sqlite_url(&dir, "x.db"),
            "dry-run",
            "--bin",
            OFFERED_BIN,
        ],
        &[("SDU_BASE_URL", &mock.base_url)],
    )
    .await;

    assert_eq!(run.code, Some(0), "{run}");
    assert!(
        run.stdout.contains("decision: offer"),
        "the trace comes from this mock: {run}"
    );
    assert_eq!(
        mock.get("/_control/sms/sent").await,
        serde_json::json!([]),
        "no SMS was sent"
    );
    let state = mock.get("/_control/state").await;
    assert_eq!(
        state["consents"],
        serde_json::json!([]),
        "no consent was recorded"
    );
    assert_eq!(
        state["sdu_records"],
        serde_json::json!([]),
        "nothing was written to SDU"
    );
    assert_eq!(
        state["permits"], state_before["permits"],
        "no permit was re-issued"
    );
    let calls = mock.get("/_control/calls").await;
    assert!(
        calls["legal_entities"].as_u64().unwrap_or(0) > 0,
        "the registries were read: {calls}"
    );
    for write_system in ["sms", "consent", "sdu"] {
        assert_eq!(
            calls[write_system].as_u64(),
            Some(0),
            "{write_system} was never called: {calls}"
        );
    }
    assert!(
        dir.entries().is_empty(),
        "no database file: {:?}",
        dir.entries()
    );
}

// ---------------------------------------------------------------------------------------------------------
// run
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn run_with_the_demo_mock_drives_and_counts_its_16_cases() {
    let dir = TempDir::new();
    let database = sqlite_url(&dir, "a.db");
    run_with_the_demo_mock(&dir, &database).await;
    assert!(dir.join("a.db").exists());
}

#[tokio::test]
async fn run_with_the_demo_mock_on_postgres_drives_and_counts_its_16_cases() {
    let Some(server) = procs::postgres_server() else {
        return;
    };
    let db = procs::TestDb::postgres(&server, "cli").await;
    run_with_the_demo_mock(&TempDir::new(), &db.url).await;
    db.remove().await;
}

/// Two `sdu run --json` passes over the demo world at 10:00 on `database`, in `dir`.
async fn run_with_the_demo_mock(dir: &TempDir, database: &str) {
    let args = [
        "run",
        "--mock",
        DEMO,
        "--database",
        database,
        "--now",
        "2026-11-02T10:00:00+05:00",
        "--json",
    ];

    let first = sdu(dir.path(), &args, &[]).await;
    let again = sdu(dir.path(), &args, &[]).await;

    assert_eq!(first.code, Some(0), "{first}");
    let summary = first.json();
    let counts = summary["cases"].as_object().expect("cases per status");
    let total: i64 = counts.values().map(|v| v.as_i64().unwrap()).sum();
    assert_eq!(total, 16, "one case per demo rename: {summary}");
    assert_eq!(summary["pass"]["ingest"]["opened"], 16, "{summary}");
    assert_eq!(
        counts.get("open/queued").and_then(Value::as_i64),
        Some(1),
        "the head of two organisations gets one offer at a time: {summary}"
    );
    assert!(
        counts
            .get("open/awaiting_reply")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            > 0,
        "offers went out at 10:00: {summary}"
    );
    assert_no_personal_data(&first.stdout);

    assert_eq!(again.code, Some(0), "{again}");
    let summary = again.json();
    let total: i64 = summary["cases"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert_eq!(
        total, 16,
        "a second pass ingests no rename twice: {summary}"
    );
    assert_eq!(summary["pass"]["ingest"]["opened"], 0, "{summary}");
}

// ---------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_malformed_configuration_gives_one_line_and_exit_2() {
    let dir = TempDir::new();
    let rows = [
        ("malformed TOML", "reminder_after = [\n"),
        ("an unknown key", "colour = \"red\"\n"),
        ("a duration that is not one", "reminder_after = \"soon\"\n"),
        ("a bad SMS window", "sms_window = \"21:00\"\n"),
        ("an unknown time zone", "timezone = \"Mars/Olympus\"\n"),
    ];
    for (why, text) in rows {
        let config = dir.join("sdu.toml");
        std::fs::write(&config, text).unwrap();

        let run = sdu(
            dir.path(),
            &[
                "--config",
                config.to_str().unwrap(),
                "--database",
                &sqlite_url(&dir, "c.db"),
                "migrate",
            ],
            &[],
        )
        .await;

        assert_eq!(run.code, Some(2), "{why}: {run}");
        let lines = run.stderr_lines();
        assert_eq!(lines.len(), 1, "{why}: one line: {run}");
        assert!(lines[0].starts_with("sdu: "), "{why}: {run}");
        assert!(!dir.join("c.db").exists(), "{why}: nothing opened");
    }
}

#[tokio::test]
async fn a_missing_configuration_file_is_an_error_too() {
    let dir = TempDir::new();

    let run = sdu(dir.path(), &["--config", "no-such.toml", "migrate"], &[]).await;

    assert_ne!(run.code, Some(0), "{run}");
    assert_eq!(run.stderr_lines().len(), 1, "{run}");
    assert!(run.stderr.contains("no-such.toml"), "{run}");
}

#[tokio::test]
async fn scenario_run_on_a_missing_path_exits_nonzero_with_one_line() {
    let dir = TempDir::new();
    let missing = dir.join("nope.yaml");

    let run = sdu(
        dir.path(),
        &["scenario", "run", missing.to_str().unwrap()],
        &[],
    )
    .await;

    assert!(matches!(run.code, Some(c) if c != 0), "{run}");
    let lines = run.stderr_lines();
    assert_eq!(lines.len(), 1, "{run}");
    assert!(lines[0].contains("nope.yaml"), "names the path: {run}");
}

// ---------------------------------------------------------------------------------------------------------
// scenario run
// ---------------------------------------------------------------------------------------------------------

/// One organisation with only a revoked permit: the case ends `not_applicable`/`no_permit`.
fn scenario_expecting(name: &str, outcome: &str) -> String {
    format!(
        r#"name: {name}
description: One organisation whose only permit is revoked.
start: 2026-11-02T01:00:00+05:00
run_until: 2026-11-02T12:00:00+05:00
registries:
  legal_entities:
    - bin: "201140000017"
      name: "ТОО «Жаңа»"
      status: active
      first_head: "850214300013"
      renames:
        - {{ at: 2026-11-01T15:00:00+05:00, from: "ТОО «Ескі»" }}
  e_license:
    - {{ permit_id: "KZ-TS-0001", bin: "201140000017", service: trusted_software_register,
        holder_name: "ТОО «Ескі»", status: revoked }}
expect:
  cases:
    - {{ bin: "201140000017", outcome: {outcome} }}
  sms_total: 0
"#
    )
}

#[tokio::test]
async fn scenario_run_reports_a_failing_scenario_and_exits_1() {
    let dir = TempDir::new();
    let file = dir.join("wrong.yaml");
    std::fs::write(&file, scenario_expecting("wrong-outcome", "reissued")).unwrap();

    let run = sdu(
        dir.path(),
        &["scenario", "run", file.to_str().unwrap()],
        &[],
    )
    .await;

    assert_eq!(run.code, Some(1), "{run}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{run}");
    assert!(
        lines[0].starts_with("FAIL wrong-outcome: "),
        "one FAIL line with the mismatches: {run}"
    );
    assert!(
        lines[0].contains("expected reissued, got not_applicable"),
        "the mismatch is named: {run}"
    );
    assert_eq!(lines[1], "0 passed, 1 failed", "{run}");
}

#[tokio::test]
async fn scenario_run_of_a_folder_counts_passes_and_failures() {
    let dir = TempDir::new();
    let folder = dir.join("scenarios");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("a-right.yaml"),
        scenario_expecting("right-outcome", "not_applicable"),
    )
    .unwrap();
    std::fs::write(
        folder.join("b-wrong.yaml"),
        scenario_expecting("wrong-outcome", "declined"),
    )
    .unwrap();

    let text = sdu(
        dir.path(),
        &["scenario", "run", folder.to_str().unwrap()],
        &[],
    )
    .await;
    let json = sdu(
        dir.path(),
        &["scenario", "run", folder.to_str().unwrap(), "--json"],
        &[],
    )
    .await;

    assert_eq!(text.code, Some(1), "{text}");
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert_eq!(lines[0], "PASS right-outcome", "{text}");
    assert!(lines[1].starts_with("FAIL wrong-outcome: "), "{text}");
    assert_eq!(lines.last().copied(), Some("1 passed, 1 failed"), "{text}");

    assert_eq!(json.code, Some(1), "{json}");
    let objects: Vec<Value> = json
        .stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(
        objects.len(),
        3,
        "one object per scenario, then the totals: {json}"
    );
    assert_eq!(objects[0]["passed"], true);
    assert_eq!(objects[1]["passed"], false);
    assert!(!objects[1]["mismatches"].as_array().unwrap().is_empty());
    assert_eq!(objects[2], serde_json::json!({"passed": 1, "failed": 1}));
}
