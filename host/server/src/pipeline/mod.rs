//! The event pipeline: validated events are routed to a flush worker by user (so a user's events stay in
//! order), grouped into batches, evaluated by the rule plugins and committed in one batched write per flush.
//!
//! Its hash maps (keyed by user ids, stat codes, goal ids, hashed several times per event) use foldhash: SipHash
//! was a visible part of a flush's profile.
//!
//! Durability contract: [`Pipeline::submit`] returns success only after every accepted event of the call is
//! committed (group commit). Failures are reported, never swallowed: the producer retries, and the dedupe window
//! keeps a retried event from counting twice.

pub mod dedupe;
pub mod evaluate;
pub mod event;
pub mod state;
mod worker;

pub use worker::FlushFailure;

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

pub use dedupe::{Deduper, LocalDeduper, RedisDeduper, Reservation};
pub use event::{Event, EventKind, IncomingEvent, Rejection};
pub use state::StateCache;

use arc_swap::ArcSwap;
use challenge_storage::Store;
use tokio::sync::watch;

use crate::rules::RuleEngine;
use crate::settings::PipelineSettings;
use crate::state::ActiveConfig;

/// What the flush workers need from the rest of the server.
#[derive(Clone)]
pub struct PipelineContext {
    pub store: Arc<dyn Store>,
    pub config: Arc<ArcSwap<ActiveConfig>>,
    pub engine: Arc<RuleEngine>,
    pub settings: PipelineSettings,
    pub namespace: String,
    /// The users' rows between flushes; shares the generations of the player read cache, which so sees every
    /// committed flush.
    pub state_cache: Arc<StateCache>,
}

/// Why a call's events could not be committed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PipelineError {
    #[error("the database is unavailable; events were not stored, retry later")]
    Unavailable,
    #[error("the server is shutting down; events were not stored, retry on another instance")]
    ShuttingDown,
    #[error("{0}")]
    TooManyEvents(String),
    #[error("events could not be stored: {0}")]
    Failed(String),
}

/// Result of one submit call.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SubmitOutcome {
    /// Events committed by this call.
    pub accepted: usize,
    /// Re-deliveries of events already committed: acknowledged without effect.
    pub duplicates: usize,
    /// Refused events with their position in the call.
    pub rejected: Vec<(usize, Rejection)>,
}

/// Work for one partition: events of the call that belong to it, and where to report the commit.
struct Submission {
    events: Vec<Event>,
    /// Ids of `events` reserved in the dedupe window (filled by the worker, which reserves once per flush).
    dedupe_ids: Vec<String>,
    /// Events the worker did not process, by position in the submitted `events`.
    skipped: Skipped,
    reply: oneshot::Sender<Result<Skipped, PipelineError>>,
    /// When it was queued: the group-commit window counts from here, not from when the worker got to it.
    queued_at: tokio::time::Instant,
}

/// Events of a submission that were not processed, by position in the submission.
#[derive(Debug, Default)]
struct Skipped {
    /// Re-deliveries of events already committed.
    duplicates: Vec<usize>,
    /// Re-deliveries of events another delivery is processing right now, with their ids.
    in_flight: Vec<(usize, String)>,
}

pub struct Pipeline {
    partitions: Vec<mpsc::Sender<Submission>>,
    settings: PipelineSettings,
    namespace: String,
    closed: AtomicBool,
}

/// Submissions a partition queues before callers feel backpressure.
const PARTITION_QUEUE: usize = 4_096;

impl Pipeline {
    /// Starts the flush workers on `tasks`. Once `stopped` turns true they refuse new work, flush what is
    /// queued and exit; [`Pipeline::close`] makes `submit` refuse new calls right away.
    pub fn start(
        context: PipelineContext,
        deduper: Arc<dyn Deduper>,
        stopped: watch::Receiver<bool>,
        tasks: &mut JoinSet<anyhow::Result<()>>,
    ) -> Arc<Self> {
        let context = Arc::new(context);
        let settings = context.settings.clone();
        let mut partitions = Vec::with_capacity(settings.flush_workers);
        for partition in 0..settings.flush_workers {
            let (sender, receiver) = mpsc::channel(PARTITION_QUEUE);
            partitions.push(sender);
            let worker = worker::Worker::new(partition, context.clone(), deduper.clone());
            let stopped = stopped.clone();
            tasks.spawn(async move {
                worker.run(receiver, stopped).await;
                Ok(())
            });
        }
        Arc::new(Self { partitions, namespace: context.namespace.clone(), settings, closed: AtomicBool::new(false) })
    }

