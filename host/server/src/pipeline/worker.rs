//! One flush worker: owns a partition of users, groups their submissions into batches (group commit) and
//! commits each batch with one storage call, retrying transient database failures until the commit deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use challenge_storage::PipelineQuery;
use chrono::{SubsecRound, Utc};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::evaluate::{FlushPlan, plan_flush};
use super::state::{UserStates, split_by_user, writes_by_user};
use super::{Deduper, Event, PipelineContext, PipelineError, Reservation, Submission};
use crate::cache::Lookup;
use foldhash::{HashMap, HashMapExt};

pub(super) struct Worker {
    partition: usize,
    context: Arc<PipelineContext>,
    deduper: Arc<dyn Deduper>,
}

/// First retry delay after a transient database failure; doubles up to the cap.
const FIRST_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_secs(1);

pub enum FlushFailure {
    /// Worth retrying: the database is unreachable or timed out.
    Transient(String),
    /// Retrying the same batch cannot help.
    Permanent(String),
}

impl Worker {
    pub(super) fn new(partition: usize, context: Arc<PipelineContext>, deduper: Arc<dyn Deduper>) -> Self {
        Self { partition, context, deduper }
    }

    pub(super) async fn run(self, mut queue: mpsc::Receiver<Submission>, mut stopped: watch::Receiver<bool>) {
        let settings = &self.context.settings;
        let linger = Duration::from_millis(settings.flush_interval_ms);
        loop {
            let next = tokio::select! {
                next = queue.recv() => next,
                () = wait_for_stop(&mut stopped) => {
                    // Refuse new submissions, then drain what is already queued.
                    queue.close();
                    queue.recv().await
                }
            };
            let Some(first) = next else { break };
            // A worker busy with the previous flush has already made this submission wait.
            let deadline = first.queued_at + linger;
            let mut queued = first.events.len();
            let mut batch = vec![first];
            while queued < settings.max_batch_events {
                tokio::select! {
                    biased;
                    next = queue.recv() => match next {
                        Some(submission) => {
                            queued += submission.events.len();
                            batch.push(submission);
                        }
                        None => break,
                    },
                    () = tokio::time::sleep_until(deadline) => break,
                }
            }
            metrics::gauge!("pipeline_queue_depth", "partition" => self.partition.to_string()).set(queue.len() as f64);
            let batch = self.reserve(self.shed_abandoned(batch)).await;
            if !batch.is_empty() {
                self.flush(batch).await;
            }
        }
        tracing::debug!(partition = self.partition, "flush worker drained and stopped");
    }

    /// Drops the submissions whose caller has gone (cancelled or timed out): under overload, storing events
    /// nobody will be told about only delays the callers still waiting. They were never acknowledged, so the
    /// producer retries them (they hold no dedupe reservation yet).
    fn shed_abandoned(&self, batch: Vec<Submission>) -> Vec<Submission> {
        let (live, abandoned): (Vec<_>, Vec<_>) = batch.into_iter().partition(|s| !s.reply.is_closed());
        if !abandoned.is_empty() {
            let events: usize = abandoned.iter().map(|s| s.events.len()).sum();
            metrics::counter!("pipeline_events_shed_total").increment(events as u64);
            tracing::debug!(partition = self.partition, events, "shed events whose callers gave up");
        }
        live
    }

