//! The operator dashboard (docs/CONSOLE.md, "Dashboard"), served in-process over a world of eight cases
//! (tests/fixtures/dashboard.yaml): sign-in, sessions and CSRF over plain HTTP on SQLite and PostgreSQL,
//! then the whole of an operator's round in headless Chromium driven through chromedriver (fantoccini):
//! sign in, find a case, retry it, pause and resume the SMS, switch the language, read what each page
//! says. With `SDU_SCREENSHOTS=1` the browser test also saves a screenshot of each page into
//! `docs/screenshots/`.
//!
//! Chromium and chromedriver come from Debian (`apt-get install chromium chromium-driver`); without them
//! the browser test says so loudly and passes, unless `CI` is set, where it fails.

mod procs;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mock_registries::{Mock, Scenario, SystemName};
use procs::TestDb;
use reqwest::StatusCode;
use reqwest::header::{LOCATION, SET_COOKIE};
use sdu::clock::ManualClock;
use sdu::config::Config;
use sdu::console::Console;
use sdu::console::auth::{Role, add_operator};
use sdu::engine::{Engine, IngestMode, Systems};
use sdu::store::Store;
use serde_json::json;
use tokio::sync::Notify;

/// The business time of the test: a Monday inside the SMS window.
fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-02T10:00:00+05:00")
        .expect("a time")
        .with_timezone(&Utc)
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dashboard.yaml")
}

/// The BIN whose head's IIN is wrong: failed, corrected and retried by the browser test.
const RETRIED_BIN: &str = "211040858474";
/// The BIN with a wrong control digit: failed, stays failed.
const BAD_BIN: &str = "220740521759";
/// The BIN queued behind its head's other organisation.
const QUEUED_BIN: &str = "190740720167";

/// The daemon's HTTP server over an engine that has ingested the fixture, with an operator and a viewer.
struct World {
    mock: Mock,
    engine: Arc<Engine>,
    db: TestDb,
    /// `http://127.0.0.1:PORT`.
    url: String,
    operator: String,
    viewer: String,
    /// Every IIN, number and person's name of the fixture: none may appear on a page.
    secrets: Vec<String>,
}

impl World {
    async fn start(db: TestDb) -> Self {
        let scenario = Scenario::load(&fixture()).expect("the dashboard fixture");
        let mock = Mock::from_registries(&scenario.registries, 1);
        mock.set_now(now());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let addr = mock.spawn(listener).await.expect("the mock serves");
        let config = Config {
            base_url: format!("http://{addr}"),
            ..Config::default()
        };
        let systems = Systems::http(&config, |_| {}).expect("clients");
        let store = db.open().await;
        let clock = ManualClock::new(now());
        let engine =
            Arc::new(Engine::new(store, systems, Arc::new(clock), config).expect("the engine"));
        engine.pass(IngestMode::Now).await.expect("the first pass");
        let operator = add_operator(&engine.store, "aigerim", Role::Operator, now())
            .await
            .expect("an operator");
        let viewer = add_operator(&engine.store, "dias", Role::Viewer, now())
            .await
            .expect("a viewer");
        let console = Arc::new(Console::new(engine.clone(), Arc::new(Notify::new())));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let served: SocketAddr = listener.local_addr().expect("the address");
        let app = sdu::api::router(console);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let raw = |v: &serde_json::Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
        let mut secrets = Vec::new();
        for person in &scenario.registries.individuals {
            secrets.push(raw(&person.iin));
            secrets.push(person.name.clone());
        }
        for number in &scenario.registries.mobile_base {
            // Without the `+`, so that any spelling of the number is caught.
            secrets.push(raw(&number.phone).trim_start_matches('+').to_owned());
        }
        assert_eq!(secrets.len(), 7 * 2 + 6, "every IIN, name and number");
        assert!(secrets.contains(&"Алмас Исаев".to_owned()));
        Self {
            mock,
            engine,
            db,
            url: format!("http://{served}"),
            operator,
            viewer,
            secrets,
        }
    }

