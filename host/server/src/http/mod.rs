//! REST transport (axum). [`app`] builds the whole router; `main` and the tests share it.

mod events;
mod health;
pub mod json;
pub mod player;

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post, put};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::state::AppState;

/// The HTTP application: player API, admin API, health and metrics.
pub fn app(state: AppState) -> Router {
    let body_limit = state.settings.http.max_body_bytes;
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/v1/events", post(events::submit))
        .route("/openapi.json", get(player::openapi))
        .route("/v1/challenges", get(player::list_challenges))
        .route("/v1/challenges/initialize", post(player::initialize))
        .route("/v1/challenges/{challengeId}", get(player::get_challenge))
        .route("/v1/challenges/{challengeId}/rotation", get(player::rotation))
        .route("/v1/challenges/{challengeId}/goals/batch-select", post(player::batch_select))
        .route("/v1/challenges/{challengeId}/goals/random-select", post(player::random_select))
        .route("/v1/challenges/{challengeId}/goals/{goalId}/active", put(player::set_goal_active))
        .route("/v1/challenges/{challengeId}/goals/{goalId}/claim", post(player::claim))
        .with_state(state.clone())
        .layer(RequestBodyLimitLayer::new(body_limit))
        // The admin API brings its own body limit (component uploads are bigger than API requests).
        .merge(crate::admin::http::router(state))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::new())
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
}

/// A router that serves only `/metrics`, for the dedicated metrics listener.
pub fn metrics_app(state: AppState) -> Router {
    Router::new().route("/metrics", get(health::metrics)).with_state(state)
}