    /// Reserves the batch's event ids in the dedupe window, once per flush rather than once per call (with
    /// Redis, one script call for every `OnMessage` of the window). Re-deliveries leave their submission's
    /// events; a submission left with none is answered at once.
    async fn reserve(&self, mut batch: Vec<Submission>) -> Vec<Submission> {
        let ids: Vec<String> =
            batch.iter().flat_map(|s| s.events.iter()).filter(|e| !e.id.is_empty()).map(|e| e.id.clone()).collect();
        if ids.is_empty() {
            return batch;
        }
        let started = Instant::now();
        let mut reservations = self.deduper.reserve(&ids).await.into_iter();
        Stage::record("dedupe_reserve", started);
        for submission in &mut batch {
            let mut fresh = Vec::with_capacity(submission.events.len());
            for (position, event) in std::mem::take(&mut submission.events).into_iter().enumerate() {
                if !event.id.is_empty() {
                    match reservations.next().unwrap_or(Reservation::Fresh) {
                        Reservation::Fresh => submission.dedupe_ids.push(event.id.clone()),
                        Reservation::Duplicate => {
                            submission.skipped.duplicates.push(position);
                            continue;
                        }
                        Reservation::InFlight => {
                            submission.skipped.in_flight.push((position, event.id));
                            continue;
                        }
                    }
                }
                fresh.push(event);
            }
            submission.events = fresh;
        }
        let (work, done): (Vec<_>, Vec<_>) = batch.into_iter().partition(|s| !s.events.is_empty());
        for submission in done {
            let _ = submission.reply.send(Ok(submission.skipped));
        }
        work
    }

    /// Commits a batch or fails every submission in it; never leaves a caller without an answer.
    async fn flush(&self, mut batch: Vec<Submission>) {
        // The events move into one shared list (evaluation runs on a blocking thread and needs them owned);
        // `sizes` lets a failed batch hand each submission its own events back.
        let sizes: Vec<usize> = batch.iter().map(|s| s.events.len()).collect();
        let events: Arc<Vec<Event>> =
            Arc::new(batch.iter_mut().flat_map(|submission| std::mem::take(&mut submission.events)).collect());
        let span = tracing::info_span!(
            "pipeline.flush",
            partition = self.partition,
            submissions = batch.len(),
            events = events.len()
        );
        let outcome = self.flush_with_retry(&events).instrument(span).await;
        match outcome {
            Ok(()) => {
                let ids: Vec<String> = batch.iter().flat_map(|s| s.dedupe_ids.iter().cloned()).collect();
                for submission in batch {
                    let _ = submission.reply.send(Ok(submission.skipped));
                }
                let started = Instant::now();
                self.deduper.commit(&ids).await;
                Stage::record("dedupe_commit", started);
            }
            // One bad submission must not sink its neighbours: retry them one by one.
            Err(FlushFailure::Permanent(reason)) if batch.len() > 1 => {
                tracing::warn!(partition = self.partition, %reason, "batch rejected; committing submissions one by one");
                let mut start = 0;
                for (mut submission, size) in batch.into_iter().zip(sizes) {
                    submission.events = events[start..start + size].to_vec();
                    start += size;
                    Box::pin(self.flush(vec![submission])).await;
                }
            }
            Err(failure) => {
                let error = match failure {
                    FlushFailure::Transient(_) => PipelineError::Unavailable,
                    FlushFailure::Permanent(reason) => PipelineError::Failed(reason),
                };
                metrics::counter!("pipeline_flush_failures_total").increment(1);
                for submission in batch {
                    self.deduper.release(&submission.dedupe_ids).await;
                    let _ = submission.reply.send(Err(error.clone()));
                }
            }
        }
    }

