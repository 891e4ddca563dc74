//! Runs a scenario end to end: target (spawned or external), readiness, setup, warm-up, phases or find-max,
//! event verification, server shutdown, verdict and report. `smoke` is the same machinery with a fixed plan.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use rand::Rng;
use tokio::time::Instant;

use crate::auth::TokenMinter;
use crate::catalog::{self, ConfigFile, GenParams, Source};
use crate::cli::{RunArgs, SmokeArgs};
use crate::error::{Error, Result};
use crate::host::{self, HostOptions, HostResources, SpawnedHost};
use crate::population::{EventMix, Population};
use crate::recorder::Recorder;
use crate::report::{
    self, ConfigSummary, FindMax, FindMaxStep, Machine, PhaseReport, Report, Target, TargetRate, Verdict,
};
use crate::scenario::{self, ClaimTolerance, Ctx, PhasePlan, Players, ScenarioName, Setup, Shape, StreamPlan, Work};
use crate::schedule::{InFlight, run_stream};
use crate::transport::{ApiTransport, ClientOptions, Clients, EventTransport};
use crate::verify::{self, Verification};

/// Share of its threads' CPU above which the generator counts as saturated.
const GENERATOR_SATURATION: f64 = 0.9;
/// Pause between find-max steps so one step's backlog does not count against the next.
const SETTLE_BETWEEN_STEPS: Duration = Duration::from_secs(2);

fn secs(value: f64) -> Duration {
    Duration::from_secs_f64(value.max(0.0))
}

fn new_run_id() -> String {
    let suffix: u16 = rand::rng().random();
    format!("r{}{suffix:04x}", chrono::Utc::now().format("%m%d%H%M%S"))
}

/// A target under load plus everything needed to drive and judge it.
pub struct Harness {
    ctx: Arc<Ctx>,
    host: Option<SpawnedHost>,
    database_url: Option<String>,
    target: Target,
    config: ConfigSummary,
    run_id: String,
    started_at: String,
    max_in_flight: u32,
    timeout: Duration,
    results_dir: PathBuf,
    workdir: PathBuf,
}

impl Harness {
    pub async fn open(args: &RunArgs) -> Result<Self> {
        args.validate()?;
        let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let run_id = args.run_id.clone().unwrap_or_else(new_run_id);
        let results_dir = args.results_dir.clone().unwrap_or_else(|| host::workspace_root().join("loadtest/results"));
        let workdir = results_dir.join("tmp").join(&run_id);
        std::fs::create_dir_all(&workdir).map_err(|err| Error::io(&workdir, err))?;

        let (catalog, source, challenges_path) = match &args.challenges {
            Some(path) => {
                let absolute = std::path::absolute(path).map_err(|err| Error::io(path, err))?;
                (ConfigFile::load(path)?, path.display().to_string(), absolute)
            }
            None => {
                let generated = catalog::generate(&GenParams::default())?;
                let path = workdir.join("challenges.json");
                std::fs::write(&path, generated.to_json()?).map_err(|err| Error::io(&path, err))?;
                (generated, "generated (loadgen gen-config defaults)".to_owned(), path)
            }
        };
        let login_codes = catalog.default_codes(Source::Login);
        let stat_codes = stat_codes_to_send(&catalog, &args.stat_codes)?;
        let config = ConfigSummary {
            source,
            challenges: catalog.challenges.len(),
            goals: catalog.goals().count(),
            default_goals: catalog.goals().filter(|g| g.goal.default_assigned).count(),
            stat_codes_sent: stat_codes.clone(),
            login_codes_tracked: login_codes.clone(),
        };

        let minter = TokenMinter::new(&args.jwt_secret, &args.namespace);
        let mix = EventMix { login_share: args.login_share, inc_max: args.stat_inc_max };
        let population = Population::new(&run_id, &args.namespace, args.users, login_codes, stat_codes, mix, &minter)?;

        let redis = (!args.no_redis).then(|| args.redis_url.clone());
        let mut host = None;
        let (http_url, grpc_url, database_url) = if args.spawn_host {
            let options = HostOptions {
                binary: args.host_bin.clone(),
                pg_admin_url: args.pg_admin_url.clone(),
                redis_url: redis.clone(),
                jwt_secret: args.jwt_secret.clone(),
                namespace: args.namespace.clone(),
                log_level: args.host_log_level.clone(),
                extra_env: args.host_env.clone(),
                keep_database: args.keep_db,
            };
            eprintln!("loadgen: run {run_id}: starting the server with database lt_{run_id}");
            let spawned = SpawnedHost::start(&options, &challenges_path, &workdir, &run_id).await?;
            let urls = (spawned.http_url.clone(), spawned.grpc_url.clone(), Some(spawned.database_url.clone()));
            host = Some(spawned);
            urls
        } else {
            (args.http_url.clone(), args.grpc_url.clone(), args.database_url.clone())
        };
        let target = Target {
            spawned_host: args.spawn_host,
            host_binary: host.as_ref().map(|h| h.binary.display().to_string()),
            http_url: http_url.clone(),
            grpc_url: grpc_url.clone(),
            database: host.as_ref().map(|h| h.database_name().to_owned()),
            redis: if args.spawn_host { redis } else { None },
        };

        let clients = Clients::new(&ClientOptions {
            http_url,
            grpc_url,
            http_pool: args.http_pool,
            grpc_connections: args.grpc_connections,
        });
        let ready = match clients {
            Ok(clients) => wait_ready(&clients, host.as_mut(), secs(args.ready_timeout)).await.map(|()| clients),
            Err(err) => Err(err),
        };
        let clients = match ready {
            Ok(clients) => clients,
            Err(err) => {
                if let Some(host) = host {
                    host.stop().await;
                }
                return Err(err);
            }
        };
        eprintln!("loadgen: run {run_id}: server ready at {}", clients.http_base());

        let timeout = Duration::from_millis(args.timeout_ms);
        let ctx = Arc::new(Ctx::new(clients, population, &catalog, minter, timeout, args.session_events));
        Ok(Self {
            ctx,
            host,
            database_url,
            target,
            config,
            run_id,
            started_at,
            max_in_flight: args.max_in_flight,
            timeout,
            results_dir,
            workdir,
        })
    }

