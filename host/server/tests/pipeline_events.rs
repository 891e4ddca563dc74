//! The event pipeline end to end: gRPC (and HTTP) in, real built-in plugin, real PostgreSQL out.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use challenge_core::progress::{GoalProgress, GoalStatus, ProgressSource};
use challenge_host::AppState;
use challenge_proto::accelbyte::iam::account::v1 as iam;
use challenge_proto::accelbyte::social::statistic::v1 as statistic;
use challenge_proto::challenge::events::v1 as batch;
use challenge_storage::{ClaimOutcome, ClaimRequest, GoalFilter, NewAssignment, NewRewardGrant, RewardType};
use chrono::{DateTime, Duration as TimeDelta, TimeZone, Utc};
use common::*;
use tonic::Code;

type LoginClient = iam::user_authentication_user_logged_in_service_client::UserAuthenticationUserLoggedInServiceClient<
    tonic::transport::Channel,
>;
type StatClient = statistic::statistic_stat_item_updated_service_client::StatisticStatItemUpdatedServiceClient<
    tonic::transport::Channel,
>;
type BatchClient = batch::event_ingestion_service_client::EventIngestionServiceClient<tonic::transport::Channel>;

struct Clients {
    login: LoginClient,
    stat: StatClient,
    batch: BatchClient,
}

async fn clients(server: &TestServer) -> Clients {
    let channel = server.grpc_channel().await;
    Clients {
        login: LoginClient::new(channel.clone()),
        stat: StatClient::new(channel.clone()),
        batch: BatchClient::new(channel),
    }
}

fn login(id: &str, user: &str, at: DateTime<Utc>) -> iam::UserLoggedIn {
    iam::UserLoggedIn {
        id: id.into(),
        user_id: user.into(),
        namespace: NAMESPACE.into(),
        timestamp: at.to_rfc3339(),
        ..Default::default()
    }
}

fn stat(id: &str, user: &str, code: &str, value: f64, inc: f64) -> statistic::StatItemUpdated {
    statistic::StatItemUpdated {
        id: id.into(),
        user_id: user.into(),
        namespace: NAMESPACE.into(),
        payload: Some(statistic::StatItem { stat_code: code.into(), latest_value: value, inc, ..Default::default() }),
        ..Default::default()
    }
}

fn batch_stat(id: &str, user: &str, code: &str, value: f64, inc: f64) -> batch::Event {
    batch::Event {
        id: id.into(),
        user_id: user.into(),
        namespace: NAMESPACE.into(),
        timestamp: String::new(),
        kind: Some(batch::event::Kind::Stat(batch::StatEvent { stat_code: code.into(), latest_value: value, inc })),
    }
}

/// The player's goals as shown: (displayed progress, status) by goal id.
async fn shown(state: &AppState, user: &str) -> HashMap<String, (i64, GoalStatus)> {
    let rows = state.store.user_goals(user, &GoalFilter::default()).await.unwrap();
    let stats = state.store.user_stats(user).await.unwrap();
    let config = state.config();
    rows.iter()
        .map(|row| {
            let code = config.catalog.goal(&row.goal_id).unwrap().stat_code().to_owned();
            let stat = stats.iter().find(|s| s.stat_code == code);
            (row.goal_id.clone(), (row.displayed_progress(stat), row.status))
        })
        .collect()
}

async fn event_count(state: &AppState, user: &str, code: &str) -> i64 {
    let stats = state.store.user_stats(user).await.unwrap();
    stats.iter().find(|s| s.stat_code == code).map_or(0, |s| s.event_count)
}

fn day(n: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, n, 12, 0, 0).unwrap()
}

