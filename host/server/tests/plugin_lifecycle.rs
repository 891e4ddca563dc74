//! The plugin lifecycle through the admin API (REST and gRPC) against real PostgreSQL (and SQLite) and real
//! compiled guest components: upload with validation, list, show, dry run, activate, limits, rollback, delete,
//! configuration reloads, and who may do it.

mod common;
mod plugin_support;

use std::time::Duration;

use challenge_core::progress::GoalStatus;
use challenge_proto::challenge::admin::v1 as pb;
use challenge_proto::challenge::events::v1 as batch;
use challenge_storage::{GoalFilter, PluginStatus};
use common::*;
use plugin_support::*;
use serde_json::{Value, json};
use tonic::Code;

type AdminClient = pb::plugin_admin_client::PluginAdminClient<tonic::transport::Channel>;
type BatchClient = batch::event_ingestion_service_client::EventIngestionServiceClient<tonic::transport::Channel>;

/// A stricter release of the trap plugin (0.5.0, or the same code as `version`): it refuses params with "days".
fn strict_trap(version: &str) -> Vec<u8> {
    rewrite(&guest("trap-strict"), "0.5.0", version)
}

#[tokio::test]
async fn the_whole_lifecycle_through_the_rest_api() {
    let mut server = TestServer::start(TestOptions::default()).await;
    let admin = Admin::new(&server.http);

    // A fresh registry holds the built-in plugin, active.
    let (status, registry) = admin.get("/admin/v1/plugins").await;
    assert_eq!(status, 200, "{registry}");
    let builtin = &registry["plugins"][0];
    assert_eq!(builtin["name"], "builtin-rules");
    assert_eq!(builtin["activeVersion"], "1.0.0");
    assert_eq!(builtin["servingVersion"], "1.0.0");
    assert_eq!(builtin["versions"][0]["uploadedBy"], "host (embedded)");
    assert_eq!(builtin["versions"][0]["status"], "active");
    assert_eq!(registry["appliedRevision"], registry["registryRevision"]);

    // Upload: stored validated, loaded, not active; the same bytes again change nothing.
    let (status, streak) = admin.upload(guest("streak"), "").await;
    assert_eq!(status, 201, "{streak}");
    assert_eq!(streak["name"], "streak");
    assert_eq!(streak["version"], "1.0.0");
    assert_eq!(streak["status"], "validated");
    assert_eq!(streak["loaded"], true);
    assert!(streak["witWorld"].as_str().unwrap().starts_with("challenge:rules/rule-plugin@"));
    assert_eq!(streak["kinds"], json!(["login-streak"]));
    assert_eq!(streak["uploadedBy"], "admin-token");
    assert_eq!(streak["sizeBytes"], guest("streak").len());
    assert_eq!(streak["limits"]["fuelPerCall"], 10_000_000);
    let (status, again) = admin.upload(guest("streak"), "").await;
    assert_eq!((status, &again["sha256"]), (200, &streak["sha256"]));
    assert!(server.state().rules.resolve("streak", None).is_none(), "uploaded, not active");

    // Dry run: sample goals and events, per-goal results, nothing stored.
    let day = |d: u32| format!("2024-03-0{d}T10:00:00Z");
    let sample = json!({
        "goals": [
            {"goalId": "streak-2", "kind": "login-streak", "statCode": "login", "params": {"days": 2}},
            {"goalId": "bad", "kind": "login-streak", "statCode": "login", "params": {"days": 0}}
        ],
        "events": [{"kind": "login", "timestamp": day(1)}, {"kind": "login", "timestamp": day(2)}]
    });
    let (status, dry) = admin.post("/admin/v1/plugins/streak/versions/1.0.0/dry-run", sample).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["results"][0]["goalId"], "streak-2");
    assert_eq!(dry["results"][0]["changed"], true);
    assert_eq!(dry["results"][0]["progress"], 2);
    assert_eq!(dry["results"][0]["status"], "completed");
    assert_eq!(dry["results"][0]["source"], "stored");
    assert!(dry["results"][0]["state"].is_string(), "the plugin's state comes back as base64");
    assert!(dry["results"][1]["paramsError"].as_str().unwrap().contains("days must be between"));
    assert!(dry.get("error").is_none());
    // A configured goal can be named by id alone: its spec comes from the configuration.
    let (status, configured) = admin
        .post(
            "/admin/v1/plugins/builtin-rules/versions/1.0.0/dry-run",
            json!({"goals": [{"goalId": "kills-100"}], "events": [{"statCode": "kills", "value": 150}]}),
        )
        .await;
    assert_eq!(status, 200, "{configured}");
    assert_eq!(configured["results"][0]["status"], "completed");

    // Activate: evaluations use it from now on.
    let (status, activation) = admin.activate("streak", "1.0.0").await;
    assert_eq!(status, 200, "{activation}");
    assert_eq!((activation["changed"].as_bool(), &activation["previousVersion"]), (Some(true), &Value::Null));
    assert_eq!(server.state().rules.resolve("streak", None).unwrap().version(), "1.0.0");
    let (_, again) = admin.activate("streak", "1.0.0").await;
    assert_eq!(again["changed"], false);

    // Limits apply live and persist: a tiny CPU budget makes a long dry run run out of fuel.
    let many_logins: Vec<Value> =
        (0..3_000).map(|i| json!({"kind": "login", "timestampMs": i as i64 * 86_400_000})).collect();
    let long_run = json!({
        "goals": [{"goalId": "s", "kind": "login-streak", "statCode": "login", "params": {"days": 3000}}],
        "events": many_logins
    });
    let (_, fine) = admin.post("/admin/v1/plugins/streak/versions/1.0.0/dry-run", long_run.clone()).await;
    assert!(fine.get("error").is_none(), "{fine}");
    let (status, limits) =
        admin.put("/admin/v1/plugins/streak/limits", json!({"fuelPerCall": 10_000, "maxMemoryBytes": 8_388_608})).await;
    assert_eq!(status, 200, "{limits}");
    assert_eq!(limits["limits"]["fuelPerCall"], 10_000);
    assert_eq!(limits["versionsUpdated"], 1);
    let loaded = server.state().rules.resolve("streak", None).unwrap();
    assert_eq!((loaded.limits().fuel_per_call, loaded.limits().max_memory_bytes), (10_000, 8 << 20));
    let (_, starved) = admin.post("/admin/v1/plugins/streak/versions/1.0.0/dry-run", long_run).await;
    assert_eq!(starved["error"]["kind"], "out_of_fuel", "{starved}");
    assert_error(
        &admin.put("/admin/v1/plugins/streak/limits", json!({"maxMemoryBytes": 1_u64 << 40})).await,
        400,
        "INVALID_LIMITS",
        "maxMemoryBytes must be between",
    );
    assert_error(&admin.put("/admin/v1/plugins/streak/limits", json!({})).await, 400, "NO_LIMITS", "at least one");
    // Limits under which the plugin cannot even start are refused before they reach any instance.
    assert_error(
        &admin.put("/admin/v1/plugins/builtin-rules/limits", json!({"maxMemoryBytes": 1_048_576})).await,
        422,
        "LIMITS_TOO_LOW",
        "builtin-rules@1.0.0 would fail with these limits",
    );
    assert_eq!(server.state().rules.resolve("builtin-rules", None).unwrap().limits().max_memory_bytes, 16 << 20);

    // A new release of the built-in rules with its own limits, activated under event traffic, then rolled back.
    let (status, release) = admin.upload(builtin_release("1.0.1"), "?fuelPerCall=2000000").await;
    assert_eq!(status, 201, "{release}");
    assert_eq!(release["limits"]["fuelPerCall"], 2_000_000);
    let (status, activation) = admin.activate("builtin-rules", "1.0.1").await;
    assert_eq!(status, 200, "{activation}");
    assert_eq!(activation["previousVersion"], "1.0.0");
    assert_eq!(activation["activatedBy"], "admin-token");
    let state = server.state();
    assert_eq!(state.rules.resolve("builtin-rules", None).unwrap().version(), "1.0.1");
    assign(state, "p1", &["kills-100"]).await;
    let mut events = BatchClient::new(server.grpc_channel().await);
    let submit = batch::SubmitEventsRequest { events: vec![stat_event("e1", "p1", "kills", 100.0, NAMESPACE)] };
    assert_eq!(events.submit_events(submit).await.unwrap().into_inner().accepted, 1);
    let rows = state.store.user_goals("p1", &GoalFilter::default()).await.unwrap();
    assert_eq!(rows[0].status, GoalStatus::Completed, "evaluated by the new release");
    let (status, metrics) = admin.get("/admin/v1/plugins/builtin-rules/metrics").await;
    assert_eq!(status, 200, "{metrics}");
    assert_eq!(metrics["activeVersion"], "1.0.1");
    let new = metrics["versions"].as_array().unwrap().iter().find(|v| v["version"] == "1.0.1").unwrap();
    assert_eq!(new["active"], true);
    assert!(new["calls"].as_u64().unwrap() >= 1, "{metrics}");
    assert!(new["latency"]["count"].as_u64().unwrap() >= 1);
    assert!(new["latency"]["p99Seconds"].as_f64().unwrap() > 0.0);

    let (status, back) = admin.rollback("builtin-rules").await;
    assert_eq!(status, 200, "{back}");
    assert_eq!((&back["activeVersion"], &back["previousVersion"]), (&json!("1.0.0"), &json!("1.0.1")));
    assert_eq!(state.rules.resolve("builtin-rules", None).unwrap().version(), "1.0.0");
    let statuses = |rows: Vec<challenge_storage::PluginVersion>| -> Vec<(String, PluginStatus)> {
        rows.into_iter().map(|row| (row.version, row.status)).collect()
    };
    let stored = state.store.registry().plugin_versions(Some("builtin-rules")).await.unwrap();
    assert_eq!(
        statuses(stored),
        [("1.0.0".to_owned(), PluginStatus::Active), ("1.0.1".to_owned(), PluginStatus::Retired)]
    );

    // Deletes: the built-in version and active versions stay; an unused one goes (and with it the rollback target).
    assert_error(
        &admin.delete("/admin/v1/plugins/builtin-rules/versions/1.0.0").await,
        409,
        "BUILTIN_VERSION",
        "ships with",
    );
    assert_error(&admin.delete("/admin/v1/plugins/streak/versions/1.0.0").await, 409, "VERSION_ACTIVE", "is active");
    assert_eq!(admin.delete("/admin/v1/plugins/builtin-rules/versions/1.0.1").await.0, 204);
    assert_error(&admin.get("/admin/v1/plugins/builtin-rules/versions/1.0.1").await, 404, "VERSION_NOT_FOUND", "1.0.1");
    assert!(state.rules.loaded("builtin-rules", "1.0.1").is_none(), "unloaded");
    assert_error(&admin.rollback("builtin-rules").await, 409, "NO_PREVIOUS_VERSION", "no previous version");
    assert_error(&admin.rollback("nope").await, 404, "PLUGIN_NOT_FOUND", "nope");
    assert_error(&admin.activate("streak", "9.9.9").await, 404, "VERSION_NOT_FOUND", "9.9.9");

    // A restart on the same database loads what the registry says, with the limits it stored.
    let url = server.database_url.clone();
    let database = server.database.take();
    server.stop().await;
    let restarted = TestServer::start(TestOptions { database: url, ..TestOptions::default() }).await;
    let rules = &restarted.state().rules;
    assert_eq!(rules.resolve("streak", None).unwrap().limits().fuel_per_call, 10_000);
    assert_eq!(rules.resolve("builtin-rules", None).unwrap().version(), "1.0.0");
    drop(restarted);
    drop(database);
}

