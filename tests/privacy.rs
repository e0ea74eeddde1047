//! No personal data in what the product prints, even at the most verbose log levels: the `sdu` binary runs
//! as a child process (clean environment, `SDU_LOG=debug` or `trace`) over fixtures and a synthetic world,
//! and everything it writes to stdout and stderr is searched for every IIN, every phone number in any
//! spelling (`+7 701 …`, `8 701 …`, the ten national digits, with or without separators) and every person's
//! name that the registries hold. Identifiers may appear only masked to their last four digits.
//!
//! The HTTP stack is part of what is searched: `SDU_LOG=debug` turns on every crate's debug lines, and
//! request URLs hold IINs (`/individuals/persons/{iin}`); so is sqlx, which logs each statement at debug
//! (the SQL text with its `$n` placeholders, never the bound values).

mod procs;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use mock_registries::{Scenario, SystemName};
use serde_json::Value;

const SDU: &str = env!("CARGO_BIN_EXE_sdu");

fn scenario_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

/// The happy path, then files with several people, bad and oddly written numbers, invalid data, replies
/// from unknown numbers, and upstream faults.
const SCENARIOS: [&str; 6] = [
    "01-accept-first-offer.yaml",
    "15-no-phone.yaml",
    "16-phone-normalisation.yaml",
    "20-one-offer-per-phone-rename-order.yaml",
    "27-invalid-data.yaml",
    "29-fault-e-license-malformed-and-slow.yaml",
];

/// A temporary folder removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "sdu-privacy-{label}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path).expect("create a temporary folder");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `sdu` with `args` in a clean environment at log level `level`; returns stdout and stderr together.
fn sdu(level: &str, cwd: &Path, args: &[&str]) -> String {
    let output = Command::new(SDU)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("SDU_LOG", level)
        .output()
        .expect("run the sdu binary");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push('\n');
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    text
}

/// What the registries hold about people.
#[derive(Debug, Default)]
struct PersonalData {
    iins: BTreeSet<String>,
    /// The ten national digits of each number (`7011234567` for `+7 701 123 45 67`).
    phones: BTreeSet<String>,
    names: BTreeSet<String>,
    /// Words of organisation names: a person's name that shares one is searched for in full only.
    org_words: BTreeSet<String>,
}

fn digits(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    text.chars().filter(char::is_ascii_digit).collect()
}

impl PersonalData {
    fn iin(&mut self, raw: &Value) {
        let d = digits(raw);
        if d.len() == 12 {
            self.iins.insert(d);
        }
    }

    fn phone(&mut self, raw: &Value) {
        let d = digits(raw);
        if d.len() >= 10 {
            self.phones.insert(d[d.len() - 10..].to_owned());
        }
    }

    fn name(&mut self, name: &str) {
        if !name.trim().is_empty() {
            self.names.insert(name.trim().to_owned());
        }
    }

    fn org_name(&mut self, name: &str) {
        self.org_words
            .extend(name.split_whitespace().map(str::to_owned));
    }

    fn add_scenario(&mut self, path: &Path) {
        let scenario = Scenario::load(path).unwrap_or_else(|e| panic!("{e}"));
        let r = &scenario.registries;
        for org in &r.legal_entities {
            if let Some(head) = &org.first_head {
                self.iin(head);
            }
            self.org_name(&org.name);
            for rename in &org.renames {
                self.org_name(&rename.from);
            }
        }
        for permit in &r.e_license {
            self.org_name(&permit.holder_name);
        }
        for person in &r.individuals {
            self.iin(&person.iin);
            self.name(&person.name);
        }
        for record in &r.civil_registry {
            self.iin(&record.iin);
        }
        for record in &r.mobile_base {
            self.iin(&record.iin);
            self.phone(&record.phone);
        }
        for event in &scenario.events {
            if let Some(reply) = &event.sms_reply {
                self.phone(&reply.from);
            }
            if let Some(update) = &event.update {
                let record = &update.record;
                for key in ["iin", "first_head"] {
                    if let Some(v) = record.get(key) {
                        self.iin(v);
                    }
                }
                if let Some(v) = record.get("phone") {
                    self.phone(v);
                }
                if let Some(Value::String(name)) = record.get("name") {
                    if update.system == SystemName::Individuals {
                        self.name(name);
                    } else {
                        self.org_name(name);
                    }
                }
            }
            if let Some(rename) = &event.rename {
                self.org_name(&rename.to);
            }
        }
    }