    fn cpu(&self) -> (Option<f64>, Option<f64>) {
        (self.host.as_ref().and_then(SpawnedHost::cpu_seconds), host::process_cpu_seconds("self"))
    }

    fn phase_report(
        &self,
        name: &str,
        open_loop: bool,
        plan: Option<&PhasePlan>,
        recorder: &Recorder,
        timing: PhaseTiming,
    ) -> PhaseReport {
        let (host_after, self_after) = self.cpu();
        let delta = |before: Option<f64>, after: Option<f64>| Some(after? - before?);
        let PhaseTiming { duration, wall, cpu_before, unfinished_calls } = timing;
        let snapshot = recorder.snapshot(duration);
        let generator_cpu_seconds = delta(cpu_before.1, self_after);
        let threads = tokio::runtime::Handle::current().metrics().num_workers() as f64;
        // CPU time is counted in 10 ms ticks: only phases of a second or more can tell.
        let generator_saturated = wall >= Duration::from_secs(1)
            && generator_cpu_seconds.is_some_and(|cpu| cpu >= GENERATOR_SATURATION * threads * wall.as_secs_f64());
        PhaseReport {
            name: name.to_owned(),
            duration_s: duration.as_secs_f64(),
            wall_s: wall.as_secs_f64(),
            open_loop,
            target_rates: plan.map(target_rates).unwrap_or_default(),
            endpoints: snapshot.endpoints,
            streams: snapshot.streams,
            unfinished_calls,
            host_cpu_seconds: delta(cpu_before.0, host_after),
            generator_cpu_seconds,
            generator_saturated,
        }
    }

    /// Closed-loop setup; `None` when the scenario has none.
    pub async fn setup(&self, setup: Setup, args: &RunArgs) -> Option<PhaseReport> {
        if !setup.initialize && !setup.login_events {
            return None;
        }
        eprintln!(
            "loadgen: setup: {} players (initialize{})",
            self.ctx.population.len(),
            if setup.login_events { ", one login each" } else { "" }
        );
        let recorder = Arc::new(Recorder::new());
        let cpu_before = self.cpu();
        let started = Instant::now();
        scenario::run_setup(
            &self.ctx,
            &recorder,
            setup,
            args.api_transport,
            args.event_transport,
            args.batch_size,
            args.setup_concurrency,
        )
        .await;
        let wall = started.elapsed();
        self.analyze_database().await;
        let timing = PhaseTiming { duration: wall, wall, cpu_before, unfinished_calls: 0 };
        Some(self.phase_report("setup", false, None, &recorder, timing))
    }

