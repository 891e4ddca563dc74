//! Renewal of expired rotating assignments (`Store::renew_assignments`) on both backends.

mod common;

use challenge_core::progress::{GoalStatus, ProgressSource};
use std::sync::Arc;

use challenge_storage::{ClaimOutcome, FlushBatch, NewAssignment, Renewal};
use common::*;

backend_tests! {
    migrated: [
        renewal_follows_on_expiry,
        renewal_is_idempotent_and_skips_live_rows,
        renewal_of_many_rows_crosses_chunks,
        one_owner_per_run_with_takeover_after_the_lease,
        known_users_come_from_goals_and_stats,
    ],
    unmigrated: [],
}

fn expiring(user: &str, goal: &str, expires: i64) -> NewAssignment {
    let mut a = assignment(user, "c1", goal);
    a.expires_at = Some(at(expires));
    a.progress_source = ProgressSource::EventCount;
    a
}

fn renewal(user: &str, goal: &str, reset_progress: bool, keep_claimed: bool) -> Renewal {
    Renewal {
        user_id: user.to_owned(),
        goal_id: goal.to_owned(),
        assigned_at: at(100),
        expires_at: Some(at(200)),
        reset_progress,
        keep_claimed,
        progress_source: ProgressSource::Stored,
    }
}

/// Assigns `goal` expiring at `at(100)`, gives it progress, a baseline and plugin state, completed at `at(5)`.
async fn worked_goal(db: &TestDb, user: &str, goal: &str) {
    db.store.insert_missing_assignments(&[expiring(user, goal, 100)], at(0)).await.unwrap();
    let mut write = goal_write(user, goal, 10, GoalStatus::Completed, at(5));
    write.baseline_value = Some(3);
    write.plugin_state = Some(vec![1, 2, 3]);
    write.progress_source = ProgressSource::EventCount;
    let outcome = db.store.apply_flush(&FlushBatch { stats: vec![], goals: vec![write], parked: vec![] }).await;
    assert_eq!(outcome.unwrap().goal_rows, 1);
}

async fn renewal_follows_on_expiry(db: &TestDb) {
    for goal in ["reset", "keep", "claimed-permanent", "claimed-reset", "claimed-kept"] {
        worked_goal(db, "u1", goal).await;
    }
    for goal in ["claimed-permanent", "claimed-reset", "claimed-kept"] {
        let outcome = db.store.claim(&claim_request("u1", goal, at(50))).await.unwrap();
        assert!(matches!(outcome, ClaimOutcome::Claimed { .. }), "{goal}: {outcome:?}");
    }
    let renewals = [
        renewal("u1", "reset", true, false),
        renewal("u1", "keep", false, false),
        renewal("u1", "claimed-permanent", true, true),
        renewal("u1", "claimed-reset", true, false),
        renewal("u1", "claimed-kept", false, false),
    ];
    assert_eq!(db.store.renew_assignments(&renewals, at(100)).await.unwrap(), 5);

    for goal in ["reset", "claimed-reset"] {
        let row = db.store.user_goal("u1", goal).await.unwrap().unwrap();
        assert_eq!((row.progress, row.status), (0, GoalStatus::NotStarted), "{goal}");
        assert_eq!((row.completed_at, row.claimed_at, row.baseline_value), (None, None, None), "{goal}");
        assert_eq!((row.plugin_state.as_deref(), row.progress_source), (None, ProgressSource::Stored), "{goal}");
        assert_eq!((row.assigned_at, row.expires_at, row.updated_at), (Some(at(100)), Some(at(200)), at(100)));
        assert!(row.accepts_events(at(150)), "{goal}");
    }
    // resetProgress = false: state kept, only the window moves.
    let keep = db.store.user_goal("u1", "keep").await.unwrap().unwrap();
    assert_eq!((keep.progress, keep.status, keep.baseline_value), (10, GoalStatus::Completed, Some(3)));
    assert_eq!((keep.plugin_state, keep.progress_source), (Some(vec![1, 2, 3]), ProgressSource::EventCount));
    assert_eq!((keep.assigned_at, keep.expires_at), (Some(at(100)), Some(at(200))));
    // allowReselection = false: a claimed goal stays claimed for good, whatever resetProgress says.
    for goal in ["claimed-permanent", "claimed-kept"] {
        let row = db.store.user_goal("u1", goal).await.unwrap().unwrap();
        assert_eq!((row.progress, row.status, row.claimed_at), (10, GoalStatus::Claimed, Some(at(50))), "{goal}");
        assert_eq!(row.expires_at, Some(at(200)), "{goal}");
    }
}