    /// The strings to look for in names: each full name, and each word of four letters or more that is not
    /// also a word of an organisation's name.
    fn name_needles(&self) -> BTreeSet<&str> {
        let mut needles: BTreeSet<&str> = self.names.iter().map(String::as_str).collect();
        for name in &self.names {
            needles.extend(
                name.split_whitespace()
                    .filter(|w| w.chars().count() >= 4 && !self.org_words.contains(*w)),
            );
        }
        needles
    }

    /// Fails, naming the line and the masked value, if `output` holds any of the personal data.
    fn assert_absent_from(&self, what: &str, output: &str) {
        assert!(
            !self.iins.is_empty() && !self.phones.is_empty() && !self.names.is_empty(),
            "{what}: no personal data collected, the check would prove nothing"
        );
        let names = self.name_needles();
        let mut leaks = Vec::new();
        for (n, line) in output.lines().enumerate() {
            for run in digit_runs(line) {
                for iin in self.iins.iter().filter(|iin| run.contains(iin.as_str())) {
                    leaks.push(format!("line {}: IIN ********{}", n + 1, &iin[8..]));
                }
                for phone in self.phones.iter().filter(|p| run.contains(p.as_str())) {
                    leaks.push(format!("line {}: phone +7******{}", n + 1, &phone[6..]));
                }
            }
            for name in names.iter().filter(|name| line.contains(*name)) {
                let initial: String = name.chars().take(1).collect();
                leaks.push(format!("line {}: a name ({initial}…)", n + 1));
            }
        }
        assert!(
            leaks.is_empty(),
            "{what}: personal data in the output:\n{}",
            leaks.join("\n")
        );
    }
}

/// Every run of digits in `line`, with the separators people write inside numbers (spaces, dashes, dots,
/// brackets, a plus) squeezed out: `8 (701) 123-45-67` gives `87011234567`.
fn digit_runs(line: &str) -> Vec<String> {
    let is_sep = |c: char| matches!(c, ' ' | '-' | '.' | '(' | ')' | '+' | '\u{a0}');
    let mut runs = Vec::new();
    let mut current = String::new();
    for c in line.chars() {
        if c.is_ascii_digit() {
            current.push(c);
        } else if !current.is_empty() && !is_sep(c) {
            runs.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

fn of_scenarios(files: &[&str]) -> PersonalData {
    let mut data = PersonalData::default();
    for file in files {
        data.add_scenario(&scenario_file(file));
    }
    data
}

#[test]
fn the_digit_runs_of_a_line_join_numbers_written_with_separators() {
    assert_eq!(
        digit_runs("to 8 (701) 123-45-67, iin 850214300013."),
        ["87011234567", "850214300013"]
    );
    assert_eq!(
        digit_runs("+7******4567 and ***0013"),
        ["7", "4567", "0013"]
    );
}

#[test]
fn the_check_finds_an_iin_a_number_in_any_spelling_and_a_name() {
    let data = of_scenarios(&["01-accept-first-offer.yaml"]);
    data.assert_absent_from(
        "masked",
        "head ********2196 at +7******4567 for ТОО «Алатау Цифрлық»",
    );
    for leak in [
        "head 580403372196",
        "to +77011234567",
        "to 8 701 123-45-67",
        "national (701) 1234567",
        "name=\"Ерлан Жұмабеков\"",
        "surname Жұмабеков",
    ] {
        let caught = std::panic::catch_unwind(|| data.assert_absent_from("leak", leak));
        assert!(caught.is_err(), "{leak:?} was not caught");
    }
}

#[test]
fn a_scenario_run_at_debug_prints_no_personal_data() {
    let dir = TempDir::new("scenarios");
    let files: Vec<String> = SCENARIOS
        .iter()
        .map(|f| scenario_file(f).display().to_string())
        .collect();
    let mut args = vec!["scenario", "run"];
    args.extend(files.iter().map(String::as_str));

    let output = sdu("debug", &dir.0, &args);

    // The run went through every file, with the adapters and the store logging at debug.
    let verdicts = output
        .lines()
        .filter(|l| l.starts_with("PASS ") || l.starts_with("FAIL "))
        .count();
    assert_eq!(verdicts, SCENARIOS.len(), "{output}");
    for needle in ["system=\"individuals\"", "op=\"send sms\"", "db.statement"] {
        assert!(output.contains(needle), "no {needle} in the debug log");
    }
    of_scenarios(&SCENARIOS).assert_absent_from("sdu scenario run (debug)", &output);
}

/// The tag `sdu` logs for an identifier: HMAC-SHA256 under the key, its first 16 hex characters, computed
/// here from the definition rather than by `sdu::privacy::tag`.
fn expected_tag(key: &str, value: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(value.as_bytes());
    hex::encode(mac.finalize().into_bytes())[..16].to_owned()
}

#[test]
fn json_logs_at_debug_follow_a_person_by_tag_and_print_no_personal_data() {
    const KEY: &str = "the operators' log key of the privacy test";
    let dir = TempDir::new("json");
    let files: Vec<String> = SCENARIOS
        .iter()
        .map(|f| scenario_file(f).display().to_string())
        .collect();
    let output = Command::new(SDU)
        .args(["scenario", "run"])
        .args(&files)
        .current_dir(&dir.0)
        .env_clear()
        .env("SDU_LOG", "debug")
        .env("SDU_LOG_FORMAT", "json")
        .env("SDU_LOG_HASH_KEY", KEY)
        .output()
        .expect("run the sdu binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let verdicts = stdout
        .lines()
        .filter(|l| l.starts_with("PASS ") || l.starts_with("FAIL "))
        .count();
    assert_eq!(verdicts, SCENARIOS.len(), "{stdout}");

    // Every line of stderr is one JSON object.
    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| panic!("not a JSON object: {line}"))
        })
        .collect();
    assert!(
        lines.len() > 100,
        "debug lines expected, got {}",
        lines.len()
    );
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["db.statement"].is_string()),
        "sqlx's statements are logged at debug"
    );
    let data = of_scenarios(&SCENARIOS);
    data.assert_absent_from("sdu scenario run (json, debug)", &stderr);
    data.assert_absent_from("sdu scenario run (stdout)", &stdout);

    // The head of scenario 01 is followed across lines by the tag of its IIN, as the `case` span's
    // `person`; its number, in the offer's line, by the tag of its E.164 form.
    let person = expected_tag(KEY, "580403372196");
    let in_case_span = |line: &Value| {
        line["spans"]
            .as_array()
            .is_some_and(|spans| spans.iter().any(|s| s["person"] == person.as_str()))
    };
    let followed = lines.iter().filter(|l| in_case_span(l)).count();
    assert!(
        followed >= 2,
        "the person's tag {person} on {followed} line(s)"
    );
    let phone = expected_tag(KEY, "+77011234567");
    assert!(
        lines.iter().any(|l| in_case_span(l)
            && l["fields"]["message"] == "offer SMS sent"
            && l["fields"]["phone"] == phone.as_str()),
        "the offer's line names the number by its tag {phone}"
    );
}

