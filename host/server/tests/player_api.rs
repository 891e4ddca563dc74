//! The player API end to end on PostgreSQL: every operation over REST and gRPC with the same expectations,
//! with progress coming from real events through the real pipeline and built-in rules plugin.

mod common;
mod player_support;

use std::collections::BTreeSet;

use common::{TEST_SECRET, token};
use jsonwebtoken::{EncodingKey, Header, encode};
use player_support::*;
use serde_json::{Value, json};

async fn server_with_rewards() -> (PlayerServer, FakeRewards) {
    let rewards = FakeRewards::start().await;
    let server = PlayerServer::start(Setup { rewards: Some(rewards.url.clone()), ..Setup::default() }).await;
    (server, rewards)
}

fn ids(list: &Value, key: &str) -> Vec<String> {
    list.as_array().unwrap().iter().map(|g| g[key].as_str().unwrap().to_owned()).collect()
}

fn expect_failure(outcome: Outcome, status: u16, code: &str) -> Failure {
    match outcome {
        Err(failure) => {
            assert_eq!((failure.status, failure.code.as_str()), (status, code), "{failure:?}");
            failure
        }
        Ok(value) => panic!("expected {status} {code}, got {value}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn initialize_assigns_the_default_goals_once() {
    let server = PlayerServer::start(Setup::default()).await;
    for via in BOTH {
        let user = unique_user("init");
        let bearer = token(&user);
        let first = server.call(via, Some(&bearer), Op::Initialize).await.unwrap();
        assert_eq!((first["newAssignments"].as_i64(), first["totalActive"].as_i64()), (Some(4), Some(4)), "{via:?}");
        assert_eq!(ids(&first["assignedGoals"], "goalId"), ["first-login", "reach-level-5", "kill-10", "weekly-wins"]);
        let level = &first["assignedGoals"][1];
        assert_eq!(level["challengeId"], "starter");
        assert_eq!((level["isActive"].as_bool(), level["status"].as_str()), (Some(true), Some("not_started")));
        assert_eq!((level["progress"].as_i64(), level["target"].as_i64()), (Some(0), Some(5)));
        assert_eq!(level["requirement"], json!({"statCode": "level", "operator": ">=", "targetValue": 5}));
        assert_eq!(level["reward"], json!({"type": "ITEM", "rewardId": "sword", "quantity": 1}));
        assert_eq!(level["expiresAt"], "", "non-rotating goals never expire");
        assert_ne!(level["assignedAt"], "");
        // The weekly goal's assignment ends at the next Monday 00:00 UTC.
        let weekly = chrono::DateTime::parse_from_rfc3339(first["assignedGoals"][3]["expiresAt"].as_str().unwrap())
            .expect("weekly goal expires");
        assert_eq!(weekly.format("%a %H:%M:%S").to_string(), "Mon 00:00:00");
        assert!(weekly > chrono::Utc::now() && weekly <= chrono::Utc::now() + chrono::TimeDelta::days(7));

        // Idempotent: a returning player gets the same goals and nothing new.
        let again = server.call(via, Some(&bearer), Op::Initialize).await.unwrap();
        assert_eq!((again["newAssignments"].as_i64(), again["totalActive"].as_i64()), (Some(0), Some(4)));
        assert_eq!(again["assignedGoals"], first["assignedGoals"]);

        // A deactivated default goal stays deactivated; a goal the player activated is listed too.
        server
            .call(via, Some(&bearer), Op::SetActive { challenge: "starter", goal: "kill-10", active: false })
            .await
            .unwrap();
        server
            .call(via, Some(&bearer), Op::SetActive { challenge: "grind", goal: "wins-3", active: true })
            .await
            .unwrap();
        let after = server.call(via, Some(&bearer), Op::Initialize).await.unwrap();
        assert_eq!((after["newAssignments"].as_i64(), after["totalActive"].as_i64()), (Some(0), Some(4)));
        // Configuration order: starter, grind, weekly.
        assert_eq!(ids(&after["assignedGoals"], "goalId"), ["first-login", "reach-level-5", "wins-3", "weekly-wins"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn initialize_picks_up_default_goals_added_to_the_configuration_later() {
    let mut before = PlayerServer::start(Setup { fixture: "challenges.json", ..Setup::default() }).await;
    let user = unique_user("later");
    let bearer = token(&user);
    let first = before.call(Via::Http, Some(&bearer), Op::Initialize).await.unwrap();
    assert_eq!(first["newAssignments"], 3);
    let database = before.database.clone();
    before.stop().await;

    // The same database under a configuration with one more default goal.
    let after = PlayerServer::start(Setup { share: database, ..Setup::default() }).await;
    let second = after.call(Via::Grpc, Some(&bearer), Op::Initialize).await.unwrap();
    assert_eq!((second["newAssignments"].as_i64(), second["totalActive"].as_i64()), (Some(1), Some(4)));
    assert_eq!(ids(&second["assignedGoals"], "goalId"), ["first-login", "reach-level-5", "kill-10", "weekly-wins"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listings_show_every_goal_with_progress_locks_and_activity() {
    let server = PlayerServer::start(Setup::default()).await;
    for via in BOTH {
        let user = unique_user("list");
        let bearer = token(&user);
        let list = || server.call(via, Some(&bearer), Op::List { active_only: false });

        // Before anything: every challenge and goal of the configuration, in configuration order.
        let fresh = list().await.unwrap();
        assert_eq!(ids(&fresh["challenges"], "challengeId"), ["starter", "grind", "weekly"]);
        let counts: Vec<usize> =
            fresh["challenges"].as_array().unwrap().iter().map(|c| c["goals"].as_array().unwrap().len()).collect();
        assert_eq!(counts, [3, 5, 2]);
        let kill = goal(&fresh, "kill-10");
        assert_eq!(kill["prerequisites"], json!(["first-login"]));
        assert_eq!((kill["locked"].as_bool(), kill["isActive"].as_bool()), (Some(true), Some(false)));
        assert_eq!((kill["status"].as_str(), kill["progress"].as_i64()), (Some("not_started"), Some(0)));
        assert_eq!((goal(&fresh, "kills-100")["locked"].as_bool()), Some(false));

        server.call(via, Some(&bearer), Op::Initialize).await.unwrap();
        server.stat_event(&user, "level", 3.0, 3.0).await;
        let started = list().await.unwrap();
        let level = goal(&started, "reach-level-5");
        assert_eq!((level["progress"].as_i64(), level["status"].as_str()), (Some(3), Some("in_progress")));
        assert_eq!((level["isActive"].as_bool(), level["completedAt"].as_str()), (Some(true), Some("")));
        assert_eq!(goal(&started, "weekly-kills")["locked"], true);

        server.stat_event(&user, "level", 7.0, 4.0).await;
        server.login_event(&user).await;
        let done = list().await.unwrap();
        let level = goal(&done, "reach-level-5");
        assert_eq!((level["progress"].as_i64(), level["status"].as_str()), (Some(7), Some("completed")));
        assert_ne!(level["completedAt"], "");
        assert_eq!(goal(&done, "first-login")["status"], "completed");
        assert_eq!(goal(&done, "kill-10")["locked"], false, "its prerequisite is completed");
        assert_eq!(goal(&done, "weekly-kills")["locked"], false, "prerequisites may sit in another challenge");
        let weekly = goal(&done, "weekly-wins");
        assert!(weekly["expiresInSeconds"].as_i64().unwrap() > 0);
        assert_ne!(weekly["expiresAt"], "");

        // active_only: only the player's active goals, challenges without any left out.
        let active = server.call(via, Some(&bearer), Op::List { active_only: true }).await.unwrap();
        assert_eq!(ids(&active["challenges"], "challengeId"), ["starter", "weekly"]);
        assert_eq!(ids(&active["challenges"][0]["goals"], "goalId"), ["first-login", "reach-level-5", "kill-10"]);
        assert_eq!(goal(&active, "reach-level-5"), goal(&done, "reach-level-5"));

        // One challenge: the same goals as in the listing.
        let starter = server.call(via, Some(&bearer), Op::Get { challenge: "starter" }).await.unwrap();
        assert_eq!(without_countdowns(&starter), without_countdowns(&done["challenges"][0]));
        expect_failure(
            server.call(via, Some(&bearer), Op::Get { challenge: "nope" }).await,
            404,
            "CHALLENGE_NOT_FOUND",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_and_grpc_return_the_same_responses() {
    let server = PlayerServer::start(Setup::default()).await;
    let user = unique_user("parity");
    let bearer = token(&user);
    server.call(Via::Http, Some(&bearer), Op::Initialize).await.unwrap();
    server.stat_event(&user, "level", 5.0, 5.0).await;
    server.stat_event(&user, "kills", 4.0, 4.0).await;
    server.stat_event(&user, "wins", 1.0, 1.0).await;
    server
        .call(Via::Grpc, Some(&bearer), Op::SetActive { challenge: "grind", goal: "kills-100", active: true })
        .await
        .unwrap();
    server
        .call(Via::Grpc, Some(&bearer), Op::SetActive { challenge: "grind", goal: "wins-3", active: false })
        .await
        .unwrap();

    let reads = [
        Op::List { active_only: false },
        Op::List { active_only: true },
        Op::Get { challenge: "starter" },
        Op::Get { challenge: "grind" },
        Op::Get { challenge: "weekly" },
        Op::Rotation { challenge: "weekly" },
        Op::Rotation { challenge: "starter" },
        Op::Initialize,
        Op::Get { challenge: "missing" },
        Op::Rotation { challenge: "missing" },
    ];
    for op in reads {
        let http = server.call(Via::Http, Some(&bearer), op.clone()).await;
        let grpc = server.call(Via::Grpc, Some(&bearer), op.clone()).await;
        match (http, grpc) {
            (Ok(http), Ok(grpc)) => assert_eq!(without_countdowns(&http), without_countdowns(&grpc), "{op:?}"),
            (Err(http), Err(grpc)) => assert_eq!(http, grpc, "{op:?}"),
            (http, grpc) => panic!("{op:?}: HTTP {http:?} but gRPC {grpc:?}"),
        }
    }

    // Writes: two players with the same history, one per transport, get the same answers.
    let players = [(Via::Http, token(&unique_user("w-http"))), (Via::Grpc, token(&unique_user("w-grpc")))];
    let writes = [
        Op::Initialize,
        Op::SetActive { challenge: "grind", goal: "kills-100", active: true },
        Op::SetActive { challenge: "grind", goal: "kills-100", active: false },
        Op::SetActive { challenge: "starter", goal: "kills-100", active: true },
        Op::Batch { challenge: "grind", goals: &["wins-3", "kills-100", "wins-3"], replace: false },
        Op::Batch { challenge: "grind", goals: &["login-3-times"], replace: true },
        Op::Batch { challenge: "grind", goals: &["first-login"], replace: true },
        Op::Random { challenge: "starter", count: 1, replace: false, exclude_active: true },
        Op::Random { challenge: "weekly", count: 1, replace: false, exclude_active: true },
        Op::Claim { challenge: "starter", goal: "first-login" },
        Op::List { active_only: false },
    ];
    for op in writes {
        let mut outcomes = Vec::new();
        for (via, bearer) in &players {
            outcomes.push(server.call(*via, Some(bearer), op.clone()).await.map(|value| without_times(&value)));
        }
        assert_eq!(outcomes[0], outcomes[1], "{op:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn set_goal_active_creates_the_assignment_and_keeps_progress() {
    let server = PlayerServer::start(Setup::default()).await;
    for via in BOTH {
        let user = unique_user("active");
        let bearer = token(&user);
        let on = server
            .call(via, Some(&bearer), Op::SetActive { challenge: "grind", goal: "kills-100", active: true })
            .await
            .unwrap();
        assert_eq!((on["challengeId"].as_str(), on["goalId"].as_str()), (Some("grind"), Some("kills-100")));
        assert_eq!(
            (on["isActive"].as_bool(), on["message"].as_str()),
            (Some(true), Some("Goal activated successfully"))
        );
        assert_ne!(on["assignedAt"], "");
        server.stat_event(&user, "kills", 40.0, 40.0).await;
        let list = server.call(via, Some(&bearer), Op::List { active_only: false }).await.unwrap();
        assert_eq!(
            (goal(&list, "kills-100")["progress"].as_i64(), goal(&list, "kills-100")["isActive"].as_bool()),
            (Some(40), Some(true))
        );

        let off = server
            .call(via, Some(&bearer), Op::SetActive { challenge: "grind", goal: "kills-100", active: false })
            .await
            .unwrap();
        assert_eq!(
            (off["isActive"].as_bool(), off["message"].as_str()),
            (Some(false), Some("Goal deactivated successfully"))
        );
        assert_eq!(off["assignedAt"], on["assignedAt"], "deactivation keeps the assignment time");
        let list = server.call(via, Some(&bearer), Op::List { active_only: false }).await.unwrap();
        assert_eq!(goal(&list, "kills-100")["isActive"], false);
        assert_eq!(goal(&list, "kills-100")["progress"], 40, "progress survives deactivation");

        let set = |challenge, goal| Op::SetActive { challenge, goal, active: true };
        expect_failure(server.call(via, Some(&bearer), set("grind", "nope")).await, 404, "GOAL_NOT_FOUND");
        expect_failure(server.call(via, Some(&bearer), set("starter", "kills-100")).await, 404, "GOAL_NOT_FOUND");
        expect_failure(server.call(via, Some(&bearer), set("nope", "kills-100")).await, 404, "CHALLENGE_NOT_FOUND");
    }

    // REST bodies: camelCase or snake_case; the flag is required, never silently false.
    let bearer = token(&unique_user("active-body"));
    let path = "/v1/challenges/grind/goals/wins-3/active";
    let put = |body: &'static [u8]| server.raw("PUT", path, Some(&bearer), Some(body), Some("application/json"));
    let (status, body) = put(br#"{"is_active": true}"#).await;
    assert_eq!((status, body["isActive"].as_bool()), (200, Some(true)));
    for (bad, code) in [
        (&br#"{}"#[..], "INVALID_REQUEST"),
        (br#"{"isActive": null}"#, "INVALID_REQUEST"),
        (b"", "INVALID_REQUEST"),
        (br#"{"isActive": "yes"}"#, "INVALID_JSON"),
        (br#"[true]"#, "INVALID_JSON"),
        (b"{", "INVALID_JSON"),
    ] {
        let (status, body) = put(bad).await;
        assert_eq!((status, body["errorCode"].as_str()), (400, Some(code)), "{}", String::from_utf8_lossy(bad));
    }
    let list = server.call(Via::Http, Some(&bearer), Op::List { active_only: false }).await.unwrap();
    assert_eq!(goal(&list, "wins-3")["isActive"], true, "refused requests changed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batch_select_is_all_or_nothing() {
    let server = PlayerServer::start(Setup::default()).await;
    for via in BOTH {
        let bearer = token(&unique_user("batch"));
        let batch = |goals, replace| Op::Batch { challenge: "grind", goals, replace };
        let first = server.call(via, Some(&bearer), batch(&["kills-100", "wins-3", "kills-100"], false)).await.unwrap();
        assert_eq!(ids(&first["selectedGoals"], "goalId"), ["kills-100", "wins-3"], "repeated ids count once");
        assert_eq!((first["totalActiveGoals"].as_i64(), first["replacedGoals"].clone()), (Some(2), json!([])));
        let picked = &first["selectedGoals"][0];
        assert_eq!(
            (picked["isActive"].as_bool(), picked["status"].as_str(), picked["target"].as_i64()),
            (Some(true), Some("not_started"), Some(100))
        );

        let second = server.call(via, Some(&bearer), batch(&["login-3-times"], true)).await.unwrap();
        assert_eq!(second["replacedGoals"], json!(["kills-100", "wins-3"]));
        assert_eq!(second["totalActiveGoals"], 1);

        // Refused selections change nothing.
        expect_failure(
            server.call(via, Some(&bearer), batch(&["kills-100", "nope"], true)).await,
            404,
            "GOAL_NOT_FOUND",
        );
        expect_failure(
            server.call(via, Some(&bearer), batch(&["kills-100", "first-login"], true)).await,
            400,
            "GOAL_NOT_IN_CHALLENGE",
        );
        expect_failure(server.call(via, Some(&bearer), batch(&[], true)).await, 400, "INVALID_REQUEST");
        expect_failure(
            server
                .call(via, Some(&bearer), Op::Batch { challenge: "nope", goals: &["kills-100"], replace: false })
                .await,
            404,
            "CHALLENGE_NOT_FOUND",
        );
        let active = server.call(via, Some(&bearer), Op::List { active_only: true }).await.unwrap();
        assert_eq!(ids(&active["challenges"], "challengeId"), ["grind"]);
        assert_eq!(ids(&active["challenges"][0]["goals"], "goalId"), ["login-3-times"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_select_only_picks_goals_the_player_can_work_on() {
    let server = PlayerServer::start(Setup::default()).await;
    for via in BOTH {
        let user = unique_user("random");
        let bearer = token(&user);
        server.call(via, Some(&bearer), Op::Initialize).await.unwrap();
        server.stat_event(&user, "level", 5.0, 5.0).await; // reach-level-5 completed
        let random = |challenge, count, exclude_active| Op::Random { challenge, count, replace: false, exclude_active };

        // starter: reach-level-5 is completed and kill-10 is locked by first-login, so only first-login remains.
        let failure = expect_failure(
            server.call(via, Some(&bearer), random("starter", 1, true)).await,
            422,
            "INSUFFICIENT_GOALS",
        );
        assert!(failure.message.contains("available: 0, requested: 1"), "{}", failure.message);
        let failure = expect_failure(
            server.call(via, Some(&bearer), random("starter", 2, false)).await,
            422,
            "INSUFFICIENT_GOALS",
        );
        assert!(failure.message.contains("available: 1, requested: 2"), "{}", failure.message);
        let picked = server.call(via, Some(&bearer), random("starter", 1, false)).await.unwrap();
        assert_eq!(ids(&picked["selectedGoals"], "goalId"), ["first-login"]);

        // weekly: weekly-kills' prerequisite (reach-level-5, another challenge) is completed, so it is available.
        let picked = server.call(via, Some(&bearer), random("weekly", 1, true)).await.unwrap();
        assert_eq!(ids(&picked["selectedGoals"], "goalId"), ["weekly-kills"]);
        assert_eq!(picked["totalActiveGoals"], 2);

        let picked = server
            .call(via, Some(&bearer), Op::Random { challenge: "grind", count: 3, replace: true, exclude_active: false })
            .await
            .unwrap();
        let chosen = ids(&picked["selectedGoals"], "goalId");
        assert_eq!(chosen.iter().collect::<BTreeSet<_>>().len(), 3);
        assert_eq!(picked["totalActiveGoals"], 3);

        expect_failure(server.call(via, Some(&bearer), random("grind", 0, false)).await, 400, "INVALID_REQUEST");
        expect_failure(server.call(via, Some(&bearer), random("grind", -3, false)).await, 400, "INVALID_REQUEST");
        expect_failure(server.call(via, Some(&bearer), random("nope", 1, false)).await, 404, "CHALLENGE_NOT_FOUND");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_need_an_active_completed_unclaimed_goal_with_prerequisites_met() {
    let (server, rewards) = server_with_rewards().await;
    for via in BOTH {
        let user = unique_user("claim");
        let bearer = token(&user);
        let claim = |challenge, goal| Op::Claim { challenge, goal };
        server.call(via, Some(&bearer), Op::Initialize).await.unwrap();
        let failure = expect_failure(
            server.call(via, Some(&bearer), claim("starter", "reach-level-5")).await,
            409,
            "GOAL_NOT_COMPLETED",
        );
        assert!(failure.message.contains("not_started"), "{}", failure.message);

        server.stat_event(&user, "level", 5.0, 5.0).await;
        let claimed = server.call(via, Some(&bearer), claim("starter", "reach-level-5")).await.unwrap();
        assert_eq!((claimed["goalId"].as_str(), claimed["status"].as_str()), (Some("reach-level-5"), Some("claimed")));
        assert_eq!(claimed["reward"], json!({"type": "ITEM", "rewardId": "sword", "quantity": 1}));
        assert_eq!(claimed["grantStatus"], "delivered");
        let sent: Vec<Received> = rewards.received().into_iter().filter(|r| r.path.contains(&user)).collect();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            (sent[0].method.as_str(), sent[0].path.as_str()),
            ("POST", format!("/platform/admin/namespaces/test-ns/users/{user}/fulfillment").as_str())
        );
        assert!(sent[0].idempotency_key.starts_with(&format!("claim:{user}:reach-level-5:")), "{:?}", sent[0]);
        assert_eq!(sent[0].authorization, format!("Bearer {REWARD_TOKEN}"));
        assert_eq!((sent[0].body["itemId"].as_str(), sent[0].body["quantity"].as_i64()), (Some("sword"), Some(1)));

        let failure = expect_failure(
            server.call(via, Some(&bearer), claim("starter", "reach-level-5")).await,
            409,
            "ALREADY_CLAIMED",
        );
        assert!(failure.message.contains(claimed["claimedAt"].as_str().unwrap()), "{}", failure.message);
        let list = server.call(via, Some(&bearer), Op::List { active_only: false }).await.unwrap();
        assert_eq!(goal(&list, "reach-level-5")["status"], "claimed");
        assert_eq!(goal(&list, "reach-level-5")["claimedAt"], claimed["claimedAt"]);
        assert_eq!(goal(&list, "weekly-kills")["locked"], false, "a claimed prerequisite counts");

        // kill-10 needs first-login.
        server.stat_event(&user, "kills", 10.0, 10.0).await;
        let failure = expect_failure(
            server.call(via, Some(&bearer), claim("starter", "kill-10")).await,
            409,
            "PREREQUISITES_NOT_MET",
        );
        assert!(failure.message.contains("first-login"), "{}", failure.message);
        server.login_event(&user).await;
        let claimed = server.call(via, Some(&bearer), claim("starter", "kill-10")).await.unwrap();
        assert_eq!(claimed["grantStatus"], "delivered");
        let wallet = rewards.received().into_iter().filter(|r| r.path.contains(&user)).nth(1).expect("second grant");
        assert_eq!(
            (wallet.method.as_str(), wallet.path.as_str()),
            ("PUT", format!("/platform/admin/namespaces/test-ns/users/{user}/wallets/GOLD/credit").as_str())
        );
        assert_eq!(wallet.body["amount"], 50);

        // A completed but inactive goal.
        server
            .call(via, Some(&bearer), Op::SetActive { challenge: "starter", goal: "first-login", active: false })
            .await
            .unwrap();
        expect_failure(server.call(via, Some(&bearer), claim("starter", "first-login")).await, 409, "GOAL_INACTIVE");

        expect_failure(server.call(via, Some(&bearer), claim("starter", "nope")).await, 404, "GOAL_NOT_FOUND");
        expect_failure(server.call(via, Some(&bearer), claim("grind", "first-login")).await, 404, "GOAL_NOT_FOUND");
        expect_failure(server.call(via, Some(&bearer), claim("nope", "first-login")).await, 404, "CHALLENGE_NOT_FOUND");
    }
    assert_eq!(server.sql_count("SELECT COUNT(*) FROM reward_grants").await, 4);
    assert_eq!(server.sql_count("SELECT COUNT(*) FROM reward_grants WHERE status = 'delivered'").await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn daily_and_rotating_completions_only_count_in_their_period() {
    let (server, _rewards) = server_with_rewards().await;
    let user = unique_user("period");
    let bearer = token(&user);
    server.call(Via::Http, Some(&bearer), Op::Initialize).await.unwrap();
    server
        .call(Via::Http, Some(&bearer), Op::SetActive { challenge: "grind", goal: "play-today", active: true })
        .await
        .unwrap();
    server.stat_event(&user, "matches", 1.0, 1.0).await;

    // Completed yesterday: too late for today's claim.
    server
        .sql(&format!(
            "UPDATE user_goal_progress SET completed_at = completed_at - INTERVAL '1 day' \
             WHERE user_id = '{user}' AND goal_id = 'play-today'"
        ))
        .await;
    server.state().player.changed(&user).await;
    let failure = expect_failure(
        server.call(Via::Grpc, Some(&bearer), Op::Claim { challenge: "grind", goal: "play-today" }).await,
        409,
        "COMPLETION_EXPIRED",
    );
    assert!(failure.message.contains("earlier period"), "{}", failure.message);
    // Playing today completes it again for today.
    server.stat_event(&user, "matches", 2.0, 1.0).await;
    let claimed =
        server.call(Via::Http, Some(&bearer), Op::Claim { challenge: "grind", goal: "play-today" }).await.unwrap();
    assert_eq!(claimed["status"], "claimed");

    // A rotating goal whose assignment ran out: shown from scratch, and not claimable.
    server.stat_event(&user, "wins", 2.0, 2.0).await;
    let list = server.call(Via::Http, Some(&bearer), Op::List { active_only: false }).await.unwrap();
    assert_eq!(
        (goal(&list, "weekly-wins")["status"].as_str(), goal(&list, "weekly-wins")["progress"].as_i64()),
        (Some("completed"), Some(2))
    );
    server
        .sql(&format!(
            "UPDATE user_goal_progress SET expires_at = NOW() - INTERVAL '1 minute' \
             WHERE user_id = '{user}' AND goal_id = 'weekly-wins'"
        ))
        .await;
    // Direct SQL bypasses the API, so tell the cache.
    server.state().player.changed(&user).await;
    let list = server.call(Via::Grpc, Some(&bearer), Op::List { active_only: false }).await.unwrap();
    let weekly = goal(&list, "weekly-wins");
    assert_eq!((weekly["status"].as_str(), weekly["progress"].as_i64()), (Some("not_started"), Some(0)));
    assert_eq!((weekly["completedAt"].as_str(), weekly["expiresInSeconds"].as_i64()), (Some(""), Some(0)));
    expect_failure(
        server.call(Via::Http, Some(&bearer), Op::Claim { challenge: "weekly", goal: "weekly-wins" }).await,
        409,
        "GOAL_EXPIRED",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_status_reports_the_current_and_next_period() {
    let server = PlayerServer::start(Setup::default()).await;
    let bearer = token(&unique_user("rotation"));
    for via in BOTH {
        let weekly = server.call(via, Some(&bearer), Op::Rotation { challenge: "weekly" }).await.unwrap();
        assert_eq!(weekly["challengeId"], "weekly");
        let rotation = &weekly["rotation"];
        assert_eq!(
            (rotation["enabled"].as_bool(), rotation["type"].as_str(), rotation["schedule"].as_str()),
            (Some(true), Some("global"), Some("weekly"))
        );
        let time = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
        let (start, end) = (time(&rotation["currentPeriod"]["startTime"]), time(&rotation["currentPeriod"]["endTime"]));
        assert_eq!(start.format("%a %H:%M").to_string(), "Mon 00:00");
        assert_eq!(end - start, chrono::TimeDelta::days(7));
        assert!(start <= chrono::Utc::now() && chrono::Utc::now() < end);
        assert_eq!(time(&rotation["nextPeriod"]["startTime"]), end);
        assert!(rotation["currentPeriod"]["expiresInSeconds"].as_i64().unwrap() > 0);

        let starter = server.call(via, Some(&bearer), Op::Rotation { challenge: "starter" }).await.unwrap();
        assert_eq!(
            starter["rotation"],
            json!({"enabled": false, "type": "", "schedule": "", "currentPeriod": null, "nextPeriod": null, "cron": "", "duration": ""})
        );
        expect_failure(
            server.call(via, Some(&bearer), Op::Rotation { challenge: "nope" }).await,
            404,
            "CHALLENGE_NOT_FOUND",
        );
    }
}

fn signed(claims: Value, secret: &str) -> String {
    let jwt = encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap();
    format!("Bearer {jwt}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_tokens_are_401_and_players_only_see_their_own_rows() {
    let server = PlayerServer::start(Setup::default()).await;
    let hour = chrono::Utc::now().timestamp() + 3600;
    let bad_tokens = [
        None,
        Some("Bearer".to_owned()),
        Some("Basic dXNlcjpwYXNz".to_owned()),
        Some("Bearer not-a-jwt".to_owned()),
        Some(signed(json!({"sub": "eve", "exp": chrono::Utc::now().timestamp() - 600}), TEST_SECRET)),
        Some(signed(json!({"sub": "eve", "exp": hour}), "some-other-secret-0123456789")),
        Some(signed(json!({"exp": hour}), TEST_SECRET)),
        Some(signed(json!({"sub": "x".repeat(300), "exp": hour}), TEST_SECRET)),
    ];
    let ops = [
        Op::List { active_only: false },
        Op::Get { challenge: "starter" },
        Op::Initialize,
        Op::SetActive { challenge: "grind", goal: "wins-3", active: true },
        Op::Batch { challenge: "grind", goals: &["wins-3"], replace: false },
        Op::Random { challenge: "grind", count: 1, replace: false, exclude_active: false },
        Op::Claim { challenge: "starter", goal: "first-login" },
        Op::Rotation { challenge: "weekly" },
    ];
    for via in BOTH {
        for bearer in &bad_tokens {
            for op in ops.clone() {
                let outcome = server.call(via, bearer.as_deref(), op.clone()).await;
                expect_failure(outcome, 401, "UNAUTHORIZED");
            }
        }
    }
    assert_eq!(server.sql_count("SELECT COUNT(*) FROM user_goal_progress").await, 0, "nothing was written");

    // Alice's progress and claims are hers alone.
    let (alice, bob) = (unique_user("alice"), unique_user("bob"));
    let (alice_token, bob_token) = (token(&alice), token(&bob));
    server.call(Via::Http, Some(&alice_token), Op::Initialize).await.unwrap();
    server.stat_event(&alice, "level", 5.0, 5.0).await;
    for via in BOTH {
        let seen = server.call(via, Some(&bob_token), Op::List { active_only: false }).await.unwrap();
        assert_eq!(
            (goal(&seen, "reach-level-5")["status"].as_str(), goal(&seen, "reach-level-5")["isActive"].as_bool()),
            (Some("not_started"), Some(false))
        );
        expect_failure(
            server.call(via, Some(&bob_token), Op::Claim { challenge: "starter", goal: "reach-level-5" }).await,
            409,
            "GOAL_NOT_COMPLETED",
        );
    }
    server
        .call(Via::Grpc, Some(&alice_token), Op::Claim { challenge: "starter", goal: "reach-level-5" })
        .await
        .unwrap();
    assert_eq!(server.sql_count(&format!("SELECT COUNT(*) FROM user_goal_progress WHERE user_id = '{bob}'")).await, 0);
}

/// `(path, method)` of every `.route(...)` line in the server's sources (the routers merged into the HTTP app).
fn router_routes() -> BTreeSet<(String, String)> {
    let mut files = vec![std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))];
    let mut source = String::new();
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            source.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    let mut routes = BTreeSet::new();
    for line in source.lines().filter(|line| line.contains(".route(\"")) {
        let path = line.split('"').nth(1).unwrap().to_owned();
        for method in ["get", "post", "put", "delete", "patch"] {
            if line.contains(&format!("{method}(")) {
                routes.insert((path.clone(), method.to_owned()));
            }
        }
    }
    routes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_openapi_document_lists_every_route() {
    let server = PlayerServer::start(Setup::default()).await;
    let (status, document) = server.raw("GET", "/openapi.json", None, None, None).await;
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |method| (path.clone(), method.clone())))
        .collect();
    let served = router_routes();
    assert!(served.len() >= 24, "{served:?}");
    assert_eq!(documented, served);

    // Every documented operation is really served (no 404/405), whatever it answers without a token.
    for (path, method) in documented {
        let concrete = path.replace("{challengeId}", "starter").replace("{goalId}", "first-login");
        let (status, body) =
            server.raw(&method.to_uppercase(), &concrete, None, Some(b"{}"), Some("application/json")).await;
        assert!(status != 404 && status != 405, "{method} {path}: {status} {body}");
    }
    // Every schema reference resolves.
    let text = document.to_string();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(document["components"]["schemas"].get(name).is_some(), "missing schema {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn empty_bodies_are_fine_where_nothing_is_needed_and_bad_input_is_never_a_500() {
    let (server, _rewards) = server_with_rewards().await;
    let user = unique_user("bodies");
    let bearer = token(&user);
    let auth = Some(bearer.as_str());

    // No body, no content type.
    let (status, body) = server.raw("POST", "/v1/challenges/initialize", auth, None, None).await;
    assert_eq!((status, body["newAssignments"].as_i64()), (200, Some(4)));
    let (status, body) = server.raw("POST", "/v1/challenges/starter/goals/first-login/claim", auth, None, None).await;
    assert_eq!((status, body["errorCode"].as_str()), (409, Some("GOAL_NOT_COMPLETED")));
    server.login_event(&user).await;
    let (status, body) = server
        .raw("POST", "/v1/challenges/starter/goals/first-login/claim", auth, Some(b"null"), Some("application/json"))
        .await;
    assert_eq!((status, body["grantStatus"].as_str()), (200, Some("delivered")));
    let (status, body) = server.raw("POST", "/v1/challenges/grind/goals/random-select", auth, Some(b""), None).await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("INVALID_REQUEST")));

    let long = "g".repeat(5_000);
    let many_ids: Vec<String> = (0..2_000).map(|i| format!("id-{i}")).collect();
    let many = serde_json::to_vec(&json!({ "goalIds": many_ids })).unwrap();
    let cases: Vec<(&str, String, Option<Vec<u8>>, u16)> = vec![
        ("GET", "/v1/challenges?active_only=perhaps".into(), None, 400),
        ("GET", format!("/v1/challenges/{long}"), None, 404),
        ("GET", "/v1/challenges/%FF%FE".into(), None, 400),
        ("GET", "/v1/challenges/%E2%9C%93".into(), None, 404),
        ("PUT", format!("/v1/challenges/grind/goals/{long}/active"), Some(br#"{"isActive":true}"#.to_vec()), 404),
        ("POST", "/v1/challenges/grind/goals/batch-select".into(), Some(many), 404),
        ("POST", "/v1/challenges/grind/goals/batch-select".into(), Some(br#"{"goalIds":"kills-100"}"#.to_vec()), 400),
        ("POST", "/v1/challenges/grind/goals/batch-select".into(), Some(br#"{"goalIds":[1,2]}"#.to_vec()), 400),
        ("POST", "/v1/challenges/grind/goals/random-select".into(), Some(br#"{"count":99999999999}"#.to_vec()), 400),
        ("POST", "/v1/challenges/grind/goals/random-select".into(), Some(br#"{"count":2.5}"#.to_vec()), 400),
        ("POST", "/v1/challenges/grind/goals/random-select".into(), Some(br#"{"count":1000}"#.to_vec()), 422),
        ("POST", "/v1/challenges/grind/goals/random-select".into(), Some(b"\xff\xfe".to_vec()), 400),
        ("POST", format!("/v1/challenges/{long}/goals/x/claim"), None, 404),
    ];
    for (method, path, body, expected) in cases {
        let (status, answer) = server.raw(method, &path, auth, body.as_deref(), Some("application/json")).await;
        assert_eq!(status, expected, "{method} {}: {answer}", &path[..path.len().min(80)]);
        assert!(answer["errorCode"].is_string(), "error envelope: {answer}");
    }
    // Oversized bodies are refused from their declared length, before the body is read. (Sent through a client,
    // the server's answer races the client's upload, which may then fail with a broken pipe.)
    let address = server.http.trim_start_matches("http://");
    let mut connection = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /v1/challenges/grind/goals/batch-select HTTP/1.1\r\nhost: {address}\r\nauthorization: {bearer}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        2 * 1024 * 1024
    );
    tokio::io::AsyncWriteExt::write_all(&mut connection, head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 4096];
    let read = tokio::io::AsyncReadExt::read(&mut connection, &mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}