    /// The setup has just written most of the tables. Until autovacuum analyzes them (up to a minute later)
    /// PostgreSQL has no statistics and plans the flushes' per-player reads as sequential scans; a database in
    /// service has them, so the measured phases should too.
    async fn analyze_database(&self) {
        use sqlx::Connection;
        let Some(url) = &self.database_url else { return };
        let analyzed = async {
            let mut connection = sqlx::PgConnection::connect(url).await?;
            sqlx::query("ANALYZE").execute(&mut connection).await
        };
        if let Err(err) = analyzed.await {
            eprintln!("loadgen: ANALYZE after setup failed (measuring anyway): {err}");
        }
    }

    /// Runs one open-loop phase and waits for its calls to finish.
    pub async fn phase(&self, plan: &PhasePlan) -> PhaseReport {
        let rates: Vec<String> =
            target_rates(plan).iter().map(|r| format!("{} {:.1} {}", r.stream, r.rate, r.unit)).collect();
        eprintln!("loadgen: phase {}: {:.0} s, {}", plan.name, plan.duration.as_secs_f64(), rates.join(", "));
        let recorder = Arc::new(Recorder::new());
        let streams: Vec<_> = plan.streams.iter().map(|s| scenario::stream(&self.ctx, s, &recorder)).collect();
        let in_flight = InFlight::new(self.max_in_flight);
        let cpu_before = self.cpu();
        let started = Instant::now();
        // A short lead so every stream starts from the same instant.
        let start = started + Duration::from_millis(5);
        let runs = join_all(streams.iter().map(|stream| run_stream(stream, start, plan.duration, &in_flight))).await;
        for (stream, run) in streams.iter().zip(&runs) {
            recorder.record_stream(&stream.name, run.scheduled, run.dropped);
        }
        let drained = in_flight.drain(self.timeout * 2 + Duration::from_secs(5)).await;
        let unfinished = if drained { 0 } else { in_flight.outstanding() };
        let wall = started.elapsed();
        let report = self.phase_report(
            &plan.name,
            true,
            Some(plan),
            &recorder,
            PhaseTiming { duration: plan.duration, wall, cpu_before, unfinished_calls: unfinished },
        );
        eprintln!(
            "loadgen: phase {}: {} calls, {} errors, {} dropped, worst p99 {:.2} ms",
            plan.name,
            report.endpoints.iter().map(|e| e.sent).sum::<u64>(),
            report.errors(),
            report.dropped(),
            report.worst_p99_ms()
        );
        report
    }

    /// Raises the rate of `plan` by `args.find_max_factor` per step until a step fails.
    async fn find_max(&self, plan: &PhasePlan, args: &RunArgs) -> (Vec<PhaseReport>, FindMax) {
        let mut phases = Vec::new();
        let mut steps = Vec::new();
        let mut best: Option<(f64, Vec<TargetRate>)> = None;
        let mut factor = 1.0;
        let stopped_because = loop {
            let multiplier = args.rate_multiplier * factor;
            let mut step = plan.scaled(format!("find-max x{multiplier:.2}"), factor);
            step.duration = secs(args.step_duration);
            let report = self.phase(&step).await;
            let why = step_failure(&report, args.p99_bound_ms);
            steps.push(FindMaxStep {
                multiplier,
                phase: report.name.clone(),
                passed: why.is_none(),
                worst_p99_ms: report.worst_p99_ms(),
                errors: report.errors(),
                dropped: report.dropped(),
                why: why.clone(),
            });
            phases.push(report);
            if let Some(why) = why {
                break format!("x{multiplier:.2} failed: {why}");
            }
            best = Some((multiplier, target_rates(&step)));
            if multiplier * args.find_max_factor > args.find_max_limit {
                break format!("the next step would exceed --find-max-limit {}", args.find_max_limit);
            }
            factor *= args.find_max_factor;
            tokio::time::sleep(SETTLE_BETWEEN_STEPS).await;
        };
        let (best_multiplier, best_rates) = match best {
            Some((multiplier, rates)) => (Some(multiplier), rates),
            None => (None, Vec::new()),
        };
        (phases, FindMax { p99_bound_ms: args.p99_bound_ms, steps, best_multiplier, best_rates, stopped_because })
    }

