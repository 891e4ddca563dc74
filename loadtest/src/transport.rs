//! One client for both transports: player operations and event submissions are data ([`Op`], [`Event`]), and
//! each transport maps them to its wire calls. Scenarios never know which transport they drive.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use challenge_proto::accelbyte::iam::account::v1 as iam;
use challenge_proto::accelbyte::social::statistic::v1 as statistic;
use challenge_proto::challenge::events::v1 as batch;
use challenge_proto::challenge::v1 as api;
use serde::{Deserialize, Serialize};
use tonic::transport::{Channel, Endpoint};

use crate::error::Result;
use crate::population::{Event, EventKind, Player, Population};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiTransport {
    Http,
    Grpc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventTransport {
    /// The AccelByte event-bus calls, one event per call.
    Onmessage,
    /// `EventIngestionService/SubmitEvents`.
    Batch,
    /// `POST /v1/events`.
    Http,
}

/// A player operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    ListChallenges { active_only: bool },
    GetChallenge { challenge_id: String },
    Initialize,
    SetActive { challenge_id: String, goal_id: String, is_active: bool },
    BatchSelect { challenge_id: String, goal_ids: Vec<String>, replace_existing: bool },
    RandomSelect { challenge_id: String, count: i32, replace_existing: bool, exclude_active: bool },
    Claim { challenge_id: String, goal_id: String },
}

impl Op {
    /// The report's name for this operation on `transport`.
    pub fn endpoint(&self, transport: ApiTransport) -> &'static str {
        let (http, grpc) = match self {
            Op::ListChallenges { active_only: false } => ("GET /v1/challenges", "grpc GetUserChallenges"),
            Op::ListChallenges { active_only: true } => {
                ("GET /v1/challenges?active_only=true", "grpc GetUserChallenges(active_only)")
            }
            Op::GetChallenge { .. } => ("GET /v1/challenges/{cid}", "grpc GetUserChallenge"),
            Op::Initialize => ("POST /v1/challenges/initialize", "grpc InitializePlayer"),
            Op::SetActive { .. } => ("PUT /v1/challenges/{cid}/goals/{gid}/active", "grpc SetGoalActive"),
            Op::BatchSelect { .. } => ("POST /v1/challenges/{cid}/goals/batch-select", "grpc BatchSelectGoals"),
            Op::RandomSelect { .. } => ("POST /v1/challenges/{cid}/goals/random-select", "grpc RandomSelectGoals"),
            Op::Claim { .. } => ("POST /v1/challenges/{cid}/goals/{gid}/claim", "grpc ClaimGoalReward"),
        };
        match transport {
            ApiTransport::Http => http,
            ApiTransport::Grpc => grpc,
        }
    }
}

/// What a successful operation returned, when the caller asked for it.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Challenges(api::GetChallengesResponse),
    /// The body was not decoded (the scenario does not look at it).
    Skipped,
}

/// A failed call, classified for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// `"404 GOAL_NOT_FOUND"`, `"grpc NotFound GOAL_NOT_FOUND"`, `"timeout"`, `"connect"`, ...
    pub label: String,
    /// The server's `errorCode` (HTTP body, or gRPC `x-error-code` metadata).
    pub error_code: Option<String>,
}

impl CallError {
    pub fn plain(label: impl Into<String>) -> Self {
        Self { label: label.into(), error_code: None }
    }

    fn status(prefix: &str, error_code: Option<String>) -> Self {
        let label = match &error_code {
            Some(code) => format!("{prefix} {code}"),
            None => prefix.to_owned(),
        };
        Self { label, error_code }
    }

    fn from_reqwest(err: &reqwest::Error) -> Self {
        let label = if err.is_timeout() {
            "timeout"
        } else if err.is_connect() {
            "connect"
        } else if err.is_body() || err.is_decode() {
            "http body"
        } else {
            "http request"
        };
        Self::plain(label)
    }

    fn from_status(status: &tonic::Status) -> Self {
        let error_code = status.metadata().get("x-error-code").and_then(|value| value.to_str().ok()).map(str::to_owned);
        if status.code() == tonic::Code::Unavailable
            && error_code.is_none()
            && std::error::Error::source(status).is_some()
        {
            return Self::plain("connect");
        }
        Self::status(&format!("grpc {:?}", status.code()), error_code)
    }

    fn decode(err: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        let what = match err.classify() {
            Category::Io => "io",
            Category::Syntax => "syntax",
            Category::Data => "shape",
            Category::Eof => "truncated",
        };
        Self::plain(format!("bad response body ({what})"))
    }
}

/// A player request carrying the player's token.
fn authorized<T>(
    message: T,
    authorization: &tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", authorization.clone());
    request
}

