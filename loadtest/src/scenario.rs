//! Scenarios as data: a scenario is a setup step plus phases, a phase is a set of streams, a stream is a rate and
//! a kind of [`Work`]. One small async function per kind of work turns an arrival into calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use challenge_proto::challenge::v1 as api;
use futures::{FutureExt, StreamExt};
use rand::rngs::SmallRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::time::Instant;

use crate::auth::TokenMinter;
use crate::catalog::ConfigFile;
use crate::population::{Event, Player, Population, player_id};
use crate::recorder::{Outcome, Recorder};
use crate::schedule::{Job, Stream};
use crate::transport::{ApiTransport, CallError, Clients, EventTransport, Op, Reply};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioName {
    /// Player API mix: list / get / initialize / set-active / claim.
    Api,
    /// Login (20%) and stat-update events.
    Events,
    /// A burst of new players initializing, then API and events together.
    Combined,
    /// New players per second through initialize.
    InitBurst,
    /// Realistic sessions: login, initialize, list, select, play, claim.
    Sessions,
}

impl ScenarioName {
    pub fn as_str(self) -> &'static str {
        match self {
            ScenarioName::Api => "api",
            ScenarioName::Events => "events",
            ScenarioName::Combined => "combined",
            ScenarioName::InitBurst => "init-burst",
            ScenarioName::Sessions => "sessions",
        }
    }
}

/// Which players a stream of initialize calls uses.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Players {
    /// Arrival `i` initializes population player `i` (who then counts as initialized).
    Population,
    /// Every arrival is a brand-new player whose id has this kind letter.
    Fresh(String),
}

/// Which non-success claim answers a stream expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClaimTolerance {
    /// Repeated claims of a completed goal: `ALREADY_CLAIMED`.
    Repeats,
    /// Also `GOAL_NOT_COMPLETED`, when claims may race the events completing the goal.
    Incomplete,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Work {
    ApiMix {
        transport: ApiTransport,
        claims: ClaimTolerance,
        /// The operations drawn (empty: the whole mix).
        ops: Vec<ApiOp>,
    },
    /// `rate` counts events; each arrival sends `batch_size` of them in one call.
    Events {
        transport: EventTransport,
        batch_size: usize,
    },
    Initialize {
        transport: ApiTransport,
        players: Players,
    },
    Session {
        api: ApiTransport,
        events: EventTransport,
    },
}

impl Work {
    /// Calls (or sessions) per second for a stream of `rate`.
    fn arrivals_per_s(&self, rate: f64) -> f64 {
        match self {
            Work::Events { batch_size, .. } => rate / (*batch_size).max(1) as f64,
            _ => rate,
        }
    }

