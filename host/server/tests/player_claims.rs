//! Claims and reward delivery: a goal is granted exactly once however many claims race, and a grant reaches the
//! platform exactly once (with one idempotency key) through outages, slowness and several instances.

mod common;
mod player_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, token};
use player_support::*;

async fn completed_level_goal(server: &PlayerServer, user: &str) {
    server.call(Via::Http, Some(&token(user)), Op::Initialize).await.unwrap();
    server.stat_event(user, "level", 5.0, 5.0).await;
}

const CLAIM: Op<'static> = Op::Claim { challenge: "starter", goal: "reach-level-5" };

async fn grant_status(server: &PlayerServer, user: &str) -> String {
    let pool = server.database.as_ref().unwrap().pool().await;
    let status: String = sqlx::query_scalar("SELECT status FROM reward_grants WHERE user_id = $1")
        .bind(user)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_claims_grant_once() {
    let rewards = FakeRewards::start().await;
    let server = Arc::new(PlayerServer::start(Setup { rewards: Some(rewards.url.clone()), ..Setup::default() }).await);
    let user = unique_user("race");
    completed_level_goal(&server, &user).await;

    let mut tasks = Vec::new();
    for i in 0..20 {
        let (server, bearer) = (server.clone(), token(&user));
        let via = if i % 2 == 0 { Via::Http } else { Via::Grpc };
        tasks.push(tokio::spawn(async move { server.call(via, Some(&bearer), CLAIM).await }));
    }
    let mut won = Vec::new();
    let mut refused = BTreeMap::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(response) => won.push(response),
            Err(failure) => *refused.entry((failure.status, failure.code)).or_insert(0) += 1,
        }
    }
    assert_eq!(won.len(), 1, "exactly one claim wins: {refused:?}");
    assert_eq!(refused, BTreeMap::from([((409, "ALREADY_CLAIMED".to_owned()), 19)]));
    assert_eq!(won[0]["grantStatus"], "delivered");
    assert_eq!(server.sql_count(&format!("SELECT COUNT(*) FROM reward_grants WHERE user_id = '{user}'")).await, 1);
    tokio::time::sleep(Duration::from_millis(300)).await; // the outbox worker polls every 50 ms
    assert_eq!(rewards.received().len(), 1, "one delivery: {:?}", rewards.received());
    assert_eq!(grant_status(&server, &user).await, "delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reward_service_outage_delays_the_grant_but_delivers_it_once() {
    let rewards = FakeRewards::start().await;
    rewards.answer_always(503);
    let server = PlayerServer::start(Setup { rewards: Some(rewards.url.clone()), ..Setup::default() }).await;
    let user = unique_user("outage");
    completed_level_goal(&server, &user).await;

    let claimed = server.call(Via::Grpc, Some(&token(&user)), CLAIM).await.unwrap();
    assert_eq!(claimed["grantStatus"], "pending");
    assert_eq!(claimed["status"], "claimed", "the claim itself succeeded and is recorded");
    // The worker keeps retrying with backoff while the platform is down.
    eventually(Duration::from_secs(10), || async { (rewards.received().len() >= 3).then_some(()) }).await;
    assert_eq!(grant_status(&server, &user).await, "pending");
    let attempts =
        server.sql_count(&format!("SELECT attempts::bigint FROM reward_grants WHERE user_id = '{user}'")).await;
    assert!(attempts >= 3, "{attempts}");

    rewards.answer_always(200);
    eventually(Duration::from_secs(10), || async { (rewards.acknowledged().len() == 1).then_some(()) }).await;
    eventually(Duration::from_secs(5), || async { (grant_status(&server, &user).await == "delivered").then_some(()) })
        .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let received = rewards.received();
    assert_eq!(rewards.acknowledged().len(), 1, "delivered exactly once");
    assert_eq!(received.last().unwrap().answered, 200, "nothing was sent after the acknowledgement");
    let keys: BTreeSet<&str> = received.iter().map(|r| r.idempotency_key.as_str()).collect();
    assert_eq!(keys.len(), 1, "every attempt carries the same idempotency key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_grant_is_marked_failed_and_not_retried() {
    let rewards = FakeRewards::start().await;
    rewards.answer_always(404);
    let server = PlayerServer::start(Setup { rewards: Some(rewards.url.clone()), ..Setup::default() }).await;
    let user = unique_user("refused");
    completed_level_goal(&server, &user).await;
    let claimed = server.call(Via::Http, Some(&token(&user)), CLAIM).await.unwrap();
    assert_eq!(claimed["grantStatus"], "failed");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rewards.received().len(), 1);
    assert_eq!(grant_status(&server, &user).await, "failed");
    let error: i64 = server
        .sql_count(&format!(
            "SELECT COUNT(*) FROM reward_grants WHERE user_id = '{user}' AND last_error LIKE 'HTTP 404%'"
        ))
        .await;
    assert_eq!(error, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_reward_service_answers_pending_and_the_attempt_still_completes() {
    let rewards = FakeRewards::start().await;
    rewards.delay(Duration::from_millis(800));
    let server = PlayerServer::start(Setup {
        rewards: Some(rewards.url.clone()),
        configure: |settings| settings.rewards.claim_wait_ms = 100,
        ..Setup::default()
    })
    .await;
    let user = unique_user("slow");
    completed_level_goal(&server, &user).await;
    let started = std::time::Instant::now();
    let claimed = server.call(Via::Http, Some(&token(&user)), CLAIM).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(700), "the claim did not wait for the platform");
    assert_eq!(claimed["grantStatus"], "pending");
    eventually(Duration::from_secs(5), || async { (grant_status(&server, &user).await == "delivered").then_some(()) })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rewards.received().len(), 1, "the first attempt finished in the background; no second one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_sharing_the_outbox_deliver_each_grant_once() {
    let rewards = FakeRewards::start().await;
    rewards.answer_always(503);
    let first = PlayerServer::start(Setup { rewards: Some(rewards.url.clone()), ..Setup::default() }).await;
    let second = PlayerServer::start(Setup {
        rewards: Some(rewards.url.clone()),
        share: first.database.clone(),
        ..Setup::default()
    })
    .await;
    let mut users = Vec::new();
    for i in 0..12 {
        let user = unique_user("shared");
        let server = if i % 2 == 0 { &first } else { &second };
        completed_level_goal(server, &user).await;
        let claimed = server.call(Via::Http, Some(&token(&user)), CLAIM).await.unwrap();
        assert_eq!(claimed["grantStatus"], "pending");
        users.push(user);
    }
    // Both outbox workers now compete for the same due grants.
    rewards.answer_always(200);
    eventually(Duration::from_secs(15), || async {
        let delivered = first.sql_count("SELECT COUNT(*) FROM reward_grants WHERE status = 'delivered'").await;
        (delivered == users.len() as i64).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acknowledged = rewards.acknowledged();
    let keys: BTreeSet<&str> = acknowledged.iter().map(|r| r.idempotency_key.as_str()).collect();
    assert_eq!(keys.len(), users.len());
    assert_eq!(acknowledged.len(), users.len(), "no grant was delivered twice");
}
