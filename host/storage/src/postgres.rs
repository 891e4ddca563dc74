//! PostgreSQL implementation: TIMESTAMPTZ everywhere (no session time zone dependence), batched writes through
//! `UNNEST` arrays so a flush or a bulk insert is one statement whatever its size.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use challenge_core::progress::{GoalProgress, StatValue};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};

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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Rows per statement of a bulk insert: bounds statement size, not parameters (arrays are one parameter each).
const INSERT_CHUNK: usize = 5_000;

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

/// The production store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects a pool to `url` and checks one connection can be established.
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|err| StorageError::InvalidInput(format!("invalid PostgreSQL URL: {err}")))?
            .application_name("challenge-host");
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .min_connections(options.min_connections.min(options.max_connections.max(1)))
            .acquire_timeout(options.acquire_timeout)
            .idle_timeout(Duration::from_secs(300))
            .max_lifetime(Duration::from_secs(1800))
            // A ping per checkout would double the round trips of every query; a dead connection surfaces as
            // Unavailable once and is then discarded by the pool.
            .test_before_acquire(false)
            .connect_with(connect)
            .await?;
        Ok(PostgresStore { pool })
    }

    /// The underlying pool (for tests and administrative tooling).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn goal_from_row(row: &PgRow) -> Result<GoalProgress> {
    Ok(GoalProgress {
        user_id: row.try_get("user_id")?,
        goal_id: row.try_get("goal_id")?,
        challenge_id: row.try_get("challenge_id")?,
        namespace: row.try_get("namespace")?,
        progress: row.try_get("progress")?,
        status: parse_status(row.try_get("status")?)?,
        completed_at: row.try_get("completed_at")?,
        claimed_at: row.try_get("claimed_at")?,
        is_active: row.try_get("is_active")?,
        assigned_at: row.try_get("assigned_at")?,
        expires_at: row.try_get("expires_at")?,
        baseline_value: row.try_get("baseline_value")?,
        plugin_state: row.try_get("plugin_state")?,
        progress_source: parse_source(row.try_get("progress_source")?)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn stat_from_row(row: &PgRow) -> Result<StatValue> {
    Ok(StatValue {
        user_id: row.try_get("user_id")?,
        stat_code: row.try_get("stat_code")?,
        value: row.try_get::<Option<f64>, _>("value")?.unwrap_or(0.0),
        event_count: row.try_get("event_count")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn grant_from_row(row: &PgRow) -> Result<RewardGrant> {
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
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        delivered_at: row.try_get("delivered_at")?,
    })
}

fn decode_all<T>(rows: &[PgRow], decode: fn(&PgRow) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(decode).collect()
}

/// Decodes the rows that `wanted` accepts (it reads borrowed columns, so rejected rows cost no allocation).
fn decode_matching<T>(
    rows: &[PgRow],
    decode: fn(&PgRow) -> Result<T>,
    wanted: impl Fn(&PgRow) -> std::result::Result<bool, sqlx::Error>,
) -> Result<Vec<T>> {
    let mut decoded = Vec::new();
    for row in rows {
        if wanted(row)? {
            decoded.push(decode(row)?);
        }
    }
    Ok(decoded)
}

impl PostgresStore {
    async fn claim_in(&self, tx: &mut Transaction<'static, Postgres>, req: &ClaimRequest) -> Result<ClaimOutcome> {
        let row = sqlx::query(concat!(
            "SELECT ",
            goal_columns!(),
            " FROM user_goal_progress WHERE user_id = $1 AND goal_id = $2 FOR UPDATE"
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
                "SELECT goal_id FROM user_goal_progress \
                 WHERE user_id = $1 AND goal_id = ANY($2) AND status IN ('completed', 'claimed')",
            )
            .bind(&req.user_id)
            .bind(&req.prerequisites)
            .fetch_all(&mut **tx)
            .await?;
            let unmet = unmet_prerequisites(&req.prerequisites, &done);
            if !unmet.is_empty() {
                return Ok(ClaimOutcome::Refused(ClaimRefusal::PrerequisitesUnmet(unmet)));
            }
        }
        let claimed = sqlx::query(concat!(
            "UPDATE user_goal_progress SET status = 'claimed', claimed_at = $3, updated_at = $3 \
             WHERE user_id = $1 AND goal_id = $2 RETURNING ",
            goal_columns!()
        ))
        .bind(&req.user_id)
        .bind(&req.goal_id)
        .bind(req.now)
        .fetch_one(&mut **tx)
        .await?;
        let grant = sqlx::query(concat!(
            "INSERT INTO reward_grants (idempotency_key, user_id, namespace, challenge_id, goal_id, reward_type, \
             reward_id, quantity, next_attempt_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING ",
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
        .bind(req.now)
        .fetch_one(&mut **tx)
        .await?;
        Ok(ClaimOutcome::Claimed { row: goal_from_row(&claimed)?, grant: grant_from_row(&grant)? })
    }

    async fn select_in(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        user_id: &str,
        challenge_id: &str,
        activate: &[&NewAssignment],
        replace_existing: bool,
        now: DateTime<Utc>,
    ) -> Result<SelectionOutcome> {
        let goal_ids: Vec<&str> = activate.iter().map(|a| a.goal_id.as_str()).collect();
        let mut replaced: Vec<String> = if replace_existing {
            sqlx::query_scalar(
                "UPDATE user_goal_progress SET is_active = FALSE, updated_at = $3 \
                 WHERE user_id = $1 AND challenge_id = $2 AND is_active AND goal_id <> ALL($4) RETURNING goal_id",
            )
            .bind(user_id)
            .bind(challenge_id)
            .bind(now)
            .bind(&goal_ids)
            .fetch_all(&mut **tx)
            .await?
        } else {
            Vec::new()
        };
        replaced.sort();
        if !activate.is_empty() {
            sqlx::query(
                "INSERT INTO user_goal_progress (user_id, goal_id, challenge_id, namespace, is_active, assigned_at, \
                   expires_at, progress_source, created_at, updated_at) \
                 SELECT $1, g, $2, n, TRUE, $3, e, s, $3, $3 \
                 FROM UNNEST($4::text[], $5::text[], $6::timestamptz[], $7::text[]) AS t(g, n, e, s) \
                 ON CONFLICT (user_id, goal_id) DO UPDATE SET is_active = TRUE, assigned_at = EXCLUDED.assigned_at, \
                   expires_at = EXCLUDED.expires_at, updated_at = EXCLUDED.updated_at",
            )
            .bind(user_id)
            .bind(challenge_id)
            .bind(now)
            .bind(&goal_ids)
            .bind(activate.iter().map(|a| a.namespace.as_str()).collect::<Vec<_>>())
            .bind(activate.iter().map(|a| a.expires_at).collect::<Vec<_>>())
            .bind(activate.iter().map(|a| a.progress_source.as_str()).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
        }
        let active: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM user_goal_progress WHERE user_id = $1 AND challenge_id = $2 AND is_active",
        )
        .bind(user_id)
        .bind(challenge_id)
        .fetch_one(&mut **tx)
        .await?;
        Ok(SelectionOutcome { replaced, active_in_challenge: u64::try_from(active).unwrap_or(0) })
    }

    /// The whole flush as one statement: stat upserts, goal updates and parked evaluations in data-modifying
    /// CTEs, committed atomically without BEGIN/COMMIT round trips (a flush is one round trip and one WAL flush).
    /// PostgreSQL runs every data-modifying CTE to completion whether or not the final SELECT reads it.
    async fn flush_rows(
        &self,
        stats: &[StatWrite],
        goals: &[&GoalWrite],
        parked: &[ParkedEvaluation],
    ) -> Result<FlushOutcome> {
        // The goal update's guard is re-checked after waiting for a row lock, so a concurrent claim or deactivation
        // wins.
        let row = sqlx::query(
            "WITH stats AS ( \
               INSERT INTO user_stat_values (user_id, stat_code, value, event_count, updated_at) \
               SELECT * FROM UNNEST($1::text[], $2::text[], $3::float8[], $4::int8[], $5::timestamptz[]) \
               ON CONFLICT (user_id, stat_code) DO UPDATE SET \
                 value = COALESCE(EXCLUDED.value, user_stat_values.value), \
                 event_count = user_stat_values.event_count + EXCLUDED.event_count, \
                 updated_at = GREATEST(user_stat_values.updated_at, EXCLUDED.updated_at) \
               RETURNING 1), \
             goals AS ( \
               UPDATE user_goal_progress AS g SET progress = w.progress, status = w.status, \
                 completed_at = w.completed_at, baseline_value = w.baseline_value, plugin_state = w.plugin_state, \
                 progress_source = w.progress_source, updated_at = w.updated_at \
               FROM UNNEST($6::text[], $7::text[], $8::int8[], $9::text[], $10::timestamptz[], $11::int8[], \
                 $12::bytea[], $13::text[], $14::timestamptz[]) \
                 AS w(user_id, goal_id, progress, status, completed_at, baseline_value, plugin_state, \
                 progress_source, updated_at) \
               WHERE g.user_id = w.user_id AND g.goal_id = w.goal_id AND g.is_active AND g.status <> 'claimed' \
               RETURNING 1), \
             parked AS ( \
               INSERT INTO parked_evaluations \
                 (user_id, plugin, plugin_version, goal_ids, events, error_kind, error, parked_at) \
               SELECT * FROM UNNEST($15::text[], $16::text[], $17::text[], $18::text[], $19::text[], $20::text[], \
                 $21::text[], $22::timestamptz[])) \
             SELECT (SELECT count(*) FROM stats) AS stat_rows, (SELECT count(*) FROM goals) AS goal_rows",
        )
        .bind(stats.iter().map(|s| s.user_id.as_str()).collect::<Vec<_>>())
        .bind(stats.iter().map(|s| s.stat_code.as_str()).collect::<Vec<_>>())
        .bind(stats.iter().map(|s| s.value).collect::<Vec<_>>())
        .bind(stats.iter().map(|s| s.count_delta).collect::<Vec<_>>())
        .bind(stats.iter().map(|s| s.updated_at).collect::<Vec<_>>())
        .bind(goals.iter().map(|g| g.user_id.as_str()).collect::<Vec<_>>())
        .bind(goals.iter().map(|g| g.goal_id.as_str()).collect::<Vec<_>>())
        .bind(goals.iter().map(|g| g.progress).collect::<Vec<_>>())
        .bind(goals.iter().map(|g| g.status.as_str()).collect::<Vec<_>>())
        .bind(goals.iter().map(|g| g.completed_at).collect::<Vec<_>>())
        .bind(goals.iter().map(|g| g.baseline_value).collect::<Vec<_>>())
        .bind(goals.iter().map(|g| g.plugin_state.as_deref()).collect::<Vec<_>>())
        .bind(goals.iter().map(|g| g.progress_source.as_str()).collect::<Vec<_>>())
        .bind(goals.iter().map(|g| g.updated_at).collect::<Vec<_>>())
        .bind(parked.iter().map(|p| p.user_id.as_str()).collect::<Vec<_>>())
        .bind(parked.iter().map(|p| p.plugin.as_str()).collect::<Vec<_>>())
        .bind(parked.iter().map(|p| p.plugin_version.as_str()).collect::<Vec<_>>())
        .bind(parked.iter().map(|p| p.goal_ids.as_str()).collect::<Vec<_>>())
        .bind(parked.iter().map(|p| p.events.as_str()).collect::<Vec<_>>())
        .bind(parked.iter().map(|p| p.error_kind.as_str()).collect::<Vec<_>>())
        .bind(parked.iter().map(|p| p.error.as_str()).collect::<Vec<_>>())
        .bind(parked.iter().map(|p| p.parked_at).collect::<Vec<_>>())
        .fetch_one(&self.pool)
        .await?;
        let count = |column: &str| -> Result<u64> { Ok(u64::try_from(row.try_get::<i64, _>(column)?).unwrap_or(0)) };
        Ok(FlushOutcome { stat_rows: count("stat_rows")?, goal_rows: count("goal_rows")? })
    }
}

/// Runs `work` inside a transaction: commit on success, roll back (by drop) on any error or refusal path that
/// returns early with an error.
macro_rules! in_transaction {
    ($pool:expr, |$tx:ident| $work:expr) => {{
        let mut $tx = $pool.begin().await?;
        let value = $work.await?;
        $tx.commit().await?;
        Ok(value)
    }};
}

#[async_trait]
impl Store for PostgresStore {
    fn registry(&self) -> &dyn crate::PluginRegistry {
        self
    }

    fn rotation_runs(&self) -> &dyn crate::RotationRuns {
        self
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<()> {
        instrument("ping", async {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        })
        .await
    }

    async fn migrate(&self) -> Result<()> {
        instrument("migrate", async { Ok(MIGRATOR.run(&self.pool).await?) }).await
    }

    async fn migrations_applied(&self) -> Result<bool> {
        instrument("migrations_applied", async {
            let exists: bool =
                sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(&self.pool).await?;
            if !exists {
                return Ok(false);
            }
            let applied: Vec<i64> =
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success").fetch_all(&self.pool).await?;
            Ok(MIGRATOR.iter().all(|m| applied.contains(&m.version)))
        })
        .await
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn user_goals(&self, user_id: &str, filter: &GoalFilter) -> Result<Vec<GoalProgress>> {
        instrument("user_goals", async {
            let rows = sqlx::query(concat!(
                "SELECT ",
                goal_columns!(),
                " FROM user_goal_progress WHERE user_id = $1 AND (NOT $2 OR is_active) \
                  AND ($3::text IS NULL OR challenge_id = $3) ORDER BY challenge_id, goal_id"
            ))
            .bind(user_id)
            .bind(filter.active_only)
            .bind(filter.challenge_id.as_deref())
            .fetch_all(&self.pool)
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
                " FROM user_goal_progress WHERE user_id = $1 AND goal_id = $2"
            ))
            .bind(user_id)
            .bind(goal_id)
            .fetch_optional(&self.pool)
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
                " FROM user_stat_values WHERE user_id = $1 ORDER BY stat_code"
            ))
            .bind(user_id)
            .fetch_all(&self.pool)
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
            // One statement per chunk, outside a transaction: an insert of missing rows is idempotent, so a partial
            // run is completed by the next call, and a player's defaults (well under a chunk) are one atomic
            // statement without the BEGIN/COMMIT round trips that cap new-player bursts.
            let mut inserted = 0;
            for chunk in assignments.chunks(INSERT_CHUNK) {
                inserted += sqlx::query(
                    "INSERT INTO user_goal_progress (user_id, goal_id, challenge_id, namespace, is_active, \
                           assigned_at, expires_at, progress_source, created_at, updated_at) \
                         SELECT u, g, c, n, a, t, e, s, $9, $9 FROM UNNEST($1::text[], $2::text[], $3::text[], \
                           $4::text[], $5::bool[], $6::timestamptz[], $7::timestamptz[], $8::text[]) \
                           AS x(u, g, c, n, a, t, e, s) \
                         ON CONFLICT (user_id, goal_id) DO NOTHING",
                )
                .bind(chunk.iter().map(|a| a.user_id.as_str()).collect::<Vec<_>>())
                .bind(chunk.iter().map(|a| a.goal_id.as_str()).collect::<Vec<_>>())
                .bind(chunk.iter().map(|a| a.challenge_id.as_str()).collect::<Vec<_>>())
                .bind(chunk.iter().map(|a| a.namespace.as_str()).collect::<Vec<_>>())
                .bind(chunk.iter().map(|a| a.is_active).collect::<Vec<_>>())
                .bind(chunk.iter().map(|a| a.assigned_at).collect::<Vec<_>>())
                .bind(chunk.iter().map(|a| a.expires_at).collect::<Vec<_>>())
                .bind(chunk.iter().map(|a| a.progress_source.as_str()).collect::<Vec<_>>())
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
            }
            Ok(inserted)
        })
        .await
    }

    async fn renew_assignments(&self, renewals: &[Renewal], now: DateTime<Utc>) -> Result<u64> {
        instrument("renew_assignments", async {
            let mut renewed = 0;
            // Each chunk is one statement on its own: a renewal is idempotent, so a partial run is safe to repeat.
            for chunk in renewals.chunks(INSERT_CHUNK) {
                renewed += sqlx::query(concat!(
                    "UPDATE user_goal_progress ",
                    renewal_set!(),
                    "FROM (SELECT u, g, a, e, x, k, s, $8::timestamptz AS t FROM UNNEST($1::text[], $2::text[], \
                       $3::timestamptz[], $4::timestamptz[], $5::bool[], $6::bool[], $7::text[]) \
                       AS y(u, g, a, e, x, k, s)) AS r \
                     WHERE user_id = r.u AND goal_id = r.g AND expires_at IS NOT NULL AND expires_at <= r.t"
                ))
                .bind(chunk.iter().map(|r| r.user_id.as_str()).collect::<Vec<_>>())
                .bind(chunk.iter().map(|r| r.goal_id.as_str()).collect::<Vec<_>>())
                .bind(chunk.iter().map(|r| r.assigned_at).collect::<Vec<_>>())
                .bind(chunk.iter().map(|r| r.expires_at).collect::<Vec<_>>())
                .bind(chunk.iter().map(|r| r.reset_progress).collect::<Vec<_>>())
                .bind(chunk.iter().map(|r| r.keep_claimed).collect::<Vec<_>>())
                .bind(chunk.iter().map(|r| r.progress_source.as_str()).collect::<Vec<_>>())
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
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
                 VALUES ($1, $2, $3, $4, $5, CASE WHEN $5 THEN $6::timestamptz END, \
                   CASE WHEN $5 THEN $7::timestamptz END, $8, $6, $6) \
                 ON CONFLICT (user_id, goal_id) DO UPDATE SET is_active = EXCLUDED.is_active, \
                   assigned_at = CASE WHEN EXCLUDED.is_active THEN EXCLUDED.assigned_at \
                     ELSE user_goal_progress.assigned_at END, \
                   expires_at = CASE WHEN EXCLUDED.is_active THEN EXCLUDED.expires_at \
                     ELSE user_goal_progress.expires_at END, \
                   updated_at = EXCLUDED.updated_at \
                 RETURNING ",
                goal_columns!()
            ))
            .bind(&assignment.user_id)
            .bind(&assignment.goal_id)
            .bind(&assignment.challenge_id)
            .bind(&assignment.namespace)
            .bind(active)
            .bind(now)
            .bind(assignment.expires_at)
            .bind(assignment.progress_source.as_str())
            .fetch_one(&self.pool)
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
            in_transaction!(self.pool, |tx| self.select_in(
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
        instrument("claim", async {
            // A refusal rolls back (nothing was written) when the transaction is dropped.
            in_transaction!(self.pool, |tx| self.claim_in(&mut tx, request))
        })
        .await
    }

    async fn due_grants(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<RewardGrant>> {
        instrument("due_grants", async {
            let rows = sqlx::query(concat!(
                "SELECT ",
                grant_columns!(),
                " FROM reward_grants WHERE status = 'pending' AND next_attempt_at <= $1 \
                  ORDER BY next_attempt_at, id LIMIT $2"
            ))
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            decode_all(&rows, grant_from_row)
        })
        .await
    }

    async fn mark_grant_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        instrument("mark_grant_delivered", async {
            let done = sqlx::query(
                "UPDATE reward_grants SET status = 'delivered', delivered_at = $2 \
                 WHERE id = $1 AND status <> 'delivered'",
            )
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn reschedule_grant(&self, id: i64, error: &str, next_attempt_at: DateTime<Utc>) -> Result<bool> {
        instrument("reschedule_grant", async {
            let done = sqlx::query(
                "UPDATE reward_grants SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3 \
                 WHERE id = $1 AND status = 'pending'",
            )
            .bind(id)
            .bind(error)
            .bind(next_attempt_at)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn mark_grant_failed(&self, id: i64, error: &str) -> Result<bool> {
        instrument("mark_grant_failed", async {
            let done = sqlx::query(
                "UPDATE reward_grants SET status = 'failed', attempts = attempts + 1, last_error = $2 \
                 WHERE id = $1 AND status = 'pending'",
            )
            .bind(id)
            .bind(error)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn grant(&self, id: i64) -> Result<Option<RewardGrant>> {
        instrument("grant", async {
            let row = sqlx::query(concat!("SELECT ", grant_columns!(), " FROM reward_grants WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
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
            // Only the user list goes to PostgreSQL, as a range scan over each user's few dozen rows. Narrowing
            // there would make it probe (user, goal) keys, most of them rows the player does not hold, or, with
            // the goal groups as a filter, pick a sequential scan on its row estimates: both cost more than
            // sending the extra rows. They are dropped here before decoding, which is where the host's time goes.
            let goals = sqlx::query(concat!(
                "SELECT ",
                goal_columns!(),
                " FROM user_goal_progress WHERE user_id = ANY($1) AND is_active AND status <> 'claimed'"
            ))
            .bind(&query.user_ids)
            .fetch_all(&self.pool)
            .await?;
            let stats =
                sqlx::query(concat!("SELECT ", stat_columns!(), " FROM user_stat_values WHERE user_id = ANY($1)"))
                    .bind(&query.user_ids)
                    .fetch_all(&self.pool)
                    .await?;
            let wanted_goals = query.goal_matcher();
            let wanted_codes: Option<HashSet<&str>> =
                query.stat_codes.as_ref().map(|codes| codes.iter().map(String::as_str).collect());
            let mut goals = decode_matching(&goals, goal_from_row, |row| {
                Ok(wanted_goals.wants(row.try_get("user_id")?, row.try_get("goal_id")?))
            })?;
            let mut stats = decode_matching(&stats, stat_from_row, |row| {
                let code = row.try_get::<&str, _>("stat_code")?;
                Ok(wanted_codes.as_ref().is_none_or(|wanted| wanted.contains(code)))
            })?;
            goals.sort_unstable_by(|a, b| (&a.user_id, &a.goal_id).cmp(&(&b.user_id, &b.goal_id)));
            stats.sort_unstable_by(|a, b| (&a.user_id, &a.stat_code).cmp(&(&b.user_id, &b.stat_code)));
            Ok(PipelineState { goals, stats })
        })
        .await
    }

    async fn apply_flush(&self, batch: &FlushBatch) -> Result<FlushOutcome> {
        instrument("apply_flush", async {
            if batch.is_empty() {
                return Ok(FlushOutcome::default());
            }
            let mut stats = merge_stat_writes(&batch.stats)?;
            let mut goals = last_goal_writes(&batch.goals)?;
            // A stable row order keeps concurrent flushes from deadlocking on each other's row locks.
            stats.sort_by(|a, b| (&a.user_id, &a.stat_code).cmp(&(&b.user_id, &b.stat_code)));
            goals.sort_by(|a, b| (&a.user_id, &a.goal_id).cmp(&(&b.user_id, &b.goal_id)));
            self.flush_rows(&stats, &goals, &batch.parked).await
        })
        .await
    }

    async fn parked_evaluations(&self, limit: u32) -> Result<Vec<ParkedEvaluation>> {
        instrument("parked_evaluations", async {
            let rows = sqlx::query(
                "SELECT user_id, plugin, plugin_version, goal_ids, events, error_kind, error, parked_at \
                 FROM parked_evaluations WHERE replayed_at IS NULL ORDER BY id LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
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
                        parked_at: row.try_get("parked_at")?,
                    })
                })
                .collect()
        })
        .await
    }
}
