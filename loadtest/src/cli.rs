//! Command line of `loadgen`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::catalog::{self, GenParams};
use crate::error::{Error, Result};
use crate::scenario::{ApiOp, ScenarioName};
use crate::transport::{ApiTransport, EventTransport};

#[derive(Debug, Parser)]
#[command(name = "loadgen", version, about = "Open-loop load generator for the challenge platform")]
pub struct Cli {
    /// Generator worker threads. One keeps the generator off the second core the server needs on a small
    /// machine, and avoids cross-thread wake-ups; raise it when the report shows the generator saturated.
    #[arg(long, global = true, default_value_t = 1)]
    pub threads: usize,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Player API mix (list, get, initialize, set-active, claim) at --api-rate.
    Api(RunArgs),
    /// Login (--login-share) and stat-update events at --event-rate over --event-transport.
    Events(RunArgs),
    /// --users new players initialize over --burst-duration, then API and events together.
    Combined(RunArgs),
    /// New players per second (--init-rate) through initialize.
    InitBurst(RunArgs),
    /// Realistic sessions (--session-rate): login, initialize, list, select, play, claim.
    Sessions(RunArgs),
    /// Write a reference-sized challenges file.
    GenConfig(GenConfigArgs),
    /// Spawn the server on PostgreSQL and Redis and check every scenario at a small rate: zero errors, zero
    /// lost events. Exits non-zero on any failure.
    Smoke(SmokeArgs),
}

fn parse_key_value(text: &str) -> std::result::Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got '{text}'"))
}

#[derive(Debug, Clone, Args, Serialize)]
pub struct RunArgs {
    /// Server REST base URL (ignored with --spawn-host).
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub http_url: String,
    /// Server gRPC URL (ignored with --spawn-host).
    #[arg(long, default_value = "http://127.0.0.1:6565")]
    pub grpc_url: String,
    /// The server's PostgreSQL database, to check acknowledged events afterwards (implied by --spawn-host).
    #[arg(long)]
    pub database_url: Option<String>,
    /// The challenges file the server runs. Default: the generated 10x50 config (written for --spawn-host).
    #[arg(long)]
    pub challenges: Option<PathBuf>,

    /// Start the server: fresh PostgreSQL database, Redis, generated config, free ports; stopped at the end.
    #[arg(long)]
    pub spawn_host: bool,
    /// Server binary for --spawn-host. Default: <target>/release/host, built if missing.
    #[arg(long)]
    pub host_bin: Option<PathBuf>,
    /// Admin connection used to create and drop the run's database.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub pg_admin_url: String,
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Run the spawned server without Redis (in-process dedupe).
    #[arg(long)]
    pub no_redis: bool,
    /// Extra environment for the spawned server (repeatable), e.g. --host-env CHALLENGE_PIPELINE__FLUSH_WORKERS=2.
    #[arg(long = "host-env", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub host_env: Vec<(String, String)>,
    #[arg(long, default_value = "warn")]
    pub host_log_level: String,
    /// Keep the spawned server's database for inspection.
    #[arg(long)]
    pub keep_db: bool,

    /// HS256 secret the server was started with.
    #[arg(long, default_value = "loadtest-secret-change-me")]
    #[serde(skip)]
    pub jwt_secret: String,
    #[arg(long, default_value = "accelbyte")]
    pub namespace: String,