    pub fn rate_unit(&self) -> &'static str {
        match self {
            Work::ApiMix { .. } => "requests/s",
            Work::Events { .. } => "events/s",
            Work::Initialize { .. } => "players/s",
            Work::Session { .. } => "sessions/s",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamPlan {
    pub name: String,
    /// In the work's unit ([`Work::rate_unit`]).
    pub rate: f64,
    pub work: Work,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhasePlan {
    pub name: String,
    #[serde(with = "secs")]
    pub duration: Duration,
    pub streams: Vec<StreamPlan>,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(duration: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(duration.as_secs_f64())
    }
}

impl PhasePlan {
    pub fn scaled(&self, name: String, factor: f64) -> Self {
        let streams =
            self.streams.iter().map(|stream| StreamPlan { rate: stream.rate * factor, ..stream.clone() }).collect();
        Self { name, duration: self.duration, streams }
    }

    /// The same traffic at a fraction of the rate; population initializations become fresh players so the
    /// measured phase still sees every population player for the first time.
    pub fn warmup(&self, fraction: f64, duration: Duration) -> Self {
        let mut plan = self.scaled("warm-up".to_owned(), fraction);
        plan.duration = duration;
        for stream in &mut plan.streams {
            if let Work::Initialize { players, .. } = &mut stream.work {
                *players = Players::Fresh("w".to_owned());
            }
        }
        plan
    }
}

/// Done once before the phases, closed-loop, reported on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Setup {
    /// Initialize every population player.
    pub initialize: bool,
    /// Then one login per player, completing the single-login default goals the API mix claims.
    pub login_events: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub setup: Setup,
    pub phases: Vec<PhasePlan>,
}

/// Rates and shapes the scenario plans are built from (before `--rate-multiplier`).
#[derive(Debug, Clone, Serialize)]
pub struct Shape {
    pub users: usize,
    pub api_rate: f64,
    pub event_rate: f64,
    pub init_rate: f64,
    pub session_rate: f64,
    pub multiplier: f64,
    #[serde(with = "secs")]
    pub duration: Duration,
    #[serde(with = "secs")]
    pub burst_duration: Duration,
    pub api_transport: ApiTransport,
    /// The API mix's operations (empty: all of them).
    pub api_ops: Vec<ApiOp>,
    pub event_transport: EventTransport,
    pub batch_size: usize,
}

impl Shape {
    fn events(&self) -> Work {
        let batch_size = if self.event_transport == EventTransport::Onmessage { 1 } else { self.batch_size.max(1) };
        Work::Events { transport: self.event_transport, batch_size }
    }
}

pub fn plan(scenario: ScenarioName, shape: &Shape) -> Plan {
    let m = shape.multiplier;
    let steady = |streams: Vec<StreamPlan>| PhasePlan { name: "steady".to_owned(), duration: shape.duration, streams };
    let api = |claims| StreamPlan {
        name: "api".to_owned(),
        rate: shape.api_rate * m,
        work: Work::ApiMix { transport: shape.api_transport, claims, ops: shape.api_ops.clone() },
    };
    let events = StreamPlan { name: "events".to_owned(), rate: shape.event_rate * m, work: shape.events() };
    match scenario {
        ScenarioName::Api => Plan {
            setup: Setup { initialize: true, login_events: true },
            phases: vec![steady(vec![api(ClaimTolerance::Repeats)])],
        },
        ScenarioName::Events => {
            Plan { setup: Setup { initialize: true, login_events: false }, phases: vec![steady(vec![events])] }
        }
        ScenarioName::Combined => {
            let burst_secs = shape.burst_duration.as_secs_f64().max(1.0);
            let burst = PhasePlan {
                name: "init-burst".to_owned(),
                duration: shape.burst_duration,
                streams: vec![StreamPlan {
                    name: "new players".to_owned(),
                    rate: shape.users as f64 / burst_secs,
                    work: Work::Initialize { transport: shape.api_transport, players: Players::Population },
                }],
            };
            Plan { setup: Setup::default(), phases: vec![burst, steady(vec![api(ClaimTolerance::Incomplete), events])] }
        }
        ScenarioName::InitBurst => Plan {
            setup: Setup::default(),
            phases: vec![steady(vec![StreamPlan {
                name: "new players".to_owned(),
                rate: shape.init_rate * m,
                work: Work::Initialize { transport: shape.api_transport, players: Players::Fresh("n".to_owned()) },
            }])],
        },
        ScenarioName::Sessions => Plan {
            setup: Setup { initialize: true, login_events: false },
            phases: vec![steady(vec![StreamPlan {
                name: "sessions".to_owned(),
                rate: shape.session_rate * m,
                work: Work::Session { api: shape.api_transport, events: shape.event_transport },
            }])],
        },
    }
}

/// Everything the work functions share.
pub struct Ctx {
    pub clients: Clients,
    pub population: Population,
    pub targets: MixTargets,
    pub minter: TokenMinter,
    pub timeout: Duration,
    /// Stat events a session sends between its two listings.
    pub session_events: usize,
    fresh_players: AtomicU64,
}

impl Ctx {
    pub fn new(
        clients: Clients,
        population: Population,
        catalog: &ConfigFile,
        minter: TokenMinter,
        timeout: Duration,
        session_events: usize,
    ) -> Self {
        let targets = MixTargets::new(catalog);
        Self { clients, population, targets, minter, timeout, session_events, fresh_players: AtomicU64::new(0) }
    }
}

/// The schedulable stream for `plan`, recording into `recorder`.
pub fn stream(ctx: &Arc<Ctx>, plan: &StreamPlan, recorder: &Arc<Recorder>) -> Stream {
    let (ctx, recorder, work) = (ctx.clone(), recorder.clone(), Arc::new(plan.work.clone()));
    let job: Job = Arc::new(move |seq, scheduled| {
        let (ctx, recorder, work) = (ctx.clone(), recorder.clone(), work.clone());
        async move { Driver { ctx: &ctx, recorder: &recorder }.run(&work, seq, scheduled).await }.boxed()
    });
    Stream { name: plan.name.clone(), rate: plan.work.arrivals_per_s(plan.rate), job }
}

/// Makes calls and records them: the one place where calls are timed, classified and counted.
#[derive(Clone, Copy)]
struct Driver<'a> {
    ctx: &'a Ctx,
    recorder: &'a Recorder,
}

/// The API mix's weights, like the reference's API scenario: mostly reads.
const API_MIX: [(u32, ApiOp); 6] = [
    (40, ApiOp::List),
    (10, ApiOp::ListActive),
    (10, ApiOp::GetOne),
    (15, ApiOp::Initialize),
    (15, ApiOp::SetActive),
    (10, ApiOp::Claim),
];

/// One operation of the API mix; `--api-ops` restricts the mix to some of them (keeping their relative weights)
/// so one endpoint's throughput can be measured alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApiOp {
    /// List every challenge with the player's progress.
    List,
    /// List with `active_only`.
    ListActive,
    /// Get one challenge.
    GetOne,
    /// Initialize (an already-initialized player: returns their default goals).
    Initialize,
    /// Activate a selectable goal.
    SetActive,
    /// Claim a default goal (repeats answer ALREADY_CLAIMED).
    Claim,
}