/// Which events of a submission the server acknowledged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acks {
    pub acked: Vec<bool>,
    /// Error codes of refused events.
    pub rejected: Vec<String>,
    /// Events the server reported as re-deliveries. Our ids are unique, so any is suspicious.
    pub duplicates: u32,
}

impl Acks {
    fn all(count: usize) -> Self {
        Self { acked: vec![true; count], ..Self::default() }
    }

    /// Everything acknowledged except the refused positions.
    fn except(count: usize, rejected: impl IntoIterator<Item = (usize, String)>, duplicates: u32) -> Self {
        let mut acks = Self { duplicates, ..Self::all(count) };
        for (index, code) in rejected {
            if let Some(slot) = acks.acked.get_mut(index) {
                *slot = false;
            }
            acks.rejected.push(code);
        }
        acks
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HttpEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    user_id: &'a str,
    namespace: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stat_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latest_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inc: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpSubmitResponse {
    #[serde(default)]
    duplicates: u32,
    #[serde(default)]
    rejected: Vec<HttpRejected>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpRejected {
    index: usize,
    #[serde(default)]
    error_code: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    error_code: Option<String>,
}

pub struct ClientOptions {
    pub http_url: String,
    pub grpc_url: String,
    pub http_pool: usize,
    pub grpc_connections: usize,
}

pub struct Clients {
    http: reqwest::Client,
    http_base: String,
    channels: Vec<Channel>,
    next_channel: AtomicUsize,
}

impl Clients {
    /// gRPC connections open on first use, so a run that only speaks HTTP never dials the gRPC port.
    pub fn new(options: &ClientOptions) -> Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(options.http_pool)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        let endpoint = Endpoint::from_shared(options.grpc_url.clone())?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .http2_keep_alive_interval(Duration::from_secs(30));
        let channels = (0..options.grpc_connections.max(1)).map(|_| endpoint.connect_lazy()).collect();
        Ok(Self {
            http,
            http_base: options.http_url.trim_end_matches('/').to_owned(),
            channels,
            next_channel: AtomicUsize::new(0),
        })
    }

    pub fn http_base(&self) -> &str {
        &self.http_base
    }

    /// A GET without credentials (health endpoints); returns the status code.
    pub async fn probe(&self, path: &str) -> Result<u16> {
        let response = self.http.get(format!("{}{path}", self.http_base)).send().await?;
        Ok(response.status().as_u16())
    }

    fn channel(&self) -> Channel {
        let index = self.next_channel.fetch_add(1, Ordering::Relaxed) % self.channels.len();
        self.channels[index].clone()
    }

    /// Runs `op` as `player`. `decode` asks for the parsed body where the transport would otherwise skip it.
    pub async fn call(
        &self,
        transport: ApiTransport,
        op: &Op,
        player: &Player,
        decode: bool,
    ) -> std::result::Result<Reply, CallError> {
        match transport {
            ApiTransport::Http => self.call_http(op, player, decode).await,
            ApiTransport::Grpc => self.call_grpc(op, player).await,
        }
    }

    async fn call_http(&self, op: &Op, player: &Player, decode: bool) -> std::result::Result<Reply, CallError> {
        use reqwest::Method;
        use serde_json::json;
        let base = &self.http_base;
        let (method, url, body) = match op {
            Op::ListChallenges { active_only } => {
                (Method::GET, format!("{base}/v1/challenges?active_only={active_only}"), None)
            }
            Op::GetChallenge { challenge_id } => (Method::GET, format!("{base}/v1/challenges/{challenge_id}"), None),
            Op::Initialize => (Method::POST, format!("{base}/v1/challenges/initialize"), Some(json!({}))),
            Op::SetActive { challenge_id, goal_id, is_active } => (
                Method::PUT,
                format!("{base}/v1/challenges/{challenge_id}/goals/{goal_id}/active"),
                Some(json!({ "isActive": is_active })),
            ),
            Op::BatchSelect { challenge_id, goal_ids, replace_existing } => (
                Method::POST,
                format!("{base}/v1/challenges/{challenge_id}/goals/batch-select"),
                Some(json!({ "goalIds": goal_ids, "replaceExisting": replace_existing })),
            ),
            Op::RandomSelect { challenge_id, count, replace_existing, exclude_active } => (
                Method::POST,
                format!("{base}/v1/challenges/{challenge_id}/goals/random-select"),
                Some(json!({ "count": count, "replaceExisting": replace_existing, "excludeActive": exclude_active })),
            ),
            Op::Claim { challenge_id, goal_id } => {
                (Method::POST, format!("{base}/v1/challenges/{challenge_id}/goals/{goal_id}/claim"), Some(json!({})))
            }
        };
        let mut request = self.http.request(method, url).header(reqwest::header::AUTHORIZATION, &player.bearer);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let bytes = self.send_http(request).await?;
        match op {
            Op::ListChallenges { .. } if decode => {
                serde_json::from_slice(&bytes).map(Reply::Challenges).map_err(|err| CallError::decode(&err))
            }
            _ => Ok(Reply::Skipped),
        }
    }

    /// Sends and reads the whole body; a non-2xx status becomes an error carrying the envelope's `errorCode`.
    async fn send_http(&self, request: reqwest::RequestBuilder) -> std::result::Result<bytes::Bytes, CallError> {
        let response = request.send().await.map_err(|err| CallError::from_reqwest(&err))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|err| CallError::from_reqwest(&err))?;
        if status.is_success() {
            return Ok(bytes);
        }
        let error_code = serde_json::from_slice::<ErrorBody>(&bytes).ok().and_then(|body| body.error_code);
        Err(CallError::status(status.as_str(), error_code))
    }

    async fn call_grpc(&self, op: &Op, player: &Player) -> std::result::Result<Reply, CallError> {
        let mut client = api::challenge_service_client::ChallengeServiceClient::new(self.channel());
        let authorization: tonic::metadata::MetadataValue<tonic::metadata::Ascii> =
            player.bearer.parse().map_err(|_| CallError::plain("token is not valid metadata"))?;
        let status = |status: tonic::Status| CallError::from_status(&status);
        match op {
            Op::ListChallenges { active_only } => client
                .get_user_challenges(authorized(
                    api::GetChallengesRequest { active_only: *active_only },
                    &authorization,
                ))
                .await
                .map(|response| Reply::Challenges(response.into_inner()))
                .map_err(status),
            Op::GetChallenge { challenge_id } => client
                .get_user_challenge(authorized(
                    api::GetChallengeRequest { challenge_id: challenge_id.clone() },
                    &authorization,
                ))
                .await
                .map(|_| Reply::Skipped)
                .map_err(status),
            Op::Initialize => client
                .initialize_player(authorized(api::InitializeRequest {}, &authorization))
                .await
                .map(|_| Reply::Skipped)
                .map_err(status),
            Op::SetActive { challenge_id, goal_id, is_active } => client
                .set_goal_active(authorized(
                    api::SetGoalActiveRequest {
                        challenge_id: challenge_id.clone(),
                        goal_id: goal_id.clone(),
                        is_active: *is_active,
                    },
                    &authorization,
                ))
                .await
                .map(|_| Reply::Skipped)
                .map_err(status),
            Op::BatchSelect { challenge_id, goal_ids, replace_existing } => client
                .batch_select_goals(authorized(
                    api::BatchSelectRequest {
                        challenge_id: challenge_id.clone(),
                        goal_ids: goal_ids.clone(),
                        replace_existing: *replace_existing,
                    },
                    &authorization,
                ))
                .await
                .map(|_| Reply::Skipped)
                .map_err(status),
            Op::RandomSelect { challenge_id, count, replace_existing, exclude_active } => client
                .random_select_goals(authorized(
                    api::RandomSelectRequest {
                        challenge_id: challenge_id.clone(),
                        count: *count,
                        replace_existing: *replace_existing,
                        exclude_active: *exclude_active,
                    },
                    &authorization,
                ))
                .await
                .map(|_| Reply::Skipped)
                .map_err(status),
            Op::Claim { challenge_id, goal_id } => client
                .claim_goal_reward(authorized(
                    api::ClaimRewardRequest { challenge_id: challenge_id.clone(), goal_id: goal_id.clone() },
                    &authorization,
                ))
                .await
                .map(|_| Reply::Skipped)
                .map_err(status),
        }
    }

    /// The report's name for submitting `events` over `transport`.
    pub fn events_endpoint(transport: EventTransport, events: &[Event]) -> &'static str {
        match transport {
            EventTransport::Onmessage => match events.first().map(|e| &e.kind) {
                Some(EventKind::Login) => "grpc UserLoggedIn/OnMessage",
                _ => "grpc StatItemUpdated/OnMessage",
            },
            EventTransport::Batch => "grpc SubmitEvents",
            EventTransport::Http => "POST /v1/events",
        }
    }

