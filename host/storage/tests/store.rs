//! Behaviour of the `Store` trait, identical on PostgreSQL and SQLite (every test runs on both).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use challenge_core::progress::{GoalStatus, ProgressSource};
use challenge_storage::{
    ClaimOutcome, ClaimRefusal, FlushBatch, GoalFilter, GoalGroup, GrantStatus, PipelineQuery, RewardType,
    StorageError, StoreOptions, open_store,
};
use common::*;

backend_tests! {
    migrated: [
        migrations_apply_twice,
        check_constraints_reject_bad_rows,
        reads_apply_filters,
        bulk_insert_is_idempotent_and_counts,
        set_active_upserts_and_keeps_progress,
        concurrent_set_active_never_conflicts,
        select_replaces_and_keeps_progress,
        select_is_all_or_nothing,
        claim_writes_outbox_in_same_transaction,
        claim_refusals_follow_check_order,
        claim_requires_prerequisites,
        claim_respects_completed_not_before,
        no_double_claim_under_concurrency,
        outbox_scheduling,
        pipeline_load_and_flush,
        flush_skips_claimed_and_inactive_rows,
        flush_rejects_invalid_writes_before_writing,
        flush_of_5000_writes_in_one_call,
        flush_parks_failed_evaluations_in_the_same_transaction,
        pipeline_state_narrows_to_goals_and_stat_codes,
        writes_applied_to_copies_match_the_reloaded_rows,
    ],
    unmigrated: [fresh_database_reports_missing_migrations],
}

async fn fresh_database_reports_missing_migrations(db: &TestDb) {
    assert!(!db.store.migrations_applied().await.unwrap());
    db.store.ping().await.unwrap();
    db.store.migrate().await.unwrap();
    assert!(db.store.migrations_applied().await.unwrap());
}

async fn migrations_apply_twice(db: &TestDb) {
    assert!(db.store.migrations_applied().await.unwrap());
    db.store.migrate().await.unwrap();
    db.store.migrate().await.unwrap();
    assert!(db.store.migrations_applied().await.unwrap());
    let dir = if db.backend == Backend::Postgres { "postgres" } else { "sqlite" };
    let files = std::fs::read_dir(format!("{}/../../migrations/{dir}", env!("CARGO_MANIFEST_DIR"))).unwrap().count();
    assert_eq!(db.scalar("SELECT COUNT(*) FROM _sqlx_migrations").await, files as i64, "each migration applied once");
    assert_eq!(db.store.backend(), if db.backend == Backend::Postgres { "postgres" } else { "sqlite" });
}

async fn check_constraints_reject_bad_rows(db: &TestDb) {
    db.store.insert_missing_assignments(&[assignment("u1", "c1", "g1")], at(0)).await.unwrap();
    let rejected = [
        "UPDATE user_goal_progress SET progress = -1",
        "UPDATE user_goal_progress SET status = 'claimed'",
        "UPDATE user_goal_progress SET status = 'claimed', claimed_at = updated_at",
        "UPDATE user_goal_progress SET claimed_at = updated_at",
        "UPDATE user_goal_progress SET status = 'done'",
        "UPDATE user_goal_progress SET progress_source = 'guess'",
        "UPDATE user_goal_progress SET goal_id = ''",
    ];
    for sql in rejected {
        match db.exec(sql).await {
            Err(StorageError::Constraint(_)) => {}
            other => panic!("{sql}: expected a constraint violation, got {other:?}"),
        }
    }
    let oversized = match db.backend {
        Backend::Postgres => "UPDATE user_goal_progress SET plugin_state = decode(repeat('00', 4097), 'hex')",
        Backend::Sqlite => "UPDATE user_goal_progress SET plugin_state = zeroblob(4097)",
    };
    assert!(matches!(db.exec(oversized).await, Err(StorageError::Constraint(_))));
    // Claimed with both timestamps is fine.
    db.exec("UPDATE user_goal_progress SET status = 'claimed', completed_at = updated_at, claimed_at = updated_at")
        .await
        .unwrap();
    assert!(matches!(
        db.exec("UPDATE user_stat_values SET event_count = -1").await,
        Ok(0) // no rows yet; the CHECK itself is exercised below
    ));
    db.store
        .apply_flush(&FlushBatch {
            stats: vec![stat_write("u1", "kills", Some(1.0), 1, at(1))],
            goals: vec![],
            parked: vec![],
        })
        .await
        .unwrap();
    assert!(matches!(db.exec("UPDATE user_stat_values SET event_count = -1").await, Err(StorageError::Constraint(_))));
    // Duplicate primary key surfaces as a conflict.
    let duplicate = match db.backend {
        Backend::Postgres => {
            "INSERT INTO user_stat_values (user_id, stat_code, event_count, updated_at) \
                              VALUES ('u1', 'kills', 0, now())"
        }
        Backend::Sqlite => {
            "INSERT INTO user_stat_values (user_id, stat_code, event_count, updated_at) \
                            VALUES ('u1', 'kills', 0, 0)"
        }
    };
    assert!(matches!(db.exec(duplicate).await, Err(StorageError::Conflict(_))));
}

