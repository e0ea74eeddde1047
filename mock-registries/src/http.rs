//! The HTTP face of the mock: one axum router per system (the wire API of `docs/API.md`), each behind the
//! fault layer, the control endpoints of docs/RULES.md §4 (never faulted), and `/openapi.json`.
//!
//! Every error is JSON `{"error": "..."}`: 400 for a bad request (missing `Idempotency-Key`, a body that is
//! not the expected JSON, a bad cursor), 404 for an absent record, 422 for a rejected re-issue.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, FixedOffset, Utc};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use crate::scenario::{FaultMode, PermitStatus, SystemName};
use crate::views::{ConsentView, Fault, SduRecordView, SentSmsView};
use crate::world::{Base, Data, key_of};
use crate::{DEFAULT_PAGE, MAX_PAGE, Mock, parse_cursor};

/// An error answer: a status and a JSON `{"error": message}` body.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        Self::bad_request(e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        Self::bad_request(e.body_text())
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok(value: impl serde::Serialize) -> ApiResult {
    Ok(Json(value).into_response())
}

/// An identifier in a request body: a string or a number, kept as sent (never validated further).
fn raw_id<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    let v = Value::deserialize(d)?;
    if v.is_string() || v.is_number() {
        Ok(v)
    } else {
        Err(D::Error::custom("expected a string or a number"))
    }
}

/// A list of identifiers, each as [`raw_id`].
fn raw_ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Value>, D::Error> {
    let list = Vec::<Value>::deserialize(d)?;
    if list.iter().all(|v| v.is_string() || v.is_number()) {
        Ok(list)
    } else {
        Err(D::Error::custom("expected strings or numbers"))
    }
}

fn parse_body<B: DeserializeOwned>(body: &[u8]) -> Result<B, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("request body: {e}")))
}

/// The whole router: systems, control endpoints, `/openapi.json`, JSON 404/405.
pub(crate) fn router(mock: Mock) -> Router {
    let system = |name: SystemName, routes: Router<Mock>| {
        routes
            .method_not_allowed_fallback(method_not_allowed)
            .layer(middleware::from_fn_with_state(
                (mock.clone(), name),
                fault_layer,
            ))
    };
    let legal = Router::new()
        .route("/renames", get(renames))
        .route("/organizations/{bin}", get(organization));
    let license = Router::new()
        .route("/permits", get(permits))
        .route("/permits/{permit_id}/reissue", post(reissue));
    let individuals = Router::new().route("/persons/{iin}", get(person));
    let civil = Router::new().route("/records/{iin}", get(civil_record));
    let mobile = Router::new().route("/numbers/{iin}", get(mobile_number));
    let sms = Router::new()
        .route("/messages", post(sms_send))
        .route("/replies", get(sms_replies));
    let consent = Router::new().route("/consents", post(consent_record));
    let sdu = Router::new().route("/records", post(sdu_record));
    let control = Router::new()
        .route("/sms/reply", post(control_reply))
        .route("/sms/sent", get(control_sent))
        .route(
            "/faults",
            get(control_faults_list)
                .post(control_faults_set)
                .delete(control_faults_clear),
        )
        .route("/state", get(control_state))
        .route("/clock", get(control_clock_get).post(control_clock_set))
        .route("/rename", post(control_rename))
        .route("/update", post(control_update))
        .route("/calls", get(control_calls))
        .route("/calls/peaks", get(control_call_peaks))
        .method_not_allowed_fallback(method_not_allowed);
    Router::new()
        .nest("/legal_entities", system(SystemName::LegalEntities, legal))
        .nest("/e_license", system(SystemName::ELicense, license))
        .nest("/individuals", system(SystemName::Individuals, individuals))
        .nest("/civil_registry", system(SystemName::CivilRegistry, civil))
        .nest("/mobile_base", system(SystemName::MobileBase, mobile))
        .nest("/sms", system(SystemName::Sms, sms))
        .nest("/consent", system(SystemName::Consent, consent))
        .nest("/sdu", system(SystemName::Sdu, sdu))
        .nest("/_control", control)
        .route("/openapi.json", get(openapi_json))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .with_state(mock)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} not allowed on {}", uri.path()),
    )
}

async fn openapi_json() -> Response {
    Json(crate::openapi::document()).into_response()
}

// ---- faults ------------------------------------------------------------------------------------------