    /// Stops accepting new events; queued ones are still flushed.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    fn partition_of(&self, user_id: &str) -> usize {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        user_id.hash(&mut hasher);
        (hasher.finish() % self.partitions.len() as u64) as usize
    }

    /// Validates, deduplicates and commits a call's events. Returns once they are durable.
    #[tracing::instrument(name = "pipeline.submit", skip_all, fields(events = incoming.len()))]
    pub async fn submit(&self, incoming: Vec<IncomingEvent>) -> Result<SubmitOutcome, PipelineError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(PipelineError::ShuttingDown);
        }
        if incoming.len() > self.settings.max_events_per_call {
            metrics::counter!("events_rejected_total", "code" => "BATCH_TOO_LARGE").increment(incoming.len() as u64);
            return Err(PipelineError::TooManyEvents(format!(
                "a call may carry at most {} events (got {})",
                self.settings.max_events_per_call,
                incoming.len()
            )));
        }
        metrics::counter!("events_received_total").increment(incoming.len() as u64);
        let now = Utc::now();
        let mut outcome = SubmitOutcome::default();
        let mut valid = Vec::with_capacity(incoming.len());
        for (index, event) in incoming.into_iter().enumerate() {
            match event.validate(&self.namespace, now) {
                Ok(event) => valid.push((index, event)),
                Err(rejection) => {
                    metrics::counter!("events_rejected_total", "code" => rejection.code).increment(1);
                    outcome.rejected.push((index, rejection));
                }
            }
        }

        // Per partition: the events and their positions in the call.
        let mut per_partition: Vec<(Vec<Event>, Vec<usize>)> = vec![(Vec::new(), Vec::new()); self.partitions.len()];
        for (index, event) in valid {
            let (events, positions) = &mut per_partition[self.partition_of(&event.user_id)];
            events.push(event);
            positions.push(index);
        }

        let mut replies = Vec::new();
        for (partition, (events, positions)) in per_partition.into_iter().enumerate() {
            if events.is_empty() {
                continue;
            }
            let (reply, committed) = oneshot::channel();
            let submission = Submission {
                events,
                dedupe_ids: Vec::new(),
                skipped: Skipped::default(),
                reply,
                queued_at: tokio::time::Instant::now(),
            };
            let permit = tokio::time::timeout(self.commit_timeout(), self.partitions[partition].reserve()).await;
            match permit {
                Ok(Ok(permit)) => {
                    permit.send(submission);
                    replies.push((committed, positions));
                }
                // The worker is gone (shutdown) or its queue stayed full: nothing of this part is stored.
                Ok(Err(_)) => return Err(PipelineError::ShuttingDown),
                Err(_) => return Err(PipelineError::Unavailable),
            }
        }
        for (committed, positions) in replies {
            let skipped = match committed.await {
                Ok(Ok(skipped)) => skipped,
                Ok(Err(err)) => return Err(err),
                Err(_) => return Err(PipelineError::ShuttingDown),
            };
            outcome.accepted += positions.len() - skipped.duplicates.len() - skipped.in_flight.len();
            outcome.duplicates += skipped.duplicates.len();
            for (position, id) in skipped.in_flight {
                let rejection = Rejection {
                    code: "IN_FLIGHT",
                    message: format!("event '{id}' is being processed by another delivery; retry"),
                };
                metrics::counter!("events_rejected_total", "code" => rejection.code).increment(1);
                outcome.rejected.push((positions[position], rejection));
            }
        }
        outcome.rejected.sort_by_key(|(index, _)| *index);
        metrics::counter!("events_deduplicated_total").increment(outcome.duplicates as u64);
        metrics::counter!("events_accepted_total").increment(outcome.accepted as u64);
        Ok(outcome)
    }

    fn commit_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.commit_timeout_ms)
    }
}