    /// Simulated players (ids start with the run id).
    #[arg(long, default_value_t = 2000)]
    pub users: usize,
    /// Scales every rate (1 = the reference's load: 300 requests/s, 500 events/s).
    #[arg(long, default_value_t = 1.0)]
    pub rate_multiplier: f64,
    /// API requests per second before the multiplier.
    #[arg(long, default_value_t = 300.0)]
    pub api_rate: f64,
    /// Events per second before the multiplier.
    #[arg(long, default_value_t = 500.0)]
    pub event_rate: f64,
    /// New players per second for init-burst, before the multiplier.
    #[arg(long, default_value_t = 50.0)]
    pub init_rate: f64,
    /// Sessions per second before the multiplier.
    #[arg(long, default_value_t = 10.0)]
    pub session_rate: f64,
    /// Seconds of the measured phase.
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,
    /// Seconds over which `combined` initializes its --users new players.
    #[arg(long, default_value_t = 120.0)]
    pub burst_duration: f64,
    /// Seconds of warm-up before measuring (0 disables); excluded from the report.
    #[arg(long, default_value_t = 10.0)]
    pub warmup: f64,
    /// Warm-up rate as a fraction of the measured rate.
    #[arg(long, default_value_t = 0.1)]
    pub warmup_fraction: f64,
    #[arg(long, value_enum, default_value_t = ApiTransport::Http)]
    pub api_transport: ApiTransport,
    /// Restrict the API mix to these operations (comma-separated), keeping their weights. Default: all.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub api_ops: Vec<ApiOp>,
    #[arg(long, value_enum, default_value_t = EventTransport::Onmessage)]
    pub event_transport: EventTransport,
    /// Events per call for --event-transport batch|http.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Share of login events in the events mix.
    #[arg(long, default_value_t = 0.2)]
    pub login_share: f64,
    /// Stat codes to send (comma-separated). Default: every code a default-assigned statistic goal listens to.
    #[arg(long, value_delimiter = ',')]
    pub stat_codes: Vec<String>,
    /// A stat update adds 1..=this to the player's running value.
    #[arg(long, default_value_t = 5)]
    pub stat_inc_max: u32,
    /// Stat events per session.
    #[arg(long, default_value_t = 5)]
    pub session_events: usize,

    /// Calls outstanding at most; arrivals beyond are dropped and reported, never delayed.
    #[arg(long, default_value_t = 4096)]
    pub max_in_flight: u32,
    /// Per-call timeout in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Idle HTTP connections kept per host.
    #[arg(long, default_value_t = 1024)]
    pub http_pool: usize,
    /// gRPC (HTTP/2) connections, used round-robin.
    #[arg(long, default_value_t = 4)]
    pub grpc_connections: usize,
    /// Concurrent calls of the setup step (initializing the population).
    #[arg(long, default_value_t = 32)]
    pub setup_concurrency: usize,
    /// Seconds to wait for /readyz.
    #[arg(long, default_value_t = 120.0)]
    pub ready_timeout: f64,

    /// Raise the rate step by step until p99 exceeds --p99-bound-ms or anything fails; report the highest
    /// sustainable rate.
    #[arg(long)]
    pub find_max: bool,
    #[arg(long, default_value_t = 50.0)]
    pub p99_bound_ms: f64,
    /// Each step multiplies the rate by this.
    #[arg(long, default_value_t = 1.25)]
    pub find_max_factor: f64,
    /// Seconds per find-max step.
    #[arg(long, default_value_t = 20.0)]
    pub step_duration: f64,
    /// Highest multiplier tried.
    #[arg(long, default_value_t = 100.0)]
    pub find_max_limit: f64,

    /// Where reports go. Default: loadtest/results of this workspace.
    #[arg(long)]
    pub results_dir: Option<PathBuf>,
    /// Run id (lowercase letters and digits). Default: derived from the time.
    #[arg(long)]
    pub run_id: Option<String>,
}

/// Wraps [`RunArgs`] so its defaults can be obtained without a command line.
#[derive(Debug, Parser)]
struct DefaultsOnly {
    #[command(flatten)]
    args: RunArgs,
}

