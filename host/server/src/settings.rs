//! Typed server settings, read from an optional TOML file and environment variables.
//!
//! Precedence (lowest first): built-in defaults, the settings file (`--settings FILE` or `CHALLENGE_SETTINGS`),
//! `CHALLENGE_*` environment variables (nested keys with `__`, e.g. `CHALLENGE_HTTP__LISTEN`), and the
//! conventional unprefixed `DATABASE_URL`, `REDIS_URL` and `CHALLENGES_PATH`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use crate::auth::{AuthMode, AuthSettings};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub http: HttpSettings,
    pub grpc: GrpcSettings,
    pub metrics: MetricsSettings,
    /// PostgreSQL URL (`postgres://...`). Absent: embedded SQLite under `data_dir`.
    pub database_url: Option<String>,
    pub database: DatabaseSettings,
    /// Redis URL (`redis://...`). Absent: in-process cache and dedupe.
    pub redis_url: Option<String>,
    /// Directory for the embedded database and compiled plugin cache.
    pub data_dir: PathBuf,
    /// Challenge definitions. Absent: `config/challenges.json` if it exists, else the built-in sample.
    pub challenges_path: Option<PathBuf>,
    /// Namespace written on rows and expected on incoming events.
    pub namespace: String,
    /// Rule plugin components (`.wasm`) loaded and activated at start-up, besides the built-in rules.
    pub plugin_files: Vec<PathBuf>,
    pub log: LogSettings,
    pub pipeline: PipelineSettings,
    pub auth: AuthSettings,
    pub cache: CacheSettings,
    pub rewards: RewardSettings,
    pub plugins: PluginSettings,
    pub rotation: crate::rotation::RotationSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcSettings {
    pub listen: SocketAddr,
    pub max_message_bytes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// A dedicated listener for `/metrics` (also served on the HTTP port). `None` disables it.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    pub max_connections: u32,
    pub min_connections: u32,
    /// How long a request waits for a pooled connection before the database counts as unavailable.
    pub acquire_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// A tracing filter: `info`, `debug`, `challenge_host=debug,info`, ...
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineSettings {
    /// Longest time an event waits for its flush (group commit window).
    pub flush_interval_ms: u64,
    /// A flush starts early once this many events are waiting in a partition.
    pub max_batch_events: usize,
    /// Parallel flush workers; a user always maps to the same one, so a user's events stay in order.
    pub flush_workers: usize,
    /// How long a caller waits for its events to be committed before it gets UNAVAILABLE.
    pub commit_timeout_ms: u64,
    /// Largest number of events in one batch call.
    pub max_events_per_call: usize,
    /// Window in which a re-delivered event id is ignored.
    pub dedupe_window_secs: u64,
}

/// The plugin registry and its admin API (see `crate::rules::registry`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PluginSettings {
    /// Largest component the upload API accepts.
    pub max_upload_bytes: usize,
    /// How often each instance checks the registry revision (the fallback when a Redis notification is missed,
    /// and the only path without Redis).
    pub poll_interval_ms: u64,
    /// Redis channel on which instances announce registry changes.
    pub notify_channel: String,
}

impl Default for PluginSettings {
    fn default() -> Self {
        Self {
            max_upload_bytes: 16 * 1024 * 1024,
            poll_interval_ms: 5_000,
            notify_channel: "challenge:plugin-registry".to_owned(),
        }
    }
}

/// The per-player read cache (see `crate::cache`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// Off: every player read goes to the database.
    pub enabled: bool,
    /// Players whose goal state is kept in memory at most.
    pub max_users: u64,
    /// Longest time an entry is served; bounds staleness if an invalidation is lost (Redis outage).
    pub ttl_secs: u64,
    /// Prefix of the per-player generation keys in Redis.
    pub key_prefix: String,
    /// After a Redis error, how long the cache is bypassed before Redis is tried again.
    pub redis_retry_ms: u64,
}

