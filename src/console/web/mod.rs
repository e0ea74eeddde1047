//! The operator dashboard (docs/CONSOLE.md, "Dashboard"): HTML pages served by the daemon at `/`, rendered
//! on the server with askama from the same [`Console`] reads and actions as the JSON API. No script and
//! no CDN: the stylesheet is compiled into the binary and the chart is inline SVG.
//!
//! Security: sign-in with an operator token opens a server-side session ([`session`]); every POST carries
//! the session's CSRF token in a hidden field, checked by [`guard`] before any handler runs (403 without
//! it), on top of `SameSite=Strict` cookies. A viewer sees no action form, and the actions refuse it
//! anyway ([`crate::console::auth::Caller::require`]). Pages render the console's views, whose personal
//! identifiers are masked.

mod chart;
mod i18n;
mod session;

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::actions::ActionRequest;
use super::api::CaseQuery;
use super::auth::{Caller, Role, authenticate, token_hash};
use super::views::{CasePage, CaseView};
use super::{ApiError, Console};
use crate::case::transition::OperatorAction;
use crate::store::{CaseFilter, Store};
use i18n::{LANG_COOKIE, Lang, Tr};
use session::{SESSION_COOKIE, SIGNIN_COOKIE, Session, Sessions, random_token, same_token};

/// Cases per page of a list.
const PAGE: i64 = 50;
/// The largest form body read (a reason is at most 500 characters).
const MAX_FORM: usize = 16 * 1024;

/// The dashboard's routes, with their session store and CSRF guard.
pub fn router() -> Router<Arc<Console>> {
    Router::new()
        .route("/", get(overview))
        .route("/signin", get(signin_page).post(signin))
        .route("/signout", post(signout))
        .route("/cases", get(search))
        .route("/cases/{id}", get(timeline))
        .route("/cases/{id}/retry", get(confirm_retry).post(retry))
        .route("/cases/{id}/end", get(confirm_end).post(end))
        .route("/queue", get(queue))
        .route("/attention", get(attention))
        .route("/sms/pause", post(pause))
        .route("/sms/resume", post(resume))
        .route("/lang/{code}", get(set_lang))
        .route("/assets/style.css", get(stylesheet))
        .layer(middleware::from_fn(guard))
        .layer(Extension(Arc::new(Sessions::default())))
}

/// The systems failing now, as `(system, kind of failure)`: those whose last attempt within the telemetry's
/// window failed and that have not answered since (`src/telemetry.rs`).
fn failing_systems(console: &Console) -> Vec<(String, String)> {
    crate::telemetry::failing_systems(console.engine.wall.now())
        .into_iter()
        .filter(|f| f.last_ok_at.is_none_or(|ok| ok < f.last_error_at))
        .map(|f| {
            (
                f.system.to_owned(),
                format!("{} ×{}", f.kind, f.errors_last_5m),
            )
        })
        .collect()
}

/// How many SMS parts went out: the SMS sent times the parts of the service's offer text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsParts {
    /// SMS sent, over every case (a case sends at most the offer and one reminder).
    pub sms: i64,
    /// Parts of one SMS (the offer text as configured, in the configured language).
    pub per_sms: i64,
}

impl SmsParts {
    /// Parts sent in all.
    pub fn parts(&self) -> i64 {
        self.sms * self.per_sms
    }
}

impl Console {
    /// The SMS parts sent so far, from the cases' attempt counters (one query, whatever the number of
    /// cases).
    pub async fn sms_parts(&self) -> Result<SmsParts, ApiError> {
        const SQL: &str = "SELECT CAST(COALESCE(SUM(attempt), 0) AS BIGINT) FROM cases";
        let sms: i64 = match &self.engine.store {
            Store::Sqlite(p) => sqlx::query_scalar(SQL).fetch_one(p).await,
            Store::Postgres(p) => sqlx::query_scalar(SQL).fetch_one(p).await,
        }
        .map_err(|e| ApiError::internal(e.into()))?;
        let config = &self.engine.config;
        let per_sms = config
            .service
            .text(config.sms_language.code())
            .map_or(0, |text| crate::sms::encoding(text).segments as i64);
        Ok(SmsParts { sms, per_sms })
    }
}

// --- The guard: sessions and CSRF.