    /// Verifies events, stops a spawned server, judges the run and writes the report. Returns whether it passed.
    pub async fn finish(self, scenario: &str, settings: serde_json::Value, run: RunOutcome) -> Result<bool> {
        let population = &self.ctx.population;
        let (verification, verification_note) = match &self.database_url {
            Some(url) => match verify::verify(url, population, population.sent()).await {
                Ok(verification) => (Some(verification), None),
                Err(err) => (None, Some(format!("reading the database failed: {err}"))),
            },
            None => (None, Some("no --database-url given (and no --spawn-host), so the database was not read.".into())),
        };
        let host: Option<HostResources> = match self.host {
            Some(host) => Some(host.stop().await),
            None => None,
        };
        let verdict = judge(
            &run.judged,
            verification.as_ref(),
            verification_note.as_deref(),
            host.as_ref(),
            run.require_verification,
        );
        let mut phases = run.judged;
        phases.extend(run.find_max_steps);
        let report = Report {
            scenario: scenario.to_owned(),
            run_id: self.run_id,
            started_at: self.started_at,
            finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            command_line: report::command_line(),
            git_commit: report::git_commit(&host::workspace_root()),
            machine: Machine::current(),
            target: self.target,
            settings,
            config: self.config,
            phases,
            find_max: run.find_max,
            verification,
            verification_note,
            host,
            generator_cpu_seconds: host::process_cpu_seconds("self"),
            verdict,
        };
        let path = report::write(&report, &self.results_dir)?;
        if report.verdict.passed {
            // The server's log, data directory and generated config are only kept for diagnosing failures.
            let _ = std::fs::remove_dir_all(&self.workdir);
        }
        println!("{}", summary(&report));
        println!("report: {}", path.display());
        Ok(report.verdict.passed)
    }
}

/// How long a phase ran and what it cost.
struct PhaseTiming {
    /// Scheduled length (closed-loop phases: wall time).
    duration: Duration,
    wall: Duration,
    /// (server, generator) CPU seconds when the phase started.
    cpu_before: (Option<f64>, Option<f64>),
    unfinished_calls: u64,
}

/// What a run produced, for [`Harness::finish`].
pub struct RunOutcome {
    /// Phases whose failures fail the run (setup and measured phases).
    pub judged: Vec<PhaseReport>,
    /// Find-max steps: reported, failing is how the search ends.
    pub find_max_steps: Vec<PhaseReport>,
    pub find_max: Option<FindMax>,
    /// Fail the run when the database could not be checked.
    pub require_verification: bool,
}

