//! The daemon's operator API: health, counts, and one case's history. Identifiers are masked; the full
//! values stay in the case store.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::privacy::mask;

/// Binds `api_listen` and serves until `shutdown`; returns the bound address.
pub async fn serve(engine: Arc<Engine>, shutdown: CancellationToken) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(&engine.config.api_listen)
        .await
        .with_context(|| format!("cannot listen on {}", engine.config.api_listen))?;
    let addr = listener.local_addr()?;
    let app = router(engine);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    });
    Ok(addr)
}

/// The routes.
pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/summary", get(summary))
        .route("/cases/{id}", get(case))
        .with_state(engine)
}

async fn summary(State(engine): State<Arc<Engine>>) -> Response {
    match engine.summary().await {
        Ok(s) => Json(json!({"cases": s})).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

async fn case(State(engine): State<Arc<Engine>>, Path(id): Path<i64>) -> Response {
    let found = async {
        let Some(c) = engine.store.case(id).await? else { return Ok::<_, anyhow::Error>(None) };
        let events = engine.store.events(id).await?;
        Ok(Some(json!({
            "id": c.id, "bin": c.bin, "from_name": c.from_name, "to_name": c.to_name,
            "status": c.status, "stage": c.stage, "reason": c.reason, "detail": c.detail, "attempt": c.attempt,
            "head_iin": c.head_iin.as_deref().map(mask), "phone": c.phone.as_deref().map(mask),
            "permits": c.permit_ids(), "reissued": c.reissued_ids(),
            "events": events.iter().map(|e| json!({"at": crate::store::from_ms(e.at), "kind": e.kind,
                "detail": serde_json::from_str::<serde_json::Value>(&e.detail).unwrap_or_default()})).collect::<Vec<_>>(),
        })))
    }
    .await;
    match found {
        Ok(Some(body)) => Json(body).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such case"})),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}
