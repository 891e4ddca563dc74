//! Leasing reward grants for delivery: several workers (or instances) never get the same grant at once.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use challenge_storage::{ClaimOutcome, GrantStatus, RewardGrant};
use common::*;

backend_tests! {
    migrated: [
        leases_take_due_grants_and_hide_them_until_the_lease_ends,
        one_grant_is_leased_by_one_caller,
        concurrent_workers_lease_disjoint_grants,
    ],
    unmigrated: [],
}

async fn claimed_grants(db: &TestDb, user: &str, goals: &[(&str, i64)]) -> Vec<RewardGrant> {
    let mut grants = Vec::new();
    for (goal, when) in goals {
        completed_goal(db, user, "c1", goal, at(1)).await;
        match db.store.claim(&claim_request(user, goal, at(*when))).await.unwrap() {
            ClaimOutcome::Claimed { grant, .. } => grants.push(grant),
            other => panic!("{other:?}"),
        }
    }
    grants
}

fn ids(grants: &[RewardGrant]) -> Vec<i64> {
    grants.iter().map(|g| g.id).collect()
}

async fn leases_take_due_grants_and_hide_them_until_the_lease_ends(db: &TestDb) {
    let store = &db.store;
    let grants = claimed_grants(db, "u1", &[("g1", 10), ("g2", 11), ("g3", 12)]).await;

    // Only due grants, oldest first, at most `limit`; they come back with the lease as next attempt.
    assert!(store.lease_due_grants(at(9), at(100), 10).await.unwrap().is_empty());
    let leased = store.lease_due_grants(at(11), at(100), 1).await.unwrap();
    assert_eq!(ids(&leased), [grants[0].id]);
    assert_eq!((leased[0].next_attempt_at, leased[0].status), (at(100), GrantStatus::Pending));
    assert_eq!(leased[0].idempotency_key, grants[0].idempotency_key);

    // While leased it is neither due nor leasable; the others are.
    assert_eq!(ids(&store.due_grants(at(50), 10).await.unwrap()), [grants[1].id, grants[2].id]);
    assert_eq!(ids(&store.lease_due_grants(at(50), at(100), 10).await.unwrap()), [grants[1].id, grants[2].id]);
    assert!(store.lease_due_grants(at(99), at(200), 10).await.unwrap().is_empty());

    // A deliverer that vanished: the grant is due again once the lease ends.
    assert_eq!(ids(&store.lease_due_grants(at(100), at(200), 1).await.unwrap()), [grants[0].id]);

    // Settled grants are never leased again.
    assert!(store.mark_grant_delivered(grants[0].id, at(150)).await.unwrap());
    assert!(store.mark_grant_failed(grants[1].id, "HTTP 400").await.unwrap());
    assert_eq!(ids(&store.lease_due_grants(at(1_000), at(2_000), 10).await.unwrap()), [grants[2].id]);
}

async fn one_grant_is_leased_by_one_caller(db: &TestDb) {
    let store = &db.store;
    let grants = claimed_grants(db, "u1", &[("g1", 10)]).await;
    let id = grants[0].id;
    assert!(store.lease_grant(id, at(9), at(60)).await.unwrap().is_none(), "not due yet");
    let leased = store.lease_grant(id, at(10), at(60)).await.unwrap().expect("due grant is leased");
    assert_eq!((leased.id, leased.next_attempt_at), (id, at(60)));
    assert!(store.lease_grant(id, at(30), at(90)).await.unwrap().is_none(), "held by the first lease");
    assert!(store.lease_due_grants(at(30), at(90), 10).await.unwrap().is_empty());
    // A failed attempt reschedules it; then it is leasable again when due.
    assert!(store.reschedule_grant(id, "HTTP 503", at(70)).await.unwrap());
    assert!(store.lease_grant(id, at(69), at(90)).await.unwrap().is_none());
    let again = store.lease_grant(id, at(70), at(90)).await.unwrap().expect("due again");
    assert_eq!(again.attempts, 1);
    assert!(store.mark_grant_delivered(id, at(71)).await.unwrap());
    assert!(store.lease_grant(id, at(1_000), at(2_000)).await.unwrap().is_none(), "delivered grants stay settled");
    assert!(store.lease_grant(-1, at(1_000), at(2_000)).await.unwrap().is_none());
}

async fn concurrent_workers_lease_disjoint_grants(db: &TestDb) {
    let goals: Vec<(String, i64)> = (0..40).map(|i| (format!("g{i}"), 10 + i)).collect();
    let refs: Vec<(&str, i64)> = goals.iter().map(|(g, t)| (g.as_str(), *t)).collect();
    let grants = claimed_grants(db, "u1", &refs).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = Arc::clone(&db.store);
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store.lease_due_grants(at(1_000), at(5_000), 3).await.expect("lease");
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|g| g.id));
            }
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for task in tasks {
        for id in task.await.unwrap() {
            total += 1;
            assert!(seen.insert(id), "grant {id} leased twice");
        }
    }
    assert_eq!(total, grants.len());
    assert_eq!(seen, grants.iter().map(|g| g.id).collect());
}
