//! Event ingestion over gRPC: the AccelByte `OnMessage` services (one event per call, wire-compatible with
//! existing producers) and our `SubmitEvents` batch call. A call succeeds only once its events are committed.

use std::sync::Arc;

use challenge_proto::accelbyte::iam::account::v1 as iam;
use challenge_proto::accelbyte::social::statistic::v1 as statistic;
use challenge_proto::challenge::events::v1 as batch;
use tonic::service::Routes;
use tonic::{Request, Response, Status};

use crate::error::ApiError;
use crate::pipeline::{EventKind, IncomingEvent, Pipeline, SubmitOutcome};

#[derive(Clone)]
pub struct EventServices {
    pipeline: Arc<Pipeline>,
}

pub fn routes(pipeline: Arc<Pipeline>, max_message_bytes: usize) -> Routes {
    let services = EventServices { pipeline };
    Routes::new(
        iam::user_authentication_user_logged_in_service_server::UserAuthenticationUserLoggedInServiceServer::new(
            services.clone(),
        )
        .max_decoding_message_size(max_message_bytes),
    )
    .add_service(
        statistic::statistic_stat_item_updated_service_server::StatisticStatItemUpdatedServiceServer::new(
            services.clone(),
        )
        .max_decoding_message_size(max_message_bytes),
    )
    .add_service(
        batch::event_ingestion_service_server::EventIngestionServiceServer::new(services)
            .max_decoding_message_size(max_message_bytes),
    )
}

fn non_empty(text: String) -> Option<String> {
    if text.trim().is_empty() { None } else { Some(text) }
}

impl EventServices {
    /// One event per call: a refused event is the call's error.
    async fn submit_one(&self, event: IncomingEvent, source: &'static str) -> Result<Response<()>, Status> {
        metrics::counter!("grpc_events_total", "rpc" => source).increment(1);
        let outcome = self.pipeline.submit(vec![event]).await.map_err(ApiError::from)?;
        match outcome.rejected.into_iter().next() {
            Some((_, rejection)) if rejection.code == "IN_FLIGHT" => {
                Err(ApiError::unavailable(rejection.code, rejection.message).into())
            }
            Some((_, rejection)) => Err(ApiError::invalid(rejection.code, rejection.message).into()),
            None => Ok(Response::new(())),
        }
    }
}

#[tonic::async_trait]
impl iam::user_authentication_user_logged_in_service_server::UserAuthenticationUserLoggedInService for EventServices {
    #[tracing::instrument(name = "grpc.OnMessage.UserLoggedIn", skip_all)]
    async fn on_message(&self, request: Request<iam::UserLoggedIn>) -> Result<Response<()>, Status> {
        let message = request.into_inner();
        let event = IncomingEvent {
            id: message.id,
            user_id: message.user_id,
            namespace: message.namespace,
            timestamp: non_empty(message.timestamp),
            kind: EventKind::Login,
        };
        self.submit_one(event, "user_logged_in").await
    }
}

#[tonic::async_trait]
impl statistic::statistic_stat_item_updated_service_server::StatisticStatItemUpdatedService for EventServices {
    #[tracing::instrument(name = "grpc.OnMessage.StatItemUpdated", skip_all)]
    async fn on_message(&self, request: Request<statistic::StatItemUpdated>) -> Result<Response<()>, Status> {
        let message = request.into_inner();
        let Some(payload) = message.payload else {
            return Err(ApiError::invalid("MISSING_PAYLOAD", "payload cannot be nil").into());
        };
        let event = IncomingEvent {
            id: message.id,
            user_id: message.user_id,
            namespace: message.namespace,
            timestamp: non_empty(message.timestamp),
            kind: EventKind::Stat {
                stat_code: payload.stat_code,
                latest_value: payload.latest_value,
                inc: payload.inc,
            },
        };
        self.submit_one(event, "stat_item_updated").await
    }
}

#[tonic::async_trait]
impl batch::event_ingestion_service_server::EventIngestionService for EventServices {
    #[tracing::instrument(name = "grpc.SubmitEvents", skip_all)]
    async fn submit_events(
        &self,
        request: Request<batch::SubmitEventsRequest>,
    ) -> Result<Response<batch::SubmitEventsResponse>, Status> {
        let events = request.into_inner().events;
        metrics::counter!("grpc_events_total", "rpc" => "submit_events").increment(events.len() as u64);
        let mut incoming = Vec::with_capacity(events.len());
        let mut malformed = Vec::new();
        for (index, event) in events.into_iter().enumerate() {
            let kind = match event.kind {
                Some(batch::event::Kind::Login(_)) => EventKind::Login,
                Some(batch::event::Kind::Stat(stat)) => {
                    EventKind::Stat { stat_code: stat.stat_code, latest_value: stat.latest_value, inc: stat.inc }
                }
                None => {
                    malformed.push(batch::RejectedEvent {
                        index: index as u32,
                        error_code: "MISSING_KIND".into(),
                        message: "event must be a login or a stat update".into(),
                    });
                    continue;
                }
            };
            incoming.push((
                index,
                IncomingEvent {
                    id: event.id,
                    user_id: event.user_id,
                    namespace: event.namespace,
                    timestamp: non_empty(event.timestamp),
                    kind,
                },
            ));
        }
        let positions: Vec<usize> = incoming.iter().map(|(index, _)| *index).collect();
        let outcome: SubmitOutcome = self
            .pipeline
            .submit(incoming.into_iter().map(|(_, event)| event).collect())
            .await
            .map_err(ApiError::from)?;
        let mut rejected = malformed;
        rejected.extend(outcome.rejected.into_iter().map(|(position, rejection)| batch::RejectedEvent {
            index: positions[position] as u32,
            error_code: rejection.code.into(),
            message: rejection.message,
        }));
        rejected.sort_by_key(|r| r.index);
        Ok(Response::new(batch::SubmitEventsResponse {
            accepted: outcome.accepted as u32,
            duplicates: outcome.duplicates as u32,
            rejected,
        }))
    }
}