/// Delivery of claimed rewards (see `crate::rewards`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RewardSettings {
    /// Base URL of the platform service granting items and wallet credits (`https://<host>`). Unset: rewards
    /// are only logged (development).
    pub base_url: Option<String>,
    /// Bearer token sent to the platform service.
    pub token: Option<String>,
    /// Timeout of one delivery request.
    pub timeout_ms: u64,
    /// How long a claim waits for the first delivery attempt before answering `pending` (the outbox worker
    /// leaves a grant to its claim for this long).
    pub claim_wait_ms: u64,
    /// First retry delay after a failed delivery; doubles per attempt up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// How often the outbox worker looks for due grants.
    pub poll_interval_ms: u64,
    /// How long a worker holds a grant it is delivering before another worker may take it over.
    pub lease_secs: u64,
    /// Grants taken per poll.
    pub batch_size: u32,
    /// Deliveries in flight per worker.
    pub concurrency: usize,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_users: 200_000,
            ttl_secs: 300,
            key_prefix: "challenge:".to_owned(),
            redis_retry_ms: 1_000,
        }
    }
}

impl Default for RewardSettings {
    fn default() -> Self {
        Self {
            base_url: None,
            token: None,
            timeout_ms: 5_000,
            claim_wait_ms: 1_500,
            retry_initial_ms: 1_000,
            retry_max_ms: 300_000,
            poll_interval_ms: 1_000,
            lease_secs: 60,
            batch_size: 50,
            concurrency: 8,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            http: HttpSettings::default(),
            grpc: GrpcSettings::default(),
            metrics: MetricsSettings::default(),
            database_url: None,
            database: DatabaseSettings::default(),
            redis_url: None,
            data_dir: PathBuf::from("data"),
            challenges_path: None,
            namespace: "accelbyte".to_owned(),
            plugin_files: Vec::new(),
            log: LogSettings::default(),
            pipeline: PipelineSettings::default(),
            auth: AuthSettings::default(),
            cache: CacheSettings::default(),
            rewards: RewardSettings::default(),
            plugins: PluginSettings::default(),
            rotation: crate::rotation::RotationSettings::default(),
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self { listen: SocketAddr::from(([0, 0, 0, 0], 8000)), max_body_bytes: 1024 * 1024 }
    }
}

impl Default for GrpcSettings {
    fn default() -> Self {
        Self { listen: SocketAddr::from(([0, 0, 0, 0], 6565)), max_message_bytes: 8 * 1024 * 1024 }
    }
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self { listen: Some(SocketAddr::from(([0, 0, 0, 0], 8080))) }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self { max_connections: 16, min_connections: 1, acquire_timeout_ms: 3_000 }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { level: "info".to_owned(), format: LogFormat::Text }
    }
}

impl Default for PipelineSettings {
    fn default() -> Self {
        Self {
            flush_interval_ms: 10,
            max_batch_events: 2_000,
            // Bigger flushes amortize each flush's round trips, so more workers than cores only cost: on a 2-core
            // machine 2 workers took a fifth less CPU per event than 4 (loadtest/results/summary.md).
            flush_workers: std::thread::available_parallelism().map_or(2, |cores| cores.get().clamp(1, 16)),
            commit_timeout_ms: 5_000,
            max_events_per_call: 10_000,
            dedupe_window_secs: 3_600,
        }
    }
}

impl Settings {
    /// Running on the zero-configuration defaults: embedded database, no Redis.
    pub fn is_embedded(&self) -> bool {
        self.database_url.is_none()
    }
}

impl DatabaseSettings {
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid settings: {0}")]
pub struct SettingsError(String);

/// The conventional variable names operators already use, mapped onto settings keys.
const UNPREFIXED_ENV: [(&str, &str); 4] = [
    ("DATABASE_URL", "database_url"),
    ("REDIS_URL", "redis_url"),
    ("CHALLENGES_PATH", "challenges_path"),
    ("AB_NAMESPACE", "namespace"),
];

impl Settings {
    /// Loads settings from `file` (if given) and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::figment(file).extract::<Settings>().map_err(|e| SettingsError(e.to_string()))?.validated()
    }

