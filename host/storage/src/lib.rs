//! Persistence of the challenge platform behind one [`Store`] trait, with a PostgreSQL implementation
//! (production) and an embedded SQLite one (default, WAL mode).
//!
//! Throughput design: an event costs O(1) row writes. Stat values and event counts live in `user_stat_values`
//! (one row per user and stat code); goal rows record where their progress comes from and are written only when
//! a goal's state really changes (see `challenge_core::progress`). Claims write their reward into the
//! `reward_grants` outbox in the same transaction, so a reward is never lost and never granted twice.

mod error;
mod logic;
mod postgres;
mod registry;
mod registry_postgres;
mod registry_sqlite;
mod rotation_runs;
mod sqlite;
mod types;

use std::sync::Arc;

use async_trait::async_trait;
use challenge_core::progress::{GoalProgress, StatValue};
use chrono::{DateTime, Utc};

pub use error::{Result, StorageError};
pub use postgres::PostgresStore;
pub use registry::{
    ActivationOutcome, DeleteOutcome, InsertOutcome, NewPluginVersion, PluginActivation, PluginRegistry, PluginStatus,
    PluginVersion, RollbackOutcome,
};
pub use rotation_runs::{RotationRun, RotationRuns};
pub use sqlite::SqliteStore;
pub use types::{
    ClaimOutcome, ClaimRefusal, ClaimRequest, FlushBatch, FlushOutcome, GoalFilter, GoalGroup, GoalWrite, GrantStatus,
    MAX_PLUGIN_STATE_BYTES, NewAssignment, NewRewardGrant, ParkedEvaluation, PipelineQuery, PipelineState, Renewal,
    RewardGrant, RewardType, SelectionOutcome, StatWrite, StoreOptions,
};

/// File name of the embedded database inside the data directory.
pub const SQLITE_FILE_NAME: &str = "challenge.db";

