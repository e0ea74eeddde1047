//! The daemon's HTTP server: `/health` for probes (the one route without a token: it says nothing but
//! "ok"), the operator console's API under `/api` (docs/CONSOLE.md). Loopback by default (`api_listen`);
//! docs/CONSOLE.md says how to put it behind TLS.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::response::Json;
use axum::routing::get;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::console::Console;

/// Binds `api_listen` and serves until `shutdown`; returns the bound address.
pub async fn serve(console: Arc<Console>, shutdown: CancellationToken) -> Result<SocketAddr> {
    let listen = console.engine.config.api_listen.clone();
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let app = router(console);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    });
    Ok(addr)
}

/// Every route of the daemon.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/metrics", get(metrics))
        .merge(crate::console::api::router())
        .merge(crate::console::web::router())
        .with_state(console)
}

/// Prometheus metrics in the text format (docs/OPERATIONS.md); any operator or viewer token (a scraper
/// is given a viewer's).
async fn metrics(
    _caller: crate::console::auth::Caller,
    axum::extract::State(console): axum::extract::State<Arc<Console>>,
) -> Result<axum::response::Response, crate::console::ApiError> {
    use axum::response::IntoResponse;
    // The switch as stored now, so that a pause set by another worker shows here too.
    console
        .engine
        .refresh_pause()
        .await
        .map_err(crate::console::ApiError::internal)?;
    let text = crate::telemetry::render(&console.engine)
        .await
        .map_err(crate::console::ApiError::internal)?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
