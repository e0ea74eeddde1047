//! The operator console (docs/CONSOLE.md): the daemon's authenticated HTTP API, its OpenAPI document and
//! the operators' actions. Reads and actions go through [`Console`], which the dashboard uses too; every
//! action is a transition of the decision core.

pub mod actions;
pub mod api;
pub mod auth;
pub mod views;
pub mod web;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use chrono::{NaiveDate, Offset, TimeZone};
use tokio::sync::Notify;

use crate::engine::Engine;
use crate::store::{CaseFilter, ms};
use views::{ActionView, CaseDetail, CasePage, CaseView, Funnel, FunnelDay};

/// What the console's routes share: the engine (its store, systems and clocks) and the daemon's wake-up.
pub struct Console {
    /// The engine the daemon runs.
    pub engine: Arc<Engine>,
    /// Notified after an action, so that the daemon's loop acts on it now rather than at its next tick.
    pub wake: Arc<Notify>,
}

/// The most cases one page holds.
pub const MAX_PAGE: i64 = 500;

impl Console {
    /// A console over the engine.
    pub fn new(engine: Arc<Engine>, wake: Arc<Notify>) -> Self {
        Self { engine, wake }
    }

    /// A page of the cases matching `filter`.
    pub async fn cases(&self, filter: &CaseFilter, limit: i64) -> Result<CasePage, ApiError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let rows = self
            .engine
            .store
            .search_cases(filter, limit + 1)
            .await
            .map_err(ApiError::internal)?;
        let more = rows.len() as i64 > limit;
        let cases: Vec<CaseView> = rows.iter().take(limit as usize).map(CaseView::of).collect();
        let next_after = more.then(|| cases.last().map(|c| c.id)).flatten();
        Ok(CasePage { cases, next_after })
    }

    /// One case with its history and outward writes.
    pub async fn case_detail(&self, id: i64) -> Result<CaseDetail, ApiError> {
        let store = &self.engine.store;
        let row = store
            .case(id)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found("no such case"))?;
        let events = store.events(id).await.map_err(ApiError::internal)?;
        let writes = store.outbox_of(id).await.map_err(ApiError::internal)?;
        Ok(CaseDetail::of(&row, &events, &writes))
    }

    /// Cases renamed from `from` to `to` (local days, inclusive), counted per day.
    pub async fn funnel(&self, from: NaiveDate, to: NaiveDate) -> Result<Funnel, ApiError> {
        if to < from {
            return Err(ApiError::bad_request("`to` is before `from`"));
        }
        if (to - from).num_days() > 366 {
            return Err(ApiError::bad_request("a funnel covers at most 366 days"));
        }
        let tz = self.engine.config.tz().map_err(ApiError::internal)?;
        let local_midnight = |d: NaiveDate| {
            tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"))
                .earliest()
                .map(|t| t.with_timezone(&chrono::Utc))
        };
        let (Some(start), Some(end)) = (
            local_midnight(from),
            local_midnight(to + chrono::Days::new(1)),
        ) else {
            return Err(ApiError::bad_request("the period is outside the calendar"));
        };
        // The zone's offset at the start of the period (Asia/Almaty keeps one all year).
        let offset_ms = i64::from(
            tz.offset_from_utc_datetime(&start.naive_utc())
                .fix()
                .local_minus_utc(),
        ) * 1000;
        let rows = self
            .engine
            .store
            .funnel(ms(start), ms(end), offset_ms)
            .await
            .map_err(ApiError::internal)?;
        let mut totals = BTreeMap::new();
        let mut by_status = BTreeMap::new();
        let mut days: BTreeMap<i64, BTreeMap<String, i64>> = BTreeMap::new();
        for row in rows {
            let key = match &row.detail {
                Some(d) => format!("{}/{d}", row.status),
                None => row.status.clone(),
            };
            *totals.entry(key).or_default() += row.count;
            *by_status.entry(row.status.clone()).or_default() += row.count;
            *days
                .entry(row.day)
                .or_default()
                .entry(row.status)
                .or_default() += row.count;
        }
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
        Ok(Funnel {
            from,
            to,
            totals,
            by_status,
            days: days
                .into_iter()
                .map(|(day, by_status)| FunnelDay {
                    date: epoch + chrono::Days::new(day.max(0) as u64),
                    by_status,
                })
                .collect(),
        })
    }

    /// The most recent operator actions, newest first.
    pub async fn recent_actions(&self, limit: i64) -> Result<Vec<ActionView>, ApiError> {
        let rows = self
            .engine
            .store
            .actions(i64::MAX, limit.clamp(1, MAX_PAGE))
            .await
            .map_err(ApiError::internal)?;
        Ok(rows.iter().map(ActionView::of).collect())
    }
}

/// An error answer: a status and a JSON body `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, for the operator.
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status: status.as_u16(),
            message: message.into(),
        }
    }
    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    /// 409: the action does not apply to the case as it is.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    /// 503 for a store or upstream failure; the cause is logged, not answered (it may name internals).
    pub fn internal(error: anyhow::Error) -> Self {
        tracing::warn!("console request failed: {error:#}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the case store or a registry did not answer; try again",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(serde_json::json!({"error": self.message}))).into_response()
    }
}