/// What the API mix picks from, taken from the challenges file once.
pub struct MixTargets {
    challenges: Vec<String>,
    /// (challenge, goal) of goals players activate by hand.
    selectable: Vec<(String, String)>,
    /// (challenge, goal) of default goals one login completes.
    claimable: Vec<(String, String)>,
}

impl MixTargets {
    pub fn new(catalog: &ConfigFile) -> Self {
        let pair = |g: crate::catalog::GoalRef<'_>| (g.challenge_id.to_owned(), g.goal.goal_id.clone());
        Self {
            challenges: catalog.challenges.iter().map(|c| c.challenge_id.clone()).collect(),
            selectable: catalog.selectable().into_iter().map(pair).collect(),
            claimable: catalog.claimable_defaults().into_iter().map(pair).collect(),
        }
    }
}

/// Draws an operation from the mix restricted to `ops` (all of it when `ops` is empty).
fn api_mix_op(targets: &MixTargets, ops: &[ApiOp], rng: &mut impl Rng) -> Op {
    let mix = || API_MIX.into_iter().filter(|(_, op)| ops.is_empty() || ops.contains(op));
    let total: u32 = mix().map(|(weight, _)| weight).sum();
    let mut pick = rng.random_range(0..total.max(1));
    let mut chosen = ApiOp::List;
    for (weight, op) in mix() {
        if pick < weight {
            chosen = op;
            break;
        }
        pick -= weight;
    }
    match chosen {
        ApiOp::List => Op::ListChallenges { active_only: false },
        ApiOp::ListActive => Op::ListChallenges { active_only: true },
        ApiOp::GetOne => match targets.challenges.choose(rng) {
            Some(challenge_id) => Op::GetChallenge { challenge_id: challenge_id.clone() },
            None => Op::ListChallenges { active_only: false },
        },
        ApiOp::Initialize => Op::Initialize,
        ApiOp::SetActive => match targets.selectable.choose(rng) {
            Some((challenge_id, goal_id)) => {
                Op::SetActive { challenge_id: challenge_id.clone(), goal_id: goal_id.clone(), is_active: true }
            }
            None => Op::ListChallenges { active_only: false },
        },
        ApiOp::Claim => match targets.claimable.choose(rng) {
            Some((challenge_id, goal_id)) => Op::Claim { challenge_id: challenge_id.clone(), goal_id: goal_id.clone() },
            None => Op::ListChallenges { active_only: true },
        },
    }
}