/// The session a request's cookie names, as the guard found it (expiry and revocation are checked by
/// [`Signed`], which has the clock and the store).
#[derive(Clone)]
struct Found(Option<(String, Session)>);

/// The hidden field every form carries.
#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// Runs before every dashboard route: finds the session, refuses (403) any POST whose `csrf` field is not
/// the session's token (or, for the sign-in form, the one its cookie holds), and adds the security headers
/// to every answer.
async fn guard(
    Extension(sessions): Extension<Arc<Sessions>>,
    jar: CookieJar,
    request: Request,
    next: Next,
) -> Response {
    let found = jar
        .get(SESSION_COOKIE)
        .and_then(|c| sessions.peek(c.value()).map(|s| (c.value().to_owned(), s)));
    let mut request = request;
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let expected = if request.uri().path() == "/signin" {
            jar.get(SIGNIN_COOKIE).map(|c| c.value().to_owned())
        } else {
            found.as_ref().map(|(_, s)| s.csrf.clone())
        };
        let lang = Lang::of_request(request.headers());
        let (parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
            return error_page(&Ui::anonymous(lang, "/"), StatusCode::PAYLOAD_TOO_LARGE, "");
        };
        let probe = Request::from_parts(parts.clone(), Body::from(bytes.clone()));
        let given = Form::<CsrfField>::from_request(probe, &())
            .await
            .map(|f| f.0.csrf)
            .unwrap_or_default();
        if !expected.is_some_and(|e| same_token(&e, &given)) {
            let ui = Ui::anonymous(lang, "/");
            let message = ui.t("error.csrf").to_owned();
            return error_page(&ui, StatusCode::FORBIDDEN, &message);
        }
        request = Request::from_parts(parts, Body::from(bytes));
    }
    request.extensions_mut().insert(Found(found));
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    // No script at all; styles and forms only from here; never framed (clickjacking of the action forms).
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// A signed-in operator: its session, still valid, with a token still valid.
struct Signed {
    id: String,
    caller: Caller,
    csrf: String,
    lang: Lang,
}

impl FromRequestParts<Arc<Console>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        let to_signin = || Redirect::to("/signin").into_response();
        let Some(Found(Some((id, _)))) = parts.extensions.get::<Found>().cloned() else {
            return Err(to_signin());
        };
        let Some(sessions) = parts.extensions.get::<Arc<Sessions>>().cloned() else {
            return Err(to_signin());
        };
        let Some(session) = sessions.get(&id, console.engine.wall.now()) else {
            return Err(to_signin());
        };
        // The token is looked up again, so that revoking an operator ends its sessions at once.
        let row = console
            .engine
            .store
            .operator_by_token(&session.token_hash)
            .await
            .map_err(|e| ApiError::internal(e).into_response())?;
        let Some(row) = row else {
            sessions.close(&id);
            return Err(to_signin());
        };
        let role = row.role.parse().unwrap_or(Role::Viewer);
        Ok(Signed {
            id,
            caller: Caller {
                name: row.name,
                role,
            },
            csrf: session.csrf,
            lang: Lang::of_request(&parts.headers),
        })
    }
}

// --- What every page shares.

/// The frame of a page: language, the signed-in operator, the navigation.
#[derive(Debug, Clone)]
struct Ui {
    tr: Tr,
    /// The operator's name and role label, when signed in.
    user: Option<(String, String)>,
    /// Whether the operator may act.
    can_act: bool,
    /// The session's CSRF token (empty when not signed in).
    csrf: String,
    /// This page's path and query, for the language links to come back to.
    here: String,
    /// The active navigation entry.
    nav: &'static str,
    /// The other languages, `(code, name)`.
    langs: Vec<(&'static str, &'static str)>,
}

impl Ui {
    fn new(signed: &Signed, uri: &Uri, nav: &'static str) -> Self {
        let tr = Tr(signed.lang);
        Self {
            tr,
            user: Some((
                signed.caller.name.clone(),
                tr.t(match signed.caller.role {
                    Role::Viewer => "role.viewer",
                    Role::Operator => "role.operator",
                })
                .to_owned(),
            )),
            can_act: signed.caller.role >= Role::Operator,
            csrf: signed.csrf.clone(),
            here: uri
                .path_and_query()
                .map_or("/".to_owned(), |p| p.as_str().to_owned()),
            nav,
            langs: Self::other_langs(signed.lang),
        }
    }

