//! Helpers of the player API tests: servers with reward/cache settings, one call helper that speaks REST or gRPC
//! with the same expectations, events, and a fake reward platform that records what it receives.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use challenge_host::settings::Settings;
use challenge_host::{RunningServer, start};
use challenge_proto::accelbyte::iam::account::v1 as iam;
use challenge_proto::accelbyte::social::statistic::v1 as statistic;
use challenge_proto::challenge::v1 as proto;
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::common::{Backend, NAMESPACE, TestDatabase, TestOptions, fixture, test_settings};

pub type PlayerClient = proto::challenge_service_client::ChallengeServiceClient<Channel>;

pub const REWARD_TOKEN: &str = "platform-token-123";

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A user id no other test (or earlier run sharing Redis) uses.
pub fn unique_user(label: &str) -> String {
    format!("{label}-{}", uuid::Uuid::new_v4().simple())
}

/// A server for player tests. Instances can share a database (and Redis) to act as one deployment.
pub struct PlayerServer {
    pub server: Option<RunningServer>,
    pub http: String,
    pub grpc: String,
    pub database_url: Option<String>,
    pub database: Option<Arc<TestDatabase>>,
    client: reqwest::Client,
    _data_dir: tempfile::TempDir,
}

pub struct Setup {
    pub backend: Backend,
    pub redis_url: Option<String>,
    /// Base URL of the reward platform; `None` uses the logging client.
    pub rewards: Option<String>,
    /// Another instance's database to share.
    pub share: Option<Arc<TestDatabase>>,
    /// Challenges file in tests/fixtures.
    pub fixture: &'static str,
    pub configure: fn(&mut Settings),
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            backend: Backend::Postgres,
            redis_url: None,
            rewards: None,
            share: None,
            fixture: "player_challenges.json",
            configure: |_| {},
        }
    }
}

