//! Start-up and shutdown: open storage, load rule plugins and challenges, then serve HTTP and gRPC.
//!
//! Start-up is all-or-nothing: a bad challenges file, an unreachable database or a plugin that rejects a goal's
//! params stops the process with the full list of problems before any listener opens.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use arc_swap::ArcSwap;
use challenge_core::config;
use challenge_storage::{Store, StoreOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::auth::Authenticator;
use crate::cache::Generations;
use crate::pipeline::{Deduper, LocalDeduper, Pipeline, PipelineContext, RedisDeduper, StateCache};
use crate::player::{PlayerApi, SnapshotCache};
use crate::rewards::{self, RewardDelivery};
use crate::rules::RuleEngine;
use crate::rules::registry::PluginLifecycle;
use crate::settings::Settings;
use crate::state::{ActiveConfig, AppState};
use crate::{grpc, http, telemetry};

/// The sample challenges compiled into the binary, used when nothing else is configured.
pub const SAMPLE_CHALLENGES: &str = include_str!("../../../config/challenges.json");
const DEFAULT_CHALLENGES_PATH: &str = "config/challenges.json";
/// Event ids the in-process dedupe window remembers at most (bounded memory without Redis).
const LOCAL_DEDUPE_IDS: u64 = 2_000_000;

/// A server whose listeners are open. Dropping it does not stop it; call [`RunningServer::shutdown`].
pub struct RunningServer {
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub state: AppState,
    stop: watch::Sender<bool>,
    tasks: JoinSet<anyhow::Result<()>>,
}

impl RunningServer {
    /// Stops accepting, flushes every accepted event, lets in-flight requests finish, and waits for every task.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.state.pipeline.close();
        let _ = self.stop.send(true);
        self.wait().await
    }

    async fn wait(&mut self) -> anyhow::Result<()> {
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            let outcome = joined.map_err(anyhow::Error::from).and_then(|r| r);
            if let Err(err) = outcome {
                let _ = self.stop.send(true);
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let options = StoreOptions {
        database_url: settings.database_url.clone(),
        data_dir: settings.data_dir.clone(),
        max_connections: settings.database.max_connections,
        min_connections: settings.database.min_connections,
        acquire_timeout: settings.database.acquire_timeout(),
    };
    let store = challenge_storage::open_store(&options).await.context("opening the database")?;
    Ok(store)
}

/// `host migrate`.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    store.migrate().await.context("applying migrations")?;
    tracing::info!(backend = store.backend(), "migrations applied");
    Ok(())
}

/// `host config validate FILE`: prints every problem and exits non-zero when there is any.
pub fn validate_config(file: &Path) -> ExitCode {
    let rules = match RuleEngine::with_builtin(None) {
        Ok(rules) => rules,
        Err(err) => {
            eprintln!("error: cannot load the built-in rule plugin: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    match load_catalog_from(&rules, ChallengeSource::File(file.to_owned())) {
        Ok(ActiveConfig { catalog, .. }) => {
            println!(
                "{}: OK ({} challenges, {} goals)",
                file.display(),
                catalog.challenges().len(),
                catalog.goal_count()
            );
            ExitCode::SUCCESS
        }
        Err(report) => {
            eprintln!("{report}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) enum ChallengeSource {
    File(PathBuf),
    BuiltInSample,
}

pub(crate) fn challenge_source(settings: &Settings) -> ChallengeSource {
    match &settings.challenges_path {
        Some(path) => ChallengeSource::File(path.clone()),
        None if Path::new(DEFAULT_CHALLENGES_PATH).exists() => ChallengeSource::File(DEFAULT_CHALLENGES_PATH.into()),
        None => ChallengeSource::BuiltInSample,
    }
}

/// Loads and validates challenges, including every goal's params against its rule plugin.
/// The error is a printable report of every problem.
pub(crate) fn load_catalog_from(rules: &RuleEngine, source: ChallengeSource) -> Result<ActiveConfig, String> {
    let loaded = match &source {
        ChallengeSource::File(path) => config::load_file(path, rules),
        ChallengeSource::BuiltInSample => {
            config::load_bytes(SAMPLE_CHALLENGES.as_bytes(), Some(Path::new("<built-in sample>")), rules)
        }
    };
    let catalog = loaded.map_err(|err| config::report(&err))?;
    let (catalog, rules) = rules.prepare(catalog)?;
    Ok(ActiveConfig { catalog, rules })
}

/// Opens everything and starts serving; returns once the listeners are bound.
pub async fn start(settings: Settings) -> anyhow::Result<RunningServer> {
    start_with_clock(settings, Arc::new(crate::rotation::SystemClock)).await
}

/// [`start`] with the clock rotation follows (player API and auto-assignment) injected: tests cross boundaries.
pub async fn start_with_clock(
    settings: Settings,
    clock: Arc<dyn crate::rotation::Clock>,
) -> anyhow::Result<RunningServer> {
    let started_at = Instant::now();
    let settings = Arc::new(settings);
    let metrics = telemetry::metrics_handle();

    let auth = Arc::new(Authenticator::new(settings.auth.clone(), settings.is_embedded())?);
    let store = open_store(&settings).await?;
    store.migrate().await.context("applying migrations")?;

    let rules = Arc::new(RuleEngine::with_builtin(Some(settings.data_dir.join("plugin-cache")))?);
    rules.load_files(&settings.plugin_files)?;
    let source = challenge_source(&settings);
    // Registry plugins, and the versions the challenges pin, must be loaded before the challenges are validated.
    let pins =
        crate::rules::registry::source_pins(&source).map_err(|err| anyhow::anyhow!("invalid challenges: {err}"))?;
    let plugins = PluginLifecycle::start_up(store.clone(), rules.clone(), settings.clone(), &pins).await?;
    let active =
        load_catalog_from(&rules, source).map_err(|report| anyhow::anyhow!("invalid challenges:\n{report}"))?;
    tracing::info!(
        backend = store.backend(),
        challenges = active.catalog.challenges().len(),
        config_version = active.catalog.version(),
        "challenges loaded"
    );

    let redis = match &settings.redis_url {
        Some(url) => Some(crate::redis::connect(url).await?),
        None => None,
    };
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();

    let config = Arc::new(ArcSwap::from_pointee(active));
    plugins.run(config.clone(), redis.clone(), stopped.clone(), &mut tasks);
    // One set of player generations: a committed flush makes the read cache's copy stale, and an API write the
    // pipeline's, here and on every instance sharing the Redis.
    let generations = Generations::new(&settings.cache, redis.clone());
    let cache = Arc::new(SnapshotCache::sharing(generations.clone(), &settings.cache, "player"));
    let state_cache = Arc::new(StateCache::sharing(generations, &settings.cache, "pipeline"));
    let pipeline = Pipeline::start(
        PipelineContext {
            store: store.clone(),
            config: config.clone(),
            engine: rules.clone(),
            settings: settings.pipeline.clone(),
            namespace: settings.namespace.clone(),
            state_cache,
        },
        deduper(&settings, redis.clone()),
        stopped.clone(),
        &mut tasks,
    );
    let reward_client = rewards::client_from_settings(&settings.rewards, settings.is_embedded())?;
    let delivery = RewardDelivery::new(store.clone(), reward_client, settings.rewards.clone());
    let worker = delivery.clone().worker(stopped.clone());
    tasks.spawn(async move {
        worker.await;
        Ok(())
    });
    if settings.rotation.auto_assign {
        let assigner = crate::rotation::AutoAssigner::new(
            store.clone(),
            config.clone(),
            redis.clone(),
            clock.clone(),
            settings.rotation.clone(),
            settings.namespace.clone(),
        );
        assigner.with_cache(cache.clone()).spawn(stopped.clone(), &mut tasks);
    }
    let player = Arc::new(
        PlayerApi::new(store.clone(), config.clone(), settings.namespace.clone(), cache, delivery).with_clock(clock),
    );
    let state = AppState {
        settings: settings.clone(),
        store,
        config,
        rules,
        pipeline,
        player,
        plugins,
        auth,
        redis,
        metrics,
        started_at,
    };

    let http_listener = TcpListener::bind(settings.http.listen)
        .await
        .with_context(|| format!("binding HTTP on {}", settings.http.listen))?;
    let http_addr = http_listener.local_addr()?;
    tasks.spawn(serve_http(http_listener, http::app(state.clone()), stopped.clone()));

    let grpc_listener = TcpListener::bind(settings.grpc.listen)
        .await
        .with_context(|| format!("binding gRPC on {}", settings.grpc.listen))?;
    let grpc_addr = grpc_listener.local_addr()?;
    tasks.spawn(serve_grpc(grpc_listener, grpc::routes(state.clone(), state.pipeline.clone()), stopped.clone()));

    let metrics_addr = match settings.metrics.listen {
        Some(addr) => {
            let listener =
                TcpListener::bind(addr).await.with_context(|| format!("binding the metrics listener on {addr}"))?;
            let bound = listener.local_addr()?;
            tasks.spawn(serve_http(listener, http::metrics_app(state.clone()), stopped.clone()));
            Some(bound)
        }
        None => None,
    };

    tracing::info!(%http_addr, %grpc_addr, ?metrics_addr, startup_ms = started_at.elapsed().as_millis() as u64, "serving");
    Ok(RunningServer { http_addr, grpc_addr, metrics_addr, state, stop, tasks })
}

fn deduper(settings: &Settings, redis: Option<fred::prelude::Client>) -> Arc<dyn Deduper> {
    let window = Duration::from_secs(settings.pipeline.dedupe_window_secs);
    let local = Arc::new(LocalDeduper::new(window, LOCAL_DEDUPE_IDS));
    match redis {
        Some(client) => Arc::new(RedisDeduper::new(client, window, local)),
        None => local,
    }
}

async fn serve_grpc(
    listener: TcpListener,
    routes: tonic::service::Routes,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, wait_for_stop(stopped))
        .await
        .context("gRPC server")
}

async fn serve_http(listener: TcpListener, app: axum::Router, stopped: watch::Receiver<bool>) -> anyhow::Result<()> {
    axum::serve(listener, app).with_graceful_shutdown(wait_for_stop(stopped)).await.context("HTTP server")
}

async fn wait_for_stop(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// `host serve`: runs until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let mut server = start(settings).await?;
    tokio::select! {
        () = shutdown_signal() => {
            tracing::info!("shutdown requested: refusing new events, flushing accepted ones");
            server.shutdown().await
        }
        outcome = server.wait() => outcome,
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