    fn figment(file: Option<&Path>) -> Figment {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(Env::prefixed("CHALLENGE_").split("__").ignore(&["SETTINGS"]));
        for (var, key) in UNPREFIXED_ENV {
            figment = figment.merge(Env::raw().only(&[var]).map(move |_| key.into()));
        }
        figment
    }

    fn validated(self) -> Result<Self, SettingsError> {
        let p = &self.pipeline;
        if p.flush_workers == 0 || p.flush_workers > 64 {
            return Err(SettingsError(format!("pipeline.flush_workers must be 1..=64 (got {})", p.flush_workers)));
        }
        if p.flush_interval_ms == 0 || p.max_batch_events == 0 || p.max_events_per_call == 0 {
            return Err(SettingsError(
                "pipeline.flush_interval_ms, max_batch_events and max_events_per_call must be positive".into(),
            ));
        }
        if self.database.max_connections == 0 {
            return Err(SettingsError("database.max_connections must be positive".into()));
        }
        let r = &self.rewards;
        if let Some(url) = &r.base_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(SettingsError(format!("rewards.base_url must be an http(s):// URL (got '{url}')")));
        }
        if r.timeout_ms == 0
            || r.poll_interval_ms == 0
            || r.retry_initial_ms == 0
            || r.batch_size == 0
            || r.concurrency == 0
        {
            return Err(SettingsError(
                "rewards.timeout_ms, poll_interval_ms, retry_initial_ms, batch_size and concurrency must be positive"
                    .into(),
            ));
        }
        if r.lease_secs * 1_000 <= r.timeout_ms {
            return Err(SettingsError("rewards.lease_secs must be longer than rewards.timeout_ms".into()));
        }
        self.rotation.check().map_err(SettingsError)?;
        if self.cache.max_users == 0 || self.cache.ttl_secs == 0 {
            return Err(SettingsError("cache.max_users and cache.ttl_secs must be positive".into()));
        }
        if self.plugins.poll_interval_ms == 0 || self.plugins.max_upload_bytes == 0 {
            return Err(SettingsError("plugins.poll_interval_ms and plugins.max_upload_bytes must be positive".into()));
        }
        if self.namespace.trim().is_empty() {
            return Err(SettingsError("namespace must not be empty".into()));
        }
        if let Some(url) = &self.database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(SettingsError("database_url must be a postgres:// URL (omit it for embedded SQLite)".into()));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn defaults_need_no_configuration() {
        Jail::expect_with(|_| {
            let s = Settings::load(None).map_err(|e| e.to_string())?;
            assert_eq!(s.http.listen.port(), 8000);
            assert_eq!(s.grpc.listen.port(), 6565);
            assert!(s.database_url.is_none() && s.redis_url.is_none());
            Ok(())
        });
    }

    #[test]
    fn file_then_environment_override_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file("host.toml", "namespace = \"mygame\"\n[http]\nlisten = \"127.0.0.1:9000\"\n")?;
            jail.set_env("CHALLENGE_GRPC__LISTEN", "127.0.0.1:7000");
            jail.set_env("DATABASE_URL", "postgres://db/x");
            let s = Settings::load(Some(Path::new("host.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(s.namespace, "mygame");
            assert_eq!(s.http.listen.port(), 9000);
            assert_eq!(s.grpc.listen.port(), 7000);
            assert_eq!(s.database_url.as_deref(), Some("postgres://db/x"));
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_rejected_with_their_key() {
        Jail::expect_with(|jail| {
            jail.set_env("CHALLENGE_PIPELINE__FLUSH_WORKERS", "0");
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(err.contains("flush_workers"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.create_file("host.toml", "no_such_key = 1\n")?;
            let err = Settings::load(Some(Path::new("host.toml"))).unwrap_err().to_string();
            assert!(err.contains("no_such_key"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("DATABASE_URL", "mysql://x");
            assert!(Settings::load(None).is_err());
            Ok(())
        });
    }
}