async fn reads_apply_filters(db: &TestDb) {
    let assignments = [
        assignment("u1", "c2", "b"),
        assignment("u1", "c1", "z"),
        inactive(assignment("u1", "c1", "a")),
        assignment("u1", "c2", "a2"),
        assignment("u2", "c1", "a"),
    ];
    db.store.insert_missing_assignments(&assignments, at(0)).await.unwrap();
    let ids = |rows: Vec<challenge_core::progress::GoalProgress>| {
        rows.into_iter().map(|r| format!("{}/{}", r.challenge_id, r.goal_id)).collect::<Vec<_>>()
    };
    let all = db.store.user_goals("u1", &GoalFilter::default()).await.unwrap();
    assert_eq!(ids(all.clone()), ["c1/a", "c1/z", "c2/a2", "c2/b"]);
    let active = db.store.user_goals("u1", &GoalFilter { active_only: true, challenge_id: None }).await.unwrap();
    assert_eq!(ids(active), ["c1/z", "c2/a2", "c2/b"]);
    let c1 =
        db.store.user_goals("u1", &GoalFilter { active_only: false, challenge_id: Some("c1".into()) }).await.unwrap();
    assert_eq!(ids(c1), ["c1/a", "c1/z"]);
    let c1_active =
        db.store.user_goals("u1", &GoalFilter { active_only: true, challenge_id: Some("c1".into()) }).await.unwrap();
    assert_eq!(ids(c1_active), ["c1/z"]);
    assert!(db.store.user_goals("nobody", &GoalFilter::default()).await.unwrap().is_empty());

    let row = db.store.user_goal("u1", "z").await.unwrap().expect("row");
    assert_eq!(row.status, GoalStatus::NotStarted);
    assert_eq!(row.progress, 0);
    assert!(row.is_active);
    assert_eq!(row.assigned_at, Some(at(0)));
    assert_eq!(row.created_at, at(0));
    assert_eq!(row.namespace, "ns");
    assert_eq!(row.progress_source, ProgressSource::Stored);
    let inactive_row = db.store.user_goal("u1", "a").await.unwrap().expect("row");
    assert!(!inactive_row.is_active);
    assert_eq!(inactive_row.assigned_at, None);
    assert!(db.store.user_goal("u1", "missing").await.unwrap().is_none());

    assert!(db.store.user_stats("u1").await.unwrap().is_empty());
    let stats = vec![
        stat_write("u1", "wins", Some(3.5), 1, at(1)),
        stat_write("u1", "kills", Some(9.0), 2, at(2)),
        stat_write("u2", "kills", Some(1.0), 1, at(2)),
    ];
    db.store.apply_flush(&FlushBatch { stats, goals: vec![], parked: vec![] }).await.unwrap();
    let stats = db.store.user_stats("u1").await.unwrap();
    assert_eq!(stats.iter().map(|s| s.stat_code.as_str()).collect::<Vec<_>>(), ["kills", "wins"]);
    assert_eq!((stats[1].value, stats[1].event_count, stats[1].updated_at), (3.5, 1, at(1)));
}

async fn bulk_insert_is_idempotent_and_counts(db: &TestDb) {
    let first: Vec<_> = (0..3).map(|i| assignment("u1", "c1", &format!("g{i}"))).collect();
    assert_eq!(db.store.insert_missing_assignments(&first, at(0)).await.unwrap(), 3);
    assert_eq!(db.store.insert_missing_assignments(&first, at(1)).await.unwrap(), 0);
    assert_eq!(db.store.insert_missing_assignments(&[], at(1)).await.unwrap(), 0);

    // Existing rows keep their state; only the new goal is inserted; duplicates in the input are harmless.
    db.store
        .apply_flush(&FlushBatch {
            stats: vec![],
            goals: vec![goal_write("u1", "g0", 4, GoalStatus::InProgress, at(2))],
            parked: vec![],
        })
        .await
        .unwrap();
    let mut second = first.clone();
    second.push(assignment("u1", "c1", "g3"));
    second.push(assignment("u1", "c1", "g3"));
    second[0].is_active = false;
    assert_eq!(db.store.insert_missing_assignments(&second, at(3)).await.unwrap(), 1);
    let g0 = db.store.user_goal("u1", "g0").await.unwrap().unwrap();
    assert_eq!((g0.progress, g0.status, g0.is_active, g0.created_at), (4, GoalStatus::InProgress, true, at(0)));

    // Many rows for many users cross the chunk boundaries and stay one transaction.
    let many: Vec<_> = (0..1_234).map(|i| assignment(&format!("user{}", i % 7), "c9", &format!("goal{i}"))).collect();
    assert_eq!(db.store.insert_missing_assignments(&many, at(4)).await.unwrap(), 1_234);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM user_goal_progress WHERE challenge_id = 'c9'").await, 1_234);
    let mut rotating = assignment("u2", "c1", "daily");
    rotating.expires_at = Some(at(86_400));
    rotating.progress_source = ProgressSource::EventCount;
    db.store.insert_missing_assignments(&[rotating], at(5)).await.unwrap();
    let row = db.store.user_goal("u2", "daily").await.unwrap().unwrap();
    assert_eq!((row.expires_at, row.progress_source), (Some(at(86_400)), ProgressSource::EventCount));
}

async fn set_active_upserts_and_keeps_progress(db: &TestDb) {
    let mut goal = assignment("u1", "c1", "g1");
    goal.expires_at = Some(at(1_000));
    let created = db.store.set_goal_active(&goal, true, at(10)).await.unwrap();
    assert!(created.is_active);
    assert_eq!((created.assigned_at, created.expires_at, created.created_at), (Some(at(10)), Some(at(1_000)), at(10)));
    assert_eq!((created.progress, created.status), (0, GoalStatus::NotStarted));

    let mut write = goal_write("u1", "g1", 7, GoalStatus::InProgress, at(11));
    write.baseline_value = Some(3);
    db.store.apply_flush(&FlushBatch { stats: vec![], goals: vec![write], parked: vec![] }).await.unwrap();

    let off = db.store.set_goal_active(&goal, false, at(12)).await.unwrap();
    assert!(!off.is_active);
    assert_eq!((off.progress, off.status, off.baseline_value), (7, GoalStatus::InProgress, Some(3)));
    assert_eq!((off.assigned_at, off.expires_at, off.updated_at), (Some(at(10)), Some(at(1_000)), at(12)));

    goal.expires_at = Some(at(2_000));
    let on = db.store.set_goal_active(&goal, true, at(13)).await.unwrap();
    assert!(on.is_active);
    assert_eq!((on.progress, on.status, on.baseline_value), (7, GoalStatus::InProgress, Some(3)));
    assert_eq!((on.assigned_at, on.expires_at, on.created_at), (Some(at(13)), Some(at(2_000)), at(10)));
    assert_eq!(db.store.user_goal("u1", "g1").await.unwrap(), Some(on));

    // Deactivating a goal without a row creates an inactive row.
    let fresh_off = db.store.set_goal_active(&assignment("u1", "c1", "g2"), false, at(14)).await.unwrap();
    assert!(!fresh_off.is_active);
    assert_eq!((fresh_off.assigned_at, fresh_off.expires_at), (None, None));
}

