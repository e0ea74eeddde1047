//! The operator console (docs/CONSOLE.md) through the daemon's HTTP API, as operators use it:
//! - every route of the OpenAPI document refuses a request without a valid token (401) and a viewer on an
//!   action (403), and answers a viewer's read;
//! - a case fails on bad registry data, the data is corrected, an operator retries it, it ends `reissued`,
//!   every outward write is done once, and the history verifies and names the operator;
//! - pausing the SMS holds every SMS across a restart; resuming sends what waited, each once.
//!
//! The two stories run on an SQLite file and on a fresh PostgreSQL database.

mod procs;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use procs::{Daemon, MockChild, Sdu, TestDb, at, eventually};
use reqwest::Method;
use serde_json::{Value, json};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/scenarios/27-invalid-data.yaml"
);

/// One request to the daemon's API; the status and the JSON body (`Null` if none).
async fn call(
    daemon: &Daemon,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", daemon.api));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the API answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `sdu operator add NAME --role ROLE`: the token it prints.
async fn add_operator(sdu: &Sdu, now: DateTime<Utc>, name: &str, role: &str) -> String {
    let (status, stdout, stderr) = sdu
        .output(now, &["operator", "add", name, "--role", role])
        .await;
    assert!(status.success(), "operator add: {stdout}{stderr}");
    let token = stdout.trim().to_owned();
    assert!(token.starts_with("sdu_"), "a token: {stdout}");
    token
}

fn sdu_for(db: &TestDb, mock: &MockChild) -> Sdu {
    Sdu {
        database: db.url.clone(),
        base_url: mock.url.clone(),
        env: vec![
            ("SDU_TICK".into(), "1s".into()),
            ("SDU_API_LISTEN".into(), "127.0.0.1:0".into()),
        ],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_no_token_a_wrong_token_and_a_viewer_on_an_action() {
    let db = TestDb::sqlite("console-roles");
    let mock = MockChild::start(&["--fixture", FIXTURE]).await;
    let mut sdu = sdu_for(&db, &mock);
    // The daemon publishes the month before its start (October) there, for the release routes.
    let releases =
        std::env::temp_dir().join(format!("sdu-releases-{}", uuid::Uuid::new_v4().simple()));
    sdu.env
        .push(("SDU_PUBLISH_DIR".into(), releases.display().to_string()));
    let now = at("2026-11-02T09:30:00+05:00");
    mock.set_clock(now).await;
    let (status, stdout, stderr) = sdu.output(now, &["run"]).await;
    assert!(status.success(), "sdu run: {stdout}{stderr}");
    let viewer = add_operator(&sdu, now, "vera", "viewer").await;
    let operator = add_operator(&sdu, now, "aida", "operator").await;
    let revoked = add_operator(&sdu, now, "gone", "operator").await;
    let (status, _, _) = sdu.output(now, &["operator", "revoke", "gone"]).await;
    assert!(status.success());
    let daemon = Daemon::start(&sdu, now).await;
    let package = releases.join("2026-10").join("datapackage.json");
    assert!(
        eventually(Duration::from_secs(60), || async { package.exists() }).await,
        "the daemon publishes the month that ended before its start"
    );

    let store = db.open().await;
    let case_id = procs::all_cases(&store).await[0].id.to_string();
    let document =
        serde_json::to_value(sdu::console::api::openapi()).expect("the document serialises");
    let paths = document["paths"].as_object().expect("paths");
    let mut checked = Vec::new();
    for (template, item) in paths {
        let path = template
            .replace("{id}", &case_id)
            .replace("{bin}", "060840892041")
            .replace("{period}", "2026-10")
            .replace("{file}", "datapackage.json");
        for (method, _) in item.as_object().expect("a path item") {
            let method: Method = method.to_uppercase().parse().expect("an HTTP method");
            let body = (method == Method::POST).then(|| json!({"reason": "role check"}));
            for (who, token) in [
                ("no token", None),
                ("a wrong token", Some("sdu_0000")),
                ("a revoked token", Some(revoked.as_str())),
            ] {
                let (status, answer) =
                    call(&daemon, method.clone(), &path, token, body.clone()).await;
                assert_eq!(status, 401, "{method} {path} with {who}: {answer}");
                assert!(
                    answer["error"].is_string(),
                    "{method} {path}: a JSON error: {answer}"
                );
            }
            let (status, answer) =
                call(&daemon, method.clone(), &path, Some(&viewer), body.clone()).await;
            if method == Method::GET {
                assert_eq!(status, 200, "GET {path} as a viewer: {answer}");
                let (status, answer) =
                    call(&daemon, method.clone(), &path, Some(&operator), None).await;
                assert_eq!(status, 200, "GET {path} as an operator: {answer}");
            } else {
                assert_eq!(status, 403, "{method} {path} as a viewer: {answer}");
                assert!(
                    answer["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("operator role"))
                );
            }
            checked.push(format!("{method} {template}"));
        }
    }
    // The document lists every route (a route missing from it would escape this test).
    for route in [
        "GET /api/cases",
        "GET /api/cases/{id}",
        "POST /api/cases/{id}/retry",
        "POST /api/cases/{id}/end",
        "GET /api/queue",
        "GET /api/attention",
        "GET /api/funnel",
        "GET /api/summary",
        "GET /api/dry-run/{bin}",
        "GET /api/sms/pause",
        "POST /api/sms/pause",
        "POST /api/sms/resume",
        "GET /api/actions",
        "GET /api/releases",
        "GET /api/releases/{period}",
        "GET /api/releases/{period}/{file}",
    ] {
        assert!(
            checked.iter().any(|c| c == route),
            "{route} checked: {checked:?}"
        );
    }
    // The two routes outside the document: `/metrics` needs a token like the API, `/health` does not.
    for (who, token) in [("no token", None), ("a wrong token", Some("sdu_0000"))] {
        let (status, _) = call(&daemon, Method::GET, "/metrics", token, None).await;
        assert_eq!(status, 401, "/metrics with {who}");
    }
    let scrape = reqwest::Client::new()
        .get(format!("{}/metrics", daemon.api))
        .bearer_auth(&viewer)
        .send()
        .await
        .expect("the API answers");
    assert_eq!(scrape.status().as_u16(), 200);
    let text = scrape.text().await.expect("text");
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("the Prometheus text format");
    let paused = parsed
        .samples
        .iter()
        .find(|s| s.metric == "sdu_sms_paused")
        .expect("the pause switch is a metric");
    assert!(matches!(paused.value, prometheus_parse::Value::Gauge(v) if v == 0.0));
    let (status, _) = call(&daemon, Method::GET, "/health", None, None).await;
    assert_eq!(status, 200);

    // Nothing a viewer tried changed anything.
    let (_, pause) = call(&daemon, Method::GET, "/api/sms/pause", Some(&viewer), None).await;
    assert_eq!(pause["paused"], false);
    let (_, actions) = call(&daemon, Method::GET, "/api/actions", Some(&viewer), None).await;
    assert_eq!(actions, json!([]));
    // The release is served as published.
    let (status, files) = call(
        &daemon,
        Method::GET,
        "/api/releases/2026-10",
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        files
            .as_array()
            .is_some_and(|f| f.iter().any(|n| n == "datapackage.json")),
        "{files}"
    );
    let (status, datapackage) = call(
        &daemon,
        Method::GET,
        "/api/releases/2026-10/datapackage.json",
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let on_disk: Value = serde_json::from_str(&std::fs::read_to_string(&package).unwrap()).unwrap();
    assert_eq!(datapackage, on_disk);
    let (status, _) = call(
        &daemon,
        Method::GET,
        "/api/releases/2026-10/..%2Fsecret",
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (_, _) = daemon.terminate(Duration::from_secs(10)).await;
    let _ = std::fs::remove_dir_all(&releases);
    mock.stop().await;
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_case_retried_after_its_data_is_corrected_is_reissued_writing_everything_once() {
    retried_case_story(TestDb::sqlite("console-retry")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_failed_case_retried_after_its_data_is_corrected_is_reissued() {
    let Some(server) = procs::postgres_server() else {
        return;
    };
    retried_case_story(TestDb::postgres(&server, "console_retry").await).await;
}

async fn retried_case_story(db: TestDb) {
    let mock = MockChild::start(&["--fixture", FIXTURE]).await;
    let sdu = sdu_for(&db, &mock);
    let now = at("2026-11-02T09:30:00+05:00");
    mock.set_clock(now).await;
    let (status, stdout, stderr) = sdu.output(now, &["run"]).await;
    assert!(status.success(), "sdu run: {stdout}{stderr}");
    let store = db.open().await;
    let failed = |bin: &'static str| {
        let store = store.clone();
        async move {
            let cases = store.cases_of(bin).await.expect("cases");
            assert_eq!(cases.len(), 1);
            cases[0].clone()
        }
    };
    // The head's IIN in the legal-entity registry has a wrong control digit.
    let bad_head = failed("211040858474").await;
    assert_eq!(
        (bad_head.status.as_str(), bad_head.reason.as_deref()),
        ("failed", Some("invalid_data"))
    );
    let operator = add_operator(&sdu, now, "aida", "operator").await;
    let daemon = Daemon::start(&sdu, now).await;

    // It is among the cases needing a person.
    let (status, attention) = call(
        &daemon,
        Method::GET,
        "/api/attention",
        Some(&operator),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let ids: Vec<i64> = attention["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| c["id"].as_i64().expect("an id"))
        .collect();
    assert!(ids.contains(&bad_head.id), "{attention}");

    // A retry without a reason is refused; so is ending a case that has ended.
    let retry = format!("/api/cases/{}/retry", bad_head.id);
    let (status, _) = call(
        &daemon,
        Method::POST,
        &retry,
        Some(&operator),
        Some(json!({"reason": " "})),
    )
    .await;
    assert_eq!(status, 400);
    let end = format!("/api/cases/{}/end", bad_head.id);
    let (status, _) = call(
        &daemon,
        Method::POST,
        &end,
        Some(&operator),
        Some(json!({"reason": "x"})),
    )
    .await;
    assert_eq!(status, 409);

    // The registry's data is corrected, and the operator retries the case.
    mock.update(
        "legal_entities",
        json!({"bin": "211040858474", "name": "ТОО «Қате ЖСН Басшы»", "status": "active",
               "first_head": "600509329744",
               "renames": [{"at": "2026-11-01T10:00:00+05:00", "from": "ТОО «Басшы Бұрын»"}]}),
    )
    .await;
    let (status, answer) = call(
        &daemon,
        Method::POST,
        &retry,
        Some(&operator),
        Some(json!({"reason": "the head's IIN was corrected in the registry"})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["case"]["status"], "open", "{answer}");
    // A second retry of the same case is refused: it is no longer failed.
    let (status, _) = call(
        &daemon,
        Method::POST,
        &retry,
        Some(&operator),
        Some(json!({"reason": "again"})),
    )
    .await;
    assert_eq!(status, 409);

    // The daemon checks it at once and offers the re-issue to the corrected head.
    assert!(
        eventually(Duration::from_secs(60), || async {
            mock.sent().await.iter().any(|s| s.to == "+77011270001")
        })
        .await,
        "the corrected head is offered the re-issue"
    );
    mock.reply("+77011270001", "1").await;
    mock.reply("+77011270003", "1").await;
    assert!(
        eventually(Duration::from_secs(60), || async {
            let mut all = true;
            for bin in ["211040858474", "060840892041"] {
                let cases = store.cases_of(bin).await.expect("cases");
                all &= cases.iter().all(|c| c.status == "reissued");
            }
            all
        })
        .await,
        "both offers end reissued"
    );
    let (status, output) = daemon.terminate(Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| s.success()), "daemon: {output}");

    // Every outward write once: one SMS per head, one consent, re-issue and SDU record per case.
    let sent = mock.sent().await;
    let mut per_phone: BTreeMap<&str, usize> = BTreeMap::new();
    for sms in &sent {
        *per_phone.entry(sms.to.as_str()).or_default() += 1;
    }
    assert_eq!(
        per_phone,
        BTreeMap::from([("+77011270001", 1), ("+77011270003", 1)]),
        "one SMS per offer"
    );
    let cases = procs::all_cases(&store).await;
    let writes = procs::assert_reissue_writes_once(&mock.state().await, &cases);
    assert_eq!(writes.consents.len(), 2);
    assert_eq!(writes.sdu_records.len(), 2);
    let retried = store
        .case(bad_head.id)
        .await
        .expect("case")
        .expect("the case");
    assert_eq!(retried.status, "reissued");
    assert!(
        writes
            .permits
            .iter()
            .any(|(permit, _, holder)| permit == "KZ-TS-2702" && holder == "ТОО «Қате ЖСН Басшы»")
    );

    // The history verifies and names the operator and the reason.
    let (status, stdout, stderr) = sdu.output(now, &["audit", "verify"]).await;
    assert!(
        status.success() && stdout.contains("intact"),
        "audit: {stdout}{stderr}"
    );
    let events = store.events(bad_head.id).await.expect("events");
    let action = events
        .iter()
        .find(|e| e.kind == "operator_action")
        .expect("the retry is in the case's history");
    let detail: Value = serde_json::from_str(&action.detail).expect("JSON");
    assert_eq!(detail["operator"], "aida");
    assert_eq!(detail["action"], "retry");
    assert_eq!(
        detail["reason"],
        "the head's IIN was corrected in the registry"
    );
    mock.stop().await;
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_holds_every_sms_across_a_restart_and_a_resume_sends_each_once() {
    pause_story(TestDb::sqlite("console-pause")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_pause_holds_every_sms_across_a_restart_and_a_resume_sends_each_once() {
    let Some(server) = procs::postgres_server() else {
        return;
    };
    pause_story(TestDb::postgres(&server, "console_pause").await).await;
}

async fn pause_story(db: TestDb) {
    let mock = MockChild::start(&["--synthetic", "40", "--seed", "5"]).await;
    let sdu = sdu_for(&db, &mock);
    let now = at("2026-11-02T09:30:00+05:00");
    mock.set_clock(now).await;
    let operator = add_operator(&sdu, now, "aida", "operator").await;

    // Paused through the API of a running daemon.
    let daemon = Daemon::start(&sdu, now).await;
    let (status, pause) = call(
        &daemon,
        Method::POST,
        "/api/sms/pause",
        Some(&operator),
        Some(json!({"reason": "gateway sends garbled texts"})),
    )
    .await;
    assert_eq!(status, 200, "{pause}");
    assert_eq!(pause["paused"], true);
    let (status, output) = daemon.terminate(Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| s.success()), "daemon: {output}");

    // A pass ingests and checks every case, and sends nothing; its summary says so.
    let (status, stdout, stderr) = sdu.output(now, &["run"]).await;
    assert!(status.success(), "sdu run: {stdout}{stderr}");
    assert!(stdout.contains("SMS PAUSED by aida"), "{stdout}");
    let store = db.open().await;
    let waiting = procs::all_cases(&store)
        .await
        .iter()
        .filter(|c| c.stage.as_deref() == Some("queued"))
        .count();
    assert!(waiting > 0, "cases wait for their offer");
    assert!(mock.sent().await.is_empty(), "no SMS while paused");

    // A restarted daemon stays paused: several ticks, no SMS, and the API says paused.
    let daemon = Daemon::start(&sdu, now).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        mock.sent().await.is_empty(),
        "no SMS after a restart while paused"
    );
    let (_, pause) = call(
        &daemon,
        Method::GET,
        "/api/sms/pause",
        Some(&operator),
        None,
    )
    .await;
    assert_eq!(pause["paused"], true);
    assert_eq!(pause["by"], "aida");
    let metrics = reqwest::Client::new()
        .get(format!("{}/metrics", daemon.api))
        .bearer_auth(&operator)
        .send()
        .await
        .expect("the API answers")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.lines().any(|l| l == "sdu_sms_paused 1"),
        "{metrics}"
    );

    // Resumed: what waited goes at once (09:30 is inside the window).
    let (status, _) = call(
        &daemon,
        Method::POST,
        "/api/sms/resume",
        Some(&operator),
        Some(json!({"reason": "gateway fixed"})),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        eventually(Duration::from_secs(60), || async {
            let offered = procs::all_cases(&store)
                .await
                .iter()
                .filter(|c| c.attempt >= 1)
                .count();
            offered > 0 && mock.sent().await.len() == offered
        })
        .await,
        "the waiting offers are sent after the resume"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, output) = daemon.terminate(Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| s.success()), "daemon: {output}");
    let (status, stdout, stderr) = sdu.output(now, &["run"]).await;
    assert!(status.success(), "sdu run: {stdout}{stderr}");
    assert!(!stdout.contains("PAUSED"), "{stdout}");

    // Each SMS once: distinct keys, one per phone (one open offer per phone), as many as offers.
    let sent = mock.sent().await;
    let keys: BTreeSet<&str> = sent.iter().map(|s| s.idempotency_key.as_str()).collect();
    assert_eq!(keys.len(), sent.len(), "an SMS sent twice");
    let phones: BTreeSet<&str> = sent.iter().map(|s| s.to.as_str()).collect();
    assert_eq!(phones.len(), sent.len(), "one offer per phone");
    let offered = procs::all_cases(&store)
        .await
        .iter()
        .filter(|c| c.attempt >= 1)
        .count();
    assert_eq!(sent.len(), offered);
    // Both switches are in the actions list, with their operator and reasons.
    let actions = store.actions(i64::MAX, 10).await.expect("actions");
    let said: Vec<(&str, &str, &str)> = actions
        .iter()
        .map(|a| (a.action.as_str(), a.operator.as_str(), a.reason.as_str()))
        .collect();
    assert_eq!(
        said,
        vec![
            ("resume_sms", "aida", "gateway fixed"),
            ("pause_sms", "aida", "gateway sends garbled texts"),
        ]
    );
    mock.stop().await;
    db.remove().await;
}
