//! The player API over REST: thin handlers over [`crate::player`]. JSON is camelCase; request bodies also accept
//! snake_case names, unknown fields are ignored, and an empty body counts as `{}` (so `initialize` and `claim`
//! need none).

use axum::extract::rejection::BytesRejection;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Json, body::Bytes};
use challenge_proto::challenge::v1 as proto;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::auth::Player;
use crate::error::{ApiError, ErrorKind};
use crate::player::{Listing, codes};
use crate::state::AppState;

/// Path parameters whose rejections use the service's error envelope.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T> FromRequestParts<S> for ApiPath<T>
where
    Path<T>: FromRequestParts<S, Rejection = PathRejection>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|rejection| ApiError::invalid(codes::INVALID_REQUEST, rejection.body_text()))
    }
}

async fn player(state: &AppState, headers: &HeaderMap) -> Result<Player, ApiError> {
    let authorization = headers.get(AUTHORIZATION).and_then(|value| value.to_str().ok());
    state.auth.player(authorization).await
}

/// Parses a request body; whitespace only or `null` counts as `{}`.
fn body<T: DeserializeOwned + Default>(bytes: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = bytes.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(ErrorKind::PayloadTooLarge, "BODY_TOO_LARGE", "the request body is too large")
        } else {
            ApiError::invalid(codes::INVALID_REQUEST, rejection.body_text())
        }
    })?;
    let text = bytes.trim_ascii();
    if text.is_empty() || text == b"null" {
        return Ok(T::default());
    }
    if !text.starts_with(b"{") {
        return Err(ApiError::invalid("INVALID_JSON", "the body must be a JSON object"));
    }
    serde_json::from_slice(text).map_err(|err| ApiError::invalid("INVALID_JSON", format!("invalid JSON body: {err}")))
}

fn json_bytes(body: Vec<u8>) -> Response {
    ([(CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// `active_only` (or `activeOnly`): `true`/`false`/`1`/`0`, any case; absent means false.
fn listing(query: Option<&str>) -> Result<Listing, ApiError> {
    let mut active_only = false;
    for pair in query.unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, "true"));
        if key != "active_only" && key != "activeOnly" {
            continue;
        }
        active_only = match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "" => true,
            "false" | "0" => false,
            other => {
                return Err(ApiError::invalid(
                    codes::INVALID_REQUEST,
                    format!("active_only must be true or false (got '{other}')"),
                ));
            }
        };
    }
    Ok(if active_only { Listing::ActiveOnly } else { Listing::All })
}

/// `GET /v1/challenges?active_only=bool`
pub async fn list_challenges(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let player = player(&state, &headers).await?;
    let listing = listing(query.as_deref())?;
    let list = state.player.challenges(&player, listing).await?;
    Ok(json_bytes(list.json()))
}

/// `GET /v1/challenges/{challengeId}`
pub async fn get_challenge(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(challenge_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let player = player(&state, &headers).await?;
    let challenge = state.player.challenge(&player, &challenge_id).await?;
    Ok(json_bytes(challenge.json()))
}

/// `POST /v1/challenges/initialize` (any body, or none)
pub async fn initialize(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let player = player(&state, &headers).await?;
    Ok(json_bytes(state.player.initialize(&player).await?.json()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetActiveBody {
    /// Required: a missing value is an error, never a silent deactivation.
    #[serde(alias = "is_active")]
    is_active: Option<bool>,
}

/// `PUT /v1/challenges/{challengeId}/goals/{goalId}/active` `{"isActive": bool}`
pub async fn set_goal_active(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath((challenge_id, goal_id)): ApiPath<(String, String)>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<proto::SetGoalActiveResponse>, ApiError> {
    let player = player(&state, &headers).await?;
    let body: SetActiveBody = body(bytes)?;
    let active = body
        .is_active
        .ok_or_else(|| ApiError::invalid(codes::INVALID_REQUEST, "isActive (true or false) is required"))?;
    Ok(Json(state.player.set_goal_active(&player, &challenge_id, &goal_id, active).await?))
}

/// `POST /v1/challenges/{challengeId}/goals/batch-select` `{"goalIds": [...], "replaceExisting": bool}`
pub async fn batch_select(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(challenge_id): ApiPath<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<proto::GoalSelectionResponse>, ApiError> {
    let player = player(&state, &headers).await?;
    let request: proto::BatchSelectRequest = body(bytes)?;
    let response =
        state.player.batch_select(&player, &challenge_id, &request.goal_ids, request.replace_existing).await?;
    Ok(Json(response))
}

/// `POST /v1/challenges/{challengeId}/goals/random-select` `{"count": n, "replaceExisting": bool, "excludeActive": bool}`
pub async fn random_select(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(challenge_id): ApiPath<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<proto::GoalSelectionResponse>, ApiError> {
    let player = player(&state, &headers).await?;
    let request: proto::RandomSelectRequest = body(bytes)?;
    let response = state
        .player
        .random_select(&player, &challenge_id, request.count, request.replace_existing, request.exclude_active)
        .await?;
    Ok(Json(response))
}

/// `POST /v1/challenges/{challengeId}/goals/{goalId}/claim` (any body, or none)
pub async fn claim(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath((challenge_id, goal_id)): ApiPath<(String, String)>,
) -> Result<Json<proto::ClaimRewardResponse>, ApiError> {
    let player = player(&state, &headers).await?;
    Ok(Json(state.player.claim(&player, &challenge_id, &goal_id).await?))
}

/// `GET /v1/challenges/{challengeId}/rotation`
pub async fn rotation(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(challenge_id): ApiPath<String>,
) -> Result<Json<proto::GetRotationStatusResponse>, ApiError> {
    let player = player(&state, &headers).await?;
    Ok(Json(state.player.rotation(&player, &challenge_id)?))
}

/// `GET /openapi.json`: the document describing every route of this server.
pub async fn openapi() -> Response {
    json_bytes(OPENAPI.as_bytes().to_vec())
}

pub const OPENAPI: &str = include_str!("../../openapi.json");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_only_accepts_booleans_and_refuses_the_rest() {
        assert_eq!(listing(None).unwrap(), Listing::All);
        assert_eq!(listing(Some("active_only=true")).unwrap(), Listing::ActiveOnly);
        assert_eq!(listing(Some("x=1&activeOnly=TRUE")).unwrap(), Listing::ActiveOnly);
        assert_eq!(listing(Some("active_only=0")).unwrap(), Listing::All);
        assert_eq!(listing(Some("active_only")).unwrap(), Listing::ActiveOnly);
        assert_eq!(listing(Some("active_only=maybe")).unwrap_err().http_status(), 400);
    }

    #[test]
    fn empty_and_null_bodies_are_empty_objects() {
        let parsed: proto::BatchSelectRequest = body(Ok(Bytes::from_static(b"  "))).unwrap();
        assert!(parsed.goal_ids.is_empty());
        let parsed: proto::BatchSelectRequest = body(Ok(Bytes::from_static(b"null"))).unwrap();
        assert!(!parsed.replace_existing);
        let parsed: proto::BatchSelectRequest =
            body(Ok(Bytes::from_static(br#"{"goal_ids":["a"],"replace_existing":true,"extra":1}"#))).unwrap();
        assert_eq!((parsed.goal_ids, parsed.replace_existing), (vec!["a".to_owned()], true));
        let err = body::<proto::RandomSelectRequest>(Ok(Bytes::from_static(b"{\"count\":\"x\"}"))).unwrap_err();
        assert_eq!(err.http_status(), 400);
    }
}
