//! The console's JSON API under `/api` and its OpenAPI 3.1 document, generated from these handlers
//! (utoipa) and served at `/api/openapi.json` with Swagger UI at `/api/docs` (embedded, no CDN).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Json;
use axum::routing::{get, post};
use chrono::{NaiveDate, TimeZone};
use serde::Deserialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

use super::actions::ActionRequest;
use super::auth::Caller;
use super::views::{ActionView, CaseDetail, CasePage, Funnel};
use super::{ApiError, Console};
use crate::case::transition::OperatorAction;
use crate::commands::dry_run::Trace;
use crate::engine::pause::SmsPause;
use crate::store::{CaseFilter, ms};

/// The API's routes, the document and its UI.
pub fn router() -> Router<Arc<Console>> {
    Router::new()
        .route("/api/cases", get(list_cases))
        .route("/api/cases/{id}", get(case_detail))
        .route("/api/cases/{id}/retry", post(retry_case))
        .route("/api/cases/{id}/end", post(end_case))
        .route("/api/queue", get(queue))
        .route("/api/attention", get(attention))
        .route("/api/funnel", get(funnel))
        .route("/api/summary", get(summary))
        .route("/api/dry-run/{bin}", get(dry_run))
        .route("/api/sms/pause", get(sms_pause).post(pause_sms))
        .route("/api/sms/resume", post(resume_sms))
        .route("/api/actions", get(actions))
        .route("/api/releases", get(releases))
        .route("/api/releases/{period}", get(release))
        .route("/api/releases/{period}/{file}", get(release_file))
        .merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", ApiDoc::openapi()))
}

/// The OpenAPI document, as served at `/api/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The OpenAPI document's definition.
#[derive(OpenApi)]
#[openapi(
    info(title = "sdu operator console", description = "Cases, their history, the funnel, and the operators' actions (docs/CONSOLE.md). Every route needs `Authorization: Bearer <token>`; actions need the operator role."),
    paths(list_cases, case_detail, retry_case, end_case, queue, attention, funnel, summary, dry_run, sms_pause, pause_sms, resume_sms, actions, releases, release, release_file),
    components(schemas(ActionRequest, SmsPause, ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every error answer.
#[derive(ToSchema)]
#[allow(dead_code)] // the document's description of `ApiError`'s body
struct ErrorBody {
    /// What went wrong.
    error: String,
}

/// Filters of the case list; all optional, combined with AND.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CaseQuery {
    /// `open` or `ended`.
    #[param(pattern = "^(open|ended)$")]
    pub status: Option<String>,
    /// An outcome: reissued, refused, expired, not_eligible, no_permits, already_current, superseded, failed,
    /// closed_by_operator.
    pub outcome: Option<String>,
    /// An outcome reason (e.g. `invalid_data`, `deceased`, `no_phone`).
    pub reason: Option<String>,
    /// A stage of open cases: checking, queued, awaiting_reply, consent_pending, reissuing, writing_back.
    pub stage: Option<String>,
    /// The BIN.
    pub bin: Option<String>,
    /// Renamed on or after this local day.
    pub renamed_from: Option<NaiveDate>,
    /// Renamed on or before this local day.
    pub renamed_to: Option<NaiveDate>,
    /// The `next_after` of the previous page.
    pub after: Option<i64>,
    /// Cases per page, 1 to 500 (50).
    pub limit: Option<i64>,
}

/// A page cursor.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The `next_after` of the previous page.
    pub after: Option<i64>,
    /// Cases per page, 1 to 500 (50).
    pub limit: Option<i64>,
}

/// The period of the funnel.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FunnelQuery {
    /// First local day (default: 30 days before `to`).
    pub from: Option<NaiveDate>,
    /// Last local day, inclusive (default: today).
    pub to: Option<NaiveDate>,
}

const DEFAULT_PAGE: i64 = 50;

