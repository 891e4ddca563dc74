//! Arguments and results of the [`crate::Store`] methods.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use challenge_core::progress::{GoalProgress, GoalStatus, ProgressSource, StatValue};
use chrono::{DateTime, Utc};

use crate::error::{Result, StorageError};

/// Largest `plugin_state` a goal row may hold (also enforced by a CHECK constraint).
pub const MAX_PLUGIN_STATE_BYTES: usize = 4096;

/// Which goal rows [`crate::Store::user_goals`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoalFilter {
    pub active_only: bool,
    pub challenge_id: Option<String>,
}

/// A goal to assign to a player. Fresh rows start at progress 0, `not_started`.
///
/// [`crate::Store::set_goal_active`] and [`crate::Store::select_goals`] decide activity themselves: they ignore
/// `is_active` and `assigned_at` and stamp `assigned_at = now` when they activate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAssignment {
    pub user_id: String,
    pub goal_id: String,
    pub challenge_id: String,
    pub namespace: String,
    pub is_active: bool,
    pub assigned_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub progress_source: ProgressSource,
}

/// An expired assignment moved to a new period by [`crate::Store::renew_assignments`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewal {
    pub user_id: String,
    pub goal_id: String,
    pub assigned_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// `onExpiry.resetProgress`: progress 0, `not_started`, baseline, plugin state, completion and claim cleared,
    /// `progress_source` set to the one given. Without it progress and status are kept; only the window moves.
    pub reset_progress: bool,
    /// `onExpiry.allowReselection = false`: a claimed goal stays claimed for good (only its window moves).
    pub keep_claimed: bool,
    pub progress_source: ProgressSource,
}

/// Result of [`crate::Store::select_goals`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectionOutcome {
    /// Goals of the challenge that were active before and are now deactivated (re-selected ones excluded), sorted.
    pub replaced: Vec<String>,
    /// Active goals of the challenge after the selection.
    pub active_in_challenge: u64,
}

/// Kind of reward a grant delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RewardType {
    Item,
    Wallet,
}

impl RewardType {
    pub const fn as_str(self) -> &'static str {
        match self {
            RewardType::Item => "ITEM",
            RewardType::Wallet => "WALLET",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self> {
        match s {
            "ITEM" => Ok(RewardType::Item),
            "WALLET" => Ok(RewardType::Wallet),
            other => Err(StorageError::corrupt(format!("unknown reward type '{other}'"))),
        }
    }
}

/// Delivery state of a row of the reward outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantStatus {
    /// Waiting for (another) delivery attempt at `next_attempt_at`.
    Pending,
    Delivered,
    /// Permanently failed (non-retryable error); needs an operator.
    Failed,
}

impl GrantStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Pending => "pending",
            GrantStatus::Delivered => "delivered",
            GrantStatus::Failed => "failed",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(GrantStatus::Pending),
            "delivered" => Ok(GrantStatus::Delivered),
            "failed" => Ok(GrantStatus::Failed),
            other => Err(StorageError::corrupt(format!("unknown grant status '{other}'"))),
        }
    }
}

/// The reward to record in the outbox when a claim succeeds (user and goal come from the [`ClaimRequest`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRewardGrant {
    pub namespace: String,
    pub challenge_id: String,
    pub reward_type: RewardType,
    pub reward_id: String,
    pub quantity: i64,
}

/// One row of the `reward_grants` outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewardGrant {
    pub id: i64,
    /// `claim:{user}:{goal}:{claimed_at millis}`; unique, so one claim can never produce two grants.
    /// Pass it to the reward provider so a retried delivery is not applied twice.
    pub idempotency_key: String,
    pub user_id: String,
    pub namespace: String,
    pub challenge_id: String,
    pub goal_id: String,
    pub reward_type: RewardType,
    pub reward_id: String,
    pub quantity: i64,
    pub status: GrantStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A player's request to claim a goal's reward.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRequest {
    pub user_id: String,
    pub goal_id: String,
    /// Goal ids that must be completed or claimed by this user (any challenge).
    pub prerequisites: Vec<String>,
    /// For rotating goals: the completion must have happened at or after this instant (current period start).
    pub completed_not_before: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
    pub grant: NewRewardGrant,
}