#[tokio::test]
async fn uploads_are_rejected_with_precise_messages() {
    let dir = tempfile::tempdir().unwrap();
    let challenges = fixture_copy(dir.path(), "plugin-lifecycle.json");
    let server = TestServer::start(TestOptions { challenges: Some(challenges), ..TestOptions::default() }).await;
    let admin = Admin::new(&server.http);

    assert_error(
        &admin.upload(b"hello, plugin".to_vec(), "").await,
        422,
        "NOT_A_COMPONENT",
        "not a WebAssembly component",
    );
    assert_error(
        &admin.upload(b"\0asm\x01\0\0\0".to_vec(), "").await,
        422,
        "NOT_A_COMPONENT",
        "core WebAssembly module",
    );
    // A valid component that exports nothing.
    assert_error(
        &admin.upload(b"\0asm\x0d\0\x01\0".to_vec(), "").await,
        422,
        "NOT_RULES_WORLD",
        "does not export challenge:rules/rules@",
    );
    assert_error(&admin.upload(guest("wasi-importer"), "").await, 422, "FORBIDDEN_IMPORTS", "wasi:");
    assert_error(&admin.upload(guest("spin-forever"), "").await, 422, "SMOKE_TEST_FAILED", "ran out of fuel");
    assert_error(&admin.upload(guest("memory-bomb"), "").await, 422, "SMOKE_TEST_FAILED", "ran out of memory");
    assert_error(&admin.upload(Vec::new(), "").await, 400, "EMPTY_UPLOAD", "component's bytes");
    assert_error(&admin.upload(guest("streak"), "?fuelPerCall=5").await, 400, "INVALID_LIMITS", "fuelPerCall");
    assert_error(&admin.upload(guest("streak"), "?fuel=5").await, 400, "INVALID_LIMITS", "fuel");

    let (status, body) = admin.get("/admin/v1/plugins").await;
    assert_eq!(status, 200);
    assert_eq!(body["plugins"].as_array().unwrap().len(), 1, "rejected uploads leave nothing behind: {body}");
    let stored = server.state().store.registry().plugin_versions(None).await.unwrap();
    assert_eq!(stored.len(), 1, "only the built-in version is stored");
    assert!(server.state().rules.resolve("spin-forever", None).is_none());
}