/// Which failures of a call are expected answers rather than errors.
#[derive(Debug, Clone, Copy)]
enum Tolerance {
    None,
    Claims(ClaimTolerance),
}

impl Tolerance {
    fn accepts(self, op: &Op, error: &CallError) -> bool {
        let (Tolerance::Claims(claims), Op::Claim { .. }) = (self, op) else { return false };
        match error.error_code.as_deref() {
            Some("ALREADY_CLAIMED") => true,
            Some("GOAL_NOT_COMPLETED") => claims == ClaimTolerance::Incomplete,
            _ => false,
        }
    }
}

fn failed(label: String) -> Outcome {
    Outcome { error: Some(label), ..Outcome::default() }
}

impl Driver<'_> {
    async fn run(self, work: &Work, seq: u64, scheduled: Instant) {
        let ctx = self.ctx;
        let mut rng = SmallRng::from_rng(&mut rand::rng());
        match work {
            Work::ApiMix { transport, claims, ops } => {
                let player = &ctx.population.players[ctx.population.random_player(&mut rng)];
                let op = api_mix_op(&ctx.targets, ops, &mut rng);
                self.call(*transport, op, player, scheduled, false, Tolerance::Claims(*claims)).await;
            }
            Work::Events { transport, batch_size } => {
                let events = (0..*batch_size).map(|_| ctx.population.random_event(&mut rng)).collect();
                self.send_events(*transport, events, scheduled).await;
            }
            Work::Initialize { transport, players: Players::Population } => {
                if let Some(player) = ctx.population.players.get(seq as usize) {
                    self.initialize(*transport, player, scheduled).await;
                }
            }
            Work::Initialize { transport, players: Players::Fresh(kind) } => {
                let index = ctx.fresh_players.fetch_add(1, Ordering::Relaxed);
                match Player::new(player_id(&ctx.population.run_id, kind, index), &ctx.minter) {
                    Ok(player) => {
                        self.initialize(*transport, &player, scheduled).await;
                    }
                    Err(err) => self.recorder.record("mint token", scheduled.elapsed(), failed(err.to_string())),
                }
            }
            Work::Session { api, events } => self.session(*api, *events, scheduled, &mut rng).await,
        }
    }

    /// One player call, timed from `since`, recorded under its endpoint. Returns the reply on success (an
    /// expected non-success answer counts as success without a body), `None` on failure.
    async fn call(
        self,
        transport: ApiTransport,
        op: Op,
        player: &Player,
        since: Instant,
        decode: bool,
        tolerance: Tolerance,
    ) -> Option<Reply> {
        let ctx = self.ctx;
        let result = tokio::time::timeout(ctx.timeout, ctx.clients.call(transport, &op, player, decode))
            .await
            .unwrap_or_else(|_| Err(CallError::plain("timeout")));
        let latency = since.elapsed();
        let (outcome, reply) = match result {
            Ok(reply) => (Outcome::default(), Some(reply)),
            Err(err) if tolerance.accepts(&op, &err) => {
                (Outcome { expected: Some(err.label), ..Outcome::default() }, Some(Reply::Skipped))
            }
            Err(err) => (failed(err.label), None),
        };
        self.recorder.record(op.endpoint(transport), latency, outcome);
        reply
    }

    async fn initialize(self, transport: ApiTransport, player: &Player, since: Instant) -> bool {
        let done = self.call(transport, Op::Initialize, player, since, false, Tolerance::None).await.is_some();
        if done {
            player.mark_initialized();
        }
        done
    }

    /// Submits `events` in one call (the caller sized it for the transport); acknowledged ones go to the ledger.
    async fn send_events(self, transport: EventTransport, events: Vec<Event>, since: Instant) -> bool {
        let (clients, population) = (&self.ctx.clients, &self.ctx.population);
        let endpoint = Clients::events_endpoint(transport, &events);
        population.count_sent(events.len());
        let result = tokio::time::timeout(self.ctx.timeout, clients.send_events(transport, &events, population))
            .await
            .unwrap_or_else(|_| Err(CallError::plain("timeout")));
        let latency = since.elapsed();
        let sent = events.len() as u64;
        let outcome = match result {
            Ok(acks) => {
                let mut acked = 0;
                for (event, ok) in events.iter().zip(&acks.acked) {
                    if *ok {
                        population.acknowledge(event);
                        acked += 1;
                    }
                }
                let mut rejected = acks.rejected;
                // Our event ids are unique: a duplicate report means the server lost track of something.
                let duplicate = "DUPLICATE (unique id reported as re-delivery)";
                rejected.extend((0..acks.duplicates).map(|_| duplicate.to_owned()));
                Outcome { events_sent: sent, events_acked: acked, rejected, ..Outcome::default() }
            }
            Err(err) => Outcome { events_sent: sent, ..failed(err.label) },
        };
        let ok = outcome.error.is_none() && outcome.rejected.is_empty();
        self.recorder.record(endpoint, latency, outcome);
        ok
    }

    /// A returning player's session: login event, initialize, list, pick goals by hand and at random, play (stat
    /// events), list again and claim (up to five) completed goals. Each call is recorded on its own, the first one from
    /// the scheduled time; the whole session is recorded too.
    async fn session(self, api: ApiTransport, events: EventTransport, scheduled: Instant, rng: &mut SmallRng) {
        let completed = self.session_steps(api, events, scheduled, rng).await;
        let outcome = if completed { Outcome::default() } else { failed("a step failed".to_owned()) };
        self.recorder.record(SESSION_ENDPOINT, scheduled.elapsed(), outcome);
    }

    async fn session_steps(
        self,
        api: ApiTransport,
        events: EventTransport,
        scheduled: Instant,
        rng: &mut SmallRng,
    ) -> bool {
        let population = &self.ctx.population;
        let index = population.random_player(rng);
        let player = &population.players[index];
        let strict = Tolerance::None;

        if !self.send_events(events, vec![population.login(index)], scheduled).await {
            return false;
        }
        if !self.initialize(api, player, Instant::now()).await {
            return false;
        }
        let list = Op::ListChallenges { active_only: false };
        let Some(Reply::Challenges(listing)) = self.call(api, list, player, Instant::now(), true, strict).await else {
            return false;
        };

        let mut picked: Vec<String> = Vec::new();
        if let Some((challenge_id, goal_ids)) = pick_by_hand(&listing, rng) {
            picked.extend(goal_ids.iter().cloned());
            let op = Op::BatchSelect { challenge_id, goal_ids, replace_existing: false };
            if self.call(api, op, player, Instant::now(), false, strict).await.is_none() {
                return false;
            }
        }
        if let Some(challenge_id) = pick_for_random(&listing, &picked, rng) {
            let op =
                Op::RandomSelect { challenge_id, count: RANDOM_PICKS, replace_existing: false, exclude_active: true };
            if self.call(api, op, player, Instant::now(), false, strict).await.is_none() {
                return false;
            }
        }

        if !population.stat_codes.is_empty() {
            let played: Vec<Event> = (0..self.ctx.session_events)
                .map(|_| {
                    let code = rng.random_range(0..population.stat_codes.len());
                    population.stat(index, code, rng)
                })
                .collect();
            for chunk in chunked(events, played) {
                if !chunk.is_empty() && !self.send_events(events, chunk, Instant::now()).await {
                    return false;
                }
            }
        }

        let list = Op::ListChallenges { active_only: true };
        let Some(Reply::Challenges(listing)) = self.call(api, list, player, Instant::now(), true, strict).await else {
            return false;
        };
        // Another session of the same player may claim the same goal first: ALREADY_CLAIMED is an answer, not a
        // fault.
        let claims = Tolerance::Claims(ClaimTolerance::Repeats);
        let mut all_ok = true;
        for (challenge_id, goal_id) in claimable(&listing).into_iter().take(CLAIMS_PER_SESSION) {
            let op = Op::Claim { challenge_id, goal_id };
            all_ok &= self.call(api, op, player, Instant::now(), false, claims).await.is_some();
        }
        all_ok
    }
}