    fn anonymous(lang: Lang, here: &str) -> Self {
        Self {
            tr: Tr(lang),
            user: None,
            can_act: false,
            csrf: String::new(),
            here: here.to_owned(),
            nav: "",
            langs: Self::other_langs(lang),
        }
    }

    fn other_langs(lang: Lang) -> Vec<(&'static str, &'static str)> {
        Lang::ALL
            .iter()
            .filter(|l| **l != lang)
            .map(|l| (l.code(), l.native_name()))
            .collect()
    }

    /// A label.
    fn t<'a>(&self, key: &'a str) -> &'a str {
        self.tr.t(key)
    }

    /// The label of a stored value.
    fn v(&self, prefix: &str, value: &str) -> String {
        self.tr.value(prefix, value)
    }

    /// The page's language code.
    fn lang(&self) -> &'static str {
        self.tr.lang().code()
    }
}

/// A time as the operators read it: local (the configured zone), to the minute.
fn local(console: &Console, at: DateTime<Utc>) -> String {
    match console.engine.config.tz() {
        Ok(tz) => at.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string(),
        Err(_) => at.format("%Y-%m-%d %H:%M UTC").to_string(),
    }
}

/// A page, rendered.
fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => {
            tracing::warn!("a dashboard page failed to render: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html", config = "src/console/web/askama.toml")]
struct ErrorPage<'a> {
    ui: &'a Ui,
    title: String,
    message: &'a str,
}

/// An error page with the given status.
fn error_page(ui: &Ui, status: StatusCode, message: &str) -> Response {
    let title = match status {
        StatusCode::FORBIDDEN => ui.t("error.forbidden").to_owned(),
        StatusCode::NOT_FOUND => ui.t("error.not_found").to_owned(),
        _ => format!("{} {}", ui.t("word.error"), status.as_u16()),
    };
    render(
        status,
        &ErrorPage {
            ui,
            title,
            message: if message.is_empty() {
                status.canonical_reason().unwrap_or("")
            } else {
                message
            },
        },
    )
}

/// The error page of a console error; a viewer's 403 and a missing reason are said in the page's language.
fn api_error(ui: &Ui, e: ApiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::FORBIDDEN {
        return error_page(ui, status, ui.t("error.viewer"));
    }
    error_page(ui, status, &refusal(ui, &e))
}

/// Why an action was refused, for the operator: a missing reason in the page's language, the core's
/// refusal (in English, as the API says it) after a translated lead.
fn refusal(ui: &Ui, e: &ApiError) -> String {
    if e.status == 400 && e.message.contains("reason") {
        ui.t("error.reason").to_owned()
    } else if e.status == 409 {
        format!("{}: {}", ui.t("error.refused"), e.message)
    } else {
        e.message.clone()
    }
}

// --- Sign-in and out, language, assets.

#[derive(Template)]
#[template(path = "signin.html", config = "src/console/web/askama.toml")]
struct SigninPage {
    ui: Ui,
    error: bool,
}

/// A cookie of the dashboard: `Secure`, `HttpOnly`, `SameSite=Strict`, on `path`. Browsers keep `Secure`
/// cookies from `http://127.0.0.1` and `http://localhost` (secure contexts), so the loopback default
/// works without TLS; anywhere else the daemon is behind TLS (docs/CONSOLE.md).
fn cookie(
    name: &'static str,
    value: String,
    path: &'static str,
    max_age_s: i64,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .path(path)
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(cookie_duration(max_age_s))
        .build()
}

fn cookie_duration(seconds: i64) -> cookie::time::Duration {
    cookie::time::Duration::seconds(seconds)
}

/// The sign-in form, with a fresh CSRF token in its cookie and its hidden field.
fn signin_form(jar: CookieJar, lang: Lang, status: StatusCode, error: bool) -> Response {
    let token = random_token();
    let mut ui = Ui::anonymous(lang, "/signin");
    ui.csrf = token.clone();
    let jar = jar.add(cookie(SIGNIN_COOKIE, token, "/signin", 3600));
    (jar, render(status, &SigninPage { ui, error })).into_response()
}

async fn signin_page(
    signed: Result<Signed, Response>,
    jar: CookieJar,
    headers: axum::http::HeaderMap,
) -> Response {
    if signed.is_ok() {
        return Redirect::to("/").into_response();
    }
    signin_form(jar, Lang::of_request(&headers), StatusCode::OK, false)
}

