//! The plugin registry on both backends: immutable versions, activation with a rollback target, limits, deletes,
//! and a revision that moves with every change (and only then).

mod common;

use std::sync::Arc;

use challenge_storage::{
    ActivationOutcome, DeleteOutcome, InsertOutcome, NewPluginVersion, PluginStatus, RollbackOutcome, Store,
};
use chrono::{DateTime, TimeZone, Utc};
use common::*;

backend_tests! {
    migrated: [
        versions_are_stored_once_and_immutable,
        activation_keeps_the_previous_version_for_rollback,
        uploaded_versions_cannot_be_activated_until_validated,
        limits_apply_to_every_version_of_a_plugin,
        only_inactive_versions_can_be_deleted,
        the_first_activation_happens_once,
        concurrent_activations_serialize,
    ],
    unmigrated: [],
}

fn time(second: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + second, 0).single().unwrap()
}

fn new_version<'a>(name: &'a str, version: &'a str, bytes: &'a [u8], sha: &'a str) -> NewPluginVersion<'a> {
    NewPluginVersion {
        name,
        version,
        sha256: sha,
        component: bytes,
        wit_world: "challenge:rules/rule-plugin@0.1.0",
        description: "test plugin",
        limits: r#"{"fuelPerCall":1000}"#,
        status: PluginStatus::Validated,
        uploaded_by: "tester",
        uploaded_at: time(0),
    }
}

async fn store_version(store: &dyn Store, name: &str, version: &str) {
    let bytes = format!("{name}@{version}").into_bytes();
    let sha = format!("sha-{name}-{version}");
    let outcome = store.registry().insert_plugin_version(&new_version(name, version, &bytes, &sha)).await.unwrap();
    assert!(matches!(outcome, InsertOutcome::Inserted(_)), "{outcome:?}");
}

async fn versions_are_stored_once_and_immutable(db: &TestDb) {
    let registry = db.store.registry();
    let start = registry.registry_revision().await.unwrap();
    let bytes = b"component bytes".to_vec();
    let inserted = match registry.insert_plugin_version(&new_version("streak", "1.0.0", &bytes, "aa")).await.unwrap() {
        InsertOutcome::Inserted(version) => version,
        other => panic!("{other:?}"),
    };
    assert_eq!(inserted.size_bytes, bytes.len() as i64);
    assert_eq!(inserted.status, PluginStatus::Validated);
    assert_eq!(inserted.uploaded_at, time(0));
    assert_eq!(registry.registry_revision().await.unwrap(), start + 1);

    // Same bytes again: nothing written, the existing record comes back; other bytes: a conflict.
    let again = registry.insert_plugin_version(&new_version("streak", "1.0.0", &bytes, "aa")).await.unwrap();
    assert_eq!(again, InsertOutcome::Existing(inserted.clone()));
    let other = registry.insert_plugin_version(&new_version("streak", "1.0.0", b"other", "bb")).await.unwrap();
    assert_eq!(other, InsertOutcome::Conflict(inserted.clone()));
    assert_eq!(registry.registry_revision().await.unwrap(), start + 1, "no change, no new revision");

    assert_eq!(registry.plugin_component("streak", "1.0.0").await.unwrap(), Some(bytes));
    assert_eq!(registry.plugin_component("streak", "9.9.9").await.unwrap(), None);
    assert_eq!(registry.plugin_version("streak", "1.0.0").await.unwrap(), Some(inserted));
    store_version(db.store.as_ref(), "alpha", "0.1.0").await;
    let names: Vec<String> = registry
        .plugin_versions(None)
        .await
        .unwrap()
        .into_iter()
        .map(|v| format!("{}@{}", v.name, v.version))
        .collect();
    assert_eq!(names, ["alpha@0.1.0", "streak@1.0.0"]);
    assert_eq!(registry.plugin_versions(Some("alpha")).await.unwrap().len(), 1);
}