/// Counts the request, then applies the system's fault if the RNG says this request is hit. `unavailable`
/// and `error` answer before the handler runs, so a faulted write records nothing; `malformed` runs the
/// handler (the write happens) and garbles its answer, as a gateway that fails after committing does.
async fn fault_layer(
    State((mock, system)): State<(Mock, SystemName)>,
    req: Request,
    next: Next,
) -> Response {
    mock.count_call(system);
    let Some(fault) = mock.draw_fault(system) else {
        return next.run(req).await;
    };
    match fault.mode {
        FaultMode::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            Json(
                json!({ "error": format!("{} is unavailable (injected fault)", system.as_str()) }),
            ),
        )
            .into_response(),
        FaultMode::Error => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{} failed (injected fault)", system.as_str()),
        )
        .into_response(),
        FaultMode::Slow => {
            tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
            next.run(req).await
        }
        FaultMode::Malformed => {
            let answer = next.run(req).await;
            let bytes = axum::body::to_bytes(answer.into_body(), usize::MAX)
                .await
                .unwrap_or_default();
            // The first half of a JSON object is never JSON (its closing brace is gone).
            let cut = bytes.slice(..bytes.len() / 2);
            let body = if cut.is_empty() {
                Bytes::from_static(b"<html><body>502 Bad Gateway</body></html>")
            } else {
                cut
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                Body::from(body),
            )
                .into_response()
        }
    }
}

// ---- reads -------------------------------------------------------------------------------------------

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn page_params(q: &HashMap<String, String>) -> Result<(u64, u64), ApiError> {
    let offset =
        parse_cursor(q.get("cursor").map(String::as_str)).map_err(ApiError::bad_request)?;
    let limit = match q.get("limit") {
        None => DEFAULT_PAGE,
        Some(l) if is_digits(l) => l.parse::<u64>().unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE),
        Some(l) => {
            return Err(ApiError::bad_request(format!(
                "limit `{l}` is not a whole number"
            )));
        }
    };
    Ok((offset, limit))
}

