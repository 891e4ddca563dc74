//! The rows a flush evaluates, per user, and the cache that keeps them between flushes.
//!
//! Loading a player's few dozen goal rows for every event was most of a flush's cost. The flush workers keep
//! each player's rows in a [`StateCache`] that shares the player generations of the read cache (see
//! [`crate::cache`]): any committed change by the API, a rotation or another instance makes the copy stale, and a
//! flush updates its own copies with the writes it just committed, so a steady stream of events reads nothing.

use std::sync::{Arc, OnceLock};

use challenge_core::progress::{GoalProgress, StatValue};
use challenge_storage::{FlushBatch, GoalWrite, PipelineState, StatWrite};

use crate::cache::GenerationCache;
use crate::rules::{RuleBook, SignalSource};
use foldhash::{HashMap, HashMapExt};

/// One user's rows that flushes work on: the active, unclaimed goal rows and every stat row.
///
/// Every flush replaces the state of each of its users by a successor ([`UserState::after`]), so the parts are
/// shared: most flushes change only stat rows, and the successor then shares the goal rows and the index.
#[derive(Debug, Clone, Default)]
pub struct UserState {
    pub goals: Arc<Vec<Arc<GoalProgress>>>,
    pub stats: Vec<Arc<StatValue>>,
    /// Built by the first flush that needs it. Rows keep their positions for the life of a state and its
    /// successors, so the index carries over.
    listeners: OnceLock<Arc<ListenerIndex>>,
}

impl PartialEq for UserState {
    /// The rows; the index is derived from them.
    fn eq(&self, other: &Self) -> bool {
        self.goals == other.goals && self.stats == other.stats
    }
}

/// For one rule book: the user's goal rows that listen to each (source, stat code), as (row position, rule
/// position in the book). A flush visits only the rows its events concern: with thousands of players, touching
/// every row of every player in a flush was a cache miss per row and the largest cost of evaluation; the rule
/// positions save hashing each row's goal id again.
#[derive(Debug, Clone)]
pub struct ListenerIndex {
    book_revision: u64,
    entries: Vec<(SignalSource, String, Vec<Listener>)>,
}

/// A goal row listening to a stat code, and its rule in the index's book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listener {
    pub row: usize,
    pub rule: usize,
}

impl ListenerIndex {
    fn build(goals: &[Arc<GoalProgress>], book: &RuleBook) -> Self {
        let mut entries: Vec<(SignalSource, String, Vec<Listener>)> = Vec::new();
        for (position, row) in goals.iter().enumerate() {
            let Some(rule_index) = book.rule_index(&row.goal_id) else { continue };
            let rule = book.rule_at(rule_index);
            let listener = Listener { row: position, rule: rule_index };
            for code in &rule.stat_codes {
                match entries.iter_mut().find(|(source, c, _)| *source == rule.source && c == code) {
                    Some((_, _, rows)) => rows.push(listener),
                    None => entries.push((rule.source, code.clone(), vec![listener])),
                }
            }
        }
        Self { book_revision: book.revision(), entries }
    }

    /// The rows listening to this source and stat code, by ascending row position.
    pub fn rows(&self, source: SignalSource, stat_code: &str) -> &[Listener] {
        self.entries
            .iter()
            .find(|(s, code, _)| *s == source && code == stat_code)
            .map_or(&[], |(_, _, rows)| rows.as_slice())
    }
}

/// Per-user pipeline state, valid while the user's generation does not change.
pub type StateCache = GenerationCache<Arc<UserState>>;

/// The state of several users, by user id.
pub type UserStates = HashMap<String, Arc<UserState>>;

/// Splits loaded rows by user; every user of `user_ids` gets an entry, empty when it has no rows.
pub fn split_by_user(state: PipelineState, user_ids: &[String]) -> UserStates {
    type Rows = (Vec<Arc<GoalProgress>>, Vec<Arc<StatValue>>);
    let mut split: HashMap<String, Rows> = user_ids.iter().map(|user| (user.clone(), Rows::default())).collect();
    for goal in state.goals {
        split.entry(goal.user_id.clone()).or_default().0.push(Arc::new(goal));
    }
    for stat in state.stats {
        split.entry(stat.user_id.clone()).or_default().1.push(Arc::new(stat));
    }
    split
        .into_iter()
        .map(|(user, (goals, stats))| {
            (user, Arc::new(UserState { goals: Arc::new(goals), stats, listeners: OnceLock::new() }))
        })
        .collect()
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
    /// The listener index of these rows for `book`: kept from the first use, rebuilt (and not kept) for a
    /// different book until the state is reloaded.
    pub fn listeners(&self, book: &RuleBook) -> Arc<ListenerIndex> {
        let kept = self.listeners.get_or_init(|| Arc::new(ListenerIndex::build(&self.goals, book)));
        if kept.book_revision == book.revision() {
            kept.clone()
        } else {
            Arc::new(ListenerIndex::build(&self.goals, book))
        }
    }

    /// The user's rows after its writes are committed, as the database then holds them.
    pub fn after(&self, writes: &UserWrites<'_>) -> UserState {
        let mut stats = self.stats.clone();
        for write in &writes.stats {
            match stats.iter_mut().find(|row| row.stat_code == write.stat_code) {
                Some(row) => *row = Arc::new(write.applied_to(Some(row))),
                None => stats.push(Arc::new(write.applied_to(None))),
            }
        }
        let mut goals = self.goals.clone();
        if !writes.goals.is_empty() {
            let rows = Arc::make_mut(&mut goals);
            for write in &writes.goals {
                if let Some(row) = rows.iter_mut().find(|row| row.goal_id == write.goal_id) {
                    write.apply_to(Arc::make_mut(row));
                }
            }
        }
        UserState { goals, stats, listeners: self.listeners.clone() }
    }
}