async fn wait_ready(clients: &Clients, mut host: Option<&mut SpawnedHost>, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(host) = host.as_deref_mut()
            && let Some(status) = host.exited()
        {
            return Err(Error::Host(format!("the server exited during start-up ({status}):\n{}", host.log_tail(40))));
        }
        let last = match clients.probe("/readyz").await {
            Ok(200) => return Ok(()),
            Ok(status) => format!("HTTP {status}"),
            Err(err) => err.to_string(),
        };
        if Instant::now() >= deadline {
            let tail = host.map(|h| format!("\nserver output:\n{}", h.log_tail(40))).unwrap_or_default();
            return Err(Error::Host(format!("/readyz did not answer 200 within {limit:?} (last: {last}){tail}")));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The stat codes to send: the requested ones, each of which must be tracked by a default goal (so the
/// database can be checked), or all tracked ones.
fn stat_codes_to_send(catalog: &ConfigFile, requested: &[String]) -> Result<Vec<String>> {
    let tracked = catalog.default_codes(Source::Statistic);
    if requested.is_empty() {
        return Ok(tracked);
    }
    for code in requested {
        if !tracked.contains(code) {
            return Err(Error::Usage(format!(
                "stat code '{code}' has no default-assigned statistic goal in the challenges file, so its events \
                 could not be verified (tracked codes: {})",
                tracked.join(", ")
            )));
        }
    }
    Ok(requested.to_vec())
}

fn target_rates(plan: &PhasePlan) -> Vec<TargetRate> {
    plan.streams
        .iter()
        .map(|s| TargetRate { stream: s.name.clone(), rate: s.rate, unit: s.work.rate_unit().to_owned() })
        .collect()
}

/// Why a find-max step does not count as sustainable.
fn step_failure(report: &PhaseReport, p99_bound_ms: f64) -> Option<String> {
    let mut why = Vec::new();
    if report.errors() > 0 {
        why.push(format!("{} errors", report.errors()));
    }
    if report.rejected_events() > 0 {
        why.push(format!("{} events refused", report.rejected_events()));
    }
    if report.dropped() > 0 {
        why.push(format!("{} arrivals dropped (overloaded generator)", report.dropped()));
    }
    if report.unfinished_calls > 0 {
        why.push(format!("{} calls unanswered", report.unfinished_calls));
    }
    if report.generator_saturated {
        why.push("generator saturated (use more --threads)".to_owned());
    }
    if report.worst_p99_ms() > p99_bound_ms {
        why.push(format!("p99 {:.1} ms > {p99_bound_ms} ms", report.worst_p99_ms()));
    }
    (!why.is_empty()).then(|| why.join(", "))
}

fn judge(
    phases: &[PhaseReport],
    verification: Option<&Verification>,
    verification_note: Option<&str>,
    host: Option<&HostResources>,
    require_verification: bool,
) -> Verdict {
    let mut failures = Vec::new();
    for phase in phases {
        for endpoint in phase.endpoints.iter().filter(|e| e.error_count() > 0) {
            let kinds: Vec<String> = endpoint.errors.iter().map(|(k, v)| format!("{k} x{v}")).collect();
            failures.push(format!("{}: {} failed ({})", phase.name, endpoint.endpoint, kinds.join(", ")));
        }
        if phase.rejected_events() > 0 {
            failures.push(format!("{}: {} events refused", phase.name, phase.rejected_events()));
        }
        if phase.dropped() > 0 {
            failures.push(format!(
                "{}: {} arrivals dropped (overloaded generator): the target rate was not offered",
                phase.name,
                phase.dropped()
            ));
        }
        if phase.unfinished_calls > 0 {
            failures.push(format!("{}: {} calls never answered", phase.name, phase.unfinished_calls));
        }
    }
    match verification {
        Some(v) => {
            if v.events_lost > 0 {
                failures.push(format!("{} acknowledged events are missing from the database", v.events_lost));
            }
            if require_verification && v.events_untracked > 0 {
                failures.push(format!(
                    "{} acknowledged events were for players whose initialize had not succeeded, so they could not \
                     be checked",
                    v.events_untracked
                ));
            }
            if v.extra_increments > v.events_unacknowledged {
                failures.push(format!(
                    "{} increments in the database beyond what was acknowledged, more than the {} unacknowledged \
                     events could explain",
                    v.extra_increments, v.events_unacknowledged
                ));
            }
        }
        None if require_verification => {
            failures.push(format!("events not verified: {}", verification_note.unwrap_or("no database")));
        }
        None => {}
    }
    if let Some(host) = host
        && !host.exited_cleanly
    {
        failures.push(format!("the server did not exit cleanly after SIGTERM: {}", host.exit));
    }
    Verdict { passed: failures.is_empty(), failures }
}

fn summary(report: &Report) -> String {
    let mut lines = vec![format!(
        "{} {}: {}",
        report.scenario,
        report.run_id,
        if report.verdict.passed { "PASSED" } else { "FAILED" }
    )];
    for phase in &report.phases {
        let calls: u64 = phase.endpoints.iter().map(|e| e.sent).sum();
        let events: u64 = phase.endpoints.iter().map(|e| e.events_acked).sum();
        lines.push(format!(
            "  {}: {calls} calls ({:.0}/s), {events} events acked, {} errors, {} dropped, worst p99 {:.2} ms",
            phase.name,
            calls as f64 / phase.duration_s.max(1e-9),
            phase.errors(),
            phase.dropped(),
            phase.worst_p99_ms()
        ));
    }
    if let Some(v) = &report.verification {
        lines.push(format!(
            "  events: {} acknowledged, {} lost, {} extra increments",
            v.events_acknowledged, v.events_lost, v.extra_increments
        ));
    }
    if let Some(find_max) = &report.find_max {
        lines.push(format!(
            "  find-max: best x{} ({})",
            find_max.best_multiplier.map_or("none".to_owned(), |m| format!("{m:.2}")),
            find_max.stopped_because
        ));
    }
    lines.extend(report.verdict.failures.iter().map(|f| format!("  FAILURE: {f}")));
    lines.join("\n")
}

fn shape(args: &RunArgs) -> Shape {
    Shape {
        users: args.users,
        api_rate: args.api_rate,
        event_rate: args.event_rate,
        init_rate: args.init_rate,
        session_rate: args.session_rate,
        multiplier: args.rate_multiplier,
        duration: secs(args.duration),
        burst_duration: secs(args.burst_duration),
        api_transport: args.api_transport,
        api_ops: args.api_ops.clone(),
        event_transport: args.event_transport,
        batch_size: args.batch_size,
    }
}

pub async fn run_scenario(name: ScenarioName, args: RunArgs) -> Result<bool> {
    let harness = Harness::open(&args).await?;
    let plan = scenario::plan(name, &shape(&args));
    let settings = serde_json::json!({ "args": &args, "plan": &plan });
    let mut judged: Vec<PhaseReport> = harness.setup(plan.setup, &args).await.into_iter().collect();
    if args.warmup > 0.0
        && let Some(first) = plan.phases.first()
    {
        // Excluded from the report: it only warms connections, caches and the server's JIT-compiled plugins.
        harness.phase(&first.warmup(args.warmup_fraction, secs(args.warmup))).await;
    }
    let Some((last, before)) = plan.phases.split_last() else {
        return Err(Error::Usage("the scenario has no phases".into()));
    };
    for phase in before {
        judged.push(harness.phase(phase).await);
    }
    let (find_max_steps, find_max) = if args.find_max {
        let (steps, find_max) = harness.find_max(last, &args).await;
        (steps, Some(find_max))
    } else {
        judged.push(harness.phase(last).await);
        (Vec::new(), None)
    };
    let outcome = RunOutcome { judged, find_max_steps, find_max, require_verification: false };
    harness.finish(name.as_str(), settings, outcome).await
}

/// The smoke plan: every scenario's traffic over every transport, briefly and slowly.
fn smoke_phases() -> Vec<PhasePlan> {
    let phase = |name: &str, seconds: u64, rate: f64, work: Work| PhasePlan {
        name: name.to_owned(),
        duration: Duration::from_secs(seconds),
        streams: vec![StreamPlan { name: name.to_owned(), rate, work }],
    };
    let api = |transport| Work::ApiMix { transport, claims: ClaimTolerance::Repeats, ops: Vec::new() };
    let events = |transport, batch_size| Work::Events { transport, batch_size };
    vec![
        phase("api over HTTP", 4, 20.0, api(ApiTransport::Http)),
        phase("api over gRPC", 4, 20.0, api(ApiTransport::Grpc)),
        phase("events over OnMessage", 4, 40.0, events(EventTransport::Onmessage, 1)),
        phase("events over SubmitEvents", 4, 100.0, events(EventTransport::Batch, 10)),
        phase("events over POST /v1/events", 4, 100.0, events(EventTransport::Http, 10)),
        phase(
            "sessions over HTTP + OnMessage",
            5,
            3.0,
            Work::Session { api: ApiTransport::Http, events: EventTransport::Onmessage },
        ),
        phase(
            "sessions over gRPC + SubmitEvents",
            4,
            2.0,
            Work::Session { api: ApiTransport::Grpc, events: EventTransport::Batch },
        ),
        phase(
            "init-burst",
            3,
            10.0,
            Work::Initialize { transport: ApiTransport::Http, players: Players::Fresh("n".to_owned()) },
        ),
    ]
}

pub async fn smoke(args: SmokeArgs) -> Result<bool> {
    let run = RunArgs {
        spawn_host: true,
        host_bin: args.host_bin,
        pg_admin_url: args.pg_admin_url,
        redis_url: args.redis_url,
        jwt_secret: args.jwt_secret,
        results_dir: args.results_dir,
        users: 40,
        warmup: 0.0,
        batch_size: 10,
        ready_timeout: 60.0,
        ..RunArgs::defaults()
    };
    let harness = Harness::open(&run).await?;
    let phases = smoke_phases();
    let settings = serde_json::json!({ "args": &run, "phases": &phases });
    let mut judged: Vec<PhaseReport> =
        harness.setup(Setup { initialize: true, login_events: true }, &run).await.into_iter().collect();
    for phase in &phases {
        judged.push(harness.phase(phase).await);
    }
    let outcome = RunOutcome { judged, find_max_steps: Vec::new(), find_max: None, require_verification: true };
    harness.finish("smoke", settings, outcome).await
}