#[derive(Deserialize)]
struct SigninForm {
    #[serde(default)]
    token: String,
}

async fn signin(
    State(console): State<Arc<Console>>,
    Extension(sessions): Extension<Arc<Sessions>>,
    jar: CookieJar,
    headers: axum::http::HeaderMap,
    Form(form): Form<SigninForm>,
) -> Response {
    let lang = Lang::of_request(&headers);
    match authenticate(&console.engine.store, &form.token).await {
        Ok(Some(caller)) => {
            let id = sessions.open(
                &caller.name,
                caller.role,
                &token_hash(form.token.trim()),
                console.engine.wall.now(),
            );
            tracing::info!(operator = %caller.name, "signed in to the dashboard");
            let jar = jar
                .add(cookie(
                    SESSION_COOKIE,
                    id,
                    "/",
                    session::SESSION_LIFETIME.num_seconds(),
                ))
                .remove(Cookie::build(SIGNIN_COOKIE).path("/signin"));
            (jar, Redirect::to("/")).into_response()
        }
        Ok(None) => signin_form(jar, lang, StatusCode::UNAUTHORIZED, true),
        Err(e) => api_error(&Ui::anonymous(lang, "/signin"), ApiError::internal(e)),
    }
}

async fn signout(
    signed: Result<Signed, Response>,
    Extension(sessions): Extension<Arc<Sessions>>,
    jar: CookieJar,
) -> Response {
    if let Ok(signed) = signed {
        sessions.close(&signed.id);
        tracing::info!(operator = %signed.caller.name, "signed out of the dashboard");
    }
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    (jar, Redirect::to("/signin")).into_response()
}

#[derive(Deserialize)]
struct Back {
    #[serde(default)]
    back: String,
}

/// Sets the language cookie and goes back to the page it was chosen on (a local path only, never
/// another site).
async fn set_lang(Path(code): Path<String>, Query(back): Query<Back>, jar: CookieJar) -> Response {
    let b = &back.back;
    // A path of this site, in the printable ASCII of a request line: nothing that splits the header, and
    // no `//host` or `/\host`, which a browser reads as another site.
    let local = b.starts_with('/')
        && !b.starts_with("//")
        && !b.contains('\\')
        && b.chars().all(|c| c.is_ascii_graphic());
    let back = if local { back.back } else { "/".to_owned() };
    let Some(lang) = Lang::parse(&code) else {
        return Redirect::to(&back).into_response();
    };
    let jar = jar.add(cookie(
        LANG_COOKIE,
        lang.code().to_owned(),
        "/",
        365 * 24 * 3600,
    ));
    (jar, Redirect::to(&back)).into_response()
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("assets/style.css"),
    )
        .into_response()
}

// --- The overview.

#[derive(Template)]
#[template(path = "overview.html", config = "src/console/web/askama.toml")]
struct OverviewPage {
    ui: Ui,
    done: String,
    total: i64,
    funnel: Vec<FunnelRow>,
    chart: chart::Chart,
    chart_w: i64,
    chart_h: i64,
    parts: SmsParts,
    failing: Vec<(String, String)>,
    paused: bool,
    pause_by: Option<String>,
    pause_at: Option<String>,
    pause_reason: Option<String>,
    actions: Vec<ActionLine>,
}

/// One line of the overview's funnel, with its bar.
struct FunnelRow {
    label: String,
    count: i64,
    /// The status whose badge and colour it wears, if it is one (the group lines are not).
    status: Option<String>,
    color: &'static str,
    /// The bar's length, in percent of all cases.
    pct: i64,
}

impl FunnelRow {
    fn new(label: String, count: i64, status: Option<&str>, total: i64) -> Self {
        Self {
            label,
            count,
            color: status.map_or("#145a86", chart::color),
            status: status.map(str::to_owned),
            pct: if total > 0 { count * 100 / total } else { 0 },
        }
    }
}

struct ActionLine {
    at: String,
    operator: String,
    action: String,
    case_id: Option<i64>,
    reason: String,
}

#[derive(Deserialize, Default)]
struct Done {
    #[serde(default)]
    done: String,
}