impl RunArgs {
    pub fn defaults() -> Self {
        DefaultsOnly::parse_from(["loadgen"]).args
    }

    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("--rate-multiplier", self.rate_multiplier),
            ("--duration", self.duration),
            ("--timeout-ms", self.timeout_ms as f64),
            ("--ready-timeout", self.ready_timeout),
            ("--step-duration", self.step_duration),
        ];
        for (flag, value) in positive {
            if !(value > 0.0 && value.is_finite()) {
                return Err(Error::Usage(format!("{flag} must be positive")));
            }
        }
        let rates =
            [self.api_rate, self.event_rate, self.init_rate, self.session_rate, self.warmup, self.burst_duration];
        if rates.iter().any(|r| !(*r >= 0.0 && r.is_finite())) {
            return Err(Error::Usage("rates and durations cannot be negative".into()));
        }
        if !(0.0..=1.0).contains(&self.login_share) || !(0.0..=1.0).contains(&self.warmup_fraction) {
            return Err(Error::Usage("--login-share and --warmup-fraction are fractions between 0 and 1".into()));
        }
        if self.users == 0 || self.batch_size == 0 {
            return Err(Error::Usage("--users and --batch-size must be at least 1".into()));
        }
        if self.find_max && self.find_max_factor <= 1.0 {
            return Err(Error::Usage("--find-max-factor must be above 1".into()));
        }
        if let Some(id) = &self.run_id
            && (id.is_empty() || id.len() > 40 || !id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
        {
            return Err(Error::Usage("--run-id takes 1 to 40 lowercase letters and digits".into()));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Args)]
pub struct GenConfigArgs {
    #[arg(long, default_value_t = 10)]
    pub challenges: usize,
    /// Goals per challenge.
    #[arg(long, default_value_t = 50)]
    pub goals: usize,
    /// Statistic codes shared by the goals (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub stat_codes: Vec<String>,
    #[arg(long, default_value = "login_count")]
    pub login_code: String,
    /// Default-assigned goals at the start of every challenge (anchor goals come on top).
    #[arg(long, default_value_t = 5)]
    pub defaults: usize,
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct SmokeArgs {
    /// Server binary. Default: <target>/release/host, built if missing.
    #[arg(long)]
    pub host_bin: Option<PathBuf>,
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub pg_admin_url: String,
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    #[arg(long, default_value = "loadtest-secret-change-me")]
    pub jwt_secret: String,
    /// Where the report goes. Default: loadtest/results of this workspace.
    #[arg(long)]
    pub results_dir: Option<PathBuf>,
}

fn gen_config(args: &GenConfigArgs) -> Result<()> {
    let defaults = GenParams::default();
    let params = GenParams {
        challenges: args.challenges,
        goals_per_challenge: args.goals,
        stat_codes: if args.stat_codes.is_empty() { defaults.stat_codes } else { args.stat_codes.clone() },
        login_code: args.login_code.clone(),
        defaults_per_challenge: args.defaults,
    };
    let config = catalog::generate(&params)?;
    std::fs::write(&args.out, config.to_json()?).map_err(|err| Error::io(&args.out, err))?;
    println!(
        "{}: {} challenges x {} goals, stat codes {}, login code {}",
        args.out.display(),
        params.challenges,
        params.goals_per_challenge,
        params.stat_codes.join(", "),
        params.login_code
    );
    Ok(())
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(cli.threads.max(1)).enable_all().build() {
            Ok(runtime) => runtime,
            Err(err) => {
                eprintln!("loadgen: cannot start the async runtime: {err}");
                return ExitCode::FAILURE;
            }
        };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Api(args) => crate::runner::run_scenario(ScenarioName::Api, args).await,
            Command::Events(args) => crate::runner::run_scenario(ScenarioName::Events, args).await,
            Command::Combined(args) => crate::runner::run_scenario(ScenarioName::Combined, args).await,
            Command::InitBurst(args) => crate::runner::run_scenario(ScenarioName::InitBurst, args).await,
            Command::Sessions(args) => crate::runner::run_scenario(ScenarioName::Sessions, args).await,
            Command::GenConfig(args) => gen_config(&args).map(|()| true),
            Command::Smoke(args) => crate::runner::smoke(args).await,
        }
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("loadgen: {err}");
            ExitCode::from(2)
        }
    }
}