    /// Submits `events`; `Ok` tells which of them the server acknowledged (committed).
    pub async fn send_events(
        &self,
        transport: EventTransport,
        events: &[Event],
        population: &Population,
    ) -> std::result::Result<Acks, CallError> {
        match transport {
            EventTransport::Onmessage => {
                // One event per call; the scenarios send single events on this transport.
                for event in events {
                    self.on_message(event, population).await?;
                }
                Ok(Acks::all(events.len()))
            }
            EventTransport::Batch => self.submit_batch(events, population).await,
            EventTransport::Http => self.submit_http(events, population).await,
        }
    }

    async fn on_message(&self, event: &Event, population: &Population) -> std::result::Result<(), CallError> {
        let user_id = population.players[event.player].id.clone();
        let namespace = population.namespace.clone();
        let status = |status: tonic::Status| CallError::from_status(&status);
        match &event.kind {
            EventKind::Login => {
                let message = iam::UserLoggedIn {
                    id: event.id.clone(),
                    namespace: namespace.clone(),
                    user_id: user_id.clone(),
                    payload: Some(iam::AnonymousSchema19 {
                        user_account: Some(iam::UserAccount { user_id, namespace, ..Default::default() }),
                        user_authentication: None,
                    }),
                    ..Default::default()
                };
                iam::user_authentication_user_logged_in_service_client::UserAuthenticationUserLoggedInServiceClient::new(
                    self.channel(),
                )
                .on_message(message)
                .await
                .map(drop)
                .map_err(status)
            }
            EventKind::Stat { code, latest_value, inc } => {
                let message = statistic::StatItemUpdated {
                    id: event.id.clone(),
                    namespace: namespace.clone(),
                    user_id: user_id.clone(),
                    payload: Some(statistic::StatItem {
                        namespace,
                        stat_code: population.stat_code(*code).to_owned(),
                        user_id,
                        latest_value: *latest_value,
                        inc: *inc,
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                statistic::statistic_stat_item_updated_service_client::StatisticStatItemUpdatedServiceClient::new(
                    self.channel(),
                )
                .on_message(message)
                .await
                .map(drop)
                .map_err(status)
            }
        }
    }

    async fn submit_batch(&self, events: &[Event], population: &Population) -> std::result::Result<Acks, CallError> {
        let message = batch::SubmitEventsRequest {
            events: events
                .iter()
                .map(|event| batch::Event {
                    id: event.id.clone(),
                    user_id: population.players[event.player].id.clone(),
                    namespace: population.namespace.clone(),
                    timestamp: String::new(),
                    kind: Some(match &event.kind {
                        EventKind::Login => batch::event::Kind::Login(batch::LoginEvent {}),
                        EventKind::Stat { code, latest_value, inc } => batch::event::Kind::Stat(batch::StatEvent {
                            stat_code: population.stat_code(*code).to_owned(),
                            latest_value: *latest_value,
                            inc: *inc,
                        }),
                    }),
                })
                .collect(),
        };
        let response = batch::event_ingestion_service_client::EventIngestionServiceClient::new(self.channel())
            .submit_events(message)
            .await
            .map_err(|status| CallError::from_status(&status))?
            .into_inner();
        let rejected = response.rejected.into_iter().map(|r| (r.index as usize, r.error_code));
        Ok(Acks::except(events.len(), rejected, response.duplicates))
    }

    async fn submit_http(&self, events: &[Event], population: &Population) -> std::result::Result<Acks, CallError> {
        let body: Vec<HttpEvent<'_>> = events
            .iter()
            .map(|event| {
                let (kind, stat_code, latest_value, inc) = match &event.kind {
                    EventKind::Login => ("login", None, None, None),
                    EventKind::Stat { code, latest_value, inc } => {
                        ("stat", Some(population.stat_code(*code)), Some(*latest_value), Some(*inc))
                    }
                };
                HttpEvent {
                    kind,
                    id: &event.id,
                    user_id: &population.players[event.player].id,
                    namespace: &population.namespace,
                    stat_code,
                    latest_value,
                    inc,
                }
            })
            .collect();
        let request = self.http.post(format!("{}/v1/events", self.http_base)).json(&body);
        let bytes = self.send_http(request).await?;
        let response: HttpSubmitResponse = serde_json::from_slice(&bytes).map_err(|err| CallError::decode(&err))?;
        let rejected = response.rejected.into_iter().map(|r| (r.index, r.error_code));
        Ok(Acks::except(events.len(), rejected, response.duplicates))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_mark_refused_positions() {
        let acks = Acks::except(4, [(1, "BAD".to_owned()), (9, "OUT_OF_RANGE".to_owned())], 0);
        assert_eq!(acks.acked, vec![true, false, true, true]);
        assert_eq!(acks.rejected, vec!["BAD".to_owned(), "OUT_OF_RANGE".to_owned()]);
    }

    #[test]
    fn endpoint_names_follow_the_transport() {
        let op = Op::Claim { challenge_id: "c".into(), goal_id: "g".into() };
        assert_eq!(op.endpoint(ApiTransport::Http), "POST /v1/challenges/{cid}/goals/{gid}/claim");
        assert_eq!(op.endpoint(ApiTransport::Grpc), "grpc ClaimGoalReward");
    }

    #[test]
    fn http_error_labels_carry_the_error_code() {
        let error = CallError::status("409", Some("ALREADY_CLAIMED".into()));
        assert_eq!(error.label, "409 ALREADY_CLAIMED");
        let status = tonic::Status::new(tonic::Code::NotFound, "nope");
        assert_eq!(CallError::from_status(&status).label, "grpc NotFound");
    }
}