async fn renames(
    State(mock): State<Mock>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult {
    let Query(q) = q?;
    let (offset, limit) = page_params(&q)?;
    let page = mock
        .renames(Some(&offset.to_string()), limit)
        .map_err(ApiError::bad_request)?;
    ok(page)
}

async fn organization(
    State(mock): State<Mock>,
    bin: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Path(bin) = bin?;
    let org = mock
        .organization(&bin)
        .ok_or_else(|| ApiError::not_found("no organisation with this BIN"))?;
    ok(org)
}

async fn permits(
    State(mock): State<Mock>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult {
    let Query(q) = q?;
    let bin = q
        .get("bin")
        .ok_or_else(|| ApiError::bad_request("query parameter `bin` is required"))?;
    let permits = mock.permits(bin, q.get("service").map(String::as_str));
    ok(json!({ "permits": permits }))
}

async fn person(State(mock): State<Mock>, iin: Result<Path<String>, PathRejection>) -> ApiResult {
    let Path(iin) = iin?;
    let p = mock
        .person(&iin)
        .ok_or_else(|| ApiError::not_found("no person with this IIN"))?;
    ok(p)
}

async fn civil_record(
    State(mock): State<Mock>,
    iin: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Path(iin) = iin?;
    let r = mock
        .civil_record(&iin)
        .ok_or_else(|| ApiError::not_found("no civil record for this IIN"))?;
    ok(r)
}

async fn mobile_number(
    State(mock): State<Mock>,
    iin: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Path(iin) = iin?;
    let r = mock
        .mobile_number(&iin)
        .ok_or_else(|| ApiError::not_found("no number registered for this IIN"))?;
    ok(r)
}

async fn sms_replies(
    State(mock): State<Mock>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult {
    let Query(q) = q?;
    let (offset, limit) = page_params(&q)?;
    let data = mock.read();
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(data.replies.len());
    let end = start
        .saturating_add(usize::try_from(limit).unwrap_or(usize::MAX))
        .min(data.replies.len());
    let replies = &data.replies[start..end];
    let next = offset.max(end as u64);
    ok(json!({ "replies": replies, "next_cursor": next.to_string() }))
}

// ---- idempotent writes -------------------------------------------------------------------------------

fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let value = headers
        .get("idempotency-key")
        .ok_or_else(|| ApiError::bad_request("the Idempotency-Key header is required"))?;
    let key = value
        .to_str()
        .map_err(|_| ApiError::bad_request("the Idempotency-Key header is not visible ASCII"))?;
    if key.trim().is_empty() {
        return Err(ApiError::bad_request("the Idempotency-Key header is empty"));
    }
    Ok(key.to_string())
}

/// Runs one write at most once per `(system, key)`: a repeated key (with a well-formed body) gets the first
/// successful answer unchanged and writes nothing. Failed attempts (4xx) are not remembered. The check and the write happen
/// under one lock, so two concurrent requests with the same key cannot both write.
fn idempotent<B: DeserializeOwned>(
    mock: &Mock,
    system: SystemName,
    headers: &HeaderMap,
    body: &[u8],
    write: impl FnOnce(&mut Data, &Base, DateTime<Utc>, &str, B) -> Result<Value, ApiError>,
) -> ApiResult {
    let key = idempotency_key(headers)?;
    // A malformed body is refused even on a replay: a real client retries with the same body.
    let request: B = parse_body(body)?;
    let now = mock.now();
    let mut data = mock.write();
    if let Some(first) = data.idempotent.get(&(system, key.clone())) {
        return ok(first);
    }
    let answer = write(&mut data, mock.base(), now, &key, request)?;
    data.idempotent.insert((system, key), answer.clone());
    ok(answer)
}

#[derive(Deserialize)]
struct ReissueBody {
    #[serde(deserialize_with = "raw_id")]
    bin: Value,
    holder_name: String,
}

async fn reissue(
    State(mock): State<Mock>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let Path(permit_id) = id?;
    idempotent(
        &mock,
        SystemName::ELicense,
        &headers,
        &body,
        |data, base, now, key, req: ReissueBody| {
            let mut state = data
                .world(base)
                .permit(&permit_id)
                .ok_or_else(|| ApiError::not_found("no permit with this id"))?;
            if state.record.status == PermitStatus::Revoked {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "the permit is revoked",
                ));
            }
            if key_of(&state.record.bin) != key_of(&req.bin) {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "the permit belongs to another BIN",
                ));
            }
            state.record.holder_name = req.holder_name;
            state.idempotency_key = Some(key.to_string());
            state.reissued_at = Some(now);
            let r = &state.record;
            let answer = json!({
                "permit_id": r.permit_id,
                "bin": r.bin,
                "service": r.service,
                "holder_name": r.holder_name,
                "status": r.status,
                "reissued_at": now,
            });
            data.set_permit(state);
            Ok(answer)
        },
    )
}

#[derive(Deserialize)]
struct SmsBody {
    to: String,
    text: String,
}

async fn sms_send(State(mock): State<Mock>, headers: HeaderMap, body: Bytes) -> ApiResult {
    idempotent(
        &mock,
        SystemName::Sms,
        &headers,
        &body,
        |data, _, now, key, req: SmsBody| {
            let message_id = format!("m-{}", data.sent.len() + 1);
            data.sent.push(SentSmsView {
                message_id: message_id.clone(),
                to: req.to,
                text: req.text,
                idempotency_key: key.to_string(),
                accepted_at: now,
            });
            Ok(json!({ "message_id": message_id, "accepted_at": now }))
        },
    )
}

#[derive(Deserialize)]
struct ConsentBody {
    #[serde(deserialize_with = "raw_id")]
    iin: Value,
    #[serde(deserialize_with = "raw_id")]
    bin: Value,
    purpose: String,
}

async fn consent_record(State(mock): State<Mock>, headers: HeaderMap, body: Bytes) -> ApiResult {
    idempotent(
        &mock,
        SystemName::Consent,
        &headers,
        &body,
        |data, _, now, key, req: ConsentBody| {
            let consent_id = format!("c-{}", data.consents.len() + 1);
            data.consents.push(ConsentView {
                consent_id: consent_id.clone(),
                iin: req.iin,
                bin: req.bin,
                purpose: req.purpose,
                idempotency_key: key.to_string(),
                recorded_at: now,
            });
            Ok(json!({ "consent_id": consent_id, "recorded_at": now }))
        },
    )
}