impl PlayerServer {
    pub async fn start(setup: Setup) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let database = match (setup.backend, setup.share) {
            (Backend::Sqlite, _) => None,
            (Backend::Postgres, Some(shared)) => Some(shared),
            (Backend::Postgres, None) => Some(Arc::new(TestDatabase::create().await)),
        };
        let database_url = database.as_ref().map(|db| db.url.clone());
        let options = TestOptions {
            backend: setup.backend,
            challenges: Some(fixture(setup.fixture)),
            redis_url: setup.redis_url,
            ..TestOptions::default()
        };
        let mut settings = test_settings(&options, database_url.clone(), data_dir.path());
        settings.rewards.base_url = setup.rewards;
        settings.rewards.token = Some(REWARD_TOKEN.to_owned());
        settings.rewards.retry_initial_ms = 100;
        settings.rewards.retry_max_ms = 400;
        settings.rewards.poll_interval_ms = 50;
        settings.rewards.claim_wait_ms = 500;
        settings.rewards.timeout_ms = 2_000;
        settings.rewards.lease_secs = 5;
        settings.cache.key_prefix = format!("test-{}:", uuid::Uuid::new_v4().simple());
        (setup.configure)(&mut settings);
        let server = start(settings).await.expect("server starts");
        let http = format!("http://{}", server.http_addr);
        let grpc = format!("http://{}", server.grpc_addr);
        let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
        Self { server: Some(server), http, grpc, database_url, database, client, _data_dir: data_dir }
    }

    pub fn state(&self) -> &challenge_host::AppState {
        &self.server.as_ref().expect("running").state
    }

    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
    }

    pub async fn grpc_client(&self) -> PlayerClient {
        let channel = tonic::transport::Endpoint::from_shared(self.grpc.clone()).unwrap().connect().await.unwrap();
        PlayerClient::new(channel)
    }

    /// A raw HTTP request: (status, body as JSON or as a string).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: Option<&[u8]>,
        content_type: Option<&str>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, format!("{}{path}", self.http));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        if let Some(value) = content_type {
            request = request.header("content-type", value);
        }
        if let Some(body) = body {
            request = request.body(body.to_vec());
        }
        let response = request.send().await.expect("HTTP request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn metrics(&self) -> String {
        self.client.get(format!("{}/metrics", self.http)).send().await.unwrap().text().await.unwrap()
    }

    /// Sends a statistic event through the AccelByte `OnMessage` gRPC service; returns once it is committed.
    pub async fn stat_event(&self, user: &str, code: &str, value: f64, inc: f64) {
        let channel = tonic::transport::Endpoint::from_shared(self.grpc.clone()).unwrap().connect().await.unwrap();
        let mut client =
            statistic::statistic_stat_item_updated_service_client::StatisticStatItemUpdatedServiceClient::new(channel);
        client
            .on_message(statistic::StatItemUpdated {
                id: uuid::Uuid::new_v4().to_string(),
                user_id: user.into(),
                namespace: NAMESPACE.into(),
                payload: Some(statistic::StatItem {
                    stat_code: code.into(),
                    latest_value: value,
                    inc,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("stat event committed");
    }

    pub async fn login_event(&self, user: &str) {
        let channel = tonic::transport::Endpoint::from_shared(self.grpc.clone()).unwrap().connect().await.unwrap();
        let mut client =
            iam::user_authentication_user_logged_in_service_client::UserAuthenticationUserLoggedInServiceClient::new(
                channel,
            );
        client
            .on_message(iam::UserLoggedIn {
                id: uuid::Uuid::new_v4().to_string(),
                user_id: user.into(),
                namespace: NAMESPACE.into(),
                ..Default::default()
            })
            .await
            .expect("login event committed");
    }

    /// Runs SQL on the test database (PostgreSQL only).
    pub async fn sql(&self, statement: &str) {
        let pool = self.database.as_ref().expect("PostgreSQL").pool().await;
        sqlx::query(sqlx::AssertSqlSafe(statement.to_owned())).execute(&pool).await.unwrap();
        pool.close().await;
    }

    pub async fn sql_count(&self, statement: &str) -> i64 {
        let pool = self.database.as_ref().expect("PostgreSQL").pool().await;
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(statement.to_owned())).fetch_one(&pool).await.unwrap();
        pool.close().await;
        count
    }
}

/// The sum of a Prometheus counter over all its label sets.
pub fn counter(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

// ---- one operation over either transport ---------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Http,
    Grpc,
}

pub const BOTH: [Via; 2] = [Via::Http, Via::Grpc];

#[derive(Debug, Clone)]
pub enum Op<'a> {
    List { active_only: bool },
    Get { challenge: &'a str },
    Initialize,
    SetActive { challenge: &'a str, goal: &'a str, active: bool },
    Batch { challenge: &'a str, goals: &'a [&'a str], replace: bool },
    Random { challenge: &'a str, count: i32, replace: bool, exclude_active: bool },
    Claim { challenge: &'a str, goal: &'a str },
    Rotation { challenge: &'a str },
}

/// A failed call as both transports report it: the HTTP status (gRPC codes mapped back) and the error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: u16,
    pub code: String,
    pub message: String,
}

pub type Outcome = Result<Value, Failure>;

fn http_status_of(code: tonic::Code) -> u16 {
    match code {
        tonic::Code::InvalidArgument => 400,
        tonic::Code::Unauthenticated => 401,
        tonic::Code::PermissionDenied => 403,
        tonic::Code::NotFound => 404,
        tonic::Code::FailedPrecondition => 409,
        tonic::Code::OutOfRange => 422,
        tonic::Code::Unavailable => 503,
        _ => 500,
    }
}

fn authed<T>(message: T, authorization: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = authorization {
        request.metadata_mut().insert("authorization", value.parse().unwrap());
    }
    request
}

fn grpc_outcome<T: serde::Serialize>(result: Result<tonic::Response<T>, tonic::Status>) -> Outcome {
    match result {
        Ok(response) => Ok(serde_json::to_value(response.into_inner()).unwrap()),
        Err(status) => Err(Failure {
            status: http_status_of(status.code()),
            code: status.metadata().get("x-error-code").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default(),
            message: status.message().to_owned(),
        }),
    }
}

impl PlayerServer {
    /// Performs `op` for the bearer of `authorization` over `via`.
    pub async fn call(&self, via: Via, authorization: Option<&str>, op: Op<'_>) -> Outcome {
        match via {
            Via::Http => self.call_http(authorization, op).await,
            Via::Grpc => self.call_grpc(authorization, op).await,
        }
    }

    async fn call_http(&self, authorization: Option<&str>, op: Op<'_>) -> Outcome {
        let (method, path, body) = match op {
            Op::List { active_only } => ("GET", format!("/v1/challenges?active_only={active_only}"), None),
            Op::Get { challenge } => ("GET", format!("/v1/challenges/{challenge}"), None),
            Op::Initialize => ("POST", "/v1/challenges/initialize".to_owned(), Some(json!({}))),
            Op::SetActive { challenge, goal, active } => {
                ("PUT", format!("/v1/challenges/{challenge}/goals/{goal}/active"), Some(json!({"isActive": active})))
            }
            Op::Batch { challenge, goals, replace } => (
                "POST",
                format!("/v1/challenges/{challenge}/goals/batch-select"),
                Some(json!({"goalIds": goals, "replaceExisting": replace})),
            ),
            Op::Random { challenge, count, replace, exclude_active } => (
                "POST",
                format!("/v1/challenges/{challenge}/goals/random-select"),
                Some(json!({"count": count, "replaceExisting": replace, "excludeActive": exclude_active})),
            ),
            Op::Claim { challenge, goal } => ("POST", format!("/v1/challenges/{challenge}/goals/{goal}/claim"), None),
            Op::Rotation { challenge } => ("GET", format!("/v1/challenges/{challenge}/rotation"), None),
        };
        let body = body.map(|value| serde_json::to_vec(&value).unwrap());
        let (status, value) =
            self.raw(method, &path, authorization, body.as_deref(), body.as_ref().map(|_| "application/json")).await;
        if status == 200 {
            Ok(value)
        } else {
            Err(Failure {
                status,
                code: value["errorCode"].as_str().unwrap_or_default().to_owned(),
                message: value["message"].as_str().unwrap_or_default().to_owned(),
            })
        }
    }

    async fn call_grpc(&self, authorization: Option<&str>, op: Op<'_>) -> Outcome {
        let mut client = self.grpc_client().await;
        let a = authorization;
        match op {
            Op::List { active_only } => {
                grpc_outcome(client.get_user_challenges(authed(proto::GetChallengesRequest { active_only }, a)).await)
            }
            Op::Get { challenge } => grpc_outcome(
                client
                    .get_user_challenge(authed(proto::GetChallengeRequest { challenge_id: challenge.into() }, a))
                    .await,
            ),
            Op::Initialize => grpc_outcome(client.initialize_player(authed(proto::InitializeRequest {}, a)).await),
            Op::SetActive { challenge, goal, active } => grpc_outcome(
                client
                    .set_goal_active(authed(
                        proto::SetGoalActiveRequest {
                            challenge_id: challenge.into(),
                            goal_id: goal.into(),
                            is_active: active,
                        },
                        a,
                    ))
                    .await,
            ),
            Op::Batch { challenge, goals, replace } => grpc_outcome(
                client
                    .batch_select_goals(authed(
                        proto::BatchSelectRequest {
                            challenge_id: challenge.into(),
                            goal_ids: goals.iter().map(|g| g.to_string()).collect(),
                            replace_existing: replace,
                        },
                        a,
                    ))
                    .await,
            ),
            Op::Random { challenge, count, replace, exclude_active } => grpc_outcome(
                client
                    .random_select_goals(authed(
                        proto::RandomSelectRequest {
                            challenge_id: challenge.into(),
                            count,
                            replace_existing: replace,
                            exclude_active,
                        },
                        a,
                    ))
                    .await,
            ),
            Op::Claim { challenge, goal } => grpc_outcome(
                client
                    .claim_goal_reward(authed(
                        proto::ClaimRewardRequest { challenge_id: challenge.into(), goal_id: goal.into() },
                        a,
                    ))
                    .await,
            ),
            Op::Rotation { challenge } => grpc_outcome(
                client
                    .get_rotation_status(authed(proto::GetRotationStatusRequest { challenge_id: challenge.into() }, a))
                    .await,
            ),
        }
    }
}

/// Replaces non-empty timestamps (keys ending in `At`/`Time`) and `expiresInSeconds` with placeholders, so two
/// players' (or two calls') responses compare by content.
pub fn without_times(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let timed = key.ends_with("At") || key.ends_with("Time");
                    let value = match value {
                        Value::String(s) if timed && !s.is_empty() => Value::String("<time>".into()),
                        Value::Number(_) if key == "expiresInSeconds" => Value::String("<seconds>".into()),
                        other => without_times(other),
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_times).collect()),
        other => other.clone(),
    }
}

/// Replaces the countdowns (`expiresInSeconds`), which move on between two calls made a second apart.
pub fn without_countdowns(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| match value {
                    Value::Number(_) if key == "expiresInSeconds" => (key.clone(), Value::String("<seconds>".into())),
                    other => (key.clone(), without_countdowns(other)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_countdowns).collect()),
        other => other.clone(),
    }
}

/// The goal `goal_id` in a challenge listing (or single challenge) response.
pub fn goal<'a>(listing: &'a Value, goal_id: &str) -> &'a Value {
    let challenges: Vec<&Value> = match listing.get("challenges") {
        Some(list) => list.as_array().unwrap().iter().collect(),
        None => vec![listing],
    };
    challenges
        .into_iter()
        .flat_map(|c| c["goals"].as_array().unwrap().iter())
        .find(|g| g["goalId"] == goal_id)
        .unwrap_or_else(|| panic!("goal {goal_id} not in {listing}"))
}

