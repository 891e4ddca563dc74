//! One flush worker: owns a partition of users, groups their submissions into batches (group commit) and
//! commits each batch with one storage call, retrying transient database failures until the commit deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::evaluate::{FlushPlan, plan_flush};
use super::{Deduper, PipelineContext, PipelineError, Submission};

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
            let deadline = tokio::time::Instant::now() + linger;
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
            let batch = self.shed_abandoned(batch).await;
            if !batch.is_empty() {
                self.flush(batch).await;
            }
        }
        tracing::debug!(partition = self.partition, "flush worker drained and stopped");
    }

    /// Drops the submissions whose caller has gone (cancelled or timed out): under overload, storing events
    /// nobody will be told about only delays the callers still waiting. They were never acknowledged, so the
    /// producer retries them; their dedupe reservations are released for that.
    async fn shed_abandoned(&self, batch: Vec<Submission>) -> Vec<Submission> {
        let (live, abandoned): (Vec<_>, Vec<_>) = batch.into_iter().partition(|s| !s.reply.is_closed());
        if !abandoned.is_empty() {
            let events: usize = abandoned.iter().map(|s| s.events.len()).sum();
            metrics::counter!("pipeline_events_shed_total").increment(events as u64);
            tracing::debug!(partition = self.partition, events, "shed events whose callers gave up");
            for submission in abandoned {
                self.deduper.release(&submission.dedupe_ids).await;
            }
        }
        live
    }

    /// Commits a batch or fails every submission in it; never leaves a caller without an answer.
    async fn flush(&self, batch: Vec<Submission>) {
        let events: usize = batch.iter().map(|s| s.events.len()).sum();
        let span = tracing::info_span!("pipeline.flush", partition = self.partition, submissions = batch.len(), events);
        let outcome = self.flush_with_retry(&batch).instrument(span).await;
        match outcome {
            Ok(()) => {
                let ids: Vec<String> = batch.iter().flat_map(|s| s.dedupe_ids.iter().cloned()).collect();
                for submission in batch {
                    let _ = submission.reply.send(Ok(()));
                }
                self.deduper.commit(&ids).await;
            }
            // One bad submission must not sink its neighbours: retry them one by one.
            Err(FlushFailure::Permanent(reason)) if batch.len() > 1 => {
                tracing::warn!(partition = self.partition, %reason, "batch rejected; committing submissions one by one");
                for submission in batch {
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

    async fn flush_with_retry(&self, batch: &[Submission]) -> Result<(), FlushFailure> {
        let deadline = Instant::now() + Duration::from_millis(self.context.settings.commit_timeout_ms);
        let mut delay = FIRST_RETRY;
        loop {
            match self.try_flush(batch).await {
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

    async fn try_flush(&self, batch: &[Submission]) -> Result<(), FlushFailure> {
        let users = self.flush_once(batch).await?;
        for listener in &self.context.listeners {
            listener.progress_changed(&users).await;
        }
        Ok(())
    }

    /// One attempt: load state, evaluate, commit. Returns the users whose rows may have changed.
    async fn flush_once(&self, batch: &[Submission]) -> Result<Vec<String>, FlushFailure> {
        let started = Instant::now();
        let events: Vec<_> = batch.iter().flat_map(|s| s.events.iter().cloned()).collect();
        let config = self.context.config.load_full();
        let query = pipeline_query(&events, &config.rules);
        let store = &self.context.store;
        let pipeline_state = store.load_pipeline_state(&query).await.map_err(storage_failure)?;
        let engine = self.context.engine.clone();
        let event_count = events.len();
        let plan: FlushPlan = tokio::task::spawn_blocking(move || {
            plan_flush(&events, &pipeline_state, &config.rules, &engine, Utc::now())
        })
        .await
        .map_err(|e| FlushFailure::Permanent(format!("evaluation task failed: {e}")))?;

        let outcome = store.apply_flush(&plan.batch).await.map_err(storage_failure)?;

        metrics::histogram!("pipeline_batch_events").record(event_count as f64);
        metrics::histogram!("pipeline_flush_seconds").record(started.elapsed().as_secs_f64());
        metrics::counter!("pipeline_rows_written_total", "table" => "user_stat_values").increment(outcome.stat_rows);
        metrics::counter!("pipeline_rows_written_total", "table" => "user_goal_progress").increment(outcome.goal_rows);
        metrics::counter!("pipeline_plugin_calls_total").increment(plan.plugin_calls as u64);
        metrics::counter!("pipeline_events_ignored_total").increment(plan.ignored_events as u64);
        metrics::counter!("pipeline_evaluations_parked_total").increment(plan.batch.parked.len() as u64);
        Ok(changed_users(&plan.batch))
    }
}

fn storage_failure(err: challenge_storage::StorageError) -> FlushFailure {
    if err.is_retryable() { FlushFailure::Transient(err.to_string()) } else { FlushFailure::Permanent(err.to_string()) }
}

async fn wait_for_stop(stopped: &mut watch::Receiver<bool>) {
    // The guard returned by `wait_for` must not live across the drain that follows.
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Users whose stat or goal rows this flush wrote.
fn changed_users(batch: &challenge_storage::FlushBatch) -> Vec<String> {
    let mut users: Vec<String> =
        batch.stats.iter().map(|s| s.user_id.clone()).chain(batch.goals.iter().map(|g| g.user_id.clone())).collect();
    users.sort_unstable();
    users.dedup();
    users
}

/// The rows a flush needs: per stat code of the batch, the goals listening to it for the users who sent it, and
/// those users' stat values.
fn pipeline_query(events: &[super::Event], book: &crate::rules::RuleBook) -> challenge_storage::PipelineQuery {
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
