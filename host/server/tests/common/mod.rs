//! Test harness: a real server on ephemeral ports over a fresh PostgreSQL database (or embedded SQLite),
//! with HS256 tokens minted for test players.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use challenge_host::settings::{AuthMode, Settings};
use challenge_host::{RunningServer, start};
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

pub const TEST_SECRET: &str = "integration-test-secret-0123456789";
pub const NAMESPACE: &str = "test-ns";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A database created for one test and dropped with it.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let admin_url = std::env::var("TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let name = format!("htest_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&admin_url).await.expect("PostgreSQL for tests (scripts/setup.sh starts it)");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
        admin.close().await;
        let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base);
        let url = format!("{base}/{name}");
        Self { admin_url, name, url }
    }

    pub async fn pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.url).await.unwrap()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop may run inside a runtime; use a thread with its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                if let Ok(admin) = sqlx::PgPool::connect(&admin_url).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&admin).await;
                }
            });
        })
        .join();
    }
}

pub struct TestOptions {
    pub backend: Backend,
    /// A challenges file; `None` uses tests/fixtures/challenges.json.
    pub challenges: Option<PathBuf>,
    pub redis_url: Option<String>,
    pub plugin_files: Vec<PathBuf>,
    /// Reuse an existing database (restart tests).
    pub database: Option<String>,
    pub data_dir: Option<PathBuf>,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            backend: Backend::Postgres,
            challenges: None,
            redis_url: None,
            plugin_files: Vec::new(),
            database: None,
            data_dir: None,
        }
    }
}

pub struct TestServer {
    pub server: Option<RunningServer>,
    pub database: Option<TestDatabase>,
    pub database_url: Option<String>,
    pub http: String,
    pub grpc: String,
    _data_dir: Option<tempfile::TempDir>,
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

pub fn test_settings(options: &TestOptions, database_url: Option<String>, data_dir: &Path) -> Settings {
    let mut settings = Settings::default();
    settings.http.listen = "127.0.0.1:0".parse().unwrap();
    settings.grpc.listen = "127.0.0.1:0".parse().unwrap();
    settings.metrics.listen = None;
    settings.database_url = database_url;
    settings.redis_url = options.redis_url.clone();
    settings.data_dir = data_dir.to_owned();
    settings.challenges_path = Some(options.challenges.clone().unwrap_or_else(|| fixture("challenges.json")));
    settings.namespace = NAMESPACE.to_owned();
    settings.plugin_files = options.plugin_files.clone();
    settings.auth.mode = AuthMode::Hs256;
    settings.auth.hs256_secret = Some(TEST_SECRET.to_owned());
    settings.auth.admin_token = Some("test-admin-token".to_owned());
    settings.pipeline.flush_interval_ms = 5;
    settings.pipeline.commit_timeout_ms = 3_000;
    settings.database.acquire_timeout_ms = 1_000;
    settings
}

impl TestServer {
    pub async fn start(options: TestOptions) -> Self {
        let data_dir = match &options.data_dir {
            Some(_) => None,
            None => Some(tempfile::tempdir().unwrap()),
        };
        let data_path = options.data_dir.clone().unwrap_or_else(|| data_dir.as_ref().unwrap().path().to_owned());
        let (database, database_url) = match (options.backend, &options.database) {
            (Backend::Sqlite, _) => (None, None),
            (Backend::Postgres, Some(url)) => (None, Some(url.clone())),
            (Backend::Postgres, None) => {
                let db = TestDatabase::create().await;
                let url = db.url.clone();
                (Some(db), Some(url))
            }
        };
        let settings = test_settings(&options, database_url.clone(), &data_path);
        let server = start(settings).await.expect("server starts");
        let http = format!("http://{}", server.http_addr);
        let grpc = format!("http://{}", server.grpc_addr);
        Self { server: Some(server), database, database_url, http, grpc, _data_dir: data_dir }
    }

    pub fn state(&self) -> &challenge_host::AppState {
        &self.server.as_ref().expect("running").state
    }

    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
    }

    pub async fn grpc_channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(self.grpc.clone()).unwrap().connect().await.unwrap()
    }
}

/// An active assignment without expiry, as the store takes it.
pub fn assignment(user: &str, goal_id: &str, challenge_id: &str) -> challenge_storage::NewAssignment {
    challenge_storage::NewAssignment {
        user_id: user.into(),
        goal_id: goal_id.into(),
        challenge_id: challenge_id.into(),
        namespace: NAMESPACE.into(),
        is_active: true,
        assigned_at: Some(chrono::Utc::now()),
        expires_at: None,
        progress_source: challenge_core::progress::ProgressSource::Stored,
    }
}

/// Assigns configured goals (active, no expiry) to a user directly in the store.
pub async fn assign(state: &challenge_host::AppState, user: &str, goals: &[&str]) {
    let config = state.config();
    let assignments: Vec<_> = goals
        .iter()
        .map(|goal_id| {
            let goal = config.catalog.goal(goal_id).expect("goal in the fixture");
            assignment(user, &goal.id, &goal.challenge_id)
        })
        .collect();
    state.store.insert_missing_assignments(&assignments, chrono::Utc::now()).await.unwrap();
    state.player.changed(user).await;
}

/// A bearer token for `user_id`, valid for an hour.
pub fn token(user_id: &str) -> String {
    let claims = json!({
        "sub": user_id,
        "namespace": NAMESPACE,
        "exp": chrono::Utc::now().timestamp() + 3600,
        "iat": chrono::Utc::now().timestamp(),
    });
    let jwt = encode(&Header::default(), &claims, &EncodingKey::from_secret(TEST_SECRET.as_bytes())).unwrap();
    format!("Bearer {jwt}")
}

/// Polls `check` until it returns Some, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "condition not met within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