#[test]
fn a_failed_scenario_shows_its_mismatched_numbers_masked() {
    let dir = TempDir::new("failing");
    let original = std::fs::read_to_string(scenario_file("01-accept-first-offer.yaml")).unwrap();
    let failing = original.replace(
        r#"sms_to: { "+77011234567": 1 }"#,
        r#"sms_to: { "+77011234567": 2, "8 701 123 45 67": 3 }"#,
    );
    assert_ne!(failing, original, "the fixture's sms_to line changed");
    let file = dir.0.join("failing.yaml");
    std::fs::write(&file, failing).unwrap();

    let output = sdu("warn", &dir.0, &["scenario", "run", file.to_str().unwrap()]);

    assert!(output.contains("FAIL accept-first-offer"), "{output}");
    assert!(output.contains("sms_to +7******4567"), "{output}");
    of_scenarios(&["01-accept-first-offer.yaml"])
        .assert_absent_from("a failed scenario's mismatches", &output);
}

#[test]
fn one_pass_runs_with_the_mock_at_trace_print_no_personal_data() {
    for (fixture, bin) in [
        ("01-accept-first-offer.yaml", "150340517501"),
        ("20-one-offer-per-phone-rename-order.yaml", ""),
    ] {
        let dir = TempDir::new("run");
        let path = scenario_file(fixture);
        let mock = path.to_str().unwrap();
        let database = format!("sqlite://{}", dir.0.join("sdu.db").display());
        let mut output = String::new();
        // The first offer, the reminder 72 h later, the expiry 72 h after that.
        for now in [
            "2026-11-02T10:00:00+05:00",
            "2026-11-05T11:00:00+05:00",
            "2026-11-08T12:00:00+05:00",
        ] {
            output += &sdu(
                "trace",
                &dir.0,
                &["--database", &database, "--now", now, "run", "--mock", mock],
            );
        }
        if !bin.is_empty() {
            for json in [false, true] {
                let mut args = vec![
                    "--now",
                    "2026-11-02T10:00:00+05:00",
                    "dry-run",
                    "--bin",
                    bin,
                    "--mock",
                    mock,
                ];
                if json {
                    args.push("--json");
                }
                output += &sdu("trace", &dir.0, &args);
            }
            assert!(output.contains("would send to +7******"), "{output}");
        }

        assert!(output.contains("offer SMS sent"), "{fixture}: no SMS sent");
        assert!(output.contains(" TRACE "), "{fixture}: no trace lines");
        of_scenarios(&[fixture]).assert_absent_from(&format!("sdu run --mock {fixture}"), &output);
    }
}

