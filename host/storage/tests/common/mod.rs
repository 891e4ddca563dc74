//! Test harness: every test body runs against a fresh PostgreSQL database and a fresh SQLite file.
//!
//! PostgreSQL: a database `ctest_<uuid>` is created through `TEST_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`) and dropped afterwards, even when the test panics.

#![allow(dead_code)]

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use challenge_core::progress::{GoalStatus, ProgressSource};
use challenge_storage::{
    ClaimRequest, FlushBatch, GoalWrite, NewAssignment, NewRewardGrant, RewardType, StatWrite, Store, StoreOptions,
    open_store,
};
use chrono::{DateTime, Utc};
use futures::FutureExt;
use sqlx::{AssertSqlSafe, Connection};

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

pub struct TestDb {
    pub backend: Backend,
    pub store: Arc<dyn Store>,
    raw: Raw,
    cleanup: Cleanup,
}

enum Raw {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

enum Cleanup {
    Postgres { admin_url: String, database: String },
    Sqlite(tempfile::TempDir),
}

pub fn postgres_base_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, database: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((main, query)) => (main, Some(query)),
        None => (url, None),
    };
    let authority_start = main.find("://").map_or(0, |at| at + 3);
    let base = match main[authority_start..].find('/') {
        Some(slash) => &main[..authority_start + slash],
        None => main,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

pub fn test_options() -> StoreOptions {
    StoreOptions {
        database_url: None,
        data_dir: std::path::PathBuf::new(),
        max_connections: 8,
        min_connections: 0,
        acquire_timeout: Duration::from_secs(10),
    }
}

impl TestDb {
    /// A fresh, unmigrated database.
    pub async fn create(backend: Backend) -> TestDb {
        match backend {
            Backend::Postgres => {
                let admin_url = postgres_base_url();
                let database = format!("ctest_{}", uuid::Uuid::new_v4().simple());
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.expect("connect to test PostgreSQL");
                sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {database}")))
                    .execute(&mut admin)
                    .await
                    .expect("create test database");
                admin.close().await.ok();
                let url = with_database(&admin_url, &database);
                let store = open_store(&StoreOptions { database_url: Some(url.clone()), ..test_options() })
                    .await
                    .expect("open PostgreSQL store");
                let raw =
                    sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&url).await.expect("raw pool");
                TestDb { backend, store, raw: Raw::Postgres(raw), cleanup: Cleanup::Postgres { admin_url, database } }
            }
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let data_dir = dir.path().join("data");
                let store = open_store(&StoreOptions { data_dir: data_dir.clone(), ..test_options() })
                    .await
                    .expect("open SQLite store");
                let raw = sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(
                        sqlx::sqlite::SqliteConnectOptions::new()
                            .filename(data_dir.join(challenge_storage::SQLITE_FILE_NAME))
                            .busy_timeout(Duration::from_secs(10)),
                    )
                    .await
                    .expect("raw pool");
                TestDb { backend, store, raw: Raw::Sqlite(raw), cleanup: Cleanup::Sqlite(dir) }
            }
        }
    }

    /// Runs raw SQL (test-controlled text) on a separate connection; returns rows affected.
    pub async fn exec(&self, sql: &str) -> Result<u64, challenge_storage::StorageError> {
        let sql = AssertSqlSafe(sql.to_owned());
        let affected = match &self.raw {
            Raw::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|r| r.rows_affected()),
            Raw::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|r| r.rows_affected()),
        };
        affected.map_err(Into::into)
    }

    /// Runs a raw `SELECT` returning one integer.
    pub async fn scalar(&self, sql: &str) -> i64 {
        let sql = AssertSqlSafe(sql.to_owned());
        match &self.raw {
            Raw::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Raw::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .expect("scalar query")
    }

    /// Runs a raw `SELECT` returning one text.
    pub async fn text(&self, sql: &str) -> String {
        let sql = AssertSqlSafe(sql.to_owned());
        match &self.raw {
            Raw::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Raw::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .expect("text query")
    }

    async fn cleanup(self) {
        self.store.close().await;
        match self.raw {
            Raw::Postgres(pool) => pool.close().await,
            Raw::Sqlite(pool) => pool.close().await,
        }
        match self.cleanup {
            Cleanup::Postgres { admin_url, database } => {
                // Best effort: a leftover database only costs disk space.
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                    let drop = format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)");
                    if let Err(err) = sqlx::query(AssertSqlSafe(drop)).execute(&mut admin).await {
                        eprintln!("could not drop {database}: {err}");
                    }
                    admin.close().await.ok();
                }
            }
            Cleanup::Sqlite(dir) => drop(dir),
        }
    }
}

