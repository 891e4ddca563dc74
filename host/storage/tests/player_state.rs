//! `player_state`: a player's goal and stat rows in one statement, equal to `user_goals` + `user_stats`.

mod common;

use challenge_core::progress::{GoalStatus, ProgressSource};
use challenge_storage::{FlushBatch, GoalFilter};
use common::*;

backend_tests! {
    migrated: [player_state_is_user_goals_and_user_stats],
    unmigrated: [],
}

async fn player_state_is_user_goals_and_user_stats(db: &TestDb) {
    let store = &db.store;
    assert_eq!(store.player_state("u1").await.unwrap(), (vec![], vec![]), "an unknown player has nothing");

    store
        .insert_missing_assignments(
            &[assignment("u1", "c2", "b"), assignment("u1", "c1", "a"), inactive(assignment("u1", "c1", "c"))],
            at(0),
        )
        .await
        .unwrap();
    store.insert_missing_assignments(&[assignment("u2", "c1", "a")], at(0)).await.unwrap();
    let mut plugin = goal_write("u1", "b", 0, GoalStatus::InProgress, at(3));
    plugin.plugin_state = Some(vec![0, 1, 2, 255]);
    plugin.baseline_value = Some(7);
    plugin.progress_source = ProgressSource::StatValue;
    store
        .apply_flush(&FlushBatch {
            stats: vec![
                stat_write("u1", "kills", Some(12.5), 3, at(2)),
                stat_write("u1", "login_count", None, 2, at(3)),
                stat_write("u2", "kills", Some(1.0), 1, at(2)),
            ],
            goals: vec![goal_write("u1", "a", 10, GoalStatus::Completed, at(2)), plugin],
            parked: vec![],
        })
        .await
        .unwrap();

    let (goals, stats) = store.player_state("u1").await.unwrap();
    assert_eq!(goals, store.user_goals("u1", &GoalFilter::default()).await.unwrap());
    assert_eq!(stats, store.user_stats("u1").await.unwrap());
    assert_eq!(goals.iter().map(|g| g.goal_id.as_str()).collect::<Vec<_>>(), ["a", "c", "b"]);
    assert_eq!(goals[2].plugin_state.as_deref(), Some(&[0, 1, 2, 255][..]));
    assert_eq!(
        stats.iter().map(|s| (s.stat_code.as_str(), s.event_count)).collect::<Vec<_>>(),
        [("kills", 3), ("login_count", 2)]
    );
    assert_eq!((stats[0].value, stats[1].value), (12.5, 0.0), "a count-only stat reads as value 0");
}