/// Events in the chunks a client of `transport` would send: one per call on the event bus, else one batch.
fn chunked(transport: EventTransport, events: Vec<Event>) -> Vec<Vec<Event>> {
    match transport {
        EventTransport::Onmessage => events.into_iter().map(|event| vec![event]).collect(),
        EventTransport::Batch | EventTransport::Http => vec![events],
    }
}

/// Closed-loop setup: initialize every population player, then (optionally) one login each.
pub async fn run_setup(
    ctx: &Arc<Ctx>,
    recorder: &Arc<Recorder>,
    setup: Setup,
    api: ApiTransport,
    events: EventTransport,
    batch_size: usize,
    concurrency: usize,
) {
    let concurrency = concurrency.max(1);
    let driver = Driver { ctx, recorder };
    if setup.initialize {
        futures::stream::iter(&ctx.population.players)
            .for_each_concurrent(concurrency, |player| async move {
                driver.initialize(api, player, Instant::now()).await;
            })
            .await;
    }
    if setup.login_events {
        let logins: Vec<Event> = (0..ctx.population.len()).map(|p| ctx.population.login(p)).collect();
        let size = if events == EventTransport::Onmessage { 1 } else { batch_size.max(1) };
        let chunks: Vec<Vec<Event>> = logins.chunks(size).map(<[Event]>::to_vec).collect();
        futures::stream::iter(chunks)
            .for_each_concurrent(concurrency, |chunk| async move {
                driver.send_events(events, chunk, Instant::now()).await;
            })
            .await;
    }
}

