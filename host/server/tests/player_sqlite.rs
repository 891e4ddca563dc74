//! Smoke test of the player API on the embedded SQLite database: the same flows as on PostgreSQL.

mod common;
mod player_support;

use common::{Backend, token};
use player_support::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_player_flows_work_on_sqlite() {
    let rewards = FakeRewards::start().await;
    let server =
        PlayerServer::start(Setup { backend: Backend::Sqlite, rewards: Some(rewards.url.clone()), ..Setup::default() })
            .await;
    for via in BOTH {
        let user = unique_user("sqlite");
        let bearer = token(&user);
        let call = |op| server.call(via, Some(&bearer), op);

        let init = call(Op::Initialize).await.unwrap();
        assert_eq!((init["newAssignments"].as_i64(), init["totalActive"].as_i64()), (Some(4), Some(4)));
        assert_eq!(call(Op::Initialize).await.unwrap()["newAssignments"], 0);

        server.stat_event(&user, "level", 5.0, 5.0).await;
        server.login_event(&user).await;
        let list = call(Op::List { active_only: false }).await.unwrap();
        assert_eq!(
            (goal(&list, "reach-level-5")["progress"].as_i64(), goal(&list, "reach-level-5")["status"].as_str()),
            (Some(5), Some("completed"))
        );
        assert_eq!(goal(&list, "kill-10")["locked"], false);
        let active = call(Op::List { active_only: true }).await.unwrap();
        assert_eq!(active["challenges"].as_array().unwrap().len(), 2);

        let claimed = call(Op::Claim { challenge: "starter", goal: "reach-level-5" }).await.unwrap();
        assert_eq!((claimed["status"].as_str(), claimed["grantStatus"].as_str()), (Some("claimed"), Some("delivered")));
        assert_eq!(
            call(Op::Claim { challenge: "starter", goal: "reach-level-5" }).await.unwrap_err().code,
            "ALREADY_CLAIMED"
        );
        assert_eq!(
            call(Op::Claim { challenge: "starter", goal: "kill-10" }).await.unwrap_err().code,
            "GOAL_NOT_COMPLETED"
        );

        let on = call(Op::SetActive { challenge: "grind", goal: "wins-3", active: true }).await.unwrap();
        assert_eq!(on["isActive"], true);
        let batch =
            call(Op::Batch { challenge: "grind", goals: &["kills-100", "kills-100"], replace: true }).await.unwrap();
        assert_eq!((batch["replacedGoals"].clone(), batch["totalActiveGoals"].as_i64()), (json!(["wins-3"]), Some(1)));
        let random =
            call(Op::Random { challenge: "grind", count: 4, replace: false, exclude_active: true }).await.unwrap();
        assert_eq!(
            (random["selectedGoals"].as_array().unwrap().len(), random["totalActiveGoals"].as_i64()),
            (4, Some(5))
        );
        let failure =
            call(Op::Random { challenge: "grind", count: 1, replace: false, exclude_active: true }).await.unwrap_err();
        assert_eq!((failure.status, failure.code.as_str()), (422, "INSUFFICIENT_GOALS"));

        let rotation = call(Op::Rotation { challenge: "weekly" }).await.unwrap();
        assert_eq!(rotation["rotation"]["schedule"], "weekly");
    }
    assert_eq!(rewards.acknowledged().len(), 2);
}