impl Console {
    pub(crate) fn filter_of(&self, q: &CaseQuery) -> Result<CaseFilter, ApiError> {
        let tz = self.engine.config.tz().map_err(ApiError::internal)?;
        let day_start = |d: NaiveDate| {
            tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"))
                .earliest()
                .map(|t| ms(t.with_timezone(&chrono::Utc)))
                .ok_or_else(|| ApiError::bad_request("the date is outside the calendar"))
        };
        let status = match q.status.as_deref() {
            None | Some("") => None,
            Some(s @ ("open" | "ended")) => Some(s.to_owned()),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "status `{other}`: expected open or ended"
                )));
            }
        };
        let text = |v: &Option<String>| v.as_ref().filter(|s| !s.is_empty()).cloned();
        Ok(CaseFilter {
            after: q.after.unwrap_or(0),
            status,
            outcome: text(&q.outcome),
            reason: text(&q.reason),
            stage: text(&q.stage),
            bin: text(&q.bin),
            renamed_from: q.renamed_from.map(day_start).transpose()?,
            renamed_until: q
                .renamed_to
                .and_then(|d| d.checked_add_days(chrono::Days::new(1)))
                .map(day_start)
                .transpose()?,
        })
    }

    pub(crate) fn today(&self) -> Result<NaiveDate, ApiError> {
        let tz = self.engine.config.tz().map_err(ApiError::internal)?;
        Ok(self.engine.clock.now().with_timezone(&tz).date_naive())
    }
}

/// Cases, filtered, in id order (keyset pagination).
#[utoipa::path(get, path = "/api/cases", params(CaseQuery), responses(
    (status = 200, description = "A page of cases", body = CasePage),
    (status = 400, description = "A filter is malformed", body = ErrorBody),
    (status = 401, description = "No valid token", body = ErrorBody)))]
async fn list_cases(
    _caller: Caller,
    State(console): State<Arc<Console>>,
    Query(q): Query<CaseQuery>,
) -> Result<Json<CasePage>, ApiError> {
    let filter = console.filter_of(&q)?;
    Ok(Json(
        console
            .cases(&filter, q.limit.unwrap_or(DEFAULT_PAGE))
            .await?,
    ))
}

/// One case with its whole timeline: findings, SMS (masked numbers), replies, outward writes with their
/// keys, operator actions.
#[utoipa::path(get, path = "/api/cases/{id}", params(("id" = i64, Path, description = "Case id")), responses(
    (status = 200, description = "The case", body = CaseDetail),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 404, description = "No such case", body = ErrorBody)))]
async fn case_detail(
    _caller: Caller,
    State(console): State<Arc<Console>>,
    Path(id): Path<i64>,
) -> Result<Json<CaseDetail>, ApiError> {
    Ok(Json(console.case_detail(id).await?))
}

/// Retries a failed case from its checks (its data corrected); writes already done are not repeated.
#[utoipa::path(post, path = "/api/cases/{id}/retry", params(("id" = i64, Path, description = "Case id")),
    request_body = ActionRequest, responses(
    (status = 200, description = "The case, open again", body = CaseDetail),
    (status = 400, description = "No reason given", body = ErrorBody),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 403, description = "A viewer", body = ErrorBody),
    (status = 404, description = "No such case", body = ErrorBody),
    (status = 409, description = "The case is not failed, or is being advanced", body = ErrorBody)))]
async fn retry_case(
    caller: Caller,
    State(console): State<Arc<Console>>,
    Path(id): Path<i64>,
    Json(request): Json<ActionRequest>,
) -> Result<Json<CaseDetail>, ApiError> {
    console
        .act_on_case(&caller, id, OperatorAction::Retry, &request)
        .await?;
    Ok(Json(console.case_detail(id).await?))
}

/// Ends an open case by hand: the service is then given under the general procedure.
#[utoipa::path(post, path = "/api/cases/{id}/end", params(("id" = i64, Path, description = "Case id")),
    request_body = ActionRequest, responses(
    (status = 200, description = "The case, ended closed_by_operator", body = CaseDetail),
    (status = 400, description = "No reason given", body = ErrorBody),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 403, description = "A viewer", body = ErrorBody),
    (status = 404, description = "No such case", body = ErrorBody),
    (status = 409, description = "The case has ended, or is being advanced", body = ErrorBody)))]
async fn end_case(
    caller: Caller,
    State(console): State<Arc<Console>>,
    Path(id): Path<i64>,
    Json(request): Json<ActionRequest>,
) -> Result<Json<CaseDetail>, ApiError> {
    console
        .act_on_case(&caller, id, OperatorAction::EndByHand, &request)
        .await?;
    Ok(Json(console.case_detail(id).await?))
}