/// Everything the host persists. Used as `Arc<dyn Store>`; both implementations give the same results.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `"postgres"` or `"sqlite"`.
    fn backend(&self) -> &'static str;

    /// Round trip to the database.
    async fn ping(&self) -> Result<()>;

    /// Applies the embedded migrations (idempotent; concurrent callers are serialized).
    async fn migrate(&self) -> Result<()>;

    /// Whether every embedded migration has been applied successfully (for readiness).
    async fn migrations_applied(&self) -> Result<bool>;

    /// Closes the pool(s); later calls fail with [`StorageError::Unavailable`].
    async fn close(&self);

    /// The user's goal rows, ordered by challenge id then goal id.
    async fn user_goals(&self, user_id: &str, filter: &GoalFilter) -> Result<Vec<GoalProgress>>;

    async fn user_goal(&self, user_id: &str, goal_id: &str) -> Result<Option<GoalProgress>>;

    /// The user's stat rows, ordered by stat code.
    async fn user_stats(&self, user_id: &str) -> Result<Vec<StatValue>>;

    /// What [`Store::user_goals`] (every row) and [`Store::user_stats`] return, in one statement on one connection:
    /// the player API's cache-miss read.
    async fn player_state(&self, user_id: &str) -> Result<(Vec<GoalProgress>, Vec<StatValue>)>;

    /// Inserts the assignments that have no row yet (existing rows are untouched) in one transaction.
    /// Returns how many rows were inserted.
    async fn insert_missing_assignments(&self, assignments: &[NewAssignment], now: DateTime<Utc>) -> Result<u64>;

    /// Moves expired assignments to a new period in one batched statement per chunk: rows whose `expires_at` is set
    /// and `<= now` get the renewal's window and its `onExpiry` treatment (see [`Renewal`]); rows not expired (a
    /// concurrent caller renewed them first) or missing are left alone. Returns how many rows were renewed.
    async fn renew_assignments(&self, renewals: &[Renewal], now: DateTime<Utc>) -> Result<u64>;

    /// Activates or deactivates one goal, creating its row if missing. Never changes progress, status or baseline.
    /// Activation sets `assigned_at = now` and `expires_at = assignment.expires_at`; deactivation keeps both.
    async fn set_goal_active(
        &self,
        assignment: &NewAssignment,
        active: bool,
        now: DateTime<Utc>,
    ) -> Result<GoalProgress>;

    /// Activates `activate` (all of `challenge_id`) for the user, first deactivating the challenge's other active
    /// goals when `replace_existing`. All or nothing; repeated goal ids are ignored.
    async fn select_goals(
        &self,
        user_id: &str,
        challenge_id: &str,
        activate: &[NewAssignment],
        replace_existing: bool,
        now: DateTime<Utc>,
    ) -> Result<SelectionOutcome>;

    /// Claims a goal and records its reward in the outbox, atomically, under a row lock: a goal is claimed at most
    /// once however many claims race.
    async fn claim(&self, request: &ClaimRequest) -> Result<ClaimOutcome>;

    /// Pending grants whose `next_attempt_at <= now`, oldest first.
    async fn due_grants(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<RewardGrant>>;

    /// Marks a pending or failed grant delivered. Returns false when no such grant is left to mark.
    async fn mark_grant_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<bool>;

    /// Counts a failed attempt of a pending grant and schedules the next one. Returns false if not pending.
    async fn reschedule_grant(&self, id: i64, error: &str, next_attempt_at: DateTime<Utc>) -> Result<bool>;

    /// Counts a failed attempt and stops retrying (non-retryable error). Returns false if not pending.
    async fn mark_grant_failed(&self, id: i64, error: &str) -> Result<bool>;

    async fn grant(&self, id: i64) -> Result<Option<RewardGrant>>;

    /// Takes up to `limit` due pending grants (`next_attempt_at <= now`, oldest first) for delivery by moving their
    /// `next_attempt_at` to `lease_until`, atomically: while the lease runs no other caller (another worker or
    /// instance) gets them. A deliverer that dies mid-way leaves its grants due again once the lease ends.
    /// The returned grants carry `next_attempt_at = lease_until`, ordered by id.
    async fn lease_due_grants(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RewardGrant>>;

    /// Leases one grant like [`Store::lease_due_grants`] if it is pending and due; `None` when it is settled or
    /// someone else holds its lease.
    async fn lease_grant(&self, id: i64, now: DateTime<Utc>, lease_until: DateTime<Utc>)
    -> Result<Option<RewardGrant>>;

    /// Active unclaimed goals and all stats of these users, in two queries.
    async fn load_pipeline_state(&self, query: &PipelineQuery) -> Result<PipelineState>;

    /// Applies a flush in one transaction: upserts stats (values coalesce, counts add up) and updates goal rows
    /// that are still active and unclaimed. Every write is validated first; an invalid one fails the whole call
    /// with [`StorageError::InvalidInput`] before anything is written.
    async fn apply_flush(&self, batch: &FlushBatch) -> Result<FlushOutcome>;

    /// Parked (failed) plugin evaluations not yet replayed, oldest first.
    async fn parked_evaluations(&self, limit: u32) -> Result<Vec<ParkedEvaluation>>;

    /// The rule plugin registry (versions, activations), in the same database.
    fn registry(&self) -> &dyn PluginRegistry;

    /// Background auto-assignment runs of rotation periods, in the same database.
    fn rotation_runs(&self) -> &dyn RotationRuns;
}

/// Opens PostgreSQL for a `postgres://` / `postgresql://` URL, otherwise the SQLite file
/// `<data_dir>/challenge.db` (directory created). Connects eagerly: an unreachable server gives
/// [`StorageError::Unavailable`] after at most `acquire_timeout`. Does not migrate.
pub async fn open_store(options: &StoreOptions) -> Result<Arc<dyn Store>> {
    match options.database_url.as_deref().map(str::trim).filter(|url| !url.is_empty()) {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Arc::new(PostgresStore::connect(url, options).await?))
        }
        Some(url) if url.starts_with("sqlite:") => Err(StorageError::InvalidInput(
            "SQLite is configured through the data directory, not DATABASE_URL".to_owned(),
        )),
        Some(_) => Err(StorageError::InvalidInput("DATABASE_URL must start with postgres://".to_owned())),
        None => Ok(Arc::new(SqliteStore::open(&options.data_dir.join(SQLITE_FILE_NAME), options).await?)),
    }
}