async fn overview(
    signed: Signed,
    uri: Uri,
    State(console): State<Arc<Console>>,
    Query(done): Query<Done>,
) -> Response {
    let ui = Ui::new(&signed, &uri, "overview");
    match overview_page(&console, ui.clone(), done.done).await {
        Ok(page) => render(StatusCode::OK, &page),
        Err(e) => api_error(&ui, e),
    }
}

async fn overview_page(console: &Console, ui: Ui, done: String) -> Result<OverviewPage, ApiError> {
    let today = console.today()?;
    let month_ago = today - chrono::Days::new(29);
    let funnel = console.funnel(month_ago, today).await?;
    let fortnight_ago = today - chrono::Days::new(13);
    let recent = console.funnel(fortnight_ago, today).await?;
    let chart = chart::of(&recent, fortnight_ago, today, ui.tr);
    let mut stages: BTreeMap<&str, i64> = BTreeMap::new();
    for (key, n) in &funnel.totals {
        if let Some(stage) = key.strip_prefix("open/") {
            *stages.entry(stage).or_default() += n;
        }
    }
    let total: i64 = funnel.by_status.values().sum();
    let count = |status: &str| funnel.by_status.get(status).copied().unwrap_or(0);
    let mut rows = vec![
        FunnelRow::new(ui.t("overview.all_cases").to_owned(), total, None, total),
        FunnelRow::new(
            ui.t("overview.in_progress").to_owned(),
            count("open"),
            None,
            total,
        ),
    ];
    rows.extend(i18n::STAGES.iter().filter_map(|s| {
        stages
            .get(s)
            .map(|n| FunnelRow::new(ui.v("stage", s), *n, Some("open"), total))
    }));
    rows.push(FunnelRow::new(
        ui.t("overview.ended").to_owned(),
        total - count("open"),
        None,
        total,
    ));
    rows.extend(
        i18n::STATUSES
            .iter()
            .filter(|s| **s != "open" && count(s) > 0)
            .map(|s| FunnelRow::new(ui.v("status", s), count(s), Some(s), total)),
    );
    let pause = console
        .engine
        .sms_pause()
        .await
        .map_err(ApiError::internal)?;
    let actions = console
        .recent_actions(8)
        .await?
        .into_iter()
        .map(|a| ActionLine {
            at: local(console, a.at),
            operator: a.operator,
            action: ui.v("action", &a.action),
            case_id: a.case_id,
            reason: a.reason,
        })
        .collect();
    Ok(OverviewPage {
        done,
        total,
        funnel: rows,
        chart,
        chart_w: chart::WIDTH,
        chart_h: chart::HEIGHT,
        parts: console.sms_parts().await?,
        failing: failing_systems(console),
        paused: pause.paused,
        pause_by: pause.by,
        pause_at: pause.at.map(|t| local(console, t)),
        pause_reason: pause.reason,
        actions,
        ui,
    })
}

#[derive(Deserialize)]
struct ReasonForm {
    #[serde(default)]
    reason: String,
}

async fn pause(
    signed: Signed,
    uri: Uri,
    State(console): State<Arc<Console>>,
    Form(form): Form<ReasonForm>,
) -> Response {
    switch(signed, uri, console, true, form).await
}

async fn resume(
    signed: Signed,
    uri: Uri,
    State(console): State<Arc<Console>>,
    Form(form): Form<ReasonForm>,
) -> Response {
    switch(signed, uri, console, false, form).await
}

async fn switch(
    signed: Signed,
    uri: Uri,
    console: Arc<Console>,
    paused: bool,
    form: ReasonForm,
) -> Response {
    let ui = Ui::new(&signed, &uri, "overview");
    let request = ActionRequest {
        reason: form.reason,
    };
    match console
        .set_sms_pause(&signed.caller, paused, &request)
        .await
    {
        Ok(_) => Redirect::to(if paused {
            "/?done=paused"
        } else {
            "/?done=resumed"
        })
        .into_response(),
        Err(e) => api_error(&ui, e),
    }
}

// --- Case lists: search, queue, needing a person.

/// A case as a list shows it.
struct Line {
    id: i64,
    bin: String,
    name: String,
    renamed: String,
    status: String,
    status_label: String,
    detail: String,
    attempt: i64,
    head: String,
    phone: String,
    due: String,
}

