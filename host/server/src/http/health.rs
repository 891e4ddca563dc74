//! Liveness, readiness and metrics endpoints. None of them needs a token.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use crate::state::AppState;

/// Liveness: the process answers. Deliberately checks nothing else, so a database outage does not get it killed.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "healthy"}))
}

/// Readiness: database reachable with migrations applied, challenge config and rule plugins loaded.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database = tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await;
    let database_ok = matches!(database, Ok(Ok(())));
    let migrations_ok = database_ok
        && matches!(tokio::time::timeout(Duration::from_secs(2), state.store.migrations_applied()).await, Ok(Ok(true)));
    let config = state.config();
    let catalog = &config.catalog;
    let plugins_ok = state.rules.is_ready();
    let ready = database_ok && migrations_ok && plugins_ok;
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": {
            "database": database_ok,
            "migrations": migrations_ok,
            "config": { "loaded": true, "version": catalog.version(), "challenges": catalog.challenges().len() },
            "plugins": plugins_ok,
        }
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body))
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
