//! Embedded SQLite implementation (the default when no DATABASE_URL is set).
//!
//! One file in WAL mode. All writes go through a single-connection writer pool with `BEGIN IMMEDIATE`
//! transactions, so writers queue in the pool instead of spinning in SQLite's busy handler, and a transaction's
//! reads and writes see one consistent snapshot (this is also the claim's row lock). Reads use a separate pool
//! whose connections are `query_only`. Timestamps are stored as INTEGER milliseconds since the epoch (UTC).

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use challenge_core::progress::{GoalProgress, StatValue};
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, Sqlite, Transaction};

use crate::Store;
use crate::error::{Result, StorageError};
use crate::logic::{
    claim_refusal, idempotency_key, instrument, last_goal_writes, merge_stat_writes, parse_source, parse_status,
    renewal_set, selection_assignments, unmet_prerequisites,
};
use crate::types::{
    ClaimOutcome, ClaimRefusal, ClaimRequest, FlushBatch, FlushOutcome, GoalFilter, GoalWrite, GrantStatus,
    NewAssignment, ParkedEvaluation, PipelineQuery, PipelineState, Renewal, RewardGrant, RewardType, SelectionOutcome,
    StatWrite, StoreOptions,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// Columns bound per row by a bulk insert; rows per statement stay far below SQLite's 32766 parameters.
const INSERT_COLUMNS: usize = 10;
const INSERT_CHUNK: usize = 500;

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

macro_rules! goal_columns {
    () => {
        "user_id, goal_id, challenge_id, namespace, progress, status, completed_at, claimed_at, is_active, \
         assigned_at, expires_at, baseline_value, plugin_state, progress_source, created_at, updated_at"
    };
}

macro_rules! grant_columns {
    () => {
        "id, idempotency_key, user_id, namespace, challenge_id, goal_id, reward_type, reward_id, quantity, status, \
         attempts, next_attempt_at, last_error, created_at, delivered_at"
    };
}

macro_rules! stat_columns {
    () => {
        "user_id, stat_code, value, event_count, updated_at"
    };
}

/// Reward grant leases (kept apart from the rest of the store).
mod outbox;
/// The player API's one-statement read.
mod player;

/// The embedded store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

/// Columns bound per row by a renewal.
const RENEWAL_COLUMNS: usize = 8;

fn renewal_sql(rows: usize) -> String {
    let tuple = format!("({})", ["?"; RENEWAL_COLUMNS].join(", "));
    format!(
        "WITH r(u, g, a, e, x, k, s, t) AS (VALUES {}) UPDATE user_goal_progress {} FROM r \
         WHERE user_id = r.u AND goal_id = r.g AND expires_at IS NOT NULL AND expires_at <= r.t",
        vec![tuple.as_str(); rows].join(", "),
        renewal_set!()
    )
}

impl SqliteStore {
    /// Opens (creating it and its directory if needed) the database file at `path`.
    pub async fn open(path: &Path, options: &StoreOptions) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(|err| {
                StorageError::Unavailable(format!("cannot create data directory {}: {err}", dir.display()))
            })?;
        }
        let base = SqliteConnectOptions::new()
            .filename(path)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed claim or flush survives a power cut, not only a process crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("temp_store", "memory");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(options.acquire_timeout.max(BUSY_TIMEOUT))
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(base.clone().create_if_missing(true))
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .min_connections(options.min_connections.min(options.max_connections.max(1)))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(base.pragma("query_only", "ON"))
            .await?;
        Ok(SqliteStore { writer, reader })
    }

    /// The writer pool (one connection; for tests and administrative tooling).
    pub fn writer_pool(&self) -> &SqlitePool {
        &self.writer
    }

    async fn write_tx(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn opt_millis(at: Option<DateTime<Utc>>) -> Option<i64> {
    at.map(millis)
}

fn time(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>> {
    let value: i64 = row.try_get(column)?;
    DateTime::from_timestamp_millis(value)
        .ok_or_else(|| StorageError::corrupt(format!("{column} = {value} is not a valid timestamp")))
}

fn opt_time(row: &SqliteRow, column: &str) -> Result<Option<DateTime<Utc>>> {
    match row.try_get::<Option<i64>, _>(column)? {
        Some(_) => time(row, column).map(Some),
        None => Ok(None),
    }
}

/// JSON array of strings, bound as one parameter and expanded with `json_each` (SQLite has no array type).
fn json_list<S: AsRef<str>>(items: &[S]) -> String {
    let mut out = String::with_capacity(items.len() * 16 + 2);
    out.push('[');
    for (at, item) in items.iter().enumerate() {
        if at > 0 {
            out.push(',');
        }
        out.push('"');
        for c in item.as_ref().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push(']');
    out
}

fn goal_from_row(row: &SqliteRow) -> Result<GoalProgress> {
    Ok(GoalProgress {
        user_id: row.try_get("user_id")?,
        goal_id: row.try_get("goal_id")?,
        challenge_id: row.try_get("challenge_id")?,
        namespace: row.try_get("namespace")?,
        progress: row.try_get("progress")?,
        status: parse_status(row.try_get("status")?)?,
        completed_at: opt_time(row, "completed_at")?,
        claimed_at: opt_time(row, "claimed_at")?,
        is_active: row.try_get("is_active")?,
        assigned_at: opt_time(row, "assigned_at")?,
        expires_at: opt_time(row, "expires_at")?,
        baseline_value: row.try_get("baseline_value")?,
        plugin_state: row.try_get("plugin_state")?,
        progress_source: parse_source(row.try_get("progress_source")?)?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

fn stat_from_row(row: &SqliteRow) -> Result<StatValue> {
    Ok(StatValue {
        user_id: row.try_get("user_id")?,
        stat_code: row.try_get("stat_code")?,
        value: row.try_get::<Option<f64>, _>("value")?.unwrap_or(0.0),
        event_count: row.try_get("event_count")?,
        updated_at: time(row, "updated_at")?,
    })
}

fn grant_from_row(row: &SqliteRow) -> Result<RewardGrant> {
    Ok(RewardGrant {
        id: row.try_get("id")?,
        idempotency_key: row.try_get("idempotency_key")?,
        user_id: row.try_get("user_id")?,
        namespace: row.try_get("namespace")?,
        challenge_id: row.try_get("challenge_id")?,
        goal_id: row.try_get("goal_id")?,
        reward_type: RewardType::parse(row.try_get("reward_type")?)?,
        reward_id: row.try_get("reward_id")?,
        quantity: row.try_get("quantity")?,
        status: GrantStatus::parse(row.try_get("status")?)?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: time(row, "next_attempt_at")?,
        last_error: row.try_get("last_error")?,
        created_at: time(row, "created_at")?,
        delivered_at: opt_time(row, "delivered_at")?,
    })
}

fn decode_all<T>(rows: &[SqliteRow], decode: fn(&SqliteRow) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(decode).collect()
}

/// `INSERT … VALUES (?, …), (?, …) …` for `rows` assignment rows.
fn bulk_insert_sql(rows: usize) -> String {
    let tuple = format!("({})", ["?"; INSERT_COLUMNS].join(", "));
    format!(
        "INSERT INTO user_goal_progress (user_id, goal_id, challenge_id, namespace, is_active, assigned_at, \
         expires_at, progress_source, created_at, updated_at) VALUES {} ON CONFLICT (user_id, goal_id) DO NOTHING",
        vec![tuple.as_str(); rows].join(", ")
    )
}

impl SqliteStore {
    async fn claim_in(&self, tx: &mut Transaction<'static, Sqlite>, req: &ClaimRequest) -> Result<ClaimOutcome> {
        let row = sqlx::query(concat!(
            "SELECT ",
            goal_columns!(),
            " FROM user_goal_progress WHERE user_id = ? AND goal_id = ?"
        ))
        .bind(&req.user_id)
        .bind(&req.goal_id)
        .fetch_optional(&mut **tx)
        .await?;
        let row = row.as_ref().map(goal_from_row).transpose()?;
        if let Some(refusal) = claim_refusal(row.as_ref(), req)? {
            return Ok(ClaimOutcome::Refused(refusal));
        }
        if !req.prerequisites.is_empty() {
            let done: Vec<String> = sqlx::query_scalar(
                "SELECT goal_id FROM user_goal_progress WHERE user_id = ? \
                 AND goal_id IN (SELECT value FROM json_each(?)) AND status IN ('completed', 'claimed')",
            )
            .bind(&req.user_id)
            .bind(json_list(&req.prerequisites))
            .fetch_all(&mut **tx)
            .await?;
            let unmet = unmet_prerequisites(&req.prerequisites, &done);
            if !unmet.is_empty() {
                return Ok(ClaimOutcome::Refused(ClaimRefusal::PrerequisitesUnmet(unmet)));
            }
        }
        let now = millis(req.now);
        let claimed = sqlx::query(concat!(
            "UPDATE user_goal_progress SET status = 'claimed', claimed_at = ?3, updated_at = ?3 \
             WHERE user_id = ?1 AND goal_id = ?2 RETURNING ",
            goal_columns!()
        ))
        .bind(&req.user_id)
        .bind(&req.goal_id)
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
        let grant = sqlx::query(concat!(
            "INSERT INTO reward_grants (idempotency_key, user_id, namespace, challenge_id, goal_id, reward_type, \
             reward_id, quantity, next_attempt_at, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9) RETURNING ",
            grant_columns!()
        ))
        .bind(idempotency_key(&req.user_id, &req.goal_id, req.now))
        .bind(&req.user_id)
        .bind(&req.grant.namespace)
        .bind(&req.grant.challenge_id)
        .bind(&req.goal_id)
        .bind(req.grant.reward_type.as_str())
        .bind(&req.grant.reward_id)
        .bind(req.grant.quantity)
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
        Ok(ClaimOutcome::Claimed { row: goal_from_row(&claimed)?, grant: grant_from_row(&grant)? })
    }

    async fn select_in(
        &self,
        tx: &mut Transaction<'static, Sqlite>,
        user_id: &str,
        challenge_id: &str,
        activate: &[&NewAssignment],
        replace_existing: bool,
        now: DateTime<Utc>,
    ) -> Result<SelectionOutcome> {
        let now = millis(now);
        let replaced: Vec<String> = if replace_existing {
            let goal_ids: Vec<&str> = activate.iter().map(|a| a.goal_id.as_str()).collect();
            let mut replaced: Vec<String> = sqlx::query_scalar(
                "UPDATE user_goal_progress SET is_active = 0, updated_at = ?3 \
                 WHERE user_id = ?1 AND challenge_id = ?2 AND is_active = 1 \
                 AND goal_id NOT IN (SELECT value FROM json_each(?4)) RETURNING goal_id",
            )
            .bind(user_id)
            .bind(challenge_id)
            .bind(now)
            .bind(json_list(&goal_ids))
            .fetch_all(&mut **tx)
            .await?;
            replaced.sort();
            replaced
        } else {
            Vec::new()
        };
        for assignment in activate {
            sqlx::query(
                "INSERT INTO user_goal_progress (user_id, goal_id, challenge_id, namespace, is_active, assigned_at, \
                   expires_at, progress_source, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?7, ?5, ?5) \
                 ON CONFLICT (user_id, goal_id) DO UPDATE SET is_active = 1, assigned_at = excluded.assigned_at, \
                   expires_at = excluded.expires_at, updated_at = excluded.updated_at",
            )
            .bind(user_id)
            .bind(&assignment.goal_id)
            .bind(challenge_id)
            .bind(&assignment.namespace)
            .bind(now)
            .bind(opt_millis(assignment.expires_at))
            .bind(assignment.progress_source.as_str())
            .execute(&mut **tx)
            .await?;
        }
        let active: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM user_goal_progress WHERE user_id = ? AND challenge_id = ? AND is_active = 1",
        )
        .bind(user_id)
        .bind(challenge_id)
        .fetch_one(&mut **tx)
        .await?;
        Ok(SelectionOutcome { replaced, active_in_challenge: u64::try_from(active).unwrap_or(0) })
    }

    async fn insert_in(
        &self,
        tx: &mut Transaction<'static, Sqlite>,
        assignments: &[NewAssignment],
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let now = millis(now);
        let mut inserted = 0;
        for chunk in assignments.chunks(INSERT_CHUNK) {
            let mut query = sqlx::query(AssertSqlSafe(bulk_insert_sql(chunk.len())));
            for a in chunk {
                query = query
                    .bind(&a.user_id)
                    .bind(&a.goal_id)
                    .bind(&a.challenge_id)
                    .bind(&a.namespace)
                    .bind(a.is_active)
                    .bind(opt_millis(a.assigned_at))
                    .bind(opt_millis(a.expires_at))
                    .bind(a.progress_source.as_str())
                    .bind(now)
                    .bind(now);
            }
            inserted += query.execute(&mut **tx).await?.rows_affected();
        }
        Ok(inserted)
    }

    async fn flush_in(
        &self,
        tx: &mut Transaction<'static, Sqlite>,
        stats: &[StatWrite],
        goals: &[&GoalWrite],
        parked: &[ParkedEvaluation],
    ) -> Result<FlushOutcome> {
        let mut outcome = FlushOutcome::default();
        for stat in stats {
            outcome.stat_rows += sqlx::query(
                "INSERT INTO user_stat_values (user_id, stat_code, value, event_count, updated_at) \
                 VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (user_id, stat_code) DO UPDATE SET \
                   value = COALESCE(excluded.value, user_stat_values.value), \
                   event_count = user_stat_values.event_count + excluded.event_count, \
                   updated_at = MAX(user_stat_values.updated_at, excluded.updated_at)",
            )
            .bind(&stat.user_id)
            .bind(&stat.stat_code)
            .bind(stat.value)
            .bind(stat.count_delta)
            .bind(millis(stat.updated_at))
            .execute(&mut **tx)
            .await?
            .rows_affected();
        }
        for goal in goals {
            outcome.goal_rows += sqlx::query(
                "UPDATE user_goal_progress SET progress = ?, status = ?, completed_at = ?, baseline_value = ?, \
                   plugin_state = ?, progress_source = ?, updated_at = ? \
                 WHERE user_id = ? AND goal_id = ? AND is_active = 1 AND status <> 'claimed'",
            )
            .bind(goal.progress)
            .bind(goal.status.as_str())
            .bind(opt_millis(goal.completed_at))
            .bind(goal.baseline_value)
            .bind(goal.plugin_state.as_deref())
            .bind(goal.progress_source.as_str())
            .bind(millis(goal.updated_at))
            .bind(&goal.user_id)
            .bind(&goal.goal_id)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        }
        for parked in parked {
            sqlx::query(
                "INSERT INTO parked_evaluations \
                   (user_id, plugin, plugin_version, goal_ids, events, error_kind, error, parked_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&parked.user_id)
            .bind(&parked.plugin)
            .bind(&parked.plugin_version)
            .bind(&parked.goal_ids)
            .bind(&parked.events)
            .bind(&parked.error_kind)
            .bind(&parked.error)
            .bind(millis(parked.parked_at))
            .execute(&mut **tx)
            .await?;
        }
        Ok(outcome)
    }
}

/// Runs `work` inside a `BEGIN IMMEDIATE` transaction: commit on success, roll back (by drop) on error.
macro_rules! in_write_transaction {
    ($store:expr, |$tx:ident| $work:expr) => {{
        let mut $tx = $store.write_tx().await?;
        let value = $work.await?;
        $tx.commit().await?;
        Ok(value)
    }};
}

#[async_trait]
impl Store for SqliteStore {
    fn registry(&self) -> &dyn crate::PluginRegistry {
        self
    }

    fn rotation_runs(&self) -> &dyn crate::RotationRuns {
        self
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<()> {
        instrument("ping", async {
            sqlx::query("SELECT 1").execute(&self.reader).await?;
            Ok(())
        })
        .await
    }

    async fn migrate(&self) -> Result<()> {
        instrument("migrate", async { Ok(MIGRATOR.run(&self.writer).await?) }).await
    }

    async fn migrations_applied(&self) -> Result<bool> {
        instrument("migrations_applied", async {
            let exists: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
            )
            .fetch_one(&self.reader)
            .await?;
            if !exists {
                return Ok(false);
            }
            let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.reader)
                .await?;
            Ok(MIGRATOR.iter().all(|m| applied.contains(&m.version)))
        })
        .await
    }

    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    async fn user_goals(&self, user_id: &str, filter: &GoalFilter) -> Result<Vec<GoalProgress>> {
        instrument("user_goals", async {
            let rows = sqlx::query(concat!(
                "SELECT ",
                goal_columns!(),
                " FROM user_goal_progress WHERE user_id = ?1 AND (NOT ?2 OR is_active = 1) \
                  AND (?3 IS NULL OR challenge_id = ?3) ORDER BY challenge_id, goal_id"
            ))
            .bind(user_id)
            .bind(filter.active_only)
            .bind(filter.challenge_id.as_deref())
            .fetch_all(&self.reader)
            .await?;
            decode_all(&rows, goal_from_row)
        })
        .await
    }

    async fn user_goal(&self, user_id: &str, goal_id: &str) -> Result<Option<GoalProgress>> {
        instrument("user_goal", async {
            let row = sqlx::query(concat!(
                "SELECT ",
                goal_columns!(),
                " FROM user_goal_progress WHERE user_id = ? AND goal_id = ?"
            ))
            .bind(user_id)
            .bind(goal_id)
            .fetch_optional(&self.reader)
            .await?;
            row.as_ref().map(goal_from_row).transpose()
        })
        .await
    }

    async fn player_state(&self, user_id: &str) -> Result<(Vec<GoalProgress>, Vec<StatValue>)> {
        instrument("player_state", self.player_rows(user_id)).await
    }

    async fn user_stats(&self, user_id: &str) -> Result<Vec<StatValue>> {
        instrument("user_stats", async {
            let rows = sqlx::query(concat!(
                "SELECT ",
                stat_columns!(),
                " FROM user_stat_values WHERE user_id = ? ORDER BY stat_code"
            ))
            .bind(user_id)
            .fetch_all(&self.reader)
            .await?;
            decode_all(&rows, stat_from_row)
        })
        .await
    }

    async fn insert_missing_assignments(&self, assignments: &[NewAssignment], now: DateTime<Utc>) -> Result<u64> {
        instrument("insert_missing_assignments", async {
            if assignments.is_empty() {
                return Ok(0);
            }
            in_write_transaction!(self, |tx| self.insert_in(&mut tx, assignments, now))
        })
        .await
    }

    async fn renew_assignments(&self, renewals: &[Renewal], now: DateTime<Utc>) -> Result<u64> {
        instrument("renew_assignments", async {
            let now = millis(now);
            let mut renewed = 0;
            // Each chunk is one statement on its own: a renewal is idempotent, so a partial run is safe to repeat.
            for chunk in renewals.chunks(INSERT_CHUNK) {
                let mut query = sqlx::query(AssertSqlSafe(renewal_sql(chunk.len())));
                for r in chunk {
                    query = query
                        .bind(&r.user_id)
                        .bind(&r.goal_id)
                        .bind(millis(r.assigned_at))
                        .bind(opt_millis(r.expires_at))
                        .bind(r.reset_progress)
                        .bind(r.keep_claimed)
                        .bind(r.progress_source.as_str())
                        .bind(now);
                }
                renewed += query.execute(&self.writer).await?.rows_affected();
            }
            Ok(renewed)
        })
        .await
    }

    async fn set_goal_active(
        &self,
        assignment: &NewAssignment,
        active: bool,
        now: DateTime<Utc>,
    ) -> Result<GoalProgress> {
        instrument("set_goal_active", async {
            let row = sqlx::query(concat!(
                "INSERT INTO user_goal_progress (user_id, goal_id, challenge_id, namespace, is_active, assigned_at, \
                   expires_at, progress_source, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN ?5 THEN ?6 END, CASE WHEN ?5 THEN ?7 END, ?8, ?6, ?6) \
                 ON CONFLICT (user_id, goal_id) DO UPDATE SET is_active = excluded.is_active, \
                   assigned_at = CASE WHEN excluded.is_active THEN excluded.assigned_at \
                     ELSE user_goal_progress.assigned_at END, \
                   expires_at = CASE WHEN excluded.is_active THEN excluded.expires_at \
                     ELSE user_goal_progress.expires_at END, \
                   updated_at = excluded.updated_at \
                 RETURNING ",
                goal_columns!()
            ))
            .bind(&assignment.user_id)
            .bind(&assignment.goal_id)
            .bind(&assignment.challenge_id)
            .bind(&assignment.namespace)
            .bind(active)
            .bind(millis(now))
            .bind(opt_millis(assignment.expires_at))
            .bind(assignment.progress_source.as_str())
            .fetch_one(&self.writer)
            .await?;
            goal_from_row(&row)
        })
        .await
    }

    async fn select_goals(
        &self,
        user_id: &str,
        challenge_id: &str,
        activate: &[NewAssignment],
        replace_existing: bool,
        now: DateTime<Utc>,
    ) -> Result<SelectionOutcome> {
        instrument("select_goals", async {
            let activate = selection_assignments(user_id, challenge_id, activate)?;
            in_write_transaction!(self, |tx| self.select_in(
                &mut tx,
                user_id,
                challenge_id,
                &activate,
                replace_existing,
                now
            ))
        })
        .await
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<ClaimOutcome> {
        instrument("claim", async { in_write_transaction!(self, |tx| self.claim_in(&mut tx, request)) }).await
    }

    async fn due_grants(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<RewardGrant>> {
        instrument("due_grants", async {
            let rows = sqlx::query(concat!(
                "SELECT ",
                grant_columns!(),
                " FROM reward_grants WHERE status = 'pending' AND next_attempt_at <= ? \
                  ORDER BY next_attempt_at, id LIMIT ?"
            ))
            .bind(millis(now))
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
            decode_all(&rows, grant_from_row)
        })
        .await
    }

    async fn mark_grant_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        instrument("mark_grant_delivered", async {
            let done = sqlx::query(
                "UPDATE reward_grants SET status = 'delivered', delivered_at = ? WHERE id = ? AND status <> 'delivered'",
            )
            .bind(millis(now))
            .bind(id)
            .execute(&self.writer)
            .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn reschedule_grant(&self, id: i64, error: &str, next_attempt_at: DateTime<Utc>) -> Result<bool> {
        instrument("reschedule_grant", async {
            let done = sqlx::query(
                "UPDATE reward_grants SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? \
                 WHERE id = ? AND status = 'pending'",
            )
            .bind(error)
            .bind(millis(next_attempt_at))
            .bind(id)
            .execute(&self.writer)
            .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn mark_grant_failed(&self, id: i64, error: &str) -> Result<bool> {
        instrument("mark_grant_failed", async {
            let done = sqlx::query(
                "UPDATE reward_grants SET status = 'failed', attempts = attempts + 1, last_error = ? \
                 WHERE id = ? AND status = 'pending'",
            )
            .bind(error)
            .bind(id)
            .execute(&self.writer)
            .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn grant(&self, id: i64) -> Result<Option<RewardGrant>> {
        instrument("grant", async {
            let row = sqlx::query(concat!("SELECT ", grant_columns!(), " FROM reward_grants WHERE id = ?"))
                .bind(id)
                .fetch_optional(&self.reader)
                .await?;
            row.as_ref().map(grant_from_row).transpose()
        })
        .await
    }

    async fn lease_due_grants(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RewardGrant>> {
        instrument("lease_due_grants", self.lease_due(now, lease_until, limit)).await
    }

    async fn lease_grant(
        &self,
        id: i64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<RewardGrant>> {
        instrument("lease_grant", self.lease_one(id, now, lease_until)).await
    }

    async fn load_pipeline_state(&self, query: &PipelineQuery) -> Result<PipelineState> {
        instrument("load_pipeline_state", async {
            if query.user_ids.is_empty() {
                return Ok(PipelineState::default());
            }
            let users = json_list(&query.user_ids);
            let goals = sqlx::query(concat!(
                "SELECT ",
                goal_columns!(),
                " FROM user_goal_progress WHERE user_id IN (SELECT value FROM json_each(?1)) \
                  AND is_active = 1 AND status <> 'claimed' ORDER BY user_id, goal_id"
            ))
            .bind(&users)
            .fetch_all(&self.reader)
            .await?;
            let stats = sqlx::query(concat!(
                "SELECT ",
                stat_columns!(),
                " FROM user_stat_values WHERE user_id IN (SELECT value FROM json_each(?1)) \
                  AND (?2 IS NULL OR stat_code IN (SELECT value FROM json_each(?2))) ORDER BY user_id, stat_code"
            ))
            .bind(&users)
            .bind(query.stat_codes.as_deref().map(json_list))
            .fetch_all(&self.reader)
            .await?;
            let mut goals = decode_all(&goals, goal_from_row)?;
            let wanted_goals = query.goal_matcher();
            goals.retain(|goal| wanted_goals.wants(&goal.user_id, &goal.goal_id));
            Ok(PipelineState { goals, stats: decode_all(&stats, stat_from_row)? })
        })
        .await
    }

    async fn apply_flush(&self, batch: &FlushBatch) -> Result<FlushOutcome> {
        instrument("apply_flush", async {
            if batch.is_empty() {
                return Ok(FlushOutcome::default());
            }
            let stats = merge_stat_writes(&batch.stats)?;
            let goals = last_goal_writes(&batch.goals)?;
            in_write_transaction!(self, |tx| self.flush_in(&mut tx, &stats, &goals, &batch.parked))
        })
        .await
    }

    async fn parked_evaluations(&self, limit: u32) -> Result<Vec<ParkedEvaluation>> {
        instrument("parked_evaluations", async {
            let rows = sqlx::query(
                "SELECT user_id, plugin, plugin_version, goal_ids, events, error_kind, error, parked_at \
                 FROM parked_evaluations WHERE replayed_at IS NULL ORDER BY id LIMIT ?",
            )
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(ParkedEvaluation {
                        user_id: row.try_get("user_id")?,
                        plugin: row.try_get("plugin")?,
                        plugin_version: row.try_get("plugin_version")?,
                        goal_ids: row.try_get("goal_ids")?,
                        events: row.try_get("events")?,
                        error_kind: row.try_get("error_kind")?,
                        error: row.try_get("error")?,
                        parked_at: time(row, "parked_at")?,
                    })
                })
                .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_list_escapes_strings() {
        assert_eq!(json_list(&["a", "b\"c", "d\\e", "\n"]), r#"["a","b\"c","d\\e","\u000a"]"#);
        assert_eq!(json_list::<&str>(&[]), "[]");
    }

    #[test]
    fn bulk_insert_sql_has_one_tuple_per_row() {
        let sql = bulk_insert_sql(3);
        assert_eq!(sql.matches('?').count(), 3 * INSERT_COLUMNS);
    }
}