#[tokio::test]
async fn every_builtin_goal_type_moves_through_grpc_into_the_database() {
    let server = TestServer::start(TestOptions::default()).await;
    let state = server.state();
    let user = "player-types";
    let goals = [
        "first-login",
        "reach-level-5",
        "kill-10",
        "login-3-times",
        "daily-login-5-days",
        "play-today",
        "kills-100",
        "wins-3",
    ];
    assign(state, user, &goals).await;
    let mut c = clients(&server).await;

    // Three logins on two days: +1 each for counting goals, once per day for the daily-flag goal.
    c.login.on_message(login("l1", user, day(1))).await.unwrap();
    c.login.on_message(login("l2", user, day(1) + TimeDelta::hours(2))).await.unwrap();
    c.login.on_message(login("l3", user, day(2))).await.unwrap();
    // Absolute level: completion is sticky even when the stat goes down later.
    c.stat.on_message(stat("s1", user, "level", 3.0, 3.0)).await.unwrap();
    c.stat.on_message(stat("s2", user, "level", 5.0, 2.0)).await.unwrap();
    c.stat.on_message(stat("s3", user, "level", 2.0, -3.0)).await.unwrap();
    // Relative kills: baseline = first value - inc = 45, completes at +10.
    c.stat.on_message(stat("s4", user, "kills", 50.0, 5.0)).await.unwrap();
    let after_first = shown(state, user).await;
    assert_eq!(after_first["kill-10"], (5, GoalStatus::InProgress));
    c.stat.on_message(stat("s5", user, "kills", 57.0, 7.0)).await.unwrap();
    // Daily goal: any match event today completes it.
    c.stat.on_message(stat("s6", user, "matches", 1.0, 1.0)).await.unwrap();
    // Relative with first-event completion (inc >= target).
    c.stat.on_message(stat("s7", user, "wins", 10.0, 3.0)).await.unwrap();

    let shown = shown(state, user).await;
    assert_eq!(shown["first-login"], (3, GoalStatus::Completed));
    assert_eq!(shown["login-3-times"], (3, GoalStatus::Completed));
    assert_eq!(shown["daily-login-5-days"], (2, GoalStatus::InProgress));
    assert_eq!(shown["reach-level-5"], (2, GoalStatus::Completed), "value went down, completion stays");
    assert_eq!(shown["kill-10"], (12, GoalStatus::Completed));
    assert_eq!(shown["kills-100"], (57, GoalStatus::InProgress));
    assert_eq!(shown["play-today"], (1, GoalStatus::Completed));
    assert_eq!(shown["wins-3"], (3, GoalStatus::Completed));
    assert_eq!(event_count(state, user, "login_count").await, 3);
    assert_eq!(event_count(state, user, "kills").await, 2);

    let row: GoalProgress = state.store.user_goal(user, "kill-10").await.unwrap().unwrap();
    assert_eq!((row.baseline_value, row.progress_source), (Some(45), ProgressSource::StatValue));
    assert!(row.completed_at.is_some());
}

#[tokio::test]
async fn inactive_expired_and_claimed_goals_are_untouched() {
    let server = TestServer::start(TestOptions::default()).await;
    let state = server.state();
    let user = "player-frozen";
    assign(state, user, &["reach-level-5", "kills-100", "wins-3", "kill-10"]).await;
    let mut c = clients(&server).await;

    // reach-level-5: complete it, then claim it.
    c.stat.on_message(stat("a1", user, "level", 5.0, 5.0)).await.unwrap();
    let config = state.config();
    let goal = config.catalog.goal("reach-level-5").unwrap();
    let claim = ClaimRequest {
        user_id: user.into(),
        goal_id: goal.id.clone(),
        prerequisites: vec![],
        completed_not_before: None,
        now: Utc::now(),
        grant: NewRewardGrant {
            namespace: NAMESPACE.into(),
            challenge_id: goal.challenge_id.clone(),
            reward_type: RewardType::Item,
            reward_id: "sword".into(),
            quantity: 1,
        },
    };
    assert!(matches!(state.store.claim(&claim).await.unwrap(), ClaimOutcome::Claimed { .. }));
    // kills-100: deactivated.
    let mut off = NewAssignment {
        user_id: user.into(),
        goal_id: "kills-100".into(),
        challenge_id: "grind".into(),
        namespace: NAMESPACE.into(),
        is_active: false,
        assigned_at: None,
        expires_at: None,
        progress_source: ProgressSource::Stored,
    };
    state.store.set_goal_active(&off, false, Utc::now()).await.unwrap();
    // wins-3: expired a minute ago.
    off.goal_id = "wins-3".into();
    off.expires_at = Some(Utc::now() - TimeDelta::minutes(1));
    state.store.set_goal_active(&off, true, Utc::now()).await.unwrap();
    // These writes bypassed the player API, which tells the caches about its own.
    state.player.changed(user).await;

    let before: Vec<GoalProgress> = state.store.user_goals(user, &GoalFilter::default()).await.unwrap();
    c.stat.on_message(stat("a2", user, "level", 9.0, 4.0)).await.unwrap();
    c.stat.on_message(stat("a3", user, "kills", 500.0, 500.0)).await.unwrap();
    c.stat.on_message(stat("a4", user, "wins", 50.0, 50.0)).await.unwrap();
    let after: Vec<GoalProgress> = state.store.user_goals(user, &GoalFilter::default()).await.unwrap();

    for goal in ["reach-level-5", "kills-100", "wins-3"] {
        let old = before.iter().find(|g| g.goal_id == goal).unwrap();
        let new = after.iter().find(|g| g.goal_id == goal).unwrap();
        assert_eq!(old, new, "{goal} must not change");
    }
    // The active goal on the same stat still moved.
    let kill10 = after.iter().find(|g| g.goal_id == "kill-10").unwrap();
    assert_eq!(kill10.status, GoalStatus::Completed);
    // No active goal listens to wins or level any more: nothing was written for them.
    assert_eq!(event_count(state, user, "wins").await, 0);
}