#[derive(Deserialize)]
struct SduBody {
    #[serde(deserialize_with = "raw_id")]
    case_id: Value,
    #[serde(deserialize_with = "raw_id")]
    bin: Value,
    new_name: String,
    #[serde(deserialize_with = "raw_id")]
    head_iin: Value,
    #[serde(deserialize_with = "raw_ids")]
    permit_ids: Vec<Value>,
}

async fn sdu_record(State(mock): State<Mock>, headers: HeaderMap, body: Bytes) -> ApiResult {
    idempotent(
        &mock,
        SystemName::Sdu,
        &headers,
        &body,
        |data, _, now, key, req: SduBody| {
            let record_id = format!("s-{}", data.sdu.len() + 1);
            data.sdu.push(SduRecordView {
                record_id: record_id.clone(),
                case_id: req.case_id,
                bin: req.bin,
                new_name: req.new_name,
                head_iin: req.head_iin,
                permit_ids: req.permit_ids,
                idempotency_key: key.to_string(),
                written_at: now,
            });
            Ok(json!({ "record_id": record_id, "written_at": now }))
        },
    )
}

// ---- control -----------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyBody {
    #[serde(deserialize_with = "raw_id")]
    from: Value,
    text: String,
}

async fn control_reply(State(mock): State<Mock>, body: Bytes) -> ApiResult {
    let req: ReplyBody = parse_body(&body)?;
    // One reply, not the whole feed cloned to find it: a benchmark posts hundreds of thousands.
    ok(mock.push_reply(&key_of(&req.from), &req.text))
}

async fn control_sent(State(mock): State<Mock>) -> ApiResult {
    ok(mock.sent_sms())
}

async fn control_faults_list(State(mock): State<Mock>) -> ApiResult {
    ok(json!({ "faults": mock.active_faults() }))
}

async fn control_faults_set(State(mock): State<Mock>, body: Bytes) -> ApiResult {
    let fault: Fault = parse_body(&body)?;
    if !(0.0..=1.0).contains(&fault.rate) {
        return Err(ApiError::bad_request("rate must be between 0.0 and 1.0"));
    }
    mock.set_fault(fault);
    ok(json!({ "faults": mock.active_faults() }))
}

async fn control_faults_clear(
    State(mock): State<Mock>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult {
    let Query(q) = q?;
    match q.get("system") {
        None => mock.clear_faults(),
        Some(s) => {
            let system: SystemName = serde_json::from_value(Value::String(s.clone()))
                .map_err(|_| ApiError::bad_request(format!("unknown system `{s}`")))?;
            mock.clear_fault(system);
        }
    }
    ok(json!({ "faults": mock.active_faults() }))
}

async fn control_state(State(mock): State<Mock>) -> ApiResult {
    ok(mock.state())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    now: DateTime<FixedOffset>,
}

async fn control_clock_get(State(mock): State<Mock>) -> ApiResult {
    ok(json!({ "now": mock.now() }))
}

async fn control_clock_set(State(mock): State<Mock>, body: Bytes) -> ApiResult {
    let req: ClockBody = parse_body(&body)?;
    mock.set_now(req.now.with_timezone(&Utc));
    ok(json!({ "now": mock.now() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameBody {
    #[serde(deserialize_with = "raw_id")]
    bin: Value,
    to: String,
    #[serde(default)]
    at: Option<DateTime<FixedOffset>>,
}

async fn control_rename(State(mock): State<Mock>, body: Bytes) -> ApiResult {
    let req: RenameBody = parse_body(&body)?;
    let at = req.at.map_or_else(|| mock.now(), |a| a.with_timezone(&Utc));
    mock.try_rename(&key_of(&req.bin), &req.to, at)
        .map_err(ApiError::not_found)?;
    ok(json!({ "bin": req.bin, "to": req.to, "at": at }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    system: SystemName,
    record: serde_json::Map<String, Value>,
}

async fn control_update(State(mock): State<Mock>, body: Bytes) -> ApiResult {
    let req: UpdateBody = parse_body(&body)?;
    mock.update(req.system, req.record.clone())
        .map_err(ApiError::bad_request)?;
    ok(json!({ "system": req.system, "record": req.record }))
}

async fn control_calls(State(mock): State<Mock>) -> ApiResult {
    ok(mock.call_counts())
}

async fn control_call_peaks(State(mock): State<Mock>) -> ApiResult {
    ok(mock.call_peaks())
}
