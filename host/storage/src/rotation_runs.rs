//! Progress of background auto-assignment runs (`rotation_runs`), one per (goal, period), and the walk over known
//! players. A run belongs to whoever holds its lease; every write checks the owner, so an instance that lost its
//! lease (paused too long) stops instead of writing over the new owner's cursor.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::error::Result;
use crate::logic::instrument;
use crate::postgres::PostgresStore;
use crate::sqlite::SqliteStore;

/// One auto-assignment run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationRun {
    pub run_key: String,
    pub period_key: String,
    /// `running` or `completed`.
    pub state: String,
    pub owner: String,
    pub lease_until: DateTime<Utc>,
    /// The last user id done (`""`: none yet).
    pub cursor: String,
    /// Rows assigned or renewed so far.
    pub assigned: i64,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl RotationRun {
    pub fn is_completed(&self) -> bool {
        self.state == "completed"
    }
}

#[async_trait]
pub trait RotationRuns: Send + Sync {
    /// Takes the run for `owner`: creates it, or takes it over when it is still running and its lease ended (or
    /// `owner` already holds it). `None` when it is completed or another owner's lease is live. Of several
    /// instances calling at once, exactly one gets it.
    async fn claim_run(
        &self,
        run_key: &str,
        period_key: &str,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<RotationRun>>;

    /// Records a finished chunk (new cursor, rows added) and extends the lease. False when `owner` lost the run.
    async fn advance_run(
        &self,
        run_key: &str,
        period_key: &str,
        owner: &str,
        cursor: &str,
        assigned: u64,
        lease_until: DateTime<Utc>,
    ) -> Result<bool>;

    /// Marks the run completed. False when `owner` lost the run.
    async fn complete_run(&self, run_key: &str, period_key: &str, owner: &str, now: DateTime<Utc>) -> Result<bool>;

    async fn run(&self, run_key: &str, period_key: &str) -> Result<Option<RotationRun>>;

    /// Up to `limit` known players (a row in `user_goal_progress` or `user_stat_values`) with ids after `after`,
    /// in id order.
    async fn known_users(&self, after: &str, limit: u32) -> Result<Vec<String>>;
}

const RUN_COLUMNS: &str = "run_key, period_key, state, owner, lease_until, cursor, assigned, started_at, completed_at";

/// Both databases take the same statements, with `?N` (SQLite) or `$N` (PostgreSQL) placeholders.
fn claim_sql(placeholder: char) -> String {
    format!(
        "INSERT INTO rotation_runs (run_key, period_key, state, owner, lease_until, cursor, assigned, started_at, \
           updated_at) VALUES ({p}1, {p}2, 'running', {p}3, {p}5, '', 0, {p}4, {p}4) \
         ON CONFLICT (run_key, period_key) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until, \
           updated_at = excluded.updated_at \
         WHERE rotation_runs.state = 'running' AND (rotation_runs.lease_until <= {p}4 OR rotation_runs.owner = {p}3) \
         RETURNING {RUN_COLUMNS}",
        p = placeholder
    )
}

fn advance_sql(placeholder: char) -> String {
    format!(
        "UPDATE rotation_runs SET cursor = {p}4, assigned = assigned + {p}5, lease_until = {p}6, updated_at = {p}7 \
         WHERE run_key = {p}1 AND period_key = {p}2 AND owner = {p}3 AND state = 'running'",
        p = placeholder
    )
}

fn complete_sql(placeholder: char) -> String {
    format!(
        "UPDATE rotation_runs SET state = 'completed', completed_at = {p}4, updated_at = {p}4 \
         WHERE run_key = {p}1 AND period_key = {p}2 AND owner = {p}3 AND state = 'running'",
        p = placeholder
    )
}

fn run_sql(placeholder: char) -> String {
    format!("SELECT {RUN_COLUMNS} FROM rotation_runs WHERE run_key = {p}1 AND period_key = {p}2", p = placeholder)
}

/// Each table's primary key starts with `user_id`, so both sides are index range scans stopping at `limit`.
fn known_users_sql(placeholder: char) -> String {
    format!(
        "SELECT user_id FROM (SELECT DISTINCT user_id FROM user_goal_progress WHERE user_id > {p}1 \
           ORDER BY user_id LIMIT {p}2) AS goals \
         UNION SELECT user_id FROM (SELECT DISTINCT user_id FROM user_stat_values WHERE user_id > {p}1 \
           ORDER BY user_id LIMIT {p}2) AS stats \
         ORDER BY user_id LIMIT {p}2",
        p = placeholder
    )
}

fn pg_run(row: &sqlx::postgres::PgRow) -> Result<RotationRun> {
    Ok(RotationRun {
        run_key: row.try_get("run_key")?,
        period_key: row.try_get("period_key")?,
        state: row.try_get("state")?,
        owner: row.try_get("owner")?,
        lease_until: row.try_get("lease_until")?,
        cursor: row.try_get("cursor")?,
        assigned: row.try_get("assigned")?,
        started_at: row.try_get("started_at")?,
        completed_at: row.try_get("completed_at")?,
    })
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn sqlite_run(row: &sqlx::sqlite::SqliteRow) -> Result<RotationRun> {
    Ok(RotationRun {
        run_key: row.try_get("run_key")?,
        period_key: row.try_get("period_key")?,
        state: row.try_get("state")?,
        owner: row.try_get("owner")?,
        lease_until: from_millis(row.try_get("lease_until")?),
        cursor: row.try_get("cursor")?,
        assigned: row.try_get("assigned")?,
        started_at: from_millis(row.try_get("started_at")?),
        completed_at: row.try_get::<Option<i64>, _>("completed_at")?.map(from_millis),
    })
}

#[async_trait]
impl RotationRuns for PostgresStore {
    async fn claim_run(
        &self,
        run_key: &str,
        period_key: &str,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<RotationRun>> {
        instrument("claim_rotation_run", async {
            let row = sqlx::query(sqlx::AssertSqlSafe(claim_sql('$')))
                .bind(run_key)
                .bind(period_key)
                .bind(owner)
                .bind(now)
                .bind(lease_until)
                .fetch_optional(self.pool())
                .await?;
            row.as_ref().map(pg_run).transpose()
        })
        .await
    }

    async fn advance_run(
        &self,
        run_key: &str,
        period_key: &str,
        owner: &str,
        cursor: &str,
        assigned: u64,
        lease_until: DateTime<Utc>,
    ) -> Result<bool> {
        instrument("advance_rotation_run", async {
            let done = sqlx::query(sqlx::AssertSqlSafe(advance_sql('$')))
                .bind(run_key)
                .bind(period_key)
                .bind(owner)
                .bind(cursor)
                .bind(i64::try_from(assigned).unwrap_or(i64::MAX))
                .bind(lease_until)
                .bind(Utc::now())
                .execute(self.pool())
                .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn complete_run(&self, run_key: &str, period_key: &str, owner: &str, now: DateTime<Utc>) -> Result<bool> {
        instrument("complete_rotation_run", async {
            let done = sqlx::query(sqlx::AssertSqlSafe(complete_sql('$')))
                .bind(run_key)
                .bind(period_key)
                .bind(owner)
                .bind(now)
                .execute(self.pool())
                .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn run(&self, run_key: &str, period_key: &str) -> Result<Option<RotationRun>> {
        instrument("rotation_run", async {
            let row = sqlx::query(sqlx::AssertSqlSafe(run_sql('$')))
                .bind(run_key)
                .bind(period_key)
                .fetch_optional(self.pool())
                .await?;
            row.as_ref().map(pg_run).transpose()
        })
        .await
    }

    async fn known_users(&self, after: &str, limit: u32) -> Result<Vec<String>> {
        instrument("known_users", async {
            Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(known_users_sql('$')))
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?)
        })
        .await
    }
}

#[async_trait]
impl RotationRuns for SqliteStore {
    async fn claim_run(
        &self,
        run_key: &str,
        period_key: &str,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<RotationRun>> {
        instrument("claim_rotation_run", async {
            let row = sqlx::query(sqlx::AssertSqlSafe(claim_sql('?')))
                .bind(run_key)
                .bind(period_key)
                .bind(owner)
                .bind(now.timestamp_millis())
                .bind(lease_until.timestamp_millis())
                .fetch_optional(self.writer_pool())
                .await?;
            row.as_ref().map(sqlite_run).transpose()
        })
        .await
    }

    async fn advance_run(
        &self,
        run_key: &str,
        period_key: &str,
        owner: &str,
        cursor: &str,
        assigned: u64,
        lease_until: DateTime<Utc>,
    ) -> Result<bool> {
        instrument("advance_rotation_run", async {
            let done = sqlx::query(sqlx::AssertSqlSafe(advance_sql('?')))
                .bind(run_key)
                .bind(period_key)
                .bind(owner)
                .bind(cursor)
                .bind(i64::try_from(assigned).unwrap_or(i64::MAX))
                .bind(lease_until.timestamp_millis())
                .bind(Utc::now().timestamp_millis())
                .execute(self.writer_pool())
                .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn complete_run(&self, run_key: &str, period_key: &str, owner: &str, now: DateTime<Utc>) -> Result<bool> {
        instrument("complete_rotation_run", async {
            let done = sqlx::query(sqlx::AssertSqlSafe(complete_sql('?')))
                .bind(run_key)
                .bind(period_key)
                .bind(owner)
                .bind(now.timestamp_millis())
                .execute(self.writer_pool())
                .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn run(&self, run_key: &str, period_key: &str) -> Result<Option<RotationRun>> {
        instrument("rotation_run", async {
            let row = sqlx::query(sqlx::AssertSqlSafe(run_sql('?')))
                .bind(run_key)
                .bind(period_key)
                .fetch_optional(self.writer_pool())
                .await?;
            row.as_ref().map(sqlite_run).transpose()
        })
        .await
    }

    async fn known_users(&self, after: &str, limit: u32) -> Result<Vec<String>> {
        instrument("known_users", async {
            Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(known_users_sql('?')))
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(self.writer_pool())
                .await?)
        })
        .await
    }
}