/// The people of the synthetic world `sdu run --mock synthetic:N` serves (seed 1), read from the same
/// world started here.
async fn synthetic_personal_data(n: u64, now: chrono::DateTime<chrono::Utc>) -> PersonalData {
    let mock = mock_registries::Mock::synthetic(n, 1);
    mock.set_now(now);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = mock.spawn(listener).await.unwrap();
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        async move {
            let response = http
                .get(format!("http://{addr}{path}"))
                .send()
                .await
                .unwrap();
            if response.status() == reqwest::StatusCode::NOT_FOUND {
                return Value::Null;
            }
            response.json::<Value>().await.unwrap()
        }
    };
    let mut data = PersonalData::default();
    let feed = get(format!("/legal_entities/renames?limit={n}")).await;
    let renames = feed["renames"].as_array().expect("a renames page").clone();
    assert_eq!(renames.len() as u64, n);
    for rename in renames {
        for key in ["from", "to"] {
            data.org_name(rename[key].as_str().unwrap_or_default());
        }
        let bin = rename["bin"].as_str().unwrap();
        let org = get(format!("/legal_entities/organizations/{bin}")).await;
        data.org_name(org["name"].as_str().unwrap_or_default());
        let Some(head) = org["first_head"].as_str() else {
            continue;
        };
        data.iin(&Value::String(head.to_owned()));
        let person = get(format!("/individuals/persons/{head}")).await;
        data.name(person["name"].as_str().unwrap_or_default());
        let number = get(format!("/mobile_base/numbers/{head}")).await;
        if !number["phone"].is_null() {
            data.phone(&number["phone"]);
        }
    }
    data
}

#[tokio::test]
async fn a_pass_over_a_synthetic_world_at_trace_prints_no_personal_data() {
    let dir = TempDir::new("synthetic");
    let database = format!("sqlite://{}", dir.0.join("sdu.db").display());
    a_synthetic_pass_prints_no_personal_data(database, dir).await;
}

/// The same pass on PostgreSQL, whose error and notice texts (a key that already exists, say) may quote
/// the values of a row: none must reach the output.
#[tokio::test]
async fn a_pass_over_a_synthetic_world_on_postgres_at_trace_prints_no_personal_data() {
    let Some(server) = procs::postgres_server() else {
        return;
    };
    let db = procs::TestDb::postgres(&server, "privacy").await;
    a_synthetic_pass_prints_no_personal_data(db.url.clone(), TempDir::new("synthetic-pg")).await;
    db.remove().await;
}

/// `sdu run --mock synthetic:150` at trace on `database`, with `dir` as its working folder (removed after).
async fn a_synthetic_pass_prints_no_personal_data(database: String, dir: TempDir) {
    const N: u64 = 150;
    const NOW: &str = "2026-11-02T10:00:00+05:00";
    let now = chrono::DateTime::parse_from_rfc3339(NOW)
        .unwrap()
        .with_timezone(&chrono::Utc);
    let data = synthetic_personal_data(N, now).await;
    assert!(data.iins.len() > 50 && data.phones.len() > 50 && data.names.len() > 50);

    let spec = format!("synthetic:{N}");
    let output = tokio::task::spawn_blocking(move || {
        let out = sdu(
            "trace",
            &dir.0,
            &[
                "--database",
                &database,
                "--now",
                NOW,
                "run",
                "--mock",
                &spec,
            ],
        );
        drop(dir);
        out
    })
    .await
    .unwrap();

    assert!(output.contains("offer SMS sent"), "no SMS sent");
    data.assert_absent_from("sdu run --mock synthetic (trace)", &output);
}