impl Line {
    fn of(console: &Console, ui: &Ui, c: &CaseView) -> Self {
        let detail = match (&c.stage, &c.reason) {
            (Some(stage), _) if c.status == "open" => ui.v("stage", stage),
            (_, Some(reason)) => ui.v("reason", reason),
            _ => String::new(),
        };
        Self {
            id: c.id,
            bin: c.bin.clone(),
            name: c.to_name.clone(),
            renamed: local(console, c.renamed_at),
            status: c.status.clone(),
            status_label: ui.v("status", &c.status),
            detail,
            attempt: c.attempt,
            head: c.head.clone().unwrap_or_default(),
            phone: c.phone.clone().unwrap_or_default(),
            due: c.due_at.map(|t| local(console, t)).unwrap_or_default(),
        }
    }
}

/// The search form as submitted: every field text, so that an empty field means "any".
#[derive(Debug, Clone, Default, Deserialize)]
struct SearchForm {
    #[serde(default)]
    status: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    stage: String,
    #[serde(default)]
    bin: String,
    #[serde(default)]
    renamed_from: String,
    #[serde(default)]
    renamed_to: String,
    #[serde(default)]
    after: Option<i64>,
    /// Cases per page (50 unless given; the API's bounds).
    #[serde(default)]
    limit: Option<i64>,
}

impl SearchForm {
    /// The API's query of this form; `None` when a date is malformed.
    fn query(&self) -> Option<CaseQuery> {
        let date = |s: &str| -> Result<Option<chrono::NaiveDate>, ()> {
            match s.trim() {
                "" => Ok(None),
                d => d.parse().map(Some).map_err(|_| ()),
            }
        };
        let some = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        Some(CaseQuery {
            status: some(&self.status),
            outcome: some(&self.outcome),
            reason: some(&self.reason),
            stage: some(&self.stage),
            bin: some(&self.bin),
            renamed_from: date(&self.renamed_from).ok()?,
            renamed_to: date(&self.renamed_to).ok()?,
            after: self.after,
            limit: self.limit,
        })
    }
}

#[derive(Template)]
#[template(path = "search.html", config = "src/console/web/askama.toml")]
struct SearchPage {
    ui: Ui,
    q: SearchForm,
    error: String,
    lines: Vec<Line>,
    next: Option<i64>,
    outcomes: Vec<(String, String)>,
    reasons: Vec<(String, String)>,
    stages: Vec<(String, String)>,
}

async fn search(
    signed: Signed,
    uri: Uri,
    State(console): State<Arc<Console>>,
    Query(q): Query<SearchForm>,
) -> Response {
    let ui = Ui::new(&signed, &uri, "search");
    let options = |prefix: &str, values: &[&str]| -> Vec<(String, String)> {
        values
            .iter()
            .map(|v| ((*v).to_owned(), ui.v(prefix, v)))
            .collect()
    };
    let mut page = SearchPage {
        outcomes: options("status", &i18n::OUTCOMES),
        reasons: options("reason", &i18n::REASONS),
        stages: options("stage", &i18n::STAGES),
        ui: ui.clone(),
        q: q.clone(),
        error: String::new(),
        lines: Vec::new(),
        next: None,
    };
    let Some(query) = q.query() else {
        page.error = ui.t("search.bad_date").to_owned();
        return render(StatusCode::BAD_REQUEST, &page);
    };
    let result = match console.filter_of(&query) {
        Ok(filter) => console.cases(&filter, query.limit.unwrap_or(PAGE)).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(found) => {
            page.lines = lines(&console, &ui, &found);
            page.next = found.next_after;
            render(StatusCode::OK, &page)
        }
        Err(e) if e.status == 400 => {
            page.error = e.message;
            render(StatusCode::BAD_REQUEST, &page)
        }
        Err(e) => api_error(&ui, e),
    }
}

fn lines(console: &Console, ui: &Ui, page: &CasePage) -> Vec<Line> {
    page.cases
        .iter()
        .map(|c| Line::of(console, ui, c))
        .collect()
}

#[derive(Template)]
#[template(path = "list.html", config = "src/console/web/askama.toml")]
struct ListPage {
    ui: Ui,
    title: &'static str,
    hint: &'static str,
    lines: Vec<Line>,
    next: Option<i64>,
    path: &'static str,
}

#[derive(Deserialize, Default)]
struct After {
    after: Option<i64>,
}