/// The queue: cases waiting for their phone's one open offer to end.
#[utoipa::path(get, path = "/api/queue", params(PageQuery), responses(
    (status = 200, description = "Queued cases", body = CasePage),
    (status = 401, description = "No valid token", body = ErrorBody)))]
async fn queue(
    _caller: Caller,
    State(console): State<Arc<Console>>,
    Query(q): Query<PageQuery>,
) -> Result<Json<CasePage>, ApiError> {
    let filter = CaseFilter {
        after: q.after.unwrap_or(0),
        status: Some("open".into()),
        stage: Some("queued".into()),
        ..CaseFilter::default()
    };
    Ok(Json(
        console
            .cases(&filter, q.limit.unwrap_or(DEFAULT_PAGE))
            .await?,
    ))
}

/// The cases that need a person: failed ones.
#[utoipa::path(get, path = "/api/attention", params(PageQuery), responses(
    (status = 200, description = "Failed cases", body = CasePage),
    (status = 401, description = "No valid token", body = ErrorBody)))]
async fn attention(
    _caller: Caller,
    State(console): State<Arc<Console>>,
    Query(q): Query<PageQuery>,
) -> Result<Json<CasePage>, ApiError> {
    let filter = CaseFilter {
        after: q.after.unwrap_or(0),
        outcome: Some("failed".into()),
        ..CaseFilter::default()
    };
    Ok(Json(
        console
            .cases(&filter, q.limit.unwrap_or(DEFAULT_PAGE))
            .await?,
    ))
}

/// Cases of a period by the local day of their rename, status and reason.
#[utoipa::path(get, path = "/api/funnel", params(FunnelQuery), responses(
    (status = 200, description = "The funnel", body = Funnel),
    (status = 400, description = "A malformed period", body = ErrorBody),
    (status = 401, description = "No valid token", body = ErrorBody)))]
async fn funnel(
    _caller: Caller,
    State(console): State<Arc<Console>>,
    Query(q): Query<FunnelQuery>,
) -> Result<Json<Funnel>, ApiError> {
    let to = match q.to {
        Some(to) => to,
        None => console.today()?,
    };
    let from = q
        .from
        .unwrap_or_else(|| to.checked_sub_days(chrono::Days::new(30)).unwrap_or(to));
    Ok(Json(console.funnel(from, to).await?))
}

/// Counts of every case by status and stage or reason.
#[utoipa::path(get, path = "/api/summary", responses(
    (status = 200, description = "Counts", body = std::collections::BTreeMap<String, i64>),
    (status = 401, description = "No valid token", body = ErrorBody)))]
async fn summary(
    _caller: Caller,
    State(console): State<Arc<Console>>,
) -> Result<Json<std::collections::BTreeMap<String, i64>>, ApiError> {
    Ok(Json(
        console.engine.summary().await.map_err(ApiError::internal)?,
    ))
}

/// The dry run of one organisation: the checks and the decision, nothing written or sent.
#[utoipa::path(get, path = "/api/dry-run/{bin}", params(("bin" = String, Path, description = "12-digit BIN")), responses(
    (status = 200, description = "The trace", body = Object),
    (status = 400, description = "Not a valid BIN", body = ErrorBody),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 502, description = "A registry did not answer", body = ErrorBody)))]
async fn dry_run(
    _caller: Caller,
    State(console): State<Arc<Console>>,
    Path(bin): Path<String>,
) -> Result<Json<Trace>, ApiError> {
    let bin = adapters::Bin::parse(&bin).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let engine = &console.engine;
    crate::commands::dry_run::trace(&engine.systems, &engine.config, &bin, engine.clock.now())
        .await
        .map(Json)
        .map_err(|e| {
            tracing::warn!("dry run failed: {e:#}");
            ApiError {
                status: 502,
                message: "a registry did not answer; try again".into(),
            }
        })
}

/// Whether outgoing SMS are paused, by whom and why.
#[utoipa::path(get, path = "/api/sms/pause", responses(
    (status = 200, description = "The switch", body = SmsPause),
    (status = 401, description = "No valid token", body = ErrorBody)))]