#[tokio::test]
async fn uploads_larger_than_the_limit_are_refused() {
    let server = TestServer::start(TestOptions::default()).await;
    let admin = Admin::new(&server.http);
    let limit = server.state().settings.plugins.max_upload_bytes;
    assert_error(&admin.upload(vec![0u8; limit + 1], "").await, 413, "COMPONENT_TOO_LARGE", "larger than");
}

#[tokio::test]
async fn configured_goals_guard_uploads_activations_deletes_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let challenges = fixture_copy(dir.path(), "plugin-lifecycle.json");
    let server =
        TestServer::start(TestOptions { challenges: Some(challenges.clone()), ..TestOptions::default() }).await;
    let admin = Admin::new(&server.http);
    let state = server.state();

    // trap 0.1.0 (refuses params with "bad") active, and a stricter 0.5.0 (also refuses "days") stored.
    assert_eq!(admin.upload(guest("trap"), "").await.0, 201);
    assert_eq!(admin.activate("trap", "0.1.0").await.0, 200);
    let (status, strict) = admin.upload(strict_trap("0.5.0"), "").await;
    assert_eq!(status, 201, "{strict}");

    // Reload with goals that use trap: one unpinned with {"days": 3}, one pinned to 0.1.0.
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&challenges).unwrap()).unwrap();
    let goal = |id: &str, rule: Value| {
        json!({"goalId": id, "name": id, "eventSource": "statistic",
               "requirement": {"statCode": "kills", "operator": ">=", "targetValue": 5},
               "reward": {"type": "WALLET", "rewardId": "GOLD", "quantity": 1}, "rule": rule})
    };
    let goals = doc["challenges"][0]["goals"].as_array_mut().unwrap();
    goals.push(goal("trap-days", json!({"plugin": "trap", "params": {"days": 3}})));
    goals.push(goal("trap-pinned", json!({"plugin": "trap", "version": "0.1.0", "params": {}})));
    let good = serde_json::to_string_pretty(&doc).unwrap();
    std::fs::write(&challenges, &good).unwrap();
    let old_version = state.config().catalog.version().to_owned();
    let (status, reloaded) = admin.post("/admin/v1/config/reload", Value::Null).await;
    assert_eq!(status, 200, "{reloaded}");
    assert_eq!(reloaded["goals"], 3);
    assert_ne!(reloaded["version"], json!(old_version));
    assert!(state.config().catalog.goal("trap-days").is_some(), "the new configuration is in force");
    let current = state.config().catalog.version().to_owned();

    // Activating 0.5.0 would break trap-days: refused, nothing changes.
    assert_error(&admin.activate("trap", "0.5.0").await, 409, "ACTIVATION_REJECTED", "trap-days");
    assert_eq!(state.rules.resolve("trap", None).unwrap().version(), "0.1.0");
    // A new release that refuses the configured params is rejected at upload, naming the goal; nothing is stored.
    assert_error(
        &admin.upload(strict_trap("0.6.0"), "").await,
        422,
        "PARAMS_REJECTED",
        "goal 'trap-days' in challenge 'lifecycle': plugin rejected the call: this release no longer accepts 'days'",
    );
    assert_error(&admin.get("/admin/v1/plugins/trap/versions/0.6.0").await, 404, "VERSION_NOT_FOUND", "0.6.0");

    // Deletes: pinned and active versions stay, an unused one goes.
    assert_error(&admin.delete("/admin/v1/plugins/trap/versions/0.1.0").await, 409, "VERSION_IN_USE", "trap-pinned");
    assert_eq!(admin.delete("/admin/v1/plugins/trap/versions/0.5.0").await.0, 204);

    // Reloads that fail change nothing: a broken file, a plugin that does not exist, params trap refuses.
    let variant = |rule: Value| {
        let mut doc = doc.clone();
        doc["challenges"][0]["goals"][1]["rule"] = rule;
        serde_json::to_string(&doc).unwrap()
    };
    for (broken, needle) in [
        ("{ not json".to_owned(), "line 1"),
        (variant(json!({"plugin": "missing"})), "unknown rule plugin 'missing'"),
        (variant(json!({"plugin": "trap", "params": {"days": "bad"}})), "params are bad"),
    ] {
        std::fs::write(&challenges, broken).unwrap();
        assert_error(&admin.post("/admin/v1/config/reload", Value::Null).await, 422, "CONFIG_INVALID", needle);
        assert_eq!(state.config().catalog.version(), current, "a refused reload changes nothing");
    }
}

