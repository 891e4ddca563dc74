//! Benchmark (ignored by default): auto-assignment of one period to 1,000,000 known players through a real server
//! on a fresh PostgreSQL database. Run with
//! `cargo test -p challenge-host --test rotation_bench -- --ignored --nocapture`
//! (`ROTATION_BENCH_PLAYERS` changes the count). Results: loadtest/results/rotation-auto-assign.md.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use challenge_host::rotation::ManualClock;
use challenge_host::start_with_clock;
use chrono::{DateTime, Utc};
use common::{TestDatabase, TestOptions, fixture, test_settings};

fn t(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).expect("timestamp").with_timezone(&Utc)
}

async fn wait_completed(pool: &sqlx::PgPool, period_start: &str) -> i64 {
    let key = t(period_start).timestamp_millis().to_string();
    loop {
        let run: Option<(String, i64)> = sqlx::query_as(
            "SELECT state, assigned FROM rotation_runs WHERE run_key = 'goal:auto-wins' AND period_key = $1",
        )
        .bind(&key)
        .fetch_optional(pool)
        .await
        .unwrap();
        if let Some((state, assigned)) = run
            && state == "completed"
        {
            return assigned;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: one million players"]
async fn auto_assign_one_million_players() {
    let players: i64 = std::env::var("ROTATION_BENCH_PLAYERS").ok().and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    let database = TestDatabase::create().await;
    let data_dir = tempfile::tempdir().unwrap();
    let options = TestOptions { challenges: Some(fixture("rotation_challenges.json")), ..TestOptions::default() };
    let mut settings = test_settings(&options, Some(database.url.clone()), data_dir.path());
    settings.rotation.tick_ms = 10;
    let clock = Arc::new(ManualClock::new(t("2026-03-09T23:59:00Z")));
    let server = start_with_clock(settings.clone(), clock.clone()).await.unwrap();
    let pool = database.pool().await;
    // The period current at start-up finds nobody yet; the players become known afterwards.
    wait_completed(&pool, "2026-03-09T00:00:00Z").await;
    let seeding = Instant::now();
    sqlx::query(
        "INSERT INTO user_stat_values (user_id, stat_code, value, event_count, updated_at) \
         SELECT 'player-' || lpad(i::text, 8, '0'), 'wins', 1, 1, now() FROM generate_series(1, $1) AS i",
    )
    .bind(players)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    println!("seeded {players} known players in {:.2?}", seeding.elapsed());

    let started = Instant::now();
    clock.set(t("2026-03-10T00:00:01Z"));
    let assigned = wait_completed(&pool, "2026-03-10T00:00:00Z").await;
    let first = started.elapsed();
    println!(
        "new period, fresh assignments: {assigned} rows in {:.2?} ({:.0} rows/s), chunk {}, throttle {} ms",
        first,
        assigned as f64 / first.as_secs_f64(),
        settings.rotation.chunk_size,
        settings.rotation.throttle_ms
    );

    let started = Instant::now();
    clock.set(t("2026-03-11T00:00:01Z"));
    let renewed = wait_completed(&pool, "2026-03-11T00:00:00Z").await;
    let second = started.elapsed();
    println!(
        "next period, renewals: {renewed} rows in {:.2?} ({:.0} rows/s)",
        second,
        renewed as f64 / second.as_secs_f64()
    );
    assert_eq!((assigned, renewed), (players, players));
    server.shutdown().await.unwrap();
}