async fn sms_pause(
    _caller: Caller,
    State(console): State<Arc<Console>>,
) -> Result<Json<SmsPause>, ApiError> {
    Ok(Json(
        console
            .engine
            .sms_pause()
            .await
            .map_err(ApiError::internal)?,
    ))
}

/// Pauses every outgoing SMS: the engine sends none from its next claim on, across restarts.
#[utoipa::path(post, path = "/api/sms/pause", request_body = ActionRequest, responses(
    (status = 200, description = "Paused", body = SmsPause),
    (status = 400, description = "No reason given", body = ErrorBody),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 403, description = "A viewer", body = ErrorBody)))]
async fn pause_sms(
    caller: Caller,
    State(console): State<Arc<Console>>,
    Json(request): Json<ActionRequest>,
) -> Result<Json<SmsPause>, ApiError> {
    Ok(Json(console.set_sms_pause(&caller, true, &request).await?))
}

/// Resumes outgoing SMS: what waited is sent within the SMS window.
#[utoipa::path(post, path = "/api/sms/resume", request_body = ActionRequest, responses(
    (status = 200, description = "Resumed", body = SmsPause),
    (status = 400, description = "No reason given", body = ErrorBody),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 403, description = "A viewer", body = ErrorBody)))]
async fn resume_sms(
    caller: Caller,
    State(console): State<Arc<Console>>,
    Json(request): Json<ActionRequest>,
) -> Result<Json<SmsPause>, ApiError> {
    Ok(Json(console.set_sms_pause(&caller, false, &request).await?))
}

/// The most recent operator actions, newest first.
#[utoipa::path(get, path = "/api/actions", params(PageQuery), responses(
    (status = 200, description = "Actions", body = Vec<ActionView>),
    (status = 401, description = "No valid token", body = ErrorBody)))]
async fn actions(
    _caller: Caller,
    State(console): State<Arc<Console>>,
    Query(q): Query<PageQuery>,
) -> Result<Json<Vec<ActionView>>, ApiError> {
    Ok(Json(
        console
            .recent_actions(q.limit.unwrap_or(DEFAULT_PAGE))
            .await?,
    ))
}

fn publish_dir(console: &Console) -> Result<&std::path::Path, ApiError> {
    console
        .engine
        .config
        .publish_dir
        .as_deref()
        .ok_or_else(|| ApiError::not_found("no releases: `publish_dir` is not configured"))
}

/// The monthly releases of the outcome statistics the daemon published (`publish_dir`), newest first.
#[utoipa::path(get, path = "/api/releases", responses(
    (status = 200, description = "Months released", body = Vec<String>),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 404, description = "Publishing is not configured", body = ErrorBody)))]
async fn releases(
    _caller: Caller,
    State(console): State<Arc<Console>>,
) -> Result<Json<Vec<String>>, ApiError> {
    let dir = publish_dir(&console)?;
    Ok(Json(
        crate::publish::schedule::releases(dir).map_err(ApiError::internal)?,
    ))
}

/// The files of one month's release.
#[utoipa::path(get, path = "/api/releases/{period}", params(("period" = String, Path, description = "YYYY-MM")), responses(
    (status = 200, description = "File names", body = Vec<String>),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 404, description = "No such release", body = ErrorBody)))]
async fn release(
    _caller: Caller,
    State(console): State<Arc<Console>>,
    Path(period): Path<String>,
) -> Result<Json<Vec<String>>, ApiError> {
    let dir = publish_dir(&console)?;
    crate::publish::schedule::release_files(dir, &period)
        .map_err(ApiError::internal)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no such release"))
}

/// One file of a release (CSV tables, metadata, `datapackage.json`).
#[utoipa::path(get, path = "/api/releases/{period}/{file}", params(
    ("period" = String, Path, description = "YYYY-MM"), ("file" = String, Path, description = "A file name of the release")), responses(
    (status = 200, description = "The file", content_type = "text/csv", body = String),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 404, description = "No such file", body = ErrorBody)))]
async fn release_file(
    _caller: Caller,
    State(console): State<Arc<Console>>,
    Path((period, file)): Path<(String, String)>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let dir = publish_dir(&console)?;
    let (media, body) = crate::publish::schedule::release_file(dir, &period, &file)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("no such file in the release"))?;
    Ok(([(axum::http::header::CONTENT_TYPE, media)], body).into_response())
}