const SESSION_ENDPOINT: &str = "session (all steps)";
const COMPLETED: &str = "completed";
const CLAIMED: &str = "claimed";

const HAND_PICKS: usize = 2;
/// A player collects a few rewards per session, not every completed goal at once.
const CLAIMS_PER_SESSION: usize = 5;
const RANDOM_PICKS: i32 = 3;

fn is_open(goal: &api::Goal) -> bool {
    !goal.is_active && goal.status != COMPLETED && goal.status != CLAIMED
}

fn prerequisites_met(challenge: &api::Challenge, goal: &api::Goal) -> bool {
    goal.prerequisites
        .iter()
        .all(|id| challenge.goals.iter().any(|g| &g.goal_id == id && (g.status == COMPLETED || g.status == CLAIMED)))
}

/// Up to two inactive, unfinished goals of one random challenge.
fn pick_by_hand(listing: &api::GetChallengesResponse, rng: &mut impl Rng) -> Option<(String, Vec<String>)> {
    let challenge = listing.challenges.choose(rng)?;
    let mut open: Vec<&api::Goal> = challenge.goals.iter().filter(|g| is_open(g)).collect();
    open.shuffle(rng);
    let goal_ids: Vec<String> = open.into_iter().take(HAND_PICKS).map(|g| g.goal_id.clone()).collect();
    (!goal_ids.is_empty()).then(|| (challenge.challenge_id.clone(), goal_ids))
}

/// A random challenge with enough goals left for a random pick (inactive, unfinished, unlocked).
fn pick_for_random(listing: &api::GetChallengesResponse, picked: &[String], rng: &mut impl Rng) -> Option<String> {
    let candidates: Vec<&api::Challenge> = listing
        .challenges
        .iter()
        .filter(|challenge| {
            challenge
                .goals
                .iter()
                .filter(|g| is_open(g) && !picked.contains(&g.goal_id) && prerequisites_met(challenge, g))
                .count()
                >= RANDOM_PICKS as usize
        })
        .collect();
    candidates.choose(rng).map(|c| c.challenge_id.clone())
}