/// Why a claim was refused, in the order the checks run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimRefusal {
    /// Not completed yet (`NotStarted` also when the goal has no row).
    NotCompleted(GoalStatus),
    Inactive,
    Expired,
    AlreadyClaimed {
        claimed_at: DateTime<Utc>,
    },
    /// Completed in an earlier period than `completed_not_before` (`None` when no completion time is recorded).
    CompletionOutdated {
        completed_at: Option<DateTime<Utc>>,
    },
    /// The prerequisites (from the request, in request order) that are not completed.
    PrerequisitesUnmet(Vec<String>),
}

/// Result of [`crate::Store::claim`].
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant, reason = "returned once per claim; boxing would only complicate matching")]
pub enum ClaimOutcome {
    /// The goal is now claimed and the reward sits in the outbox, committed together.
    Claimed {
        row: GoalProgress,
        grant: RewardGrant,
    },
    Refused(ClaimRefusal),
}

/// What the event pipeline needs to know about a set of users.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipelineState {
    /// Active, unclaimed goal rows of the users (ordered by user, goal).
    pub goals: Vec<GoalProgress>,
    /// All stat rows of the users (ordered by user, stat code).
    pub stats: Vec<StatValue>,
}

/// One (user, stat code) update of a flush.
#[derive(Debug, Clone, PartialEq)]
pub struct StatWrite {
    pub user_id: String,
    pub stat_code: String,
    /// Latest statistic value, `None` to keep the stored one (login events only count).
    pub value: Option<f64>,
    /// Events seen since the last flush; added to the stored count.
    pub count_delta: i64,
    pub updated_at: DateTime<Utc>,
}

impl StatWrite {
    /// Rejects what the database would refuse, so one bad write cannot poison a whole flush.
    pub fn validate(&self) -> Result<()> {
        if self.value.is_some_and(f64::is_nan) {
            return Err(invalid(&self.user_id, &self.stat_code, "stat value is NaN"));
        }
        if self.count_delta < 0 {
            return Err(invalid(&self.user_id, &self.stat_code, "negative count delta"));
        }
        Ok(())
    }
}

impl StatWrite {
    /// The row [`crate::Store::apply_flush`] leaves after this write, given the row before it (`None`: no row
    /// yet), for callers that keep copies of rows. Applying a flush's writes one by one gives the same rows as
    /// the flush's merged statement.
    pub fn applied_to(&self, current: Option<&StatValue>) -> StatValue {
        match current {
            Some(row) => StatValue {
                value: self.value.unwrap_or(row.value),
                event_count: row.event_count.saturating_add(self.count_delta),
                updated_at: row.updated_at.max(self.updated_at),
                ..row.clone()
            },
            None => StatValue {
                user_id: self.user_id.clone(),
                stat_code: self.stat_code.clone(),
                value: self.value.unwrap_or(0.0),
                event_count: self.count_delta,
                updated_at: self.updated_at,
            },
        }
    }
}

/// A new state of one goal row, computed by the pipeline. Skipped when the row is inactive or claimed by then.
#[derive(Debug, Clone, PartialEq)]
pub struct GoalWrite {
    pub user_id: String,
    pub goal_id: String,
    pub progress: i64,
    pub status: GoalStatus,
    pub completed_at: Option<DateTime<Utc>>,
    pub baseline_value: Option<i64>,
    pub plugin_state: Option<Vec<u8>>,
    pub progress_source: ProgressSource,
    pub updated_at: DateTime<Utc>,
}

impl GoalWrite {
    /// Rejects what the database would refuse, so one bad write cannot poison a whole flush.
    pub fn validate(&self) -> Result<()> {
        if self.progress < 0 {
            return Err(invalid(&self.user_id, &self.goal_id, "negative progress"));
        }
        if self.status == GoalStatus::Claimed {
            return Err(invalid(&self.user_id, &self.goal_id, "the pipeline cannot claim goals"));
        }
        if self.plugin_state.as_ref().is_some_and(|s| s.len() > MAX_PLUGIN_STATE_BYTES) {
            return Err(invalid(&self.user_id, &self.goal_id, "plugin state larger than 4096 bytes"));
        }
        Ok(())
    }
}