#[tokio::test]
async fn admin_endpoints_refuse_player_tokens_and_anonymous_callers() {
    let server = TestServer::start(TestOptions::default()).await;
    let routes: [(&str, &str); 11] = [
        ("GET", "/admin/v1/plugins"),
        ("POST", "/admin/v1/plugins"),
        ("GET", "/admin/v1/plugins/builtin-rules"),
        ("GET", "/admin/v1/plugins/builtin-rules/versions/1.0.0"),
        ("DELETE", "/admin/v1/plugins/builtin-rules/versions/1.0.0"),
        ("POST", "/admin/v1/plugins/builtin-rules/versions/1.0.0/activate"),
        ("POST", "/admin/v1/plugins/builtin-rules/versions/1.0.0/dry-run"),
        ("POST", "/admin/v1/plugins/builtin-rules/rollback"),
        ("PUT", "/admin/v1/plugins/builtin-rules/limits"),
        ("GET", "/admin/v1/plugins/builtin-rules/metrics"),
        ("POST", "/admin/v1/config/reload"),
    ];
    let http = reqwest::Client::new();
    for (token, expected) in [(None, 401), (Some(token("alice")), 403), (Some("Bearer wrong".to_owned()), 401)] {
        for (method, path) in routes {
            let mut request = http.request(method.parse().unwrap(), format!("{}{path}", server.http)).json(&json!({}));
            if let Some(token) = &token {
                request = request.header("authorization", token);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), expected, "{method} {path} with {token:?}");
        }
    }

    let mut client = AdminClient::new(server.grpc_channel().await);
    let anonymous = client.list_plugins(pb::ListPluginsRequest::default()).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let mut request = tonic::Request::new(pb::PluginRef { name: "builtin-rules".into() });
    request.metadata_mut().insert("authorization", token("alice").parse().unwrap());
    assert_eq!(client.rollback(request).await.unwrap_err().code(), Code::PermissionDenied);
    // Nothing changed.
    assert_eq!(server.state().rules.resolve("builtin-rules", None).unwrap().version(), "1.0.0");
}

