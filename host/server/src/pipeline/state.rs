//! The rows a flush evaluates, per user, and the cache that keeps them between flushes.
//!
//! Loading a player's few dozen goal rows for every event was most of a flush's cost. The flush workers keep
//! each player's rows in a [`StateCache`] that shares the player generations of the read cache (see
//! [`crate::cache`]): any committed change by the API, a rotation or another instance makes the copy stale, and a
//! flush updates its own copies with the writes it just committed, so a steady stream of events reads nothing.

use std::collections::HashMap;
use std::sync::Arc;

use challenge_core::progress::{GoalProgress, StatValue};
use challenge_storage::{FlushBatch, GoalWrite, PipelineState, StatWrite};

use crate::cache::GenerationCache;

/// One user's rows that flushes work on: the active, unclaimed goal rows and every stat row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserState {
    pub goals: Vec<Arc<GoalProgress>>,
    pub stats: Vec<StatValue>,
}

/// Per-user pipeline state, valid while the user's generation does not change.
pub type StateCache = GenerationCache<Arc<UserState>>;

/// The state of several users, by user id.
pub type UserStates = HashMap<String, Arc<UserState>>;

/// Splits loaded rows by user; every user of `user_ids` gets an entry, empty when it has no rows.
pub fn split_by_user(state: PipelineState, user_ids: &[String]) -> UserStates {
    let mut split: HashMap<String, UserState> =
        user_ids.iter().map(|user| (user.clone(), UserState::default())).collect();
    for goal in state.goals {
        split.entry(goal.user_id.clone()).or_default().goals.push(Arc::new(goal));
    }
    for stat in state.stats {
        split.entry(stat.user_id.clone()).or_default().stats.push(stat);
    }
    split.into_iter().map(|(user, state)| (user, Arc::new(state))).collect()
}

/// A flush's stat and goal writes for one user, in flush order.
#[derive(Debug, Default)]
pub struct UserWrites<'a> {
    pub stats: Vec<&'a StatWrite>,
    pub goals: Vec<&'a GoalWrite>,
}

/// The batch's writes grouped by user.
pub fn writes_by_user(batch: &FlushBatch) -> HashMap<&str, UserWrites<'_>> {
    let mut by_user: HashMap<&str, UserWrites<'_>> = HashMap::new();
    for write in &batch.stats {
        by_user.entry(write.user_id.as_str()).or_default().stats.push(write);
    }
    for write in &batch.goals {
        by_user.entry(write.user_id.as_str()).or_default().goals.push(write);
    }
    by_user
}

impl UserState {
    /// The user's rows after its writes are committed, as the database then holds them.
    pub fn after(&self, writes: &UserWrites<'_>) -> UserState {
        let mut next = self.clone();
        for write in &writes.stats {
            match next.stats.iter_mut().find(|row| row.stat_code == write.stat_code) {
                Some(row) => *row = write.applied_to(Some(row)),
                None => next.stats.push(write.applied_to(None)),
            }
        }
        for write in &writes.goals {
            if let Some(row) = next.goals.iter_mut().find(|row| row.goal_id == write.goal_id) {
                write.apply_to(Arc::make_mut(row));
            }
        }
        next
    }
}
