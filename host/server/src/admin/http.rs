//! The REST admin API under `/admin/v1`. Every route needs the admin credential (`Authorization: Bearer <admin
//! token or JWT with the admin role>`): none or an invalid one is 401, a player token is 403.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

use super::service::{self, DryRunRequest};
use crate::auth::Admin;
use crate::error::{ApiError, ErrorKind};
use crate::http::json::ApiJson;
use crate::rules::registry::LimitsPatch;
use crate::state::AppState;

/// The admin routes, with a body limit of their own (component uploads are larger than API requests).
pub fn router(state: AppState) -> Router {
    let upload_limit = state.settings.plugins.max_upload_bytes;
    Router::new()
        .route("/admin/v1/plugins", get(list).post(upload))
        .route("/admin/v1/plugins/{name}", get(plugin))
        .route("/admin/v1/plugins/{name}/versions/{version}", get(show).delete(delete))
        .route("/admin/v1/plugins/{name}/versions/{version}/activate", post(activate))
        .route("/admin/v1/plugins/{name}/versions/{version}/dry-run", post(dry_run))
        .route("/admin/v1/plugins/{name}/rollback", post(rollback))
        .route("/admin/v1/plugins/{name}/limits", put(set_limits))
        .route("/admin/v1/plugins/{name}/metrics", get(metrics))
        .route("/admin/v1/config/reload", post(reload_config))
        .with_state(state)
        .layer(DefaultBodyLimit::max(upload_limit))
}

async fn admin(state: &AppState, headers: &HeaderMap) -> Result<Admin, ApiError> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    state.auth.admin(authorization).await
}

/// `POST /admin/v1/plugins` with the component as the body; limits may be given as query parameters
/// (`?fuelPerCall=...&maxMemoryBytes=...`). 201 with the stored version, 200 if it was stored already.
async fn upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    patch: Result<Query<LimitsPatch>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let admin = admin(&state, &headers).await?;
    let Query(patch) = patch.map_err(|err| ApiError::invalid("INVALID_LIMITS", err.body_text()))?;
    let body = body.map_err(|err| {
        if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
            let limit = state.settings.plugins.max_upload_bytes;
            ApiError::new(
                ErrorKind::PayloadTooLarge,
                "COMPONENT_TOO_LARGE",
                format!("the component is larger than {limit} bytes (plugins.max_upload_bytes)"),
            )
        } else {
            ApiError::invalid("INVALID_BODY", err.body_text())
        }
    })?;
    let (view, created) = service::upload(&state, &admin, body.to_vec(), &patch).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(view)).into_response())
}

async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    admin(&state, &headers).await?;
    Ok(Json(service::list(&state, None).await?))
}

async fn plugin(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    admin(&state, &headers).await?;
    Ok(Json(service::plugin(&state, &name).await?))
}

async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, version)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    admin(&state, &headers).await?;
    Ok(Json(service::show(&state, &name, &version).await?))
}

async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, version)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    admin(&state, &headers).await?;
    service::delete(&state, &name, &version).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn activate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, version)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let admin = admin(&state, &headers).await?;
    Ok(Json(service::activate(&state, &admin, &name, &version).await?))
}

async fn dry_run(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, version)): Path<(String, String)>,
    ApiJson(request): ApiJson<DryRunRequest>,
) -> Result<impl IntoResponse, ApiError> {
    admin(&state, &headers).await?;
    Ok(Json(service::dry_run(&state, &name, &version, request).await?))
}

async fn rollback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let admin = admin(&state, &headers).await?;
    Ok(Json(service::rollback(&state, &admin, &name).await?))
}

async fn set_limits(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    ApiJson(patch): ApiJson<LimitsPatch>,
) -> Result<impl IntoResponse, ApiError> {
    admin(&state, &headers).await?;
    Ok(Json(service::set_limits(&state, &name, &patch).await?))
}

async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    admin(&state, &headers).await?;
    Ok(Json(service::metrics(&state, &name).await?))
}

async fn reload_config(State(state): State<AppState>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    admin(&state, &headers).await?;
    Ok(Json(service::reload_config(&state).await?))
}