async fn activation_keeps_the_previous_version_for_rollback(db: &TestDb) {
    let registry = db.store.registry();
    for version in ["1.0.0", "1.1.0", "1.2.0"] {
        store_version(db.store.as_ref(), "streak", version).await;
    }
    assert_eq!(registry.rollback_plugin("streak", "ops", time(1)).await.unwrap(), RollbackOutcome::NotActive);

    let first = registry.activate_plugin_version("streak", "1.0.0", "ops", time(1)).await.unwrap();
    let ActivationOutcome::Activated(first) = first else { panic!("{first:?}") };
    assert_eq!((first.active_version.as_str(), first.previous_version.as_deref()), ("1.0.0", None));
    assert_eq!(registry.rollback_plugin("streak", "ops", time(2)).await.unwrap(), RollbackOutcome::NoPrevious);

    let second = registry.activate_plugin_version("streak", "1.1.0", "alice", time(3)).await.unwrap();
    let ActivationOutcome::Activated(second) = second else { panic!("{second:?}") };
    assert_eq!(second.previous_version.as_deref(), Some("1.0.0"));
    assert_eq!(second.activated_by, "alice");
    assert_eq!(second.activated_at, time(3));
    let status = |version: &'static str| async move {
        registry.plugin_version("streak", version).await.unwrap().unwrap().status
    };
    assert_eq!(status("1.0.0").await, PluginStatus::Retired);
    assert_eq!(status("1.1.0").await, PluginStatus::Active);
    assert_eq!(status("1.2.0").await, PluginStatus::Validated);

    // Activating the active version changes nothing (and keeps the rollback target).
    let revision = registry.registry_revision().await.unwrap();
    let same = registry.activate_plugin_version("streak", "1.1.0", "bob", time(4)).await.unwrap();
    assert_eq!(same, ActivationOutcome::AlreadyActive(second.clone()));
    assert_eq!(registry.registry_revision().await.unwrap(), revision);

    // Rollback swaps active and previous.
    let back = registry.rollback_plugin("streak", "bob", time(5)).await.unwrap();
    let RollbackOutcome::RolledBack(back) = back else { panic!("{back:?}") };
    assert_eq!((back.active_version.as_str(), back.previous_version.as_deref()), ("1.0.0", Some("1.1.0")));
    assert_eq!(status("1.0.0").await, PluginStatus::Active);
    assert_eq!(status("1.1.0").await, PluginStatus::Retired);
    assert!(registry.registry_revision().await.unwrap() > revision);
    assert_eq!(registry.plugin_activations().await.unwrap(), vec![back]);

    assert_eq!(
        registry.activate_plugin_version("streak", "7.7.7", "ops", time(6)).await.unwrap(),
        ActivationOutcome::NotFound
    );
}

async fn uploaded_versions_cannot_be_activated_until_validated(db: &TestDb) {
    let registry = db.store.registry();
    let new = NewPluginVersion { status: PluginStatus::Uploaded, ..new_version("p", "1", b"x", "s") };
    registry.insert_plugin_version(&new).await.unwrap();
    assert_eq!(
        registry.activate_plugin_version("p", "1", "ops", time(1)).await.unwrap(),
        ActivationOutcome::NotValidated
    );
    assert!(registry.mark_plugin_validated("p", "1").await.unwrap());
    assert!(!registry.mark_plugin_validated("p", "1").await.unwrap(), "only uploaded versions are promoted");
    assert!(matches!(
        registry.activate_plugin_version("p", "1", "ops", time(1)).await.unwrap(),
        ActivationOutcome::Activated(_)
    ));
    // Only uploaded or validated versions may be inserted.
    let bad = NewPluginVersion { status: PluginStatus::Active, ..new_version("q", "1", b"x", "s") };
    assert!(registry.insert_plugin_version(&bad).await.is_err());
}