/// The console: every read of the API, over cases at every stage and outcome (offers, reminders, expiry,
/// failures, a retry and a pause by an operator), and the daemon's own output at debug, hold no IIN, phone
/// number or person's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_api_answers_and_the_daemon_logs_hold_no_personal_data() {
    use chrono::{DateTime, Utc};
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let fixtures = [
        "20-one-offer-per-phone-rename-order.yaml",
        "27-invalid-data.yaml",
    ];
    let mut answers = String::new();
    let mut logs = String::new();
    for fixture in fixtures {
        let db = procs::TestDb::sqlite("privacy-console");
        let path = scenario_file(fixture);
        let mock = procs::MockChild::start(&["--fixture", path.to_str().unwrap()]).await;
        let sdu = procs::Sdu {
            database: db.url.clone(),
            base_url: mock.url.clone(),
            env: vec![
                ("SDU_TICK".into(), "1s".into()),
                ("SDU_API_LISTEN".into(), "127.0.0.1:0".into()),
                ("SDU_LOG".into(), "debug".into()),
            ],
        };
        // The first offers, a "1" from each head, the reminders and the expiry of the rest.
        for now in [
            "2026-11-02T10:00:00+05:00",
            "2026-11-05T11:00:00+05:00",
            "2026-11-08T12:00:00+05:00",
        ] {
            mock.set_clock(at(now)).await;
            let (_, stdout, stderr) = sdu.output(at(now), &["run"]).await;
            logs += &stdout;
            logs += &stderr;
            if now.starts_with("2026-11-02") {
                for sms in mock.sent().await.iter().take(1) {
                    mock.reply(&sms.to, "1").await;
                }
            }
        }
        let now = at("2026-11-08T12:00:00+05:00");
        let (_, token, _) = sdu
            .output(now, &["operator", "add", "aida", "--role", "operator"])
            .await;
        let token = token.trim().to_owned();
        let daemon = procs::Daemon::start(&sdu, now).await;
        let client = reqwest::Client::new();
        let get = |path: String| {
            let (client, token, base) = (client.clone(), token.clone(), daemon.api.clone());
            async move {
                let response = client
                    .get(format!("{base}{path}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("the API answers");
                assert!(
                    response.status().is_success(),
                    "GET {path}: {}",
                    response.status()
                );
                let body: Value = response.json().await.expect("JSON");
                // One value per line, as a person would page through it.
                serde_json::to_string_pretty(&body).unwrap()
            }
        };
        let post = |path: String, reason: &str| {
            let (client, token, base) = (client.clone(), token.clone(), daemon.api.clone());
            let reason = reason.to_owned();
            async move {
                let response = client
                    .post(format!("{base}{path}"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"reason": reason}))
                    .send()
                    .await
                    .expect("the API answers");
                response.text().await.unwrap_or_default()
            }
        };
        let store = db.open().await;
        let cases = procs::all_cases(&store).await;
        assert!(
            cases.iter().any(|c| c.head_iin.is_some()),
            "{fixture}: heads read"
        );
        if let Some(failed) = cases.iter().find(|c| c.status == "failed") {
            answers += &post(format!("/api/cases/{}/retry", failed.id), "data corrected").await;
        }
        if let Some(open) = cases.iter().find(|c| c.status == "open") {
            answers += &post(format!("/api/cases/{}/end", open.id), "by hand").await;
        }
        answers += &post("/api/sms/pause".into(), "storm").await;
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        for path in [
            "/api/cases?limit=500".to_owned(),
            "/api/queue".into(),
            "/api/attention".into(),
            "/api/funnel?from=2026-10-01&to=2026-11-30".into(),
            "/api/summary".into(),
            "/api/sms/pause".into(),
            "/api/actions".into(),
        ] {
            answers += &get(path).await;
        }
        for case in &cases {
            answers += &get(format!("/api/cases/{}", case.id)).await;
            if adapters::Bin::parse(&case.bin).is_ok() {
                answers += &get(format!("/api/dry-run/{}", case.bin)).await;
            }
        }
        let (_, output) = daemon.terminate(std::time::Duration::from_secs(10)).await;
        logs += &output;
        mock.stop().await;
        db.remove().await;
    }
    assert!(
        answers.contains("+7******"),
        "masked numbers are shown: {answers}"
    );
    assert!(
        answers.contains("operator_action"),
        "the actions are in the timelines"
    );
    let data = of_scenarios(&fixtures);
    data.assert_absent_from("the console's API answers", &answers);
    data.assert_absent_from("the daemon's output at debug", &logs);
}