    async fn flush_with_retry(&self, events: &Arc<Vec<Event>>) -> Result<(), FlushFailure> {
        let deadline = Instant::now() + Duration::from_millis(self.context.settings.commit_timeout_ms);
        let mut delay = FIRST_RETRY;
        loop {
            match self.try_flush(events).await {
                Err(FlushFailure::Transient(reason)) if Instant::now() + delay < deadline => {
                    tracing::warn!(partition = self.partition, %reason, retry_in_ms = delay.as_millis() as u64, "flush failed");
                    metrics::counter!("pipeline_flush_retries_total").increment(1);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RETRY);
                }
                outcome => return outcome,
            }
        }
    }

    /// One attempt: load state, evaluate, commit, then keep the cached copies of the users' rows current.
    async fn try_flush(&self, events: &Arc<Vec<Event>>) -> Result<(), FlushFailure> {
        let started = Instant::now();
        // Millisecond timestamps round-trip unchanged through both backends, so cached copies match the database.
        let now = Utc::now().trunc_subsecs(3);
        let config = self.context.config.load_full();
        let cache = &self.context.state_cache;
        let mut stage = Stage { since: started };
        let lookups = cache.begin_many(&distinct_users(events)).await;
        stage.next("generations");
        let current = self.current_states(events, &config.rules, &lookups).await?;
        stage.next("load");
        let engine = self.context.engine.clone();
        let event_count = events.len();
        let events = events.clone();
        let (plan, states): (FlushPlan, UserStates) = tokio::task::spawn_blocking(move || {
            let plan = plan_flush(&events, &current.states, &config.rules, &engine, now);
            (plan, current.states)
        })
        .await
        .map_err(|e| FlushFailure::Permanent(format!("evaluation task failed: {e}")))?;
        stage.next("evaluate");

        let outcome = match self.context.store.apply_flush(&plan.batch).await {
            Ok(outcome) => outcome,
            Err(err) => {
                // The commit may have happened before the error reached us: no copy of these users is current.
                let users: Vec<String> = lookups.iter().map(|lookup| lookup.user_id().to_owned()).collect();
                cache.invalidate(&users).await;
                return Err(storage_failure(err));
            }
        };
        stage.next("write");
        let writes = writes_by_user(&plan.batch);
        let mut changes = Vec::with_capacity(writes.len());
        for lookup in lookups {
            let Some(state) = states.get(lookup.user_id()) else { continue };
            let loaded_at = current.loaded_at.get(lookup.user_id()).copied();
            match writes.get(lookup.user_id()) {
                Some(user_writes) => {
                    changes.push((lookup, loaded_at.unwrap_or(current.read_at), Arc::new(state.after(user_writes))));
                }
                None if loaded_at.is_none() => cache.put(&lookup, state.clone()),
                None => {}
            }
        }
        // Bumps the users' generations: read caches here and on other instances see the commit.
        cache.put_after_own_change(changes).await;
        stage.next("cache");

        metrics::histogram!("pipeline_batch_events").record(event_count as f64);
        metrics::histogram!("pipeline_flush_seconds").record(started.elapsed().as_secs_f64());
        metrics::counter!("pipeline_rows_written_total", "table" => "user_stat_values").increment(outcome.stat_rows);
        metrics::counter!("pipeline_rows_written_total", "table" => "user_goal_progress").increment(outcome.goal_rows);
        metrics::counter!("pipeline_plugin_calls_total").increment(plan.plugin_calls as u64);
        metrics::counter!("pipeline_events_ignored_total").increment(plan.ignored_events as u64);
        metrics::counter!("pipeline_evaluations_parked_total").increment(plan.batch.parked.len() as u64);
        Ok(())
    }

    /// The rows of the flush's users: cached copies where current, the rest from the database. Without a usable
    /// cache (disabled, Redis down) only the rows the events concern are loaded, and nothing is kept.
    async fn current_states(
        &self,
        events: &[Event],
        book: &crate::rules::RuleBook,
        lookups: &[Lookup],
    ) -> Result<CurrentStates, FlushFailure> {
        let store = &self.context.store;
        let read_at = Instant::now();
        if !lookups.iter().any(Lookup::is_cacheable) {
            let users: Vec<String> = lookups.iter().map(|lookup| lookup.user_id().to_owned()).collect();
            let state = store.load_pipeline_state(&pipeline_query(events, book)).await.map_err(storage_failure)?;
            return Ok(CurrentStates { states: split_by_user(state, &users), loaded_at: HashMap::new(), read_at });
        }
        let mut states = UserStates::with_capacity(lookups.len());
        let mut loaded_at = HashMap::with_capacity(lookups.len());
        let mut misses = Vec::new();
        for lookup in lookups {
            match self.context.state_cache.get_with_load_time(lookup) {
                Some((state, at)) => {
                    states.insert(lookup.user_id().to_owned(), state);
                    loaded_at.insert(lookup.user_id().to_owned(), at);
                }
                None => misses.push(lookup.user_id().to_owned()),
            }
        }
        if !misses.is_empty() {
            let loaded =
                store.load_pipeline_state(&PipelineQuery::for_users(&misses)).await.map_err(storage_failure)?;
            states.extend(split_by_user(loaded, &misses));
        }
        Ok(CurrentStates { states, loaded_at, read_at })
    }
}