async fn limits_apply_to_every_version_of_a_plugin(db: &TestDb) {
    let registry = db.store.registry();
    store_version(db.store.as_ref(), "p", "1").await;
    store_version(db.store.as_ref(), "p", "2").await;
    store_version(db.store.as_ref(), "other", "1").await;
    let revision = registry.registry_revision().await.unwrap();
    assert_eq!(registry.set_plugin_limits("p", r#"{"fuelPerCall":5}"#).await.unwrap(), 2);
    assert_eq!(registry.registry_revision().await.unwrap(), revision + 1);
    for version in registry.plugin_versions(Some("p")).await.unwrap() {
        assert_eq!(version.limits, r#"{"fuelPerCall":5}"#);
    }
    assert_eq!(registry.plugin_version("other", "1").await.unwrap().unwrap().limits, r#"{"fuelPerCall":1000}"#);
    assert_eq!(registry.set_plugin_limits("missing", "{}").await.unwrap(), 0);
}

async fn only_inactive_versions_can_be_deleted(db: &TestDb) {
    let registry = db.store.registry();
    store_version(db.store.as_ref(), "p", "1").await;
    store_version(db.store.as_ref(), "p", "2").await;
    registry.activate_plugin_version("p", "1", "ops", time(1)).await.unwrap();
    registry.activate_plugin_version("p", "2", "ops", time(2)).await.unwrap();
    assert_eq!(registry.delete_plugin_version("p", "2").await.unwrap(), DeleteOutcome::Active);
    assert_eq!(registry.delete_plugin_version("p", "3").await.unwrap(), DeleteOutcome::NotFound);
    // Deleting the rollback target clears it.
    assert_eq!(registry.delete_plugin_version("p", "1").await.unwrap(), DeleteOutcome::Deleted);
    assert_eq!(registry.plugin_activations().await.unwrap()[0].previous_version, None);
    assert_eq!(registry.rollback_plugin("p", "ops", time(3)).await.unwrap(), RollbackOutcome::NoPrevious);
    assert!(registry.plugin_version("p", "1").await.unwrap().is_none());
    assert!(registry.plugin_component("p", "1").await.unwrap().is_none());
}

async fn the_first_activation_happens_once(db: &TestDb) {
    let registry = db.store.registry();
    store_version(db.store.as_ref(), "builtin", "1").await;
    store_version(db.store.as_ref(), "builtin", "2").await;
    assert!(registry.activate_if_unset("builtin", "1", "host", time(1)).await.unwrap());
    assert!(!registry.activate_if_unset("builtin", "2", "host", time(2)).await.unwrap());
    let activations = registry.plugin_activations().await.unwrap();
    assert_eq!(activations[0].active_version, "1");
}

async fn concurrent_activations_serialize(db: &TestDb) {
    for version in 0..8 {
        store_version(db.store.as_ref(), "p", &version.to_string()).await;
    }
    let start = db.store.registry().registry_revision().await.unwrap();
    let store: Arc<dyn Store> = db.store.clone();
    let mut tasks = Vec::new();
    for version in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.registry().activate_plugin_version("p", &version.to_string(), "ops", time(version)).await.unwrap()
        }));
    }
    for task in tasks {
        assert!(matches!(task.await.unwrap(), ActivationOutcome::Activated(_)));
    }
    // Eight changes, eight revisions; exactly one active version, and the previous one is retired.
    assert_eq!(db.store.registry().registry_revision().await.unwrap(), start + 8);
    let versions = db.store.registry().plugin_versions(Some("p")).await.unwrap();
    let active: Vec<_> = versions.iter().filter(|v| v.status == PluginStatus::Active).collect();
    assert_eq!(active.len(), 1);
    let activation = &db.store.registry().plugin_activations().await.unwrap()[0];
    assert_eq!(activation.active_version, active[0].version);
    let previous = activation.previous_version.as_deref().unwrap();
    assert_eq!(versions.iter().find(|v| v.version == previous).unwrap().status, PluginStatus::Retired);
}