/// Creates a database for `backend` (migrated when `migrate`), runs `test`, cleans up, then re-raises a panic.
pub async fn run<F>(backend: Backend, migrate: bool, test: F)
where
    F: AsyncFnOnce(&TestDb),
{
    let db = TestDb::create(backend).await;
    if migrate {
        db.store.migrate().await.expect("migrate");
    }
    let outcome = AssertUnwindSafe(test(&db)).catch_unwind().await;
    db.cleanup().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Expands test functions `async fn name(db: &TestDb)` into `postgres::name` and `sqlite::name` tests.
/// Functions listed under `unmigrated` get a database without migrations.
#[macro_export]
macro_rules! backend_tests {
    (migrated: [$($name:ident),* $(,)?], unmigrated: [$($raw:ident),* $(,)?] $(,)?) => {
        $crate::backend_tests!(@backend postgres, Postgres, [$($name),*], [$($raw),*]);
        $crate::backend_tests!(@backend sqlite, Sqlite, [$($name),*], [$($raw),*]);
    };
    (@backend $module:ident, $backend:ident, [$($name:ident),*], [$($raw:ident),*]) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    $crate::common::run($crate::common::Backend::$backend, true, super::$name).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $raw() {
                    $crate::common::run($crate::common::Backend::$backend, false, super::$raw).await;
                }
            )*
        }
    };
}

// ---- fixtures --------------------------------------------------------------------------------------------------

/// A fixed instant (whole milliseconds, so both backends round-trip it exactly) plus `secs`.
pub fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000 + secs, 0).expect("valid timestamp")
}

pub fn assignment(user: &str, challenge: &str, goal: &str) -> NewAssignment {
    NewAssignment {
        user_id: user.to_owned(),
        goal_id: goal.to_owned(),
        challenge_id: challenge.to_owned(),
        namespace: "ns".to_owned(),
        is_active: true,
        assigned_at: Some(at(0)),
        expires_at: None,
        progress_source: ProgressSource::Stored,
    }
}

pub fn inactive(mut a: NewAssignment) -> NewAssignment {
    a.is_active = false;
    a.assigned_at = None;
    a
}

pub fn goal_write(user: &str, goal: &str, progress: i64, status: GoalStatus, when: DateTime<Utc>) -> GoalWrite {
    GoalWrite {
        user_id: user.to_owned(),
        goal_id: goal.to_owned(),
        progress,
        status,
        completed_at: (status == GoalStatus::Completed).then_some(when),
        baseline_value: None,
        plugin_state: None,
        progress_source: ProgressSource::Stored,
        updated_at: when,
    }
}

pub fn stat_write(user: &str, code: &str, value: Option<f64>, delta: i64, when: DateTime<Utc>) -> StatWrite {
    StatWrite { user_id: user.to_owned(), stat_code: code.to_owned(), value, count_delta: delta, updated_at: when }
}

/// Assigns `goal` (active) and marks it completed at `completed`.
pub async fn completed_goal(db: &TestDb, user: &str, challenge: &str, goal: &str, completed: DateTime<Utc>) {
    db.store.insert_missing_assignments(&[assignment(user, challenge, goal)], at(0)).await.expect("assign");
    let batch = FlushBatch {
        stats: vec![],
        goals: vec![goal_write(user, goal, 10, GoalStatus::Completed, completed)],
        parked: vec![],
    };
    let outcome = db.store.apply_flush(&batch).await.expect("complete goal");
    assert_eq!(outcome.goal_rows, 1, "goal {goal} should have been completed");
}

pub fn claim_request(user: &str, goal: &str, now: DateTime<Utc>) -> ClaimRequest {
    ClaimRequest {
        user_id: user.to_owned(),
        goal_id: goal.to_owned(),
        prerequisites: vec![],
        completed_not_before: None,
        now,
        grant: NewRewardGrant {
            namespace: "ns".to_owned(),
            challenge_id: "c1".to_owned(),
            reward_type: RewardType::Item,
            reward_id: "sword".to_owned(),
            quantity: 2,
        },
    }
}

pub async fn grant_rows(db: &TestDb, user: &str) -> i64 {
    db.scalar(&format!("SELECT COUNT(*) FROM reward_grants WHERE user_id = '{user}'")).await
}
