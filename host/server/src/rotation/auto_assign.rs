//! Background auto-assignment: at each new period of a global rotation with `autoAssign`, every known player (a
//! row in `user_goal_progress` or `user_stat_values`) gets the period's assignment of the goal, new or renewed per
//! `onExpiry`, without having to ask.
//!
//! Exactly once per period across instances: the run of a (goal, period) is a `rotation_runs` row claimed with a
//! lease (only one instance wins the insert or the takeover of an expired lease), and with Redis configured an
//! instance first takes a Redis lock (`SET NX PX` with its token, extended after every chunk) so the others do not
//! even contend on the database. Work goes in chunks of `chunk_size` players in user-id order; after each chunk the
//! run records its cursor, so an instance that dies mid-way leaves the run to whoever takes it over once the lease
//! ends, resuming at the cursor. Both writes of a chunk are idempotent, so a repeated chunk changes nothing.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use challenge_core::config::{Goal, RotationType};
use challenge_core::rotation;
use challenge_storage::{NewAssignment, Renewal, Store};
use chrono::{DateTime, TimeDelta, Utc};
use fred::prelude::{Client, KeysInterface, LuaInterface};
use fred::types::{Expiration, SetOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Clock;
use crate::player::{SnapshotCache, period};
use crate::state::ActiveConfig;

/// `[rotation]` settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RotationSettings {
    /// Run the auto-assignment worker on this instance.
    pub auto_assign: bool,
    /// How often the worker looks for a period that has not been assigned yet.
    pub tick_ms: u64,
    /// Players per chunk (one batched write per chunk).
    pub chunk_size: u32,
    /// Pause between chunks, so a run leaves room for player traffic.
    pub throttle_ms: u64,
    /// Lease of a run (database row and Redis lock); extended after every chunk.
    pub lease_secs: u64,
}

impl Default for RotationSettings {
    fn default() -> Self {
        Self { auto_assign: true, tick_ms: 5_000, chunk_size: 5_000, throttle_ms: 20, lease_secs: 60 }
    }
}

impl RotationSettings {
    pub fn check(&self) -> Result<(), String> {
        if self.tick_ms == 0 || self.chunk_size == 0 || self.lease_secs == 0 {
            return Err("rotation.tick_ms, chunk_size and lease_secs must be positive".to_owned());
        }
        Ok(())
    }
}

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub goal_id: String,
    pub period_key: String,
    /// Rows inserted or renewed by this instance.
    pub assigned: u64,
    pub completed: bool,
}

pub struct AutoAssigner {
    store: Arc<dyn Store>,
    config: Arc<ArcSwap<ActiveConfig>>,
    cache: Option<Arc<SnapshotCache>>,
    redis: Option<Client>,
    clock: Arc<dyn Clock>,
    settings: RotationSettings,
    namespace: String,
    /// This instance's identity in leases and the token of its Redis locks.
    owner: String,
    stopped: Option<watch::Receiver<bool>>,
}

/// Extends a lock only while it is still ours.
const EXTEND_SCRIPT: &str =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";
/// Releases a lock only while it is still ours.
const RELEASE_SCRIPT: &str =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

impl AutoAssigner {
    pub fn new(
        store: Arc<dyn Store>,
        config: Arc<ArcSwap<ActiveConfig>>,
        redis: Option<Client>,
        clock: Arc<dyn Clock>,
        settings: RotationSettings,
        namespace: String,
    ) -> Self {
        let owner = format!("host-{}", uuid::Uuid::new_v4().simple());
        Self { store, config, cache: None, redis, clock, settings, namespace, owner, stopped: None }
    }