/// Completed, active, unlocked goals whose prerequisites are done.
fn claimable(listing: &api::GetChallengesResponse) -> Vec<(String, String)> {
    listing
        .challenges
        .iter()
        .flat_map(|challenge| {
            challenge
                .goals
                .iter()
                .filter(move |g| g.status == COMPLETED && g.is_active && !g.locked && prerequisites_met(challenge, g))
                .map(move |g| (challenge.challenge_id.clone(), g.goal_id.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape {
            users: 1200,
            api_rate: 300.0,
            event_rate: 500.0,
            init_rate: 50.0,
            session_rate: 10.0,
            multiplier: 10.0,
            duration: Duration::from_secs(60),
            burst_duration: Duration::from_secs(120),
            api_transport: ApiTransport::Http,
            api_ops: Vec::new(),
            event_transport: EventTransport::Batch,
            batch_size: 50,
        }
    }

    #[test]
    fn combined_is_a_burst_then_api_and_events_scaled() {
        let plan = plan(ScenarioName::Combined, &shape());
        assert_eq!(plan.phases.len(), 2);
        assert_eq!(plan.phases[0].streams[0].rate, 10.0, "1200 players over 120 s");
        let steady = &plan.phases[1];
        assert_eq!(steady.streams.iter().map(|s| s.rate).collect::<Vec<_>>(), vec![3000.0, 5000.0]);
        assert_eq!(steady.streams[1].work.arrivals_per_s(steady.streams[1].rate), 100.0, "50 events per call");
    }

    #[test]
    fn onmessage_always_sends_one_event_per_call() {
        let plan = plan(ScenarioName::Events, &Shape { event_transport: EventTransport::Onmessage, ..shape() });
        assert_eq!(
            plan.phases[0].streams[0].work,
            Work::Events { transport: EventTransport::Onmessage, batch_size: 1 }
        );
        assert!(plan.setup.initialize && !plan.setup.login_events);
    }

    #[test]
    fn warmup_uses_fresh_players_at_a_fraction_of_the_rate() {
        let plan = plan(ScenarioName::Combined, &shape());
        let warm = plan.phases[0].warmup(0.1, Duration::from_secs(5));
        assert_eq!(warm.duration, Duration::from_secs(5));
        assert_eq!(warm.streams[0].rate, 1.0);
        assert!(matches!(&warm.streams[0].work, Work::Initialize { players: Players::Fresh(kind), .. } if kind == "w"));
    }

    #[test]
    fn api_mix_draws_every_operation() {
        let catalog = crate::catalog::generate(&crate::catalog::GenParams::default()).expect("config");
        let mut rng = SmallRng::seed_from_u64(3);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            seen.insert(api_mix_op(&MixTargets::new(&catalog), &[], &mut rng).endpoint(ApiTransport::Grpc));
        }
        assert_eq!(seen.len(), 6, "{seen:?}");
    }

    #[test]
    fn api_ops_restrict_the_mix() {
        let catalog = crate::catalog::generate(&crate::catalog::GenParams::default()).expect("config");
        let targets = MixTargets::new(&catalog);
        let mut rng = SmallRng::seed_from_u64(5);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let op = api_mix_op(&targets, &[ApiOp::Initialize, ApiOp::GetOne], &mut rng);
            seen.insert(op.endpoint(ApiTransport::Http));
        }
        let only_initialize_and_get_one = [
            Op::Initialize.endpoint(ApiTransport::Http),
            Op::GetChallenge { challenge_id: String::new() }.endpoint(ApiTransport::Http),
        ];
        assert_eq!(seen, only_initialize_and_get_one.into_iter().collect(), "{seen:?}");
    }

    fn goal(id: &str, status: &str, active: bool, prerequisites: &[&str]) -> api::Goal {
        api::Goal {
            goal_id: id.into(),
            status: status.into(),
            is_active: active,
            prerequisites: prerequisites.iter().map(|p| (*p).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn sessions_claim_only_completed_active_goals_with_prerequisites_done() {
        let listing = api::GetChallengesResponse {
            challenges: vec![api::Challenge {
                challenge_id: "c".into(),
                goals: vec![
                    goal("a", COMPLETED, true, &[]),
                    goal("b", COMPLETED, true, &["x"]),
                    goal("c", COMPLETED, false, &[]),
                    goal("d", CLAIMED, true, &[]),
                    goal("e", COMPLETED, true, &["a"]),
                    goal("x", "in_progress", true, &[]),
                ],
                ..Default::default()
            }],
        };
        let ids: Vec<String> = claimable(&listing).into_iter().map(|(_, g)| g).collect();
        assert_eq!(ids, vec!["a".to_owned(), "e".to_owned()]);
    }
}
