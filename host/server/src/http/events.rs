//! `POST /v1/events`: event ingestion for tools that cannot speak gRPC. Same pipeline and guarantees: a 200
//! means every accepted event is committed; refused items are listed with their position.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::json::ApiJson;
use crate::error::ApiError;
use crate::pipeline::{EventKind, IncomingEvent, Pipeline};

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum EventBody {
    #[serde(rename_all = "camelCase")]
    Login {
        #[serde(default)]
        id: String,
        #[serde(default)]
        user_id: String,
        #[serde(default)]
        namespace: String,
        timestamp: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    Stat {
        #[serde(default)]
        id: String,
        #[serde(default)]
        user_id: String,
        #[serde(default)]
        namespace: String,
        timestamp: Option<String>,
        #[serde(default)]
        stat_code: String,
        latest_value: f64,
        #[serde(default)]
        inc: f64,
    },
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectedItem {
    index: usize,
    error_code: &'static str,
    message: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitResponse {
    accepted: usize,
    duplicates: usize,
    rejected: Vec<RejectedItem>,
}

impl From<EventBody> for IncomingEvent {
    fn from(body: EventBody) -> Self {
        match body {
            EventBody::Login { id, user_id, namespace, timestamp } => {
                IncomingEvent { id, user_id, namespace, timestamp, kind: EventKind::Login }
            }
            EventBody::Stat { id, user_id, namespace, timestamp, stat_code, latest_value, inc } => IncomingEvent {
                id,
                user_id,
                namespace,
                timestamp,
                kind: EventKind::Stat { stat_code, latest_value, inc },
            },
        }
    }
}

#[tracing::instrument(name = "http.submit_events", skip_all)]
pub async fn submit(
    State(pipeline): State<Arc<Pipeline>>,
    ApiJson(events): ApiJson<Vec<EventBody>>,
) -> Result<Json<SubmitResponse>, ApiError> {
    let outcome = pipeline.submit(events.into_iter().map(IncomingEvent::from).collect()).await?;
    Ok(Json(SubmitResponse {
        accepted: outcome.accepted,
        duplicates: outcome.duplicates,
        rejected: outcome
            .rejected
            .into_iter()
            .map(|(index, rejection)| RejectedItem { index, error_code: rejection.code, message: rejection.message })
            .collect(),
    }))
}