    async fn case_id(&self, bin: &str) -> i64 {
        let cases = self.engine.store.cases_of(bin).await.expect("cases");
        cases.last().expect("a case of the BIN").id
    }

    /// Panics if the page shows a full IIN, number or person's name.
    fn assert_no_personal_data(&self, page: &str, html: &str) {
        for secret in &self.secrets {
            assert!(
                !html.contains(secret.as_str()),
                "{page} shows `{secret}` of the fixture"
            );
        }
    }

    async fn stop(self) {
        match &self.engine.store {
            Store::Sqlite(p) => p.close().await,
            Store::Postgres(p) => p.close().await,
        }
        self.db.remove().await;
    }
}

/// The value of the hidden `csrf` field of a page.
fn csrf_of(html: &str) -> String {
    let start = html
        .find(r#"name="csrf" value=""#)
        .unwrap_or_else(|| panic!("no csrf field in the page:\n{html}"))
        + r#"name="csrf" value=""#.len();
    html[start..].split('"').next().expect("a value").to_owned()
}

/// `name=value` of a `Set-Cookie` header of `name`, with the whole header.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<(String, String)> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            let pair = v.split(';').next().expect("a pair").to_owned();
            (pair, v.to_owned())
        })
}

/// A client that follows no redirect, so that every answer is seen as it is.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
}

/// Signs in over HTTP; returns the session cookie (`sdu_session=…`) and the session's CSRF token.
async fn sign_in(w: &World, token: &str) -> (String, String) {
    let client = http();
    let page = client
        .get(format!("{}/signin", w.url))
        .send()
        .await
        .expect("GET /signin");
    let (signin_cookie, _) = set_cookie(&page, "sdu_signin").expect("the sign-in cookie");
    let csrf = csrf_of(&page.text().await.expect("the page"));
    let answer = client
        .post(format!("{}/signin", w.url))
        .header("cookie", &signin_cookie)
        .form(&[("csrf", csrf.as_str()), ("token", token)])
        .send()
        .await
        .expect("POST /signin");
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let (session, _) = set_cookie(&answer, "sdu_session").expect("a session cookie");
    let home = client
        .get(format!("{}/", w.url))
        .header("cookie", &session)
        .send()
        .await
        .expect("GET /");
    assert_eq!(home.status(), StatusCode::OK);
    let csrf = csrf_of(&home.text().await.expect("the page"));
    (session, csrf)
}