// ---- fake reward platform ------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub idempotency_key: String,
    pub authorization: String,
    pub body: Value,
    /// The status it answered.
    pub answered: u16,
}

#[derive(Default)]
struct FakeState {
    received: Vec<Received>,
    /// Statuses for the next requests, then `default_status`.
    script: VecDeque<u16>,
    default_status: u16,
    delay: Duration,
}

/// An HTTP server standing in for the platform's fulfillment and wallet APIs.
#[derive(Clone)]
pub struct FakeRewards {
    pub url: String,
    state: Arc<Mutex<FakeState>>,
}

impl FakeRewards {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(FakeState { default_status: 200, ..FakeState::default() }));
        let shared = state.clone();
        let app = Router::new().fallback(move |request: Request| {
            let state = shared.clone();
            async move { answer(state, request).await }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, state }
    }

    pub fn answer_next(&self, statuses: &[u16]) {
        self.state.lock().unwrap().script.extend(statuses);
    }

    pub fn answer_always(&self, status: u16) {
        self.state.lock().unwrap().default_status = status;
    }

    pub fn delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    pub fn acknowledged(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| (200..300).contains(&r.answered)).collect()
    }
}

async fn answer(state: Arc<Mutex<FakeState>>, request: Request) -> impl IntoResponse {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let delay = state.lock().unwrap().delay;
    tokio::time::sleep(delay).await;
    let status = {
        let mut state = state.lock().unwrap();
        let status = state.script.pop_front().unwrap_or(state.default_status);
        state.received.push(Received {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            idempotency_key: header("idempotency-key"),
            authorization: header("authorization"),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            answered: status,
        });
        status
    };
    (StatusCode::from_u16(status).unwrap(), "{}")
}