async fn queue(
    signed: Signed,
    uri: Uri,
    State(console): State<Arc<Console>>,
    Query(after): Query<After>,
) -> Response {
    let filter = CaseFilter {
        after: after.after.unwrap_or(0),
        status: Some("open".into()),
        stage: Some("queued".into()),
        ..CaseFilter::default()
    };
    let ui = Ui::new(&signed, &uri, "queue");
    list(&console, ui, filter, "queue.title", "queue.hint", "/queue").await
}

async fn attention(
    signed: Signed,
    uri: Uri,
    State(console): State<Arc<Console>>,
    Query(after): Query<After>,
) -> Response {
    let filter = CaseFilter {
        after: after.after.unwrap_or(0),
        outcome: Some("failed".into()),
        ..CaseFilter::default()
    };
    let ui = Ui::new(&signed, &uri, "attention");
    list(
        &console,
        ui,
        filter,
        "attention.title",
        "attention.hint",
        "/attention",
    )
    .await
}

async fn list(
    console: &Console,
    ui: Ui,
    filter: CaseFilter,
    title: &'static str,
    hint: &'static str,
    path: &'static str,
) -> Response {
    match console.cases(&filter, PAGE).await {
        Ok(found) => render(
            StatusCode::OK,
            &ListPage {
                lines: lines(console, &ui, &found),
                next: found.next_after,
                title: ui.t(title),
                hint: ui.t(hint),
                ui,
                path,
            },
        ),
        Err(e) => api_error(&ui, e),
    }
}

// --- One case: its timeline and the actions on it.

/// A line of the history, for the page.
struct HistoryLine {
    at: String,
    kind: String,
    label: String,
    /// `(key, value)` of its detail, values as compact text.
    detail: Vec<(String, String)>,
    hash: String,
}

struct WriteLine {
    at: String,
    system: String,
    key: String,
    answer: String,
}

/// A JSON value as one line of text: instants in local time, objects as `key: value, …`, lists joined.
fn value_text(console: &Console, v: &Value) -> String {
    match v {
        Value::String(s) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => local(console, t.with_timezone(&Utc)),
            Err(_) => s.clone(),
        },
        Value::Null => "—".to_owned(),
        Value::Array(items) => items
            .iter()
            .map(|i| value_text(console, i))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Object(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v {
                Value::Object(_) | Value::Array(_) => format!("{k}: {v}"),
                _ => format!("{k}: {}", value_text(console, v)),
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// The items of a history line's detail: an object's fields, or the findings of a check (a list of
/// `{"system", "finding"}`, one item per system), or the value itself.
fn detail_items(console: &Console, detail: &Value) -> Vec<(String, String)> {
    match detail {
        Value::Object(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), value_text(console, v)))
            .collect(),
        Value::Array(items) => items
            .iter()
            .map(|item| match (item.get("system"), item.get("finding")) {
                (Some(Value::String(system)), Some(finding)) => {
                    (system.clone(), value_text(console, finding))
                }
                _ => (String::new(), value_text(console, item)),
            })
            .collect(),
        Value::Null => Vec::new(),
        other => vec![(String::new(), value_text(console, other))],
    }
}

#[derive(Template)]
#[template(path = "case.html", config = "src/console/web/askama.toml")]
struct TimelinePage {
    ui: Ui,
    done: String,
    line: Line,
    from_name: String,
    decision: String,
    permits: String,
    reissued: String,
    retries: i64,
    history: Vec<HistoryLine>,
    writes: Vec<WriteLine>,
    can_retry: bool,
    can_end: bool,
}

async fn timeline(
    signed: Signed,
    uri: Uri,
    State(console): State<Arc<Console>>,
    Path(id): Path<i64>,
    Query(done): Query<Done>,
) -> Response {
    let ui = Ui::new(&signed, &uri, "search");
    let detail = match console.case_detail(id).await {
        Ok(d) => d,
        Err(e) => return api_error(&ui, e),
    };
    let c = &detail.case;
    let page = TimelinePage {
        done: done.done,
        line: Line::of(&console, &ui, c),
        from_name: c.from_name.clone(),
        // The last decision's words, for an ended case (an open one is described by its stage; a retried
        // case still carries the words of the failure it was retried from).
        decision: if c.status == "open" {
            String::new()
        } else {
            c.detail.clone().unwrap_or_default()
        },
        permits: c.permits.join(", "),
        reissued: c.reissued.join(", "),
        retries: c.retries,
        history: detail
            .timeline
            .iter()
            .map(|e| HistoryLine {
                at: local(&console, e.at),
                kind: e.kind.clone(),
                label: ui.v("event", &e.kind),
                detail: detail_items(&console, &e.detail),
                hash: e.hash.chars().take(10).collect(),
            })
            .collect(),
        writes: detail
            .writes
            .iter()
            .map(|w| WriteLine {
                at: local(&console, w.at),
                system: ui.v("write", &w.kind),
                key: w.idempotency_key.clone(),
                answer: value_text(&console, &w.result),
            })
            .collect(),
        can_retry: c.status == "failed",
        can_end: c.status == "open",
        ui,
    };
    render(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "confirm.html", config = "src/console/web/askama.toml")]
struct ConfirmPage {
    ui: Ui,
    line: Line,
    /// `retry` or `end`.
    action: &'static str,
    question: &'static str,
    hint: &'static str,
    reason: String,
    error: String,
}

/// What a confirmation page and its form are about.
#[derive(Clone, Copy)]
enum Act {
    Retry,
    End,
}

impl Act {
    fn path(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::End => "end",
        }
    }
    fn action(self) -> OperatorAction {
        match self {
            Self::Retry => OperatorAction::Retry,
            Self::End => OperatorAction::EndByHand,
        }
    }
}