#[tokio::test]
async fn a_users_events_apply_in_order_and_repeated_updates_collapse() {
    let server = TestServer::start(TestOptions::default()).await;
    let state = server.state();
    let user = "player-order";
    assign(state, user, &["kills-100"]).await;
    let mut c = clients(&server).await;

    let events: Vec<batch::Event> =
        (1..=300).map(|i| batch_stat(&format!("o{i}"), user, "kills", f64::from(i), 1.0)).collect();
    let response = c.batch.submit_events(batch::SubmitEventsRequest { events }).await.unwrap().into_inner();
    assert_eq!((response.accepted, response.duplicates, response.rejected.len()), (300, 0, 0));

    let stats = state.store.user_stats(user).await.unwrap();
    assert_eq!((stats[0].value, stats[0].event_count), (300.0, 300), "the last event's value wins");
    assert_eq!(shown(state, user).await["kills-100"], (300, GoalStatus::Completed));
}

#[tokio::test]
async fn redelivered_events_count_once() {
    let server = TestServer::start(TestOptions::default()).await;
    let state = server.state();
    let user = "player-dupes";
    assign(state, user, &["login-3-times"]).await;
    let mut c = clients(&server).await;

    for _ in 0..3 {
        c.login.on_message(login("same-id", user, Utc::now())).await.unwrap();
    }
    assert_eq!(shown(state, user).await["login-3-times"].0, 1);

    let events = vec![
        batch::Event {
            id: "same-id".into(),
            user_id: user.into(),
            namespace: NAMESPACE.into(),
            timestamp: String::new(),
            kind: Some(batch::event::Kind::Login(batch::LoginEvent {})),
        },
        batch::Event {
            id: "other-id".into(),
            user_id: user.into(),
            namespace: NAMESPACE.into(),
            timestamp: String::new(),
            kind: Some(batch::event::Kind::Login(batch::LoginEvent {})),
        },
    ];
    let response = c.batch.submit_events(batch::SubmitEventsRequest { events }).await.unwrap().into_inner();
    assert_eq!((response.accepted, response.duplicates), (1, 1));
    assert_eq!(shown(state, user).await["login-3-times"].0, 2);

    // The same new id twice in one call: the second copy is in flight while the first is processed.
    let twice = |id: &str| batch::Event {
        id: id.into(),
        user_id: user.into(),
        namespace: NAMESPACE.into(),
        timestamp: String::new(),
        kind: Some(batch::event::Kind::Login(batch::LoginEvent {})),
    };
    let events = vec![twice("twice-id"), twice("twice-id")];
    let response = c.batch.submit_events(batch::SubmitEventsRequest { events }).await.unwrap().into_inner();
    assert_eq!((response.accepted, response.duplicates), (1, 0));
    let codes: Vec<(u32, &str)> = response.rejected.iter().map(|r| (r.index, r.error_code.as_str())).collect();
    assert_eq!(codes, [(1, "IN_FLIGHT")]);
    assert_eq!(shown(state, user).await["login-3-times"].0, 3);

    // Concurrent deliveries of one new id: whatever each caller is told, the goal moves once.
    let deliveries = (0..5).map(|_| {
        let mut login_client = c.login.clone();
        async move { login_client.on_message(login("burst-id", user, Utc::now())).await }
    });
    let answers = futures::future::join_all(deliveries).await;
    assert!(answers.iter().any(Result::is_ok), "one delivery is processed: {answers:?}");
    for answer in answers.iter().filter_map(|answer| answer.as_ref().err()) {
        assert_eq!(answer.code(), tonic::Code::Unavailable, "the others are told to retry: {answer:?}");
    }
    assert_eq!(event_count(state, user, "login_count").await, 4, "the burst counted once");
}