/// Times the stages of a flush into `pipeline_stage_seconds{stage}`.
struct Stage {
    since: Instant,
}

impl Stage {
    fn record(stage: &'static str, since: Instant) {
        metrics::histogram!("pipeline_stage_seconds", "stage" => stage).record(since.elapsed().as_secs_f64());
    }

    /// Records the stage that ran since the previous one ended (or the flush began).
    fn next(&mut self, stage: &'static str) {
        Self::record(stage, self.since);
        self.since = Instant::now();
    }
}

/// What [`Worker::current_states`] found.
struct CurrentStates {
    states: UserStates,
    /// For users served from the cache: when their rows were read from the database. Absent: read by this flush.
    loaded_at: HashMap<String, Instant>,
    /// When this flush started reading.
    read_at: Instant,
}

/// The users of the events, in first-seen order.
fn distinct_users(events: &[Event]) -> Vec<String> {
    let mut seen = foldhash::HashSet::default();
    events.iter().filter(|event| seen.insert(event.user_id.as_str())).map(|event| event.user_id.clone()).collect()
}

fn storage_failure(err: challenge_storage::StorageError) -> FlushFailure {
    if err.is_retryable() { FlushFailure::Transient(err.to_string()) } else { FlushFailure::Permanent(err.to_string()) }
}

async fn wait_for_stop(stopped: &mut watch::Receiver<bool>) {
    // The guard returned by `wait_for` must not live across the drain that follows.
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// The rows a flush needs: per stat code of the batch, the goals listening to it for the users who sent it, and
/// those users' stat values.
fn pipeline_query(events: &[Event], book: &crate::rules::RuleBook) -> challenge_storage::PipelineQuery {
    use std::collections::{BTreeMap, BTreeSet};

    use super::EventKind;
    use crate::rules::SignalSource;

    let mut senders: BTreeMap<(SignalSource, &str), BTreeSet<&str>> = BTreeMap::new();
    for event in events {
        let user = event.user_id.as_str();
        match &event.kind {
            EventKind::Login => {
                for code in book.login_stat_codes() {
                    senders.entry((SignalSource::Login, code.as_str())).or_default().insert(user);
                }
            }
            EventKind::Stat { stat_code, .. } => {
                senders.entry((SignalSource::Statistic, stat_code.as_str())).or_default().insert(user);
            }
        }
    }
    let mut users: BTreeSet<&str> = BTreeSet::new();
    // Plugins may also read the stats of the extra codes their goals listen to; stat rows are small, so the
    // stat filter is the codes of the events plus every code of the goals listening to them.
    let mut stat_codes: BTreeSet<&str> = BTreeSet::new();
    let mut goal_groups = Vec::new();
    for ((source, code), code_users) in senders {
        stat_codes.insert(code);
        let listeners = book.listeners(source, code);
        for goal_id in listeners {
            if let Some(rule) = book.rule(goal_id) {
                stat_codes.extend(rule.stat_codes.iter().map(String::as_str));
            }
        }
        users.extend(&code_users);
        if !listeners.is_empty() {
            goal_groups.push(challenge_storage::GoalGroup {
                user_ids: code_users.into_iter().map(str::to_owned).collect(),
                goal_ids: listeners.to_vec(),
            });
        }
    }
    challenge_storage::PipelineQuery {
        user_ids: users.into_iter().map(str::to_owned).collect(),
        goal_groups: Some(goal_groups),
        stat_codes: Some(stat_codes.into_iter().map(str::to_owned).collect()),
    }
}