    /// Invalidates the players' cached state after each chunk (the server's player cache).
    pub fn with_cache(mut self, cache: Arc<SnapshotCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Runs the worker on `tasks` until `stopped` turns true (a run in progress stops between chunks).
    pub fn spawn(mut self, stopped: watch::Receiver<bool>, tasks: &mut JoinSet<anyhow::Result<()>>) {
        self.stopped = Some(stopped.clone());
        tasks.spawn(async move {
            let mut stopped = stopped;
            let tick = Duration::from_millis(self.settings.tick_ms);
            loop {
                if let Err(err) = self.tick().await {
                    tracing::warn!(error = %err, "rotation auto-assignment failed; retrying at the next tick");
                }
                tokio::select! {
                    _ = tokio::time::sleep(tick) => {}
                    _ = stopped.wait_for(|stop| *stop) => return Ok(()),
                }
            }
        });
    }

    fn stopping(&self) -> bool {
        self.stopped.as_ref().is_some_and(|stopped| *stopped.borrow())
    }

    /// One pass: the current period of every auto-assigned global rotating goal, each run to completion here
    /// unless it is completed already or another instance holds it.
    pub async fn tick(&self) -> anyhow::Result<Vec<RunReport>> {
        let config = self.config.load_full();
        let now = self.clock.now();
        let mut reports = Vec::new();
        for goal in config.catalog.challenges().iter().flat_map(|challenge| &challenge.goals) {
            let Some(rotation) = goal.rotation.as_ref() else { continue };
            // A per-user rotation has no shared period: its players renew when they ask.
            if !rotation.auto_assign || rotation.rotation_type != RotationType::Global {
                continue;
            }
            let Some(current) = rotation::current_period(rotation, now) else { continue };
            if self.stopping() {
                break;
            }
            if let Some(report) = self.run_period(goal, &current.key().to_string(), now).await? {
                reports.push(report);
            }
        }
        Ok(reports)
    }

    fn lease(&self) -> TimeDelta {
        TimeDelta::seconds(i64::try_from(self.settings.lease_secs).unwrap_or(i64::MAX / 1_000_000))
    }

    /// Assigns the period of `goal` starting at `now` to every known player; `None` when there is nothing for this
    /// instance to do.
    async fn run_period(&self, goal: &Goal, period_key: &str, now: DateTime<Utc>) -> anyhow::Result<Option<RunReport>> {
        let run_key = format!("goal:{}", goal.id);
        let runs = self.store.rotation_runs();
        // Cheap read first: after the first tick of a period every instance stops here.
        if runs.run(&run_key, period_key).await?.is_some_and(|run| run.is_completed()) {
            return Ok(None);
        }
        let lock_key = format!("challenge:rotation:{run_key}:{period_key}");
        if !self.lock(&lock_key).await {
            return Ok(None);
        }
        let result = self.run_claimed(goal, &run_key, period_key, now).await;
        self.unlock(&lock_key).await;
        result
    }

    async fn run_claimed(
        &self,
        goal: &Goal,
        run_key: &str,
        period_key: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<RunReport>> {
        let runs = self.store.rotation_runs();
        let Some(run) = runs.claim_run(run_key, period_key, &self.owner, now, now + self.lease()).await? else {
            return Ok(None);
        };
        tracing::info!(goal = %goal.id, period = period_key, cursor = %run.cursor, "rotation auto-assignment started");
        let mut report =
            RunReport { goal_id: goal.id.clone(), period_key: period_key.to_owned(), assigned: 0, completed: false };
        let mut cursor = run.cursor;
        let throttle = Duration::from_millis(self.settings.throttle_ms);
        loop {
            if self.stopping() {
                return Ok(Some(report));
            }
            let users = runs.known_users(&cursor, self.settings.chunk_size).await?;
            let Some(last) = users.last().cloned() else {
                report.completed = runs.complete_run(run_key, period_key, &self.owner, self.clock.now()).await?;
                tracing::info!(goal = %goal.id, period = period_key, assigned = report.assigned, "rotation auto-assignment done");
                return Ok(Some(report));
            };
            let written = self.assign_chunk(goal, &users, now).await?;
            report.assigned += written;
            let lease_until = self.clock.now() + self.lease();
            if !runs.advance_run(run_key, period_key, &self.owner, &last, written, lease_until).await? {
                tracing::warn!(goal = %goal.id, period = period_key, "rotation run lease lost; another instance resumes it");
                return Ok(Some(report));
            }
            metrics::counter!("rotation_auto_assigned_total").increment(written);
            cursor = last;
            if !throttle.is_zero() {
                tokio::time::sleep(throttle).await;
            }
        }
    }

    /// Renews the players' expired assignments and inserts the missing ones: two batched statements.
    async fn assign_chunk(&self, goal: &Goal, users: &[String], now: DateTime<Utc>) -> anyhow::Result<u64> {
        let renewals: Vec<Renewal> = users.iter().filter_map(|user| period::renewal(user, goal, now)).collect();
        let assignments: Vec<NewAssignment> =
            users.iter().map(|user| period::new_assignment(user, goal, &self.namespace, now)).collect();
        let renewed = self.store.renew_assignments(&renewals, now).await?;
        let inserted = self.store.insert_missing_assignments(&assignments, now).await?;
        if let Some(cache) = &self.cache {
            cache.invalidate(users).await;
        }
        Ok(renewed + inserted)
    }

    /// Takes the Redis lock of a run (always granted without Redis, or when Redis fails: the database lease still
    /// decides).
    async fn lock(&self, key: &str) -> bool {
        let Some(redis) = &self.redis else { return true };
        let ttl = Expiration::PX(i64::try_from(self.settings.lease_secs * 1_000).unwrap_or(i64::MAX));
        let taken: Result<Option<String>, _> =
            redis.set(key, self.owner.as_str(), Some(ttl), Some(SetOptions::NX), false).await;
        match taken {
            Ok(reply) => reply.is_some() || self.extend(key).await,
            Err(err) => {
                tracing::warn!(error = %err, "Redis lock unavailable; the database lease decides alone");
                true
            }
        }
    }

    /// Extends our lock (also how a restarted owner with the same token would keep it).
    async fn extend(&self, key: &str) -> bool {
        let Some(redis) = &self.redis else { return true };
        let ms = (self.settings.lease_secs * 1_000).to_string();
        let extended: Result<i64, _> = redis.eval(EXTEND_SCRIPT, vec![key], vec![self.owner.clone(), ms]).await;
        extended.is_ok_and(|n| n == 1)
    }

    async fn unlock(&self, key: &str) {
        if let Some(redis) = &self.redis {
            let _: Result<i64, _> = redis.eval(RELEASE_SCRIPT, vec![key], vec![self.owner.clone()]).await;
        }
    }
}