#[tokio::test]
async fn bad_events_are_refused_and_the_rest_of_a_batch_goes_through() {
    let server = TestServer::start(TestOptions::default()).await;
    let state = server.state();
    let user = "player-bad";
    assign(state, user, &["kills-100"]).await;
    let mut c = clients(&server).await;

    let refused = [
        stat("b1", "", "kills", 1.0, 1.0),
        stat("b2", user, "", 1.0, 1.0),
        stat("b3", user, "kills", f64::NAN, 1.0),
        stat("b4", user, "kills", f64::INFINITY, 1.0),
        statistic::StatItemUpdated { namespace: "other-game".into(), ..stat("b5", user, "kills", 1.0, 1.0) },
        statistic::StatItemUpdated { payload: None, ..stat("b6", user, "kills", 1.0, 1.0) },
    ];
    for event in refused {
        let status = c.stat.on_message(event.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{event:?}: {status:?}");
        assert!(!status.message().is_empty());
    }
    let no_user = login("b7", "", Utc::now());
    assert_eq!(c.login.on_message(no_user).await.unwrap_err().code(), Code::InvalidArgument);

    let events = vec![
        batch_stat("m1", user, "kills", 10.0, 1.0),
        batch_stat("m2", "", "kills", 11.0, 1.0),
        batch_stat("m3", user, "kills", f64::NAN, 1.0),
        batch::Event { kind: None, ..batch_stat("m4", user, "kills", 1.0, 1.0) },
        batch_stat("m5", user, "kills", 12.0, 1.0),
    ];
    let response = c.batch.submit_events(batch::SubmitEventsRequest { events }).await.unwrap().into_inner();
    assert_eq!(response.accepted, 2);
    let rejected: Vec<(u32, &str)> = response.rejected.iter().map(|r| (r.index, r.error_code.as_str())).collect();
    assert_eq!(rejected, vec![(1, "MISSING_USER_ID"), (2, "INVALID_VALUE"), (3, "MISSING_KIND")]);
    assert_eq!(event_count(state, user, "kills").await, 2);

    let oversized: Vec<batch::Event> =
        (0..10_001).map(|i| batch_stat(&format!("x{i}"), user, "kills", 1.0, 1.0)).collect();
    let status = c.batch.submit_events(batch::SubmitEventsRequest { events: oversized }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(event_count(state, user, "kills").await, 2, "an oversized batch stores nothing");
}

#[tokio::test]
async fn http_event_ingestion_uses_the_same_pipeline() {
    let server = TestServer::start(TestOptions::default()).await;
    let state = server.state();
    let user = "player-http";
    assign(state, user, &["kills-100", "first-login"]).await;
    let body = serde_json::json!([
        {"type": "login", "id": "h1", "userId": user, "namespace": NAMESPACE},
        {"type": "stat", "id": "h2", "userId": user, "namespace": NAMESPACE, "statCode": "kills", "latestValue": 42, "inc": 2},
        {"type": "stat", "id": "h3", "userId": user, "namespace": "elsewhere", "statCode": "kills", "latestValue": 1}
    ]);
    let response = reqwest::Client::new().post(format!("{}/v1/events", server.http)).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let outcome: serde_json::Value = response.json().await.unwrap();
    assert_eq!(outcome["accepted"], 2);
    assert_eq!(outcome["rejected"][0]["index"], 2);
    assert_eq!(outcome["rejected"][0]["errorCode"], "UNKNOWN_NAMESPACE");
    assert_eq!(shown(state, user).await["kills-100"].0, 42);

    let malformed = reqwest::Client::new()
        .post(format!("{}/v1/events", server.http))
        .header("content-type", "application/json")
        .body("[{\"type\": \"stat\"")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let error: serde_json::Value = malformed.json().await.unwrap();
    assert_eq!(error["errorCode"], "INVALID_JSON");
}

#[tokio::test]
async fn a_trapping_plugin_loses_no_event_of_other_goals() {
    let options = TestOptions {
        challenges: Some(fixture("challenges-trap.json")),
        plugin_files: vec![challenge_plugin_runtime::guest_artifact("trap")],
        ..TestOptions::default()
    };
    let server = TestServer::start(options).await;
    let state = server.state();
    // The trap guest panics for the user named "trap".
    let user = "trap";
    assign(state, user, &["kills-builtin", "kills-trap"]).await;
    let mut c = clients(&server).await;

    c.stat.on_message(stat("t1", user, "kills", 12.0, 12.0)).await.unwrap();
    let shown = shown(state, user).await;
    assert_eq!(shown["kills-builtin"], (12, GoalStatus::Completed));
    assert_eq!(shown["kills-trap"], (0, GoalStatus::NotStarted));
    assert_eq!(event_count(state, user, "kills").await, 1, "the event itself is committed");
    let parked = state.store.parked_evaluations(10).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!((parked[0].plugin.as_str(), parked[0].error_kind.as_str()), ("trap", "trap"));
    assert!(parked[0].goal_ids.contains("kills-trap") && parked[0].events.contains("kills"));

    // The server keeps serving: another user's events through the same plugin are fine.
    assign(state, "calm", &["kills-builtin", "kills-trap"]).await;
    c.stat.on_message(stat("t2", "calm", "kills", 3.0, 3.0)).await.unwrap();
    assert_eq!(event_count(state, "calm", "kills").await, 1);
}

#[tokio::test]
async fn graceful_shutdown_commits_every_acknowledged_event() {
    let mut server = TestServer::start(TestOptions::default()).await;
    let state = server.state().clone();
    let user = "player-shutdown";
    assign(&state, user, &["kills-100"]).await;
    let c = clients(&server).await;

    // Producers keep sending while the server shuts down; every acknowledged event must be stored.
    let mut producers = Vec::new();
    for p in 0..4 {
        let mut client = c.stat.clone();
        producers.push(tokio::spawn(async move {
            let mut acked = 0i64;
            for i in 0..200 {
                let event = stat(&format!("g{p}-{i}"), user, "kills", f64::from(i), 1.0);
                match client.on_message(event).await {
                    Ok(_) => acked += 1,
                    Err(_) => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    server.stop().await;
    let mut acked = 0;
    for producer in producers {
        acked += producer.await.unwrap();
    }
    assert!(acked > 0);
    assert_eq!(event_count(&state, user, "kills").await, acked, "acknowledged == stored");
}

#[tokio::test]
async fn a_redelivery_to_another_instance_is_deduplicated_through_redis() {
    let redis_url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let first = TestServer::start(TestOptions { redis_url: Some(redis_url.clone()), ..TestOptions::default() }).await;
    let shared_db = first.database_url.clone();
    let second =
        TestServer::start(TestOptions { redis_url: Some(redis_url), database: shared_db, ..TestOptions::default() })
            .await;
    let user = format!("player-{}", uuid::Uuid::new_v4().simple());
    assign(first.state(), &user, &["login-3-times"]).await;
    // Ids are unique per run: the Redis window outlives the test.
    let id = format!("evt-{}", uuid::Uuid::new_v4().simple());

    clients(&first).await.login.on_message(login(&id, &user, Utc::now())).await.unwrap();
    clients(&second).await.login.on_message(login(&id, &user, Utc::now())).await.unwrap();
    // A batch reserves its ids in one script call: the re-delivery is recognised, the new id counted.
    let fresh = format!("evt-{}", uuid::Uuid::new_v4().simple());
    let logins = || batch::SubmitEventsRequest {
        events: [&id, &fresh]
            .into_iter()
            .map(|event_id| batch::Event {
                id: event_id.clone(),
                user_id: user.clone(),
                namespace: NAMESPACE.into(),
                timestamp: String::new(),
                kind: Some(batch::event::Kind::Login(batch::LoginEvent {})),
            })
            .collect(),
    };
    let response = clients(&second).await.batch.submit_events(logins()).await.unwrap().into_inner();
    assert_eq!((response.accepted, response.duplicates), (1, 1));
    assert_eq!(shown(first.state(), &user).await["login-3-times"].0, 2, "each id counted once across instances");
    // The batch's ids were committed (by script) too: delivering both again to the first instance changes nothing.
    let response = clients(&first).await.batch.submit_events(logins()).await.unwrap().into_inner();
    assert_eq!((response.accepted, response.duplicates), (0, 2));
    assert_eq!(shown(first.state(), &user).await["login-3-times"].0, 2);
}

#[tokio::test]
async fn pipeline_and_plugin_metrics_are_exported() {
    let server = TestServer::start(TestOptions::default()).await;
    let user = "player-metrics";
    assign(server.state(), user, &["kills-100"]).await;
    let mut c = clients(&server).await;
    c.stat.on_message(stat("m1", user, "kills", 5.0, 5.0)).await.unwrap();
    let _ = c.stat.on_message(stat("m2", "", "kills", 5.0, 5.0)).await;

    let text = reqwest::get(format!("{}/metrics", server.http)).await.unwrap().text().await.unwrap();
    for metric in [
        "events_received_total",
        "events_accepted_total",
        "events_rejected_total",
        "events_deduplicated_total",
        "pipeline_batch_events",
        "pipeline_flush_seconds",
        "pipeline_rows_written_total",
        "plugin_calls_total",
        "plugin_eval_seconds",
        "storage_query_seconds",
    ] {
        assert!(text.contains(metric), "/metrics lacks {metric}");
    }
    assert!(text.contains(r#"events_rejected_total{code="MISSING_USER_ID"}"#));
}
