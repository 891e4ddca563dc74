//! The player read cache: reads after a committed change never show older state (in-process and through Redis,
//! across instances), and a Redis outage only makes reads slower.

mod common;
mod player_support;

use std::time::Duration;

use common::token;
use player_support::*;

async fn progress(server: &PlayerServer, via: Via, user: &str, goal_id: &str) -> (i64, String, bool) {
    let list = server.call(via, Some(&token(user)), Op::List { active_only: false }).await.unwrap();
    let goal = goal(&list, goal_id);
    (
        goal["progress"].as_i64().unwrap(),
        goal["status"].as_str().unwrap().to_owned(),
        goal["isActive"].as_bool().unwrap(),
    )
}

fn cache_results(metrics: &str, result: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with("player_cache_total{") && line.contains(&format!("result=\"{result}\"")))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Reads, an event, reads again: the new progress shows at once, and unchanged reads come from the cache.
async fn events_show_up_immediately(server: &PlayerServer) {
    let user = unique_user("fresh");
    server.call(Via::Http, Some(&token(&user)), Op::Initialize).await.unwrap();
    for step in 1..=4 {
        for via in BOTH {
            // Twice, so the second read is served from the cache.
            progress(server, via, &user, "reach-level-5").await;
        }
        server.stat_event(&user, "level", f64::from(step), 1.0).await;
        for via in BOTH {
            assert_eq!(
                progress(server, via, &user, "reach-level-5").await,
                (i64::from(step), "in_progress".to_owned(), true)
            );
        }
    }
    // Writes through the API invalidate too.
    for via in BOTH {
        assert!(progress(server, via, &user, "kills-100").await.0 == 0);
        server
            .call(via, Some(&token(&user)), Op::SetActive { challenge: "grind", goal: "kills-100", active: true })
            .await
            .unwrap();
        assert!(progress(server, via, &user, "kills-100").await.2, "{via:?}");
        server
            .call(via, Some(&token(&user)), Op::SetActive { challenge: "grind", goal: "kills-100", active: false })
            .await
            .unwrap();
        assert!(!progress(server, via, &user, "kills-100").await.2, "{via:?}");
    }
    server.stat_event(&user, "level", 5.0, 1.0).await;
    progress(server, Via::Http, &user, "reach-level-5").await;
    server
        .call(Via::Grpc, Some(&token(&user)), Op::Claim { challenge: "starter", goal: "reach-level-5" })
        .await
        .unwrap();
    assert_eq!(progress(server, Via::Http, &user, "reach-level-5").await.1, "claimed");

    let metrics = server.metrics().await;
    assert!(cache_results(&metrics, "hit") >= 8.0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_process_cache_shows_committed_changes_immediately() {
    let server = PlayerServer::start(Setup::default()).await;
    events_show_up_immediately(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_backed_cache_shows_committed_changes_immediately() {
    let server = PlayerServer::start(Setup { redis_url: Some(redis_url()), ..Setup::default() }).await;
    events_show_up_immediately(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_on_one_instance_is_seen_by_the_others_at_once() {
    // Two instances of one deployment (same key prefix), sharing the database and Redis.
    let first = PlayerServer::start(Setup {
        redis_url: Some(redis_url()),
        configure: |settings| settings.cache.key_prefix = "player-cache-test:".to_owned(),
        ..Setup::default()
    })
    .await;
    let second = PlayerServer::start(Setup {
        redis_url: Some(redis_url()),
        share: first.database.clone(),
        configure: |settings| settings.cache.key_prefix = "player-cache-test:".to_owned(),
        ..Setup::default()
    })
    .await;
    let user = unique_user("shared");
    let bearer = token(&user);
    first.call(Via::Http, Some(&bearer), Op::Initialize).await.unwrap();
    for round in 1..=3 {
        // Both instances have the player cached...
        for server in [&first, &second] {
            progress(server, Via::Http, &user, "reach-level-5").await;
            progress(server, Via::Http, &user, "reach-level-5").await;
        }
        // ...an event commits through the first...
        first.stat_event(&user, "level", f64::from(round), 1.0).await;
        // ...and the second shows it at once.
        assert_eq!(progress(&second, Via::Grpc, &user, "reach-level-5").await.0, i64::from(round));
    }
    second
        .call(Via::Grpc, Some(&bearer), Op::SetActive { challenge: "grind", goal: "wins-3", active: true })
        .await
        .unwrap();
    assert!(progress(&first, Via::Http, &user, "wins-3").await.2);
    second
        .call(Via::Http, Some(&bearer), Op::Batch { challenge: "grind", goals: &["kills-100"], replace: true })
        .await
        .unwrap();
    assert!(!progress(&first, Via::Grpc, &user, "wins-3").await.2);
    assert!(progress(&first, Via::Grpc, &user, "kills-100").await.2);
}

/// The event pipeline keeps each player's rows between flushes: goal changes made through the API, on the same
/// instance (`api` is `events`) or on another one, must reach the next evaluation.
async fn events_follow_goal_changes(events: &PlayerServer, api: &PlayerServer) {
    let user = unique_user("pipeline");
    let bearer = token(&user);
    api.call(Via::Http, Some(&bearer), Op::Initialize).await.unwrap();
    // The pipeline now holds the player's rows, without wins-3 (not active yet): this win counts for nothing.
    events.stat_event(&user, "level", 1.0, 1.0).await;
    events.stat_event(&user, "wins", 1.0, 1.0).await;
    assert_eq!(progress(api, Via::Http, &user, "wins-3").await, (0, "not_started".to_owned(), false));

    api.call(Via::Grpc, Some(&bearer), Op::SetActive { challenge: "grind", goal: "wins-3", active: true })
        .await
        .unwrap();
    // Relative goal: its baseline is taken from this first event after activation (3 - 2 = 1).
    events.stat_event(&user, "wins", 3.0, 2.0).await;
    assert_eq!(progress(api, Via::Http, &user, "wins-3").await, (2, "in_progress".to_owned(), true));
    events.stat_event(&user, "wins", 4.0, 1.0).await;
    events.stat_event(&user, "level", 2.0, 1.0).await;
    assert_eq!(progress(api, Via::Grpc, &user, "wins-3").await, (3, "completed".to_owned(), true));
    assert_eq!(progress(api, Via::Grpc, &user, "reach-level-5").await.0, 2);

    api.call(Via::Http, Some(&bearer), Op::Claim { challenge: "grind", goal: "wins-3" }).await.unwrap();
    events.stat_event(&user, "wins", 10.0, 6.0).await;
    events.stat_event(&user, "level", 3.0, 1.0).await;
    assert_eq!(progress(api, Via::Http, &user, "wins-3").await.1, "claimed");
    assert_eq!(progress(api, Via::Http, &user, "reach-level-5").await.0, 3);
    assert_eq!(
        api.sql_count(&format!(
            "SELECT progress FROM user_goal_progress WHERE user_id = '{user}' AND goal_id = 'wins-3'"
        ))
        .await,
        3,
        "a claimed goal never changes"
    );

    let metrics = events.metrics().await;
    let pipeline_hits: f64 = metrics
        .lines()
        .filter(|line| line.starts_with("player_cache_total{") && line.contains("cache=\"pipeline\""))
        .filter(|line| line.contains("result=\"hit\""))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(pipeline_hits >= 1.0, "flushes reused cached rows: {metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pipeline_sees_goal_changes_made_through_the_api() {
    let server = PlayerServer::start(Setup::default()).await;
    events_follow_goal_changes(&server, &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pipeline_sees_goal_changes_made_on_another_instance() {
    let first = PlayerServer::start(Setup {
        redis_url: Some(redis_url()),
        configure: |settings| settings.cache.key_prefix = "pipeline-cache-test:".to_owned(),
        ..Setup::default()
    })
    .await;
    let second = PlayerServer::start(Setup {
        redis_url: Some(redis_url()),
        share: first.database.clone(),
        configure: |settings| settings.cache.key_prefix = "pipeline-cache-test:".to_owned(),
        ..Setup::default()
    })
    .await;
    events_follow_goal_changes(&first, &second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_redis_down_requests_still_succeed_and_errors_are_counted() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = PlayerServer::start(Setup {
        redis_url: Some(format!("redis://127.0.0.1:{closed}")),
        configure: |settings| settings.cache.redis_retry_ms = 50,
        ..Setup::default()
    })
    .await;
    let user = unique_user("no-redis");
    let bearer = token(&user);
    for via in BOTH {
        server.call(via, Some(&bearer), Op::Initialize).await.unwrap();
        progress(&server, via, &user, "reach-level-5").await;
    }
    server.stat_event(&user, "level", 5.0, 5.0).await;
    for via in BOTH {
        let started = std::time::Instant::now();
        assert_eq!(progress(&server, via, &user, "reach-level-5").await, (5, "completed".to_owned(), true));
        assert!(started.elapsed() < Duration::from_secs(3), "degraded, not stuck");
    }
    let claimed =
        server.call(Via::Http, Some(&bearer), Op::Claim { challenge: "starter", goal: "reach-level-5" }).await.unwrap();
    assert_eq!(claimed["grantStatus"], "delivered");
    assert_eq!(progress(&server, Via::Grpc, &user, "reach-level-5").await.1, "claimed");
    let metrics = server.metrics().await;
    assert!(counter(&metrics, "redis_errors_total") > 0.0, "{metrics}");
    assert!(cache_results(&metrics, "bypass") > 0.0, "{metrics}");
}
