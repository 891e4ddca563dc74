//! Rotation through the server: renewal at boundaries on initialize and select (per `onExpiry`), mid-period joins,
//! expired claims, events around a boundary, pool sizes, a DST day and a month end. Time is a `ManualClock`
//! injected into the server: no test sleeps across a real boundary.

mod common;

use std::sync::Arc;

use challenge_host::rotation::ManualClock;
use challenge_host::{RunningServer, start_with_clock};
use chrono::{DateTime, Utc};
use common::{NAMESPACE, TestDatabase, TestOptions, fixture, test_settings, token};
use serde_json::{Value, json};

fn t(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).expect("test timestamp").with_timezone(&Utc)
}

struct Rig {
    server: Option<RunningServer>,
    clock: Arc<ManualClock>,
    http: String,
    client: reqwest::Client,
    pool: sqlx::PgPool,
    _database: Option<TestDatabase>,
    _data_dir: tempfile::TempDir,
}

impl Rig {
    async fn start(now: DateTime<Utc>) -> Self {
        let database = TestDatabase::create().await;
        let url = database.url.clone();
        Self::open(now, Some(database), &url, None).await
    }

    /// A server on `url` (owning `database` when given), with Redis when `redis_url` is given; its
    /// auto-assignment worker looks for new periods every 20 ms.
    async fn open(now: DateTime<Utc>, database: Option<TestDatabase>, url: &str, redis_url: Option<String>) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let options =
            TestOptions { challenges: Some(fixture("rotation_challenges.json")), redis_url, ..TestOptions::default() };
        let mut settings = test_settings(&options, Some(url.to_owned()), data_dir.path());
        settings.cache.key_prefix = format!("rot-{}:", uuid::Uuid::new_v4().simple());
        settings.rotation.tick_ms = 20;
        settings.rotation.throttle_ms = 0;
        let clock = Arc::new(ManualClock::new(now));
        let server = start_with_clock(settings, clock.clone()).await.expect("server starts");
        let http = format!("http://{}", server.http_addr);
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        Rig {
            server: Some(server),
            clock,
            http,
            client: reqwest::Client::new(),
            pool,
            _database: database,
            _data_dir: data_dir,
        }
    }

    async fn call(&self, method: &str, path: &str, user: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request =
            self.client.request(method, format!("{}{path}", self.http)).header("authorization", token(user));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("HTTP request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn initialize(&self, user: &str) -> Value {
        let (status, body) = self.call("POST", "/v1/challenges/initialize", user, None).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The goal as `GET /v1/challenges/{challenge}` shows it.
    async fn goal(&self, user: &str, challenge: &str, goal_id: &str) -> Value {
        let (status, body) = self.call("GET", &format!("/v1/challenges/{challenge}"), user, None).await;
        assert_eq!(status, 200, "{body}");
        body["goals"]
            .as_array()
            .and_then(|goals| goals.iter().find(|goal| goal["goalId"] == goal_id))
            .cloned()
            .unwrap_or_else(|| panic!("goal {goal_id} in {body}"))
    }

    /// Changes a row behind the API's back (as the pipeline or an earlier period would have), then drops the
    /// player's cached state.
    async fn sql(&self, user: &str, statement: &str) {
        sqlx::query(sqlx::AssertSqlSafe(statement.to_owned())).execute(&self.pool).await.unwrap();
        let state = &self.server.as_ref().unwrap().state;
        state.player.changed(user).await;
    }

    async fn row(&self, user: &str, goal: &str) -> (i64, String, Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        sqlx::query_as(
            "SELECT progress, status, assigned_at, expires_at FROM user_goal_progress WHERE user_id = $1 AND goal_id = $2",
        )
        .bind(user)
        .bind(goal)
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
    }
}

fn user(label: &str) -> String {
    format!("{label}-{}", uuid::Uuid::new_v4().simple())
}

/// One schedule across its boundary: a first player, a mid-period joiner, and the renewal when the first one comes
/// back after the boundary.
struct Case {
    challenge: &'static str,
    goal: &'static str,
    start: &'static str,
    mid: &'static str,
    /// The first player's expiry (and the joiner's, for global rotations).
    boundary: &'static str,
    /// The joiner's expiry.
    mid_boundary: &'static str,
    /// The expiry after renewal at `boundary`.
    next: &'static str,
}

async fn across_boundary(case: Case, after: impl Fn(i64, &str)) {
    let rig = Rig::start(t(case.start)).await;
    let (first, joiner) = (user("first"), user("joiner"));
    rig.initialize(&first).await;
    let goal = rig.goal(&first, case.challenge, case.goal).await;
    assert_eq!(goal["expiresAt"], case.boundary, "{}", case.challenge);
    let left = (t(case.boundary) - t(case.start)).num_seconds();
    assert_eq!(goal["expiresInSeconds"], left, "{}", case.challenge);

    rig.clock.set(t(case.mid));
    rig.initialize(&joiner).await;
    assert_eq!(rig.goal(&joiner, case.challenge, case.goal).await["expiresAt"], case.mid_boundary);

    // The first player made progress in the first period.
    let g = case.goal;
    rig.sql(
        &first,
        &format!(
            "UPDATE user_goal_progress SET progress = 2, status = 'in_progress', baseline_value = 7 \
             WHERE user_id = '{first}' AND goal_id = '{g}'"
        ),
    )
    .await;
    rig.clock.set(t(case.boundary));
    rig.initialize(&first).await;
    let (progress, status, assigned_at, expires_at) = rig.row(&first, g).await;
    assert_eq!((assigned_at, expires_at), (Some(t(case.boundary)), Some(t(case.next))), "{}", case.challenge);
    after(progress, &status);
    let goal = rig.goal(&first, case.challenge, g).await;
    assert_eq!(goal["expiresAt"], case.next);
    rig.stop().await;
}

fn reset(progress: i64, status: &str) {
    assert_eq!((progress, status), (0, "not_started"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_renews_at_midnight_and_resets() {
    let case = Case {
        challenge: "daily",
        goal: "daily-wins",
        start: "2026-03-10T05:00:00Z",
        mid: "2026-03-10T17:30:00Z",
        boundary: "2026-03-11T00:00:00Z",
        mid_boundary: "2026-03-11T00:00:00Z",
        next: "2026-03-12T00:00:00Z",
    };
    across_boundary(case, reset).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weekly_renews_on_monday() {
    let case = Case {
        challenge: "weekly",
        goal: "weekly-wins",
        start: "2026-03-11T08:00:00Z",
        mid: "2026-03-14T23:59:59Z",
        boundary: "2026-03-16T00:00:00Z",
        mid_boundary: "2026-03-16T00:00:00Z",
        next: "2026-03-23T00:00:00Z",
    };
    across_boundary(case, reset).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monthly_keeps_progress_across_a_month_end() {
    // resetProgress = false: progress and status carry over, the window moves (January 31 -> February -> March).
    let case = Case {
        challenge: "monthly",
        goal: "monthly-wins",
        start: "2026-01-31T12:00:00Z",
        mid: "2026-01-31T23:59:59Z",
        boundary: "2026-02-01T00:00:00Z",
        mid_boundary: "2026-02-01T00:00:00Z",
        next: "2026-03-01T00:00:00Z",
    };
    across_boundary(case, |progress, status| assert_eq!((progress, status), (2, "in_progress"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_cron_renews_every_six_hours() {
    let case = Case {
        challenge: "custom",
        goal: "custom-wins",
        start: "2026-03-10T05:00:00Z",
        mid: "2026-03-10T05:59:00Z",
        boundary: "2026-03-10T06:00:00Z",
        mid_boundary: "2026-03-10T06:00:00Z",
        next: "2026-03-10T12:00:00Z",
    };
    across_boundary(case, reset).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_rotation_runs_a_duration_from_each_assignment() {
    let case = Case {
        challenge: "per-user",
        goal: "session-wins",
        start: "2026-03-10T05:00:00Z",
        mid: "2026-03-10T05:30:00Z",
        boundary: "2026-03-10T07:00:00Z",
        mid_boundary: "2026-03-10T07:30:00Z",
        next: "2026-03-10T09:00:00Z",
    };
    across_boundary(case, reset).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_york_day_across_the_spring_forward_is_23_hours() {
    // 2026-03-08 in New York starts at 05:00Z (EST) and ends at 04:00Z the next day (EDT).
    let case = Case {
        challenge: "new-york",
        goal: "ny-wins",
        start: "2026-03-08T12:00:00Z",
        mid: "2026-03-09T03:59:59Z",
        boundary: "2026-03-09T04:00:00Z",
        mid_boundary: "2026-03-09T04:00:00Z",
        next: "2026-03-10T04:00:00Z",
    };
    across_boundary(case, reset).await;
    let rig = Rig::start(t("2026-03-08T12:00:00Z")).await;
    let (status, body) = rig.call("GET", "/v1/challenges/new-york/rotation", "anyone", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rotation"]["currentPeriod"]["startTime"], "2026-03-08T05:00:00Z", "{body}");
    assert_eq!(body["rotation"]["currentPeriod"]["endTime"], "2026-03-09T04:00:00Z", "{body}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_stays_claimed_when_reselection_is_not_allowed() {
    let rig = Rig::start(t("2026-03-11T08:00:00Z")).await;
    let player = user("claimer");
    rig.initialize(&player).await;
    rig.sql(
        &player,
        &format!(
            "UPDATE user_goal_progress SET progress = 3, status = 'claimed', completed_at = '2026-03-11T09:00:00Z', \
             claimed_at = '2026-03-11T09:01:00Z' WHERE user_id = '{player}' AND goal_id = 'weekly-wins'"
        ),
    )
    .await;
    rig.clock.set(t("2026-03-16T00:00:01Z"));
    rig.initialize(&player).await;
    let (progress, status, _, expires_at) = rig.row(&player, "weekly-wins").await;
    assert_eq!((progress, status.as_str(), expires_at), (3, "claimed", Some(t("2026-03-23T00:00:00Z"))));
    assert_eq!(rig.goal(&player, "weekly", "weekly-wins").await["status"], "claimed");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_assignment_cannot_be_claimed() {
    let rig = Rig::start(t("2026-03-10T05:00:00Z")).await;
    let player = user("late");
    rig.initialize(&player).await;
    rig.sql(
        &player,
        &format!(
            "UPDATE user_goal_progress SET progress = 3, status = 'completed', completed_at = '2026-03-10T06:00:00Z' \
             WHERE user_id = '{player}' AND goal_id = 'daily-wins'"
        ),
    )
    .await;
    rig.clock.set(t("2026-03-11T00:00:00Z"));
    let (status, body) = rig.call("POST", "/v1/challenges/daily/goals/daily-wins/claim", &player, None).await;
    assert_eq!((status, body["errorCode"].as_str()), (409, Some("GOAL_EXPIRED")), "{body}");
    // After renewal the goal starts over: nothing to claim in the new period.
    rig.initialize(&player).await;
    let (status, body) = rig.call("POST", "/v1/challenges/daily/goals/daily-wins/claim", &player, None).await;
    assert_eq!((status, body["errorCode"].as_str()), (409, Some("GOAL_NOT_COMPLETED")), "{body}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selecting_an_expired_goal_renews_it_first() {
    let rig = Rig::start(t("2026-03-10T05:00:00Z")).await;
    let player = user("selector");
    rig.initialize(&player).await;
    rig.sql(
        &player,
        &format!(
            "UPDATE user_goal_progress SET progress = 2, status = 'in_progress', is_active = FALSE \
             WHERE user_id = '{player}' AND goal_id = 'daily-wins'"
        ),
    )
    .await;
    rig.clock.set(t("2026-03-11T10:00:00Z"));
    // Initialize leaves deactivated goals alone; selecting it brings it into the current period, reset.
    rig.initialize(&player).await;
    assert_eq!(rig.row(&player, "daily-wins").await.0, 2);
    let body = json!({"goalIds": ["daily-wins"], "replaceExisting": false});
    let (status, response) = rig.call("POST", "/v1/challenges/daily/goals/batch-select", &player, Some(body)).await;
    assert_eq!(status, 200, "{response}");
    let (progress, state, assigned_at, expires_at) = rig.row(&player, "daily-wins").await;
    assert_eq!((progress, state.as_str()), (0, "not_started"));
    assert_eq!((assigned_at, expires_at), (Some(t("2026-03-11T10:00:00Z")), Some(t("2026-03-12T00:00:00Z"))));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_size_bounds_what_a_player_holds() {
    let rig = Rig::start(t("2026-03-10T05:00:00Z")).await;
    let player = user("pooled");
    rig.initialize(&player).await;
    let active: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM user_goal_progress WHERE user_id = $1 AND challenge_id = 'pool' AND is_active",
    )
    .bind(&player)
    .fetch_one(&rig.pool)
    .await
    .unwrap();
    assert_eq!(active, 2, "three default goals, pool of two");
    // A second initialize does not top the pool up beyond its size either.
    rig.initialize(&player).await;

    let select = |ids: &[&str], replace: bool| json!({"goalIds": ids, "replaceExisting": replace});
    let path = "/v1/challenges/pool/goals/batch-select";
    let (status, body) = rig.call("POST", path, &player, Some(select(&["pool-d"], false))).await;
    assert_eq!((status, body["errorCode"].as_str()), (409, Some("POOL_FULL")), "{body}");
    let (status, body) = rig.call("POST", path, &player, Some(select(&["pool-a", "pool-b", "pool-d"], true))).await;
    assert_eq!((status, body["errorCode"].as_str()), (422, Some("POOL_SIZE_EXCEEDED")), "{body}");
    let random = json!({"count": 3, "replaceExisting": true});
    let (status, body) = rig.call("POST", "/v1/challenges/pool/goals/random-select", &player, Some(random)).await;
    assert_eq!((status, body["errorCode"].as_str()), (422, Some("POOL_SIZE_EXCEEDED")), "{body}");
    // Replacing stays within the pool.
    let (status, body) = rig.call("POST", path, &player, Some(select(&["pool-c", "pool-d"], true))).await;
    assert_eq!((status, body["totalActiveGoals"].as_i64()), (200, Some(2)), "{body}");
    rig.stop().await;
}

/// Events use the wall clock (the pipeline's), so this test stands the boundary in the database instead: the
/// assignment's `expires_at` moves into the past as the boundary would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_just_before_and_after_a_boundary() {
    let rig = Rig::start(Utc::now()).await;
    let player = user("eventful");
    rig.initialize(&player).await;
    let events = EventSender::new(&rig).await;

    events.wins(&player, 1.0, 1.0).await;
    let before = rig.goal(&player, "per-user", "session-wins").await;
    assert_eq!((before["progress"].as_i64(), before["status"].as_str()), (Some(1), Some("in_progress")), "{before}");

    // The boundary passes: the assignment expired a moment ago.
    rig.sql(
        &player,
        &format!(
            "UPDATE user_goal_progress SET expires_at = now() - interval '1 second' \
             WHERE user_id = '{player}' AND goal_id = 'session-wins'"
        ),
    )
    .await;
    // Enough to complete the goal if it still counted: it does not.
    events.wins(&player, 5.0, 4.0).await;
    let (_, status, _, _) = rig.row(&player, "session-wins").await;
    assert_eq!(status, "in_progress", "an expired assignment takes no events");

    // The player comes back: renewal starts the new period from scratch, and the next event counts there only.
    rig.clock.set(Utc::now());
    rig.initialize(&player).await;
    events.wins(&player, 6.0, 1.0).await;
    let after = rig.goal(&player, "per-user", "session-wins").await;
    assert_eq!((after["progress"].as_i64(), after["status"].as_str()), (Some(1), Some("in_progress")), "{after}");
    rig.stop().await;
}

struct EventSender {
    client: challenge_proto::accelbyte::social::statistic::v1::statistic_stat_item_updated_service_client::StatisticStatItemUpdatedServiceClient<tonic::transport::Channel>,
}

impl EventSender {
    async fn new(rig: &Rig) -> Self {
        let address = format!("http://{}", rig.server.as_ref().unwrap().grpc_addr);
        let channel = tonic::transport::Endpoint::from_shared(address).unwrap().connect().await.unwrap();
        use challenge_proto::accelbyte::social::statistic::v1::statistic_stat_item_updated_service_client::StatisticStatItemUpdatedServiceClient;
        EventSender { client: StatisticStatItemUpdatedServiceClient::new(channel) }
    }

    async fn wins(&self, user: &str, value: f64, inc: f64) {
        use challenge_proto::accelbyte::social::statistic::v1 as statistic;
        self.client
            .clone()
            .on_message(statistic::StatItemUpdated {
                id: uuid::Uuid::new_v4().to_string(),
                user_id: user.into(),
                namespace: NAMESPACE.into(),
                payload: Some(statistic::StatItem {
                    stat_code: "wins".into(),
                    latest_value: value,
                    inc,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("stat event committed");
    }
}

/// 20,000 known players, two instances sharing the database and Redis: each period is assigned once, by one
/// instance, and the next period renews the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auto_assignment_reaches_every_known_player_once_per_period_across_two_instances() {
    let redis = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    auto_assignment_once_per_period(Some(redis)).await;
}

/// Without Redis the database lease alone keeps the two instances from both running a period.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auto_assignment_without_redis_relies_on_the_database_lease() {
    auto_assignment_once_per_period(None).await;
}

async fn auto_assignment_once_per_period(redis: Option<String>) {
    let day1 = t("2026-03-10T00:00:05Z");
    let database = TestDatabase::create().await;
    let url = database.url.clone();
    let first = Rig::open(day1, Some(database), &url, redis.clone()).await;
    let second = Rig::open(day1, None, &url, redis).await;
    sqlx::query(
        "INSERT INTO user_stat_values (user_id, stat_code, value, event_count, updated_at) \
         SELECT 'p' || lpad(i::text, 6, '0'), 'wins', 1, 1, now() FROM generate_series(1, 20000) AS i",
    )
    .execute(&first.pool)
    .await
    .unwrap();

    for (day, start, end) in [
        (t("2026-03-11T00:00:01Z"), "2026-03-11T00:00:00Z", "2026-03-12T00:00:00Z"),
        (t("2026-03-12T08:00:00Z"), "2026-03-12T00:00:00Z", "2026-03-13T00:00:00Z"),
    ] {
        first.clock.set(day);
        second.clock.set(day);
        let period_key = t(start).timestamp_millis().to_string();
        let run: (String, i64, String) = common::eventually(std::time::Duration::from_secs(120), || async {
            sqlx::query_as(
                "SELECT state, assigned, owner FROM rotation_runs WHERE run_key = 'goal:auto-wins' AND period_key = $1",
            )
            .bind(&period_key)
            .fetch_optional(&first.pool)
            .await
            .unwrap()
            .filter(|(state, _, _): &(String, i64, String)| state == "completed")
        })
        .await;
        assert_eq!(run.1, 20_000, "every known player assigned once in period {start}: {run:?}");
        let rows: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM user_goal_progress WHERE goal_id = 'auto-wins' AND assigned_at = $1 AND expires_at = $2",
        )
        .bind(day)
        .bind(t(end))
        .fetch_one(&first.pool)
        .await
        .unwrap();
        assert_eq!(rows, 20_000, "period {start}");
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM user_goal_progress WHERE goal_id = 'auto-wins'")
            .fetch_one(&first.pool)
            .await
            .unwrap();
        assert_eq!(total, 20_000, "renewal reuses the rows");
    }
    let completed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM rotation_runs WHERE run_key = 'goal:auto-wins' AND state = 'completed' \
         AND period_key IN ($1, $2)",
    )
    .bind(t("2026-03-11T00:00:00Z").timestamp_millis().to_string())
    .bind(t("2026-03-12T00:00:00Z").timestamp_millis().to_string())
    .fetch_one(&first.pool)
    .await
    .unwrap();
    assert_eq!(completed, 2);
    second.stop().await;
    first.stop().await;
}