async fn confirm_page(
    console: &Console,
    ui: Ui,
    id: i64,
    act: Act,
    reason: String,
    error: Option<ApiError>,
) -> Response {
    let detail = match console.case_detail(id).await {
        Ok(d) => d,
        Err(e) => return api_error(&ui, e),
    };
    let status = error.as_ref().map_or(StatusCode::OK, |e| {
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST)
    });
    let (question, hint) = match act {
        Act::Retry => ("case.confirm_retry", "case.retry_hint"),
        Act::End => ("case.confirm_end", "case.end_hint"),
    };
    render(
        status,
        &ConfirmPage {
            line: Line::of(console, &ui, &detail.case),
            action: act.path(),
            question: ui.t(question),
            hint: ui.t(hint),
            reason,
            error: error.map(|e| refusal(&ui, &e)).unwrap_or_default(),
            ui,
        },
    )
}

async fn confirm(signed: Signed, uri: Uri, console: Arc<Console>, id: i64, act: Act) -> Response {
    let ui = Ui::new(&signed, &uri, "search");
    if let Err(e) = signed.caller.require(Role::Operator) {
        return api_error(&ui, e);
    }
    confirm_page(&console, ui, id, act, String::new(), None).await
}

async fn confirm_retry(
    signed: Signed,
    uri: Uri,
    State(console): State<Arc<Console>>,
    Path(id): Path<i64>,
) -> Response {
    confirm(signed, uri, console, id, Act::Retry).await
}

async fn confirm_end(
    signed: Signed,
    uri: Uri,
    State(console): State<Arc<Console>>,
    Path(id): Path<i64>,
) -> Response {
    confirm(signed, uri, console, id, Act::End).await
}

async fn act(
    signed: Signed,
    uri: Uri,
    console: Arc<Console>,
    id: i64,
    act: Act,
    form: ReasonForm,
) -> Response {
    let ui = Ui::new(&signed, &uri, "search");
    let request = ActionRequest {
        reason: form.reason.clone(),
    };
    match console
        .act_on_case(&signed.caller, id, act.action(), &request)
        .await
    {
        Ok(_) => Redirect::to(&format!("/cases/{id}?done={}", act.path())).into_response(),
        // A viewer, or a case that is not there: the error page; otherwise the form again, with why.
        Err(e) if e.status == 403 || e.status == 404 || e.status >= 500 => api_error(&ui, e),
        Err(e) => confirm_page(&console, ui, id, act, form.reason, Some(e)).await,
    }
}

async fn retry(
    signed: Signed,
    uri: Uri,
    State(console): State<Arc<Console>>,
    Path(id): Path<i64>,
    Form(form): Form<ReasonForm>,
) -> Response {
    act(signed, uri, console, id, Act::Retry, form).await
}

async fn end(
    signed: Signed,
    uri: Uri,
    State(console): State<Arc<Console>>,
    Path(id): Path<i64>,
    Form(form): Form<ReasonForm>,
) -> Response {
    act(signed, uri, console, id, Act::End, form).await
}