async fn concurrent_set_active_never_conflicts(db: &TestDb) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = Arc::clone(&db.store);
        tasks.push(tokio::spawn(async move {
            store.set_goal_active(&assignment("u1", "c1", "g1"), i % 2 == 0, at(i)).await
        }));
    }
    for task in tasks {
        task.await.unwrap().expect("concurrent set_goal_active");
    }
    assert_eq!(db.scalar("SELECT COUNT(*) FROM user_goal_progress WHERE user_id = 'u1'").await, 1);
}

async fn select_replaces_and_keeps_progress(db: &TestDb) {
    let store = &db.store;
    store.insert_missing_assignments(&[assignment("u1", "c1", "a"), assignment("u1", "c1", "b")], at(0)).await.unwrap();
    store.insert_missing_assignments(&[assignment("u1", "other", "x")], at(0)).await.unwrap();
    store
        .apply_flush(&FlushBatch {
            stats: vec![],
            goals: vec![goal_write("u1", "b", 5, GoalStatus::InProgress, at(1))],
            parked: vec![],
        })
        .await
        .unwrap();

    // Replace: a is dropped, b is re-selected (kept, progress intact), c is new; the duplicate c is ignored.
    let pick = [assignment("u1", "c1", "b"), assignment("u1", "c1", "c"), assignment("u1", "c1", "c")];
    let outcome = store.select_goals("u1", "c1", &pick, true, at(2)).await.unwrap();
    assert_eq!(outcome.replaced, ["a"]);
    assert_eq!(outcome.active_in_challenge, 2);
    let a = store.user_goal("u1", "a").await.unwrap().unwrap();
    assert!(!a.is_active);
    let b = store.user_goal("u1", "b").await.unwrap().unwrap();
    assert!(b.is_active);
    assert_eq!((b.progress, b.status, b.assigned_at), (5, GoalStatus::InProgress, Some(at(2))));
    let c = store.user_goal("u1", "c").await.unwrap().unwrap();
    assert_eq!((c.is_active, c.assigned_at, c.progress), (true, Some(at(2)), 0));
    assert!(store.user_goal("u1", "x").await.unwrap().unwrap().is_active, "other challenges are untouched");

    // Without replace, previously active goals stay active and nothing is reported replaced.
    let outcome = store.select_goals("u1", "c1", &[assignment("u1", "c1", "a")], false, at(3)).await.unwrap();
    assert!(outcome.replaced.is_empty());
    assert_eq!(outcome.active_in_challenge, 3);

    // Replacing with nothing deactivates everything in the challenge.
    let outcome = store.select_goals("u1", "c1", &[], true, at(4)).await.unwrap();
    assert_eq!(outcome.replaced, ["a", "b", "c"]);
    assert_eq!(outcome.active_in_challenge, 0);
}