fn authorized<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {ADMIN_TOKEN}").parse().unwrap());
    request
}

#[tokio::test]
async fn the_grpc_admin_service_runs_the_same_lifecycle() {
    let server = TestServer::start(TestOptions::default()).await;
    let mut client = AdminClient::new(server.grpc_channel().await);

    let upload = pb::UploadPluginRequest {
        component: builtin_release("1.0.1"),
        limits: Some(pb::LimitsPatch { fuel_per_call: Some(3_000_000), ..Default::default() }),
    };
    let stored = client.upload_plugin(authorized(upload)).await.unwrap().into_inner();
    assert!(stored.created);
    let version = stored.version.unwrap();
    assert_eq!(
        (version.name.as_str(), version.version.as_str(), version.status.as_str()),
        ("builtin-rules", "1.0.1", "validated")
    );
    assert_eq!(version.limits.unwrap().fuel_per_call, 3_000_000);

    let refused = client
        .upload_plugin(authorized(pb::UploadPluginRequest { component: guest("wasi-importer"), limits: None }))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
    assert_eq!(refused.metadata().get("x-error-code").unwrap(), "FORBIDDEN_IMPORTS");

    let dry = client
        .dry_run(authorized(pb::DryRunRequest {
            name: "builtin-rules".into(),
            version: "1.0.1".into(),
            user_id: "u".into(),
            goals: vec![pb::SampleGoal {
                goal_id: "logins".into(),
                kind: Some("increment".into()),
                stat_code: Some("login".into()),
                target: Some(2),
                ..Default::default()
            }],
            events: vec![
                pb::SampleEvent { kind: "login".into(), ..Default::default() },
                pb::SampleEvent { kind: "login".into(), ..Default::default() },
            ],
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(dry.error.is_none(), "{dry:?}");
    let result = &dry.results[0];
    assert_eq!((result.changed, result.state.as_ref().unwrap().status.as_str()), (true, "completed"));

    let activation = client
        .activate_version(authorized(pb::PluginVersionRef { name: "builtin-rules".into(), version: "1.0.1".into() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((activation.active_version.as_str(), activation.previous_version.as_str()), ("1.0.1", "1.0.0"));
    let listed = client.list_plugins(authorized(pb::ListPluginsRequest::default())).await.unwrap().into_inner();
    assert_eq!(listed.plugins[0].serving_version, "1.0.1");
    assert_eq!(listed.applied_revision, listed.registry_revision);

    let limits = client
        .set_limits(authorized(pb::SetLimitsRequest {
            name: "builtin-rules".into(),
            limits: Some(pb::LimitsPatch { max_memory_bytes: Some(32 << 20), ..Default::default() }),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(limits.versions_updated, 2);
    assert_eq!(server.state().rules.resolve("builtin-rules", None).unwrap().limits().max_memory_bytes, 32 << 20);

    let metrics =
        client.get_metrics(authorized(pb::PluginRef { name: "builtin-rules".into() })).await.unwrap().into_inner();
    assert_eq!(metrics.active_version, "1.0.1");

    let back = client.rollback(authorized(pb::PluginRef { name: "builtin-rules".into() })).await.unwrap().into_inner();
    assert_eq!(back.active_version, "1.0.0");
    client
        .delete_version(authorized(pb::PluginVersionRef { name: "builtin-rules".into(), version: "1.0.1".into() }))
        .await
        .unwrap();
    let missing = client
        .get_plugin_version(authorized(pb::PluginVersionRef { name: "builtin-rules".into(), version: "1.0.1".into() }))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let reloaded = client.reload_config(authorized(pb::ReloadConfigRequest {})).await.unwrap().into_inner();
    assert_eq!(reloaded.version, server.state().config().catalog.version());
}

#[tokio::test]
async fn the_registry_works_on_embedded_sqlite_too() {
    let dir = tempfile::tempdir().unwrap();
    let options =
        || TestOptions { backend: Backend::Sqlite, data_dir: Some(dir.path().to_owned()), ..TestOptions::default() };
    let mut server = TestServer::start(options()).await;
    let admin = Admin::new(&server.http);
    assert_eq!(admin.upload(guest("streak"), "").await.0, 201);
    assert_eq!(admin.activate("streak", "1.0.0").await.0, 200);
    assert_eq!(admin.upload(builtin_release("1.0.1"), "").await.0, 201);
    assert_eq!(admin.activate("builtin-rules", "1.0.1").await.0, 200);
    server.stop().await;

    let restarted = TestServer::start(options()).await;
    let rules = &restarted.state().rules;
    assert_eq!(rules.resolve("streak", None).unwrap().version(), "1.0.0");
    assert_eq!(rules.resolve("builtin-rules", None).unwrap().version(), "1.0.1");
    let admin = Admin::new(&restarted.http);
    assert_eq!(admin.rollback("builtin-rules").await.0, 200);
    assert_eq!(rules.resolve("builtin-rules", None).unwrap().version(), "1.0.0");
    tokio::time::sleep(Duration::from_millis(10)).await;
}