impl GoalWrite {
    /// Applies this write to a copy of the row as [`crate::Store::apply_flush`] applies it to the stored row;
    /// returns `false` (row untouched) where the flush skips it: the row is inactive or claimed.
    pub fn apply_to(&self, row: &mut GoalProgress) -> bool {
        if !row.is_active || row.status == GoalStatus::Claimed {
            return false;
        }
        row.progress = self.progress;
        row.status = self.status;
        row.completed_at = self.completed_at;
        row.baseline_value = self.baseline_value;
        row.plugin_state.clone_from(&self.plugin_state);
        row.progress_source = self.progress_source;
        row.updated_at = self.updated_at;
        true
    }
}

fn invalid(user_id: &str, key: &str, what: &str) -> StorageError {
    StorageError::InvalidInput(format!("{what} (user '{user_id}', '{key}')"))
}

/// Which rows a flush needs: these users' active unclaimed goals and their stat values, optionally narrowed to
/// the goals and stat codes the flush's events concern (the common case: a few of a player's many goals).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineQuery {
    pub user_ids: Vec<String>,
    /// The goal rows wanted: the union over the groups of each group's users times its goals (typically one
    /// group per stat code of the flush: the players who sent it and the goals listening to it). `None`: every
    /// goal of the users.
    pub goal_groups: Option<Vec<GoalGroup>>,
    /// `None`: every stat code of the users.
    pub stat_codes: Option<Vec<String>>,
}

/// [`PipelineQuery::goal_groups`] as hash sets, for matching many rows; `None` wants every row.
pub(crate) struct GoalMatcher<'a>(Option<Vec<(HashSet<&'a str>, HashSet<&'a str>)>>);

impl GoalMatcher<'_> {
    pub(crate) fn wants(&self, user_id: &str, goal_id: &str) -> bool {
        self.0
            .as_ref()
            .is_none_or(|groups| groups.iter().any(|(users, goals)| goals.contains(goal_id) && users.contains(user_id)))
    }
}

/// Some users' rows for some goals (see [`PipelineQuery::goal_groups`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoalGroup {
    pub user_ids: Vec<String>,
    pub goal_ids: Vec<String>,
}

impl PipelineQuery {
    /// Matches rows against [`PipelineQuery::goal_groups`]: the one place both backends narrow goal rows.
    pub(crate) fn goal_matcher(&self) -> GoalMatcher<'_> {
        fn set(ids: &[String]) -> HashSet<&str> {
            ids.iter().map(String::as_str).collect()
        }
        GoalMatcher(
            self.goal_groups
                .as_ref()
                .map(|groups| groups.iter().map(|group| (set(&group.user_ids), set(&group.goal_ids))).collect()),
        )
    }

    pub fn for_users(user_ids: &[String]) -> Self {
        Self { user_ids: user_ids.to_vec(), goal_groups: None, stat_codes: None }
    }
}

/// A plugin evaluation that failed: its goals were not updated. `goal_ids` and `events` are JSON texts
/// (the goal ids and the events as the plugin received them) so the evaluation can be replayed.
#[derive(Debug, Clone, PartialEq)]
pub struct ParkedEvaluation {
    pub user_id: String,
    pub plugin: String,
    pub plugin_version: String,
    pub goal_ids: String,
    pub events: String,
    pub error_kind: String,
    pub error: String,
    pub parked_at: DateTime<Utc>,
}

/// Everything one pipeline flush writes, applied in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlushBatch {
    pub stats: Vec<StatWrite>,
    pub goals: Vec<GoalWrite>,
    pub parked: Vec<ParkedEvaluation>,
}

impl FlushBatch {
    pub fn is_empty(&self) -> bool {
        self.stats.is_empty() && self.goals.is_empty() && self.parked.is_empty()
    }
}

/// Rows touched by [`crate::Store::apply_flush`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushOutcome {
    /// Stat rows inserted or updated (after merging duplicates of the batch).
    pub stat_rows: u64,
    /// Goal rows updated (writes to inactive, claimed or missing rows are skipped).
    pub goal_rows: u64,
}

/// How to open the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// `postgres://…` selects PostgreSQL; `None` selects the embedded SQLite file `<data_dir>/challenge.db`.
    pub database_url: Option<String>,
    pub data_dir: PathBuf,
    pub max_connections: u32,
    pub min_connections: u32,
    /// How long a query waits for a pooled connection (and a new connection to be established) before failing
    /// with [`StorageError::Unavailable`].
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            database_url: None,
            data_dir: PathBuf::from("data"),
            max_connections: 16,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}