async fn get(w: &World, path: &str, cookie: &str) -> (StatusCode, String) {
    let answer = http()
        .get(format!("{}{path}", w.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = answer.status();
    (status, answer.text().await.expect("the body"))
}

async fn post(w: &World, path: &str, cookie: &str, form: &[(&str, &str)]) -> reqwest::Response {
    http()
        .post(format!("{}{path}", w.url))
        .header("cookie", cookie)
        .form(form)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

/// Sessions, CSRF, roles, languages and privacy, over plain HTTP.
async fn sessions_csrf_and_roles(db: TestDb) {
    let w = World::start(db).await;
    let client = http();

    // Not signed in: every page sends to the sign-in form; a POST is refused outright.
    let home = client
        .get(format!("{}/", w.url))
        .send()
        .await
        .expect("GET /");
    assert_eq!(home.status(), StatusCode::SEE_OTHER);
    assert_eq!(home.headers()[LOCATION], "/signin");
    let refused = post(&w, "/sms/pause", "", &[("reason", "x")]).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    // The sign-in form: CSRF by double submit (its cookie and its hidden field).
    let page = client
        .get(format!("{}/signin", w.url))
        .header("accept-language", "kk-KZ,kk;q=0.9,ru;q=0.8")
        .send()
        .await
        .expect("GET /signin");
    let (signin_cookie, header) = set_cookie(&page, "sdu_signin").expect("the sign-in cookie");
    assert!(header.contains("HttpOnly") && header.contains("SameSite=Strict"));
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("text")
        .to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    let html = page.text().await.expect("the page");
    assert!(
        html.contains("Оператор токені"),
        "Kazakh by Accept-Language"
    );
    let csrf = csrf_of(&html);
    for (form, why) in [
        (vec![("token", w.operator.as_str())], "no CSRF field"),
        (
            vec![("csrf", "0000"), ("token", w.operator.as_str())],
            "a wrong CSRF token",
        ),
    ] {
        let answer = post(&w, "/signin", &signin_cookie, &form).await;
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{why}");
        assert!(set_cookie(&answer, "sdu_session").is_none(), "{why}");
    }
    let wrong = post(
        &w,
        "/signin",
        &signin_cookie,
        &[("csrf", &csrf), ("token", "sdu_0123")],
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    // No `Accept-Language` on this request: Russian.
    assert!(
        wrong
            .text()
            .await
            .expect("the page")
            .contains("Токен недействителен или отозван.")
    );
    let ok = post(
        &w,
        "/signin",
        &signin_cookie,
        &[("csrf", &csrf), ("token", &w.operator)],
    )
    .await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let (session, header) = set_cookie(&ok, "sdu_session").expect("a session cookie");
    for flag in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(header.contains(flag), "{flag} in `{header}`");
    }
    assert!(
        !header.contains(&w.operator[4..]),
        "the cookie holds a session id, not the token"
    );

    // Signed in: every page renders, and none shows a full IIN, number or person's name.
    let (status, html) = get(&w, "/", &session).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("aigerim") && html.contains(r#"id="sms-form""#));
    let csrf = csrf_of(&html);
    let failed = w.case_id(BAD_BIN).await;
    let mut pages = vec![
        "/".to_owned(),
        "/cases".to_owned(),
        "/queue".to_owned(),
        "/attention".to_owned(),
        format!("/cases?bin={BAD_BIN}"),
        format!("/cases/{failed}/retry"),
    ];
    for case in procs::all_cases(&w.engine.store).await {
        pages.push(format!("/cases/{}", case.id));
    }
    for path in &pages {
        let (status, html) = get(&w, path, &session).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        w.assert_no_personal_data(path, &html);
    }
    let (_, queue) = get(&w, "/queue", &session).await;
    assert!(
        queue.contains(QUEUED_BIN),
        "the queue lists the queued case"
    );
    let (_, attention) = get(&w, "/attention", &session).await;
    assert!(attention.contains(BAD_BIN) && attention.contains(RETRIED_BIN));
    assert!(!attention.contains(QUEUED_BIN));
    // Keyset pages: three cases a page, each page's link goes on after its last case, none repeated.
    let mut seen = Vec::new();
    let mut path = "/cases?limit=3".to_owned();
    loop {
        let (status, html) = get(&w, &path, &session).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let ids: Vec<i64> = html
            .split(r#"class="case-link">"#)
            .skip(1)
            .map(|p| {
                p.split('<')
                    .next()
                    .expect("an id")
                    .parse()
                    .expect("a number")
            })
            .collect();
        assert!(ids.len() <= 3 && !ids.is_empty(), "{path}: {ids:?}");
        seen.extend(ids);
        let Some(at) = html.find(r#"id="next-page" href=""#) else {
            break;
        };
        let href = &html[at + r#"id="next-page" href=""#.len()..];
        path = href
            .split('"')
            .next()
            .expect("a link")
            .replace("&amp;", "&");
        assert!(path.contains("limit=3&after="), "{path}");
    }
    let all: Vec<i64> = procs::all_cases(&w.engine.store)
        .await
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(seen, all, "every case once, in id order");
    let (status, html) = get(&w, "/cases?renamed_from=yesterday", &session).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains(r#"id="search-error""#));
    let (status, _) = get(&w, "/cases/999999", &session).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A POST without the session's CSRF token changes nothing.
    for form in [
        vec![("reason", "drill")],
        vec![("reason", "drill"), ("csrf", "")],
        vec![("reason", "drill"), ("csrf", &csrf[1..])],
    ] {
        let answer = post(&w, "/sms/pause", &session, &form).await;
        assert_eq!(answer.status(), StatusCode::FORBIDDEN);
        let answer = post(&w, &format!("/cases/{failed}/retry"), &session, &form).await;
        assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    }
    assert!(!w.engine.sms_pause().await.expect("the switch").paused);
    assert_eq!(
        w.engine
            .store
            .case(failed)
            .await
            .expect("the case")
            .expect("it")
            .status,
        "failed"
    );
    // With it, the action is done; without a reason it is refused with the form shown again.
    let answer = post(
        &w,
        "/sms/pause",
        &session,
        &[("csrf", &csrf), ("reason", " ")],
    )
    .await;
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    assert!(
        answer
            .text()
            .await
            .expect("the page")
            .contains("Укажите причину")
    );
    let answer = post(
        &w,
        "/sms/pause",
        &session,
        &[("csrf", &csrf), ("reason", "drill")],
    )
    .await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert!(w.engine.sms_pause().await.expect("the switch").paused);
    let answer = post(
        &w,
        &format!("/cases/{failed}/end"),
        &session,
        &[("csrf", &csrf), ("reason", "x")],
    )
    .await;
    assert_eq!(
        answer.status(),
        StatusCode::CONFLICT,
        "a failed case is not open"
    );
    let html = answer.text().await.expect("the page");
    assert!(html.contains(r#"id="action-error""#) && html.contains("Действие отклонено: "));

    // A viewer sees no action form, and its POSTs are refused even with its own valid CSRF token.
    let (viewer_session, viewer_csrf) = sign_in(&w, &w.viewer).await;
    let (_, html) = get(&w, "/", &viewer_session).await;
    assert!(html.contains("dias") && !html.contains(r#"id="sms-form""#));
    let (_, html) = get(&w, &format!("/cases/{failed}"), &viewer_session).await;
    assert!(!html.contains("/retry"));
    assert!(html.contains("Роль наблюдателя не позволяет действовать с делами."));
    let (status, _) = get(&w, &format!("/cases/{failed}/retry"), &viewer_session).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for path in ["/sms/resume".to_owned(), format!("/cases/{failed}/retry")] {
        let answer = post(
            &w,
            &path,
            &viewer_session,
            &[("csrf", &viewer_csrf), ("reason", "mine")],
        )
        .await;
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{path}");
    }
    assert!(w.engine.sms_pause().await.expect("the switch").paused);
    // One session's CSRF token is not another's.
    let answer = post(
        &w,
        "/sms/resume",
        &session,
        &[("csrf", &viewer_csrf), ("reason", "x")],
    )
    .await;
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);

    // The language: a link sets the cookie and comes back, never to another site.
    let answer = client
        .get(format!("{}/lang/kk?back=%2Fqueue%3Fafter%3D1", w.url))
        .send()
        .await
        .expect("GET /lang");
    assert_eq!(answer.headers()[LOCATION], "/queue?after=1");
    let (lang, _) = set_cookie(&answer, "lang").expect("the language cookie");
    assert_eq!(lang, "lang=kk");
    for evil in [
        "https%3A%2F%2Fexample.org",
        "%2F%2Fexample.org",
        "%2F%5Cexample.org",
        "%2Fqueue%0D%0ASet-Cookie%3A%20x%3Dy",
    ] {
        let answer = client
            .get(format!("{}/lang/ru?back={evil}", w.url))
            .send()
            .await
            .expect("GET /lang");
        assert_eq!(answer.headers()[LOCATION], "/", "{evil}");
    }
    let (_, html) = get(&w, "/", &format!("{session}; lang=ru")).await;
    assert!(html.contains("Обзор") && html.contains(r#"lang="ru""#));

    // Signing out ends the session on the server; revoking a token ends its sessions too.
    let answer = post(&w, "/signout", &session, &[("csrf", &csrf)]).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let (status, _) = get(&w, "/", &session).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        w.engine
            .store
            .revoke_operator("dias", 0)
            .await
            .expect("revoked")
    );
    let (status, _) = get(&w, "/", &viewer_session).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // The JSON API beside the dashboard takes its bearer token and no CSRF field: the guard is the
    // dashboard's alone.
    assert!(w.engine.sms_pause().await.expect("the switch").paused);
    let answer = http()
        .post(format!("{}/api/sms/resume", w.url))
        .bearer_auth(&w.operator)
        .json(&json!({"reason": "resumed over the API"}))
        .send()
        .await
        .expect("POST /api/sms/resume");
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(!w.engine.sms_pause().await.expect("the switch").paused);
    w.stop().await;
}

#[tokio::test]
async fn sessions_csrf_and_roles_on_sqlite() {
    sessions_csrf_and_roles(TestDb::sqlite("dashboard")).await;
}

#[tokio::test]
async fn sessions_csrf_and_roles_on_postgres() {
    let Ok(server) = std::env::var("SDU_TEST_POSTGRES") else {
        procs::skip_postgres("SDU_TEST_POSTGRES is not set");
        return;
    };
    sessions_csrf_and_roles(TestDb::postgres(&server, "dashboard").await).await;
}

// --- The browser.

/// Chromium and chromedriver, from the environment (`CHROMIUM`, `CHROMEDRIVER`) or Debian's paths.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let find = |var: &str, names: &[&str]| -> Option<PathBuf> {
        if let Some(p) = std::env::var_os(var) {
            return Some(PathBuf::from(p)).filter(|p| p.exists());
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
            .find(|p| p.exists())
    };
    Some((
        find(
            "CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
        )?,
        find("CHROMEDRIVER", &["chromedriver"])?,
    ))
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: tokio::process::Child,
    url: String,
}

impl Driver {
    async fn start(chromedriver: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = tokio::process::Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Self {
                    child,
                    url: format!("http://127.0.0.1:{port}"),
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not listen on port {port} within 10 s");
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A headless Chromium session speaking English first (the test then switches language itself).
async fn chromium(driver: &Driver, binary: &Path) -> fantoccini::Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": binary,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--lang=en-US", "--hide-scrollbars"],
            "prefs": {"intl.accept_languages": "en-US,en"}
        }),
    );
    fantoccini::ClientBuilder::rustls()
        .expect("the rustls connector")
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// The text a person sees on the page; empty while a page is being replaced by the next.
async fn text(c: &fantoccini::Client) -> String {
    match c.find(fantoccini::Locator::Css("body")).await {
        Ok(body) => body.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Saves a screenshot of the whole page to `docs/screenshots/NAME.png` when `SDU_SCREENSHOTS=1`.
async fn screenshot(c: &fantoccini::Client, name: &str) {
    if std::env::var("SDU_SCREENSHOTS").as_deref() != Ok("1") {
        return;
    }
    let height = c
        .execute("return document.documentElement.scrollHeight;", vec![])
        .await
        .ok()
        .and_then(|v| v.as_u64())
        .unwrap_or(900)
        .clamp(600, 2400);
    c.set_window_size(1280, height as u32 + 100)
        .await
        .expect("window size");
    let png = c.screenshot().await.expect("a screenshot");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&dir).expect("docs/screenshots");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("the screenshot is written");
    c.set_window_size(1280, 900).await.expect("window size");
}

async fn click(c: &fantoccini::Client, css: &str) {
    c.find(fantoccini::Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking `{css}`: {e}"));
}

async fn fill(c: &fantoccini::Client, css: &str, value: &str) {
    c.find(fantoccini::Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
        .send_keys(value)
        .await
        .unwrap_or_else(|e| panic!("typing into `{css}`: {e}"));
}

/// Waits until the page's text contains `needle`; panics with the text after 10 s.
async fn see(c: &fantoccini::Client, needle: &str) -> String {
    for _ in 0..50 {
        let t = text(c).await;
        if t.contains(needle) {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("`{needle}` never shown; the page says:\n{}", text(c).await);
}

/// Waits until the browser's address contains `fragment` (a form's answer has replaced the page).
async fn wait_url(c: &fantoccini::Client, fragment: &str) {
    for _ in 0..50 {
        if c.current_url()
            .await
            .is_ok_and(|u| u.as_str().contains(fragment))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the address never contained `{fragment}`");
}

#[tokio::test]
async fn an_operator_round_in_chromium() {
    let Some((chromium_bin, chromedriver)) = browser() else {
        let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"));
        assert!(
            !ci,
            "CI is set but chromium or chromedriver is missing: apt-get install chromium chromium-driver"
        );
        eprintln!(
            "\n*** SKIPPED: the dashboard's browser test needs chromium and chromedriver \
             (apt-get install chromium chromium-driver) ***\n"
        );
        return;
    };
    let w = World::start(TestDb::sqlite("dashboard-browser")).await;
    let driver = Driver::start(&chromedriver).await;
    let c = chromium(&driver, &chromium_bin).await;
    let retried = w.case_id(RETRIED_BIN).await;

    // Sign in: the token is pasted once; the browser then holds a Secure, HttpOnly, strict session cookie.
    c.goto(&format!("{}/", w.url)).await.expect("the dashboard");
    let page = see(&c, "Operator token").await;
    assert!(page.contains("Sign in"));
    screenshot(&c, "signin").await;
    fill(&c, "#token", &w.operator).await;
    click(&c, "#signin").await;
    let page = see(&c, "Signed in as").await;
    assert!(page.contains("aigerim · operator"), "{page}");
    let cookie = c
        .get_named_cookie("sdu_session")
        .await
        .expect("the session cookie");
    assert_eq!(
        cookie.secure(),
        Some(true),
        "Chromium keeps a Secure cookie from 127.0.0.1"
    );
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.same_site(), Some(cookie::SameSite::Strict));
    assert_ne!(cookie.value(), w.operator, "the cookie is a session id");

    // The overview: the funnel, the chart, the SMS parts, the systems, the switch.
    for expected in [
        "Funnel, last 30 days",
        "All cases",
        "Cases per day by outcome",
        "SMS parts sent",
        "Systems failing now",
        "None: every system answers.",
        "SMS are being sent.",
        "Failed",
        "Awaiting reply",
    ] {
        assert!(
            page.contains(expected),
            "`{expected}` on the overview:\n{page}"
        );
    }
    let bars = c
        .find_all(fantoccini::Locator::Css("svg.chart rect"))
        .await
        .expect("the chart's bars");
    assert!(
        bars.len() >= 4,
        "the chart has a bar piece per day and status"
    );
    w.assert_no_personal_data("the overview", &c.source().await.expect("the source"));

    // Pause and resume the SMS, each with a reason.
    fill(&c, "#sms-reason", "gateway maintenance").await;
    click(&c, "#sms-toggle").await;
    let page = see(&c, "SMS are paused.").await;
    assert!(page.contains("Set by: aigerim") && page.contains("«gateway maintenance»"));
    assert!(page.contains("Resume SMS"));
    assert!(w.engine.sms_pause().await.expect("the switch").paused);
    fill(&c, "#sms-reason", "maintenance over").await;
    click(&c, "#sms-toggle").await;
    let page = see(&c, "SMS are being sent.").await;
    assert!(page.contains("Pause SMS") && page.contains("«maintenance over»"));
    assert!(!w.engine.sms_pause().await.expect("the switch").paused);
    let page = see(&c, "Recent operator actions").await;
    assert!(page.contains("SMS paused") && page.contains("SMS resumed"));

    // Find the failed case by its BIN.
    click(&c, "nav a[href='/cases']").await;
    see(&c, "Renamed from").await;
    fill(&c, "#f-bin", RETRIED_BIN).await;
    c.find(fantoccini::Locator::Css("#f-outcome"))
        .await
        .expect("the outcome filter")
        .select_by_value("failed")
        .await
        .expect("failed");
    click(&c, "#search").await;
    wait_url(&c, &format!("bin={RETRIED_BIN}")).await;
    let page = see(&c, RETRIED_BIN).await;
    assert!(page.contains("Invalid registry data") && !page.contains(BAD_BIN));
    let rows = c
        .find_all(fantoccini::Locator::Css("table.cases tbody tr"))
        .await
        .expect("rows");
    assert_eq!(rows.len(), 1, "one case matches");
    screenshot(&c, "search").await;
    click(&c, "a.case-link").await;
    let page = see(&c, "History").await;
    for expected in [
        "Rename received",
        "Registries checked",
        "Ended",
        "Retry…",
        "Outward writes",
    ] {
        assert!(
            page.contains(expected),
            "`{expected}` on the timeline:\n{page}"
        );
    }

    // Correct the registry's data (a valid head), then retry the case: a confirmation with a reason.
    let mut record = serde_json::Map::new();
    for (k, v) in [
        ("bin", RETRIED_BIN),
        ("name", "ТОО «Қате ЖСН Басшы»"),
        ("status", "active"),
        ("first_head", "600509329744"),
    ] {
        record.insert(k.into(), json!(v));
    }
    w.mock
        .update(SystemName::LegalEntities, record)
        .expect("the corrected record");
    click(&c, "#retry").await;
    let page = see(&c, "Retry this case?").await;
    assert!(page.contains("Reason (required)"));
    fill(&c, "#reason", "head IIN corrected in the registry").await;
    screenshot(&c, "confirm").await;
    click(&c, "#confirm").await;
    let page = see(&c, "The case is open again").await;
    assert!(page.contains("In progress") && page.contains("Operator action"));
    assert!(page.contains("head IIN corrected in the registry"));
    let row = w
        .engine
        .store
        .case(retried)
        .await
        .expect("the case")
        .expect("it");
    assert_eq!(row.status, "open");

    // The engine takes it on (the daemon's loop would, woken by the action): the offer goes out.
    w.engine
        .pass(IngestMode::Nightly)
        .await
        .expect("a pass after the retry");
    c.refresh().await.expect("reload");
    let page = see(&c, "Awaiting reply").await;
    assert!(
        page.contains("SMS sent") && page.contains("SMS gateway"),
        "{page}"
    );
    let key = w.engine.store.outbox_of(retried).await.expect("writes")[0]
        .idempotency_key
        .clone();
    assert!(page.contains(&key), "the write's key is shown");
    assert!(page.contains("***0001"), "the number, masked");
    w.assert_no_personal_data("the timeline", &c.source().await.expect("the source"));
    screenshot(&c, "timeline").await;

    // The queue and the cases needing a person.
    click(&c, "nav a[href='/queue']").await;
    let page = see(&c, "Queue: cases waiting for a phone").await;
    assert!(page.contains(QUEUED_BIN) && page.contains("Queued"));
    screenshot(&c, "queue").await;
    click(&c, "nav a[href='/attention']").await;
    let page = see(&c, "Cases needing a person").await;
    assert!(
        page.contains(BAD_BIN) && !page.contains(RETRIED_BIN),
        "{page}"
    );
    screenshot(&c, "attention").await;

    // Switch the language: Kazakh, then Russian; the page stays the same.
    click(&c, "#lang-kk").await;
    let page = see(&c, "Қызметкердің қатысуын қажет ететін істер").await;
    assert!(page.contains("Шолу") && page.contains("Тізілім деректері қате"));
    click(&c, "nav a[href='/']").await;
    let page = see(&c, "Соңғы 30 күннің воронкасы").await;
    assert!(page.contains("Жіберілген SMS бөліктері"));
    screenshot(&c, "overview-kk").await;
    click(&c, "#lang-ru").await;
    let page = see(&c, "Воронка за 30 дней").await;
    assert!(page.contains("Отправлено частей SMS") && page.contains("Вы вошли как"));
    screenshot(&c, "overview-ru").await;
    click(&c, "#lang-en").await;
    let page = see(&c, "Funnel, last 30 days").await;
    assert!(page.contains("Retry") && page.contains("head IIN corrected in the registry"));
    // The README's picture: the overview after the round, with its actions listed.
    screenshot(&c, "overview").await;

    // Sign out: back to the form, and the dashboard is closed again.
    click(&c, "#signout").await;
    see(&c, "Operator token").await;
    c.goto(&format!("{}/queue", w.url))
        .await
        .expect("the queue");
    see(&c, "Operator token").await;

    c.close().await.expect("the browser closes");
    driver.stop().await;
    w.stop().await;
}