async fn select_is_all_or_nothing(db: &TestDb) {
    let store = &db.store;
    store.insert_missing_assignments(&[assignment("u1", "c1", "a"), assignment("u1", "c1", "b")], at(0)).await.unwrap();
    // The second goal id violates the id length CHECK after the deactivation already ran inside the transaction.
    let bad_id = "g".repeat(300);
    let pick = [assignment("u1", "c1", "new"), assignment("u1", "c1", &bad_id)];
    match store.select_goals("u1", "c1", &pick, true, at(1)).await {
        Err(StorageError::Constraint(_)) => {}
        other => panic!("expected a constraint error, got {other:?}"),
    }
    let active = store.user_goals("u1", &GoalFilter { active_only: true, challenge_id: None }).await.unwrap();
    assert_eq!(active.iter().map(|g| g.goal_id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert!(store.user_goal("u1", "new").await.unwrap().is_none());

    // Assignments for another user or challenge are refused up front.
    let stray = [assignment("u1", "c2", "z")];
    assert!(matches!(store.select_goals("u1", "c1", &stray, true, at(2)).await, Err(StorageError::InvalidInput(_))));
    assert_eq!(store.user_goals("u1", &GoalFilter { active_only: true, challenge_id: None }).await.unwrap().len(), 2);
}

async fn claim_writes_outbox_in_same_transaction(db: &TestDb) {
    completed_goal(db, "u1", "c1", "g1", at(5)).await;
    let outcome = db.store.claim(&claim_request("u1", "g1", at(10))).await.unwrap();
    let ClaimOutcome::Claimed { row, grant } = outcome else { panic!("expected Claimed, got {outcome:?}") };
    assert_eq!(row.status, GoalStatus::Claimed);
    assert_eq!((row.claimed_at, row.completed_at, row.updated_at), (Some(at(10)), Some(at(5)), at(10)));
    assert_eq!(grant.idempotency_key, format!("claim:u1:g1:{}", at(10).timestamp_millis()));
    assert_eq!((grant.user_id.as_str(), grant.goal_id.as_str(), grant.challenge_id.as_str()), ("u1", "g1", "c1"));
    assert_eq!((grant.reward_type, grant.reward_id.as_str(), grant.quantity), (RewardType::Item, "sword", 2));
    assert_eq!((grant.status, grant.attempts, grant.next_attempt_at), (GrantStatus::Pending, 0, at(10)));
    assert_eq!((grant.created_at, grant.delivered_at, grant.last_error.as_deref()), (at(10), None, None));

    assert_eq!(db.store.user_goal("u1", "g1").await.unwrap(), Some(row));
    assert_eq!(db.store.grant(grant.id).await.unwrap(), Some(grant.clone()));
    assert_eq!(db.store.due_grants(at(10), 10).await.unwrap(), vec![grant]);
    assert_eq!(grant_rows(db, "u1").await, 1);
}

async fn claim_refusals_follow_check_order(db: &TestDb) {
    let store = &db.store;
    let refused = async |goal: &str| match store.claim(&claim_request("u1", goal, at(100))).await.unwrap() {
        ClaimOutcome::Refused(refusal) => refusal,
        other => panic!("claim of {goal} should be refused, got {other:?}"),
    };
    // No row at all.
    assert_eq!(refused("ghost").await, ClaimRefusal::NotCompleted(GoalStatus::NotStarted));

    // Assigned but never progressed / in progress.
    store.insert_missing_assignments(&[assignment("u1", "c1", "fresh")], at(0)).await.unwrap();
    assert_eq!(refused("fresh").await, ClaimRefusal::NotCompleted(GoalStatus::NotStarted));
    store.insert_missing_assignments(&[assignment("u1", "c1", "busy")], at(0)).await.unwrap();
    store
        .apply_flush(&FlushBatch {
            stats: vec![],
            goals: vec![goal_write("u1", "busy", 3, GoalStatus::InProgress, at(1))],
            parked: vec![],
        })
        .await
        .unwrap();
    assert_eq!(refused("busy").await, ClaimRefusal::NotCompleted(GoalStatus::InProgress));

    // Inactive wins over everything after the existence check, even over expiry.
    completed_goal(db, "u1", "c1", "off", at(5)).await;
    let mut off = assignment("u1", "c1", "off");
    off.expires_at = Some(at(50));
    store.set_goal_active(&off, true, at(6)).await.unwrap();
    store.set_goal_active(&off, false, at(7)).await.unwrap();
    assert_eq!(refused("off").await, ClaimRefusal::Inactive);

    // Expired (expires_at <= now), even though completed.
    completed_goal(db, "u1", "c1", "old", at(5)).await;
    let mut old = assignment("u1", "c1", "old");
    old.expires_at = Some(at(100));
    store.set_goal_active(&old, true, at(8)).await.unwrap();
    assert_eq!(refused("old").await, ClaimRefusal::Expired);

    // Already claimed reports when.
    completed_goal(db, "u1", "c1", "done", at(5)).await;
    assert!(matches!(store.claim(&claim_request("u1", "done", at(20))).await.unwrap(), ClaimOutcome::Claimed { .. }));
    assert_eq!(refused("done").await, ClaimRefusal::AlreadyClaimed { claimed_at: at(20) });

    // Only the one successful claim produced a grant.
    assert_eq!(grant_rows(db, "u1").await, 1);
}

async fn claim_requires_prerequisites(db: &TestDb) {
    let store = &db.store;
    completed_goal(db, "u1", "c1", "final", at(5)).await;
    store
        .insert_missing_assignments(&[assignment("u1", "c2", "p1"), assignment("u1", "c1", "p2")], at(0))
        .await
        .unwrap();
    let mut request = claim_request("u1", "final", at(10));
    request.prerequisites = vec!["p1".into(), "p2".into(), "p3".into(), "p1".into()];
    assert_eq!(
        store.claim(&request).await.unwrap(),
        ClaimOutcome::Refused(ClaimRefusal::PrerequisitesUnmet(vec!["p1".into(), "p2".into(), "p3".into()]))
    );

    // p1 completed (other challenge), p2 claimed, p3 completed: all met.
    completed_goal(db, "u1", "c2", "p1", at(6)).await;
    completed_goal(db, "u1", "c1", "p2", at(6)).await;
    assert!(matches!(store.claim(&claim_request("u1", "p2", at(7))).await.unwrap(), ClaimOutcome::Claimed { .. }));
    assert_eq!(
        store.claim(&request).await.unwrap(),
        ClaimOutcome::Refused(ClaimRefusal::PrerequisitesUnmet(vec!["p3".into()]))
    );
    completed_goal(db, "u1", "c1", "p3", at(6)).await;
    // Another user's progress never counts.
    completed_goal(db, "u2", "c1", "p3", at(6)).await;
    assert!(matches!(store.claim(&request).await.unwrap(), ClaimOutcome::Claimed { .. }));
    assert_eq!(grant_rows(db, "u1").await, 2);
}

async fn claim_respects_completed_not_before(db: &TestDb) {
    completed_goal(db, "u1", "c1", "daily", at(100)).await;
    let mut request = claim_request("u1", "daily", at(500));
    request.completed_not_before = Some(at(101));
    assert_eq!(
        db.store.claim(&request).await.unwrap(),
        ClaimOutcome::Refused(ClaimRefusal::CompletionOutdated { completed_at: Some(at(100)) })
    );
    assert_eq!(grant_rows(db, "u1").await, 0);
    // Completion exactly at the boundary counts.
    request.completed_not_before = Some(at(100));
    assert!(matches!(db.store.claim(&request).await.unwrap(), ClaimOutcome::Claimed { .. }));
}

async fn no_double_claim_under_concurrency(db: &TestDb) {
    completed_goal(db, "u1", "c1", "g1", at(5)).await;
    let mut tasks = Vec::new();
    for i in 0..32 {
        let store = Arc::clone(&db.store);
        tasks.push(tokio::spawn(async move { store.claim(&claim_request("u1", "g1", at(10 + i))).await }));
    }
    let (mut claimed, mut already) = (Vec::new(), 0);
    for task in tasks {
        match task.await.unwrap().expect("claim must not fail") {
            ClaimOutcome::Claimed { row, .. } => claimed.push(row.claimed_at),
            ClaimOutcome::Refused(ClaimRefusal::AlreadyClaimed { .. }) => already += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(claimed.len(), 1, "exactly one claim wins");
    assert_eq!(already, 31);
    assert_eq!(grant_rows(db, "u1").await, 1);
    let row = db.store.user_goal("u1", "g1").await.unwrap().unwrap();
    assert_eq!(row.claimed_at, claimed[0]);
}

async fn outbox_scheduling(db: &TestDb) {
    let store = &db.store;
    let mut ids = Vec::new();
    for (goal, when) in [("g1", 10), ("g2", 11), ("g3", 12)] {
        completed_goal(db, "u1", "c1", goal, at(1)).await;
        match store.claim(&claim_request("u1", goal, at(when))).await.unwrap() {
            ClaimOutcome::Claimed { grant, .. } => ids.push(grant.id),
            other => panic!("{other:?}"),
        }
    }
    let due_ids = |grants: Vec<challenge_storage::RewardGrant>| grants.into_iter().map(|g| g.id).collect::<Vec<_>>();
    assert!(store.due_grants(at(9), 10).await.unwrap().is_empty());
    assert_eq!(due_ids(store.due_grants(at(11), 10).await.unwrap()), ids[..2]);
    assert_eq!(due_ids(store.due_grants(at(60), 10).await.unwrap()), ids);
    assert_eq!(due_ids(store.due_grants(at(60), 2).await.unwrap()), ids[..2]);

    // A transient failure pushes the first grant back; it is due again later, oldest first.
    assert!(store.reschedule_grant(ids[0], "HTTP 503", at(30)).await.unwrap());
    assert_eq!(due_ids(store.due_grants(at(20), 10).await.unwrap()), ids[1..]);
    assert_eq!(due_ids(store.due_grants(at(30), 10).await.unwrap()), [ids[1], ids[2], ids[0]]);
    let retried = store.grant(ids[0]).await.unwrap().unwrap();
    assert_eq!((retried.attempts, retried.last_error.as_deref()), (1, Some("HTTP 503")));
    assert_eq!((retried.status, retried.next_attempt_at), (GrantStatus::Pending, at(30)));

    // Delivered: never due again, cannot be rescheduled or failed.
    assert!(store.mark_grant_delivered(ids[1], at(31)).await.unwrap());
    let delivered = store.grant(ids[1]).await.unwrap().unwrap();
    assert_eq!((delivered.status, delivered.delivered_at), (GrantStatus::Delivered, Some(at(31))));
    assert!(!store.mark_grant_delivered(ids[1], at(32)).await.unwrap());
    assert!(!store.reschedule_grant(ids[1], "late", at(40)).await.unwrap());
    assert!(!store.mark_grant_failed(ids[1], "late").await.unwrap());

    // Permanent failure: kept for operators, not due.
    assert!(store.mark_grant_failed(ids[2], "HTTP 404 item not found").await.unwrap());
    let failed = store.grant(ids[2]).await.unwrap().unwrap();
    assert_eq!((failed.status, failed.attempts), (GrantStatus::Failed, 1));
    assert_eq!(failed.last_error.as_deref(), Some("HTTP 404 item not found"));
    assert!(!store.reschedule_grant(ids[2], "again", at(40)).await.unwrap());
    assert_eq!(due_ids(store.due_grants(at(100), 10).await.unwrap()), [ids[0]]);

    // Unknown ids.
    assert!(store.grant(-1).await.unwrap().is_none());
    assert!(!store.mark_grant_delivered(-1, at(1)).await.unwrap());
    assert!(!store.reschedule_grant(-1, "x", at(1)).await.unwrap());
}

async fn pipeline_load_and_flush(db: &TestDb) {
    let store = &db.store;
    let users = ["u1".to_owned(), "u2".to_owned(), "nobody".to_owned()];
    assert_eq!(store.load_pipeline_state(&PipelineQuery::default()).await.unwrap(), Default::default());
    assert_eq!(store.load_pipeline_state(&PipelineQuery::for_users(&users)).await.unwrap(), Default::default());
    assert_eq!(store.apply_flush(&FlushBatch::default()).await.unwrap(), Default::default());

    let mut kills = assignment("u1", "c1", "kills10");
    kills.progress_source = ProgressSource::StatValue;
    store
        .insert_missing_assignments(
            &[
                kills,
                assignment("u1", "c1", "streak"),
                inactive(assignment("u1", "c1", "off")),
                assignment("u2", "c1", "x"),
            ],
            at(0),
        )
        .await
        .unwrap();

    // Values coalesce (None keeps the stored value), counts add up within and across flushes.
    let first = FlushBatch {
        stats: vec![
            stat_write("u1", "kills", Some(5.0), 1, at(1)),
            stat_write("u1", "login", None, 1, at(1)),
            stat_write("u1", "login", None, 1, at(2)),
            stat_write("u2", "kills", Some(-2.5), 1, at(1)),
        ],
        goals: vec![],
        parked: vec![],
    };
    assert_eq!(store.apply_flush(&first).await.unwrap().stat_rows, 3);
    let second = FlushBatch {
        stats: vec![stat_write("u1", "kills", None, 2, at(3)), stat_write("u1", "login", None, 1, at(3))],
        goals: vec![],
        parked: vec![],
    };
    store.apply_flush(&second).await.unwrap();
    let third =
        FlushBatch { stats: vec![stat_write("u1", "kills", Some(7.25), 1, at(4))], goals: vec![], parked: vec![] };
    store.apply_flush(&third).await.unwrap();

    let state = store.load_pipeline_state(&PipelineQuery::for_users(&users)).await.unwrap();
    let stat = |user: &str, code: &str| {
        state.stats.iter().find(|s| s.user_id == user && s.stat_code == code).cloned().expect("stat row")
    };
    assert_eq!((stat("u1", "kills").value, stat("u1", "kills").event_count), (7.25, 4));
    assert_eq!(stat("u1", "kills").updated_at, at(4));
    assert_eq!((stat("u1", "login").value, stat("u1", "login").event_count), (0.0, 3));
    assert_eq!((stat("u2", "kills").value, stat("u2", "kills").event_count), (-2.5, 1));
    let loaded: Vec<_> = state.goals.iter().map(|g| format!("{}/{}", g.user_id, g.goal_id)).collect();
    assert_eq!(loaded, ["u1/kills10", "u1/streak", "u2/x"], "inactive goals are not loaded");

    // Goal writes: baseline, completion and plugin state round-trip; the last write per goal wins.
    let mut baseline = goal_write("u1", "kills10", 0, GoalStatus::InProgress, at(5));
    baseline.baseline_value = Some(5);
    baseline.progress_source = ProgressSource::StatValue;
    let mut streak = goal_write("u1", "streak", 2, GoalStatus::InProgress, at(5));
    streak.plugin_state = Some(vec![0, 1, 2, 255, 0]);
    let mut streak_done = goal_write("u1", "streak", 3, GoalStatus::Completed, at(6));
    streak_done.plugin_state = Some((0..=255).collect());
    streak_done.progress_source = ProgressSource::EventCount;
    let outcome = store
        .apply_flush(&FlushBatch { stats: vec![], goals: vec![baseline, streak, streak_done.clone()], parked: vec![] })
        .await
        .unwrap();
    assert_eq!(outcome.goal_rows, 2);

    let kills10 = store.user_goal("u1", "kills10").await.unwrap().unwrap();
    assert_eq!((kills10.baseline_value, kills10.progress_source), (Some(5), ProgressSource::StatValue));
    assert_eq!(kills10.displayed_progress(Some(&stat("u1", "kills"))), 2);
    let streak = store.user_goal("u1", "streak").await.unwrap().unwrap();
    assert_eq!((streak.progress, streak.status, streak.completed_at), (3, GoalStatus::Completed, Some(at(6))));
    assert_eq!((streak.plugin_state, streak.progress_source), (streak_done.plugin_state, ProgressSource::EventCount));
    assert_eq!(streak.updated_at, at(6));

    // Clearing plugin state and baseline writes NULL back.
    let cleared = goal_write("u1", "kills10", 1, GoalStatus::InProgress, at(7));
    store.apply_flush(&FlushBatch { stats: vec![], goals: vec![cleared], parked: vec![] }).await.unwrap();
    let kills10 = store.user_goal("u1", "kills10").await.unwrap().unwrap();
    assert_eq!((kills10.baseline_value, kills10.plugin_state, kills10.progress), (None, None, 1));
}

async fn flush_skips_claimed_and_inactive_rows(db: &TestDb) {
    let store = &db.store;
    completed_goal(db, "u1", "c1", "claimed", at(1)).await;
    assert!(matches!(store.claim(&claim_request("u1", "claimed", at(2))).await.unwrap(), ClaimOutcome::Claimed { .. }));
    store
        .insert_missing_assignments(&[inactive(assignment("u1", "c1", "off")), assignment("u1", "c1", "on")], at(0))
        .await
        .unwrap();

    let batch = FlushBatch {
        stats: vec![stat_write("u1", "kills", Some(1.0), 1, at(3))],
        goals: vec![
            goal_write("u1", "claimed", 99, GoalStatus::Completed, at(3)),
            goal_write("u1", "off", 5, GoalStatus::InProgress, at(3)),
            goal_write("u1", "missing", 5, GoalStatus::InProgress, at(3)),
            goal_write("u1", "on", 5, GoalStatus::InProgress, at(3)),
        ],
        parked: vec![],
    };
    assert_eq!(
        store.apply_flush(&batch).await.unwrap(),
        challenge_storage::FlushOutcome { stat_rows: 1, goal_rows: 1 }
    );
    let claimed = store.user_goal("u1", "claimed").await.unwrap().unwrap();
    assert_eq!((claimed.status, claimed.progress, claimed.completed_at), (GoalStatus::Claimed, 10, Some(at(1))));
    let off = store.user_goal("u1", "off").await.unwrap().unwrap();
    assert_eq!((off.progress, off.status), (0, GoalStatus::NotStarted));
    assert!(store.user_goal("u1", "missing").await.unwrap().is_none(), "flushes never create goal rows");
    assert_eq!(store.user_goal("u1", "on").await.unwrap().unwrap().progress, 5);
    let state = store.load_pipeline_state(&PipelineQuery::for_users(&["u1".to_owned()])).await.unwrap();
    assert_eq!(state.goals.iter().map(|g| g.goal_id.as_str()).collect::<Vec<_>>(), ["on"]);
}

async fn flush_rejects_invalid_writes_before_writing(db: &TestDb) {
    let store = &db.store;
    store.insert_missing_assignments(&[assignment("u1", "c1", "g1")], at(0)).await.unwrap();
    let good_stat = stat_write("u1", "kills", Some(1.0), 1, at(1));
    let bad_batches = [
        vec![goal_write("u1", "g1", -1, GoalStatus::InProgress, at(1))],
        vec![goal_write("u1", "g1", 1, GoalStatus::Claimed, at(1))],
        {
            let mut big = goal_write("u1", "g1", 1, GoalStatus::InProgress, at(1));
            big.plugin_state = Some(vec![7; challenge_storage::MAX_PLUGIN_STATE_BYTES + 1]);
            vec![big]
        },
    ];
    for goals in bad_batches {
        let batch = FlushBatch { stats: vec![good_stat.clone()], goals, parked: vec![] };
        assert!(matches!(store.apply_flush(&batch).await, Err(StorageError::InvalidInput(_))));
    }
    let nan =
        FlushBatch { stats: vec![stat_write("u1", "kills", Some(f64::NAN), 1, at(1))], goals: vec![], parked: vec![] };
    assert!(matches!(store.apply_flush(&nan).await, Err(StorageError::InvalidInput(_))));
    assert!(store.user_stats("u1").await.unwrap().is_empty(), "nothing of a rejected batch is written");
    assert_eq!(store.user_goal("u1", "g1").await.unwrap().unwrap().progress, 0);

    // Exactly the limit is fine.
    let mut max = goal_write("u1", "g1", 1, GoalStatus::InProgress, at(1));
    max.plugin_state = Some(vec![7; challenge_storage::MAX_PLUGIN_STATE_BYTES]);
    assert_eq!(
        store.apply_flush(&FlushBatch { stats: vec![], goals: vec![max], parked: vec![] }).await.unwrap().goal_rows,
        1
    );
}

async fn flush_of_5000_writes_in_one_call(db: &TestDb) {
    let store = &db.store;
    let assignments: Vec<_> =
        (0..5_000).map(|i| assignment(&format!("user{}", i % 500), "c1", &format!("goal{}", i / 500))).collect();
    assert_eq!(store.insert_missing_assignments(&assignments, at(0)).await.unwrap(), 5_000);
    let batch = FlushBatch {
        stats: (0..5_000)
            .map(|i| stat_write(&format!("user{}", i % 500), &format!("s{}", i / 500), Some(i as f64), 1, at(1)))
            .collect(),
        goals: assignments
            .iter()
            .enumerate()
            .map(|(i, a)| goal_write(&a.user_id, &a.goal_id, i as i64, GoalStatus::InProgress, at(1)))
            .collect(),
        parked: vec![],
    };
    let started = Instant::now();
    let outcome = store.apply_flush(&batch).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(outcome, challenge_storage::FlushOutcome { stat_rows: 5_000, goal_rows: 5_000 });
    assert!(elapsed < Duration::from_secs(20), "flush of 10k writes took {elapsed:?}");
    eprintln!("{:?}: flush of 5000 stat + 5000 goal writes took {elapsed:?}", db.backend);
    let users: Vec<String> = (0..500).map(|i| format!("user{i}")).collect();
    let state = store.load_pipeline_state(&PipelineQuery::for_users(&users)).await.unwrap();
    assert_eq!((state.goals.len(), state.stats.len()), (5_000, 5_000));
    assert_eq!(state.goals.iter().map(|g| g.progress).sum::<i64>(), (0..5_000).sum::<i64>());
}

// ---- not per backend ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn closed_port_is_unavailable_quickly() {
    let options = StoreOptions {
        database_url: Some("postgres://postgres@127.0.0.1:1/nothing".to_owned()),
        acquire_timeout: Duration::from_secs(1),
        ..test_options()
    };
    let started = Instant::now();
    let err = open_store(&options).await.err().expect("connecting to a closed port must fail");
    assert!(matches!(err, StorageError::Unavailable(_)), "got {err:?}");
    assert!(err.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn unusable_data_dir_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let options = StoreOptions { data_dir: file.join("data"), ..test_options() };
    assert!(matches!(open_store(&options).await.err(), Some(StorageError::Unavailable(_))));
}

#[tokio::test]
async fn bad_database_urls_are_rejected() {
    for url in ["mysql://x@y/z", "sqlite://x.db"] {
        let options = StoreOptions { database_url: Some(url.to_owned()), ..test_options() };
        assert!(matches!(open_store(&options).await.err(), Some(StorageError::InvalidInput(_))), "{url}");
    }
}

#[tokio::test]
async fn sqlite_creates_its_file_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("nested").join("data");
    let store = open_store(&StoreOptions { data_dir: data_dir.clone(), ..test_options() }).await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.backend(), "sqlite");
    assert!(data_dir.join(challenge_storage::SQLITE_FILE_NAME).is_file());
    let raw =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", data_dir.join("challenge.db").display())).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&raw).await.unwrap();
    assert_eq!(mode, "wal");
    // The store survives a reopen with its data.
    store.insert_missing_assignments(&[assignment("u1", "c1", "g1")], at(0)).await.unwrap();
    store.close().await;
    let reopened = open_store(&StoreOptions { data_dir, ..test_options() }).await.unwrap();
    assert!(reopened.migrations_applied().await.unwrap());
    assert!(reopened.user_goal("u1", "g1").await.unwrap().is_some());
}

#[test]
fn database_name_is_replaced_in_urls() {
    assert_eq!(with_database("postgres://u@h:5432/postgres", "t"), "postgres://u@h:5432/t");
    assert_eq!(with_database("postgres://u@h/postgres?sslmode=disable", "t"), "postgres://u@h/t?sslmode=disable");
    assert_eq!(with_database("postgres://u@h", "t"), "postgres://u@h/t");
}

async fn flush_parks_failed_evaluations_in_the_same_transaction(db: &TestDb) {
    let store = &db.store;
    let parked = challenge_storage::ParkedEvaluation {
        user_id: "u1".into(),
        plugin: "trap".into(),
        plugin_version: "1.0.0".into(),
        goal_ids: r#"["g1"]"#.into(),
        events: r#"[{"statCode":"kills","value":3.0}]"#.into(),
        error_kind: "trap".into(),
        error: "wasm trap: unreachable".into(),
        parked_at: at(5),
    };
    let batch = FlushBatch {
        stats: vec![stat_write("u1", "kills", Some(3.0), 1, at(5))],
        goals: vec![],
        parked: vec![parked.clone()],
    };
    assert_eq!(store.apply_flush(&batch).await.unwrap().stat_rows, 1);
    assert_eq!(store.parked_evaluations(10).await.unwrap(), vec![parked]);
    // A failing flush parks nothing: the whole transaction rolls back.
    let bad = FlushBatch {
        stats: vec![stat_write("u1", "kills", Some(f64::NAN), 1, at(6))],
        goals: vec![],
        parked: vec![challenge_storage::ParkedEvaluation { user_id: "u2".into(), ..batch.parked[0].clone() }],
    };
    assert!(store.apply_flush(&bad).await.is_err());
    assert_eq!(store.parked_evaluations(10).await.unwrap().len(), 1);
}

async fn pipeline_state_narrows_to_goals_and_stat_codes(db: &TestDb) {
    let store = &db.store;
    let users = vec!["u1".to_owned(), "u2".to_owned()];
    let rows: Vec<_> =
        ["g1", "g2", "g3"].iter().flat_map(|goal| users.iter().map(move |user| assignment(user, "c1", goal))).collect();
    store.insert_missing_assignments(&rows, at(0)).await.unwrap();
    let stats = ["kills", "wins", "level"]
        .iter()
        .flat_map(|code| users.iter().map(move |user| stat_write(user, code, Some(1.0), 1, at(1))))
        .collect();
    store.apply_flush(&FlushBatch { stats, goals: vec![], parked: vec![] }).await.unwrap();

    let query = PipelineQuery {
        user_ids: vec!["u1".to_owned(), "u2".to_owned()],
        goal_groups: Some(vec![
            GoalGroup { user_ids: vec!["u1".to_owned()], goal_ids: vec!["g3".to_owned(), "g1".to_owned()] },
            GoalGroup { user_ids: vec!["u2".to_owned(), "u3".to_owned()], goal_ids: vec!["g2".to_owned()] },
        ]),
        stat_codes: Some(vec!["wins".to_owned()]),
    };
    let state = store.load_pipeline_state(&query).await.unwrap();
    let goals: Vec<(&str, &str)> = state.goals.iter().map(|g| (g.user_id.as_str(), g.goal_id.as_str())).collect();
    assert_eq!(goals, [("u1", "g1"), ("u1", "g3"), ("u2", "g2")], "exactly the keys asked for, in order");
    let codes: Vec<(&str, &str)> = state.stats.iter().map(|s| (s.user_id.as_str(), s.stat_code.as_str())).collect();
    assert_eq!(codes, [("u1", "wins"), ("u2", "wins")]);
    let everything = store.load_pipeline_state(&PipelineQuery::for_users(&users)).await.unwrap();
    assert_eq!((everything.goals.len(), everything.stats.len()), (6, 6));
}

/// Callers that keep copies of pipeline rows update them with `StatWrite::applied_to` and `GoalWrite::apply_to`:
/// after any flush the copies must equal what the database returns, field by field.
async fn writes_applied_to_copies_match_the_reloaded_rows(db: &TestDb) {
    let store = &db.store;
    let users = ["u1".to_owned(), "u2".to_owned()];
    store
        .insert_missing_assignments(
            &[assignment("u1", "c1", "kills10"), assignment("u1", "c1", "streak"), assignment("u2", "c1", "x")],
            at(0),
        )
        .await
        .unwrap();
    let mut copy = store.load_pipeline_state(&PipelineQuery::for_users(&users)).await.unwrap();

    let mut streak = goal_write("u1", "streak", 2, GoalStatus::InProgress, at(2));
    streak.plugin_state = Some(vec![1, 2, 3]);
    let mut baseline = goal_write("u1", "kills10", 0, GoalStatus::InProgress, at(2));
    baseline.baseline_value = Some(4);
    baseline.progress_source = ProgressSource::StatValue;
    let mut done = goal_write("u1", "streak", 3, GoalStatus::Completed, at(3));
    done.completed_at = Some(at(3));
    let batches = [
        FlushBatch {
            stats: vec![
                stat_write("u1", "login", None, 1, at(1)),
                stat_write("u1", "kills", Some(4.0), 1, at(1)),
                stat_write("u1", "kills", None, 2, at(2)),
            ],
            goals: vec![streak, baseline],
            parked: vec![],
        },
        FlushBatch {
            stats: vec![stat_write("u1", "kills", Some(9.5), 1, at(3)), stat_write("u2", "kills", None, 1, at(1))],
            goals: vec![done, goal_write("u2", "x", 1, GoalStatus::InProgress, at(3))],
            parked: vec![],
        },
        FlushBatch {
            // An older timestamp does not move updated_at back; the cleared baseline is written as NULL.
            stats: vec![stat_write("u1", "kills", None, 1, at(2))],
            goals: vec![goal_write("u1", "kills10", 5, GoalStatus::InProgress, at(4))],
            parked: vec![],
        },
    ];
    for batch in &batches {
        store.apply_flush(batch).await.unwrap();
        for write in &batch.stats {
            let at = copy.stats.iter().position(|s| s.user_id == write.user_id && s.stat_code == write.stat_code);
            match at {
                Some(at) => copy.stats[at] = write.applied_to(Some(&copy.stats[at])),
                None => copy.stats.push(write.applied_to(None)),
            }
        }
        for write in &batch.goals {
            let row = copy.goals.iter_mut().find(|g| g.user_id == write.user_id && g.goal_id == write.goal_id);
            assert!(write.apply_to(row.expect("copied row")));
        }
        copy.stats.sort_by(|a, b| (&a.user_id, &a.stat_code).cmp(&(&b.user_id, &b.stat_code)));
        let reloaded = store.load_pipeline_state(&PipelineQuery::for_users(&users)).await.unwrap();
        assert_eq!(copy, reloaded);
    }
}