async fn renewal_is_idempotent_and_skips_live_rows(db: &TestDb) {
    worked_goal(db, "u1", "expired").await;
    db.store.insert_missing_assignments(&[expiring("u1", "live", 500)], at(0)).await.unwrap();
    db.store.insert_missing_assignments(&[assignment("u1", "c1", "permanent")], at(0)).await.unwrap();
    let renewals = [
        renewal("u1", "expired", true, false),
        renewal("u1", "live", true, false),
        renewal("u1", "permanent", true, false),
        renewal("u1", "missing", true, false),
    ];
    // Just before the boundary nothing has expired yet.
    assert_eq!(db.store.renew_assignments(&renewals, at(99)).await.unwrap(), 0);
    assert_eq!(db.store.renew_assignments(&renewals, at(100)).await.unwrap(), 1);
    // A second caller racing for the same boundary finds the row already in the new period.
    assert_eq!(db.store.renew_assignments(&renewals, at(100)).await.unwrap(), 0);
    assert_eq!(db.store.renew_assignments(&[], at(100)).await.unwrap(), 0);
    let live = db.store.user_goal("u1", "live").await.unwrap().unwrap();
    assert_eq!((live.assigned_at, live.expires_at), (Some(at(0)), Some(at(500))));
    assert!(db.store.user_goal("u1", "missing").await.unwrap().is_none());
    assert_eq!(db.scalar("SELECT COUNT(*) FROM user_goal_progress").await, 3);
}

async fn renewal_of_many_rows_crosses_chunks(db: &TestDb) {
    let assignments: Vec<_> = (0..12_345).map(|i| expiring(&format!("user{i}"), "daily", 100)).collect();
    db.store.insert_missing_assignments(&assignments, at(0)).await.unwrap();
    let renewals: Vec<_> = (0..12_345).map(|i| renewal(&format!("user{i}"), "daily", true, false)).collect();
    assert_eq!(db.store.renew_assignments(&renewals, at(150)).await.unwrap(), 12_345);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM user_goal_progress WHERE progress_source = 'stored'").await, 12_345);
}

async fn one_owner_per_run_with_takeover_after_the_lease(db: &TestDb) {
    let runs = db.store.rotation_runs();
    // Eight instances race for the same period: exactly one wins.
    let mut racers = Vec::new();
    for i in 0..8 {
        let store = Arc::clone(&db.store);
        racers.push(tokio::spawn(async move {
            store.rotation_runs().claim_run("goal:g", "2026-03-10", &format!("owner{i}"), at(0), at(30)).await
        }));
    }
    let mut winners = Vec::new();
    for racer in racers {
        if let Some(run) = racer.await.unwrap().unwrap() {
            winners.push(run);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let owner = winners[0].owner.clone();
    assert_eq!((winners[0].cursor.as_str(), winners[0].assigned, winners[0].state.as_str()), ("", 0, "running"));

    assert!(runs.advance_run("goal:g", "2026-03-10", &owner, "user5", 5, at(40)).await.unwrap());
    assert!(!runs.advance_run("goal:g", "2026-03-10", "intruder", "user9", 9, at(40)).await.unwrap());
    // While the lease runs nobody else gets it; its owner may claim again (a restart of the same instance).
    assert!(runs.claim_run("goal:g", "2026-03-10", "other", at(39), at(70)).await.unwrap().is_none());
    assert!(runs.claim_run("goal:g", "2026-03-10", &owner, at(39), at(70)).await.unwrap().is_some());
    // After the lease the run is taken over and resumes at the cursor; the old owner can no longer write.
    let taken = runs.claim_run("goal:g", "2026-03-10", "other", at(70), at(100)).await.unwrap().unwrap();
    assert_eq!((taken.owner.as_str(), taken.cursor.as_str(), taken.assigned), ("other", "user5", 5));
    assert!(!runs.advance_run("goal:g", "2026-03-10", &owner, "user6", 1, at(100)).await.unwrap());
    assert!(!runs.complete_run("goal:g", "2026-03-10", &owner, at(80)).await.unwrap());
    assert!(runs.complete_run("goal:g", "2026-03-10", "other", at(80)).await.unwrap());
    let done = runs.run("goal:g", "2026-03-10").await.unwrap().unwrap();
    assert!(done.is_completed());
    assert_eq!((done.completed_at, done.started_at), (Some(at(80)), at(0)));
    // A completed run is never claimed again; another period is a new run.
    assert!(runs.claim_run("goal:g", "2026-03-10", "late", at(500), at(530)).await.unwrap().is_none());
    assert!(runs.claim_run("goal:g", "2026-03-11", "late", at(500), at(530)).await.unwrap().is_some());
    assert!(runs.run("goal:g", "2026-03-12").await.unwrap().is_none());
}

async fn known_users_come_from_goals_and_stats(db: &TestDb) {
    let goals: Vec<_> =
        ["a", "c", "e"].iter().flat_map(|u| [assignment(u, "c1", "g1"), assignment(u, "c1", "g2")]).collect();
    db.store.insert_missing_assignments(&goals, at(0)).await.unwrap();
    let stats = ["b", "c", "f"].iter().map(|u| stat_write(u, "kills", Some(1.0), 1, at(1))).collect();
    db.store.apply_flush(&FlushBatch { stats, goals: vec![], parked: vec![] }).await.unwrap();
    let runs = db.store.rotation_runs();
    assert_eq!(runs.known_users("", 100).await.unwrap(), ["a", "b", "c", "e", "f"]);
    assert_eq!(runs.known_users("", 3).await.unwrap(), ["a", "b", "c"]);
    assert_eq!(runs.known_users("c", 3).await.unwrap(), ["e", "f"]);
    assert!(runs.known_users("f", 3).await.unwrap().is_empty());
}
