//! Hot swap under continuous event load: the built-in rules are swapped between two releases (and their limits
//! changed) while producers keep sending; every acknowledged event is counted exactly once and every plugin call
//! belongs to exactly one committed flush. Alone in its test binary, so the process-wide metrics are its own.

mod common;
mod plugin_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use challenge_host::admin::metrics::plugin_metrics;
use challenge_proto::challenge::events::v1 as batch;
use common::*;
use plugin_support::*;
use serde_json::json;

type BatchClient = batch::event_ingestion_service_client::EventIngestionServiceClient<tonic::transport::Channel>;

const USERS: usize = 24;
const PRODUCERS: usize = 4;
const BATCH: usize = 10;
const SWAPS: usize = 12;

/// The value of an unlabelled counter in a Prometheus exposition.
fn counter(exposition: &str, name: &str) -> u64 {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swapping_the_builtin_rules_under_load_loses_and_doubles_no_event() {
    let server = TestServer::start(TestOptions::default()).await;
    let state = server.state().clone();
    let admin = Admin::new(&server.http);
    // The second release is validated on upload with one smoke evaluation; the limits change below makes one more.
    let (status, body) = admin.upload(builtin_release("1.0.1"), "?fuelPerCall=5000000").await;
    assert_eq!(status, 201, "{body}");
    let smoke_calls = 2;

    let users: Vec<String> = (0..USERS).map(|i| format!("swap-user-{i}")).collect();
    for user in &users {
        assign(&state, user, &["kills-100", "kill-10"]).await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut producers = Vec::new();
    for producer in 0..PRODUCERS {
        let mine: Vec<String> = users.iter().skip(producer).step_by(PRODUCERS).cloned().collect();
        let mut client = BatchClient::new(server.grpc_channel().await);
        let stop = stop.clone();
        producers.push(tokio::spawn(async move {
            let mut acknowledged: HashMap<String, i64> = HashMap::new();
            let mut failures = 0;
            let mut sequence = 0;
            while !stop.load(Ordering::Relaxed) {
                let user = &mine[sequence % mine.len()];
                let sent = acknowledged.get(user).copied().unwrap_or(0);
                let events = (0..BATCH)
                    .map(|i| {
                        let id = format!("{user}-{}", sent + i as i64);
                        stat_event(&id, user, "kills", (sent + i as i64 + 1) as f64, NAMESPACE)
                    })
                    .collect();
                match client.submit_events(batch::SubmitEventsRequest { events }).await {
                    Ok(response) => {
                        let response = response.into_inner();
                        assert!(response.rejected.is_empty(), "{response:?}");
                        assert_eq!(response.duplicates, 0);
                        *acknowledged.entry(user.clone()).or_default() += i64::from(response.accepted);
                    }
                    Err(status) => {
                        eprintln!("submit failed: {status}");
                        failures += 1;
                    }
                }
                sequence += 1;
            }
            (acknowledged, failures)
        }));
    }

    // Swap back and forth while the producers run; change limits halfway (which replaces warm instances).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut serving = Vec::new();
    for swap in 0..SWAPS {
        let (status, body) = if swap == 0 {
            admin.activate("builtin-rules", "1.0.1").await
        } else {
            admin.rollback("builtin-rules").await
        };
        assert_eq!(status, 200, "{body}");
        serving.push(state.rules.resolve("builtin-rules", None).unwrap().version().to_owned());
        if swap == SWAPS / 2 {
            let (status, body) =
                admin.put("/admin/v1/plugins/builtin-rules/limits", json!({"fuelPerCall": 4_000_000})).await;
            assert_eq!(status, 200, "{body}");
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    stop.store(true, Ordering::Relaxed);

    let mut acknowledged: HashMap<String, i64> = HashMap::new();
    let mut failures = 0;
    for producer in producers {
        let (counts, failed) = producer.await.unwrap();
        acknowledged.extend(counts);
        failures += failed;
    }
    assert_eq!(failures, 0, "no call failed during the swaps");
    let total: i64 = acknowledged.values().sum();
    assert!(total >= 1_000, "enough load to matter: {total} events");
    assert!(serving.iter().any(|v| v == "1.0.0") && serving.iter().any(|v| v == "1.0.1"), "{serving:?}");

    // The database against the producers' acknowledgements: every event counted exactly once.
    let stored = event_counts(&state, &users, "kills").await;
    for user in &users {
        assert_eq!(stored[user], acknowledged.get(user).copied().unwrap_or(0), "events of {user}");
    }
    assert!(state.store.parked_evaluations(100).await.unwrap().is_empty(), "no evaluation failed or was skipped");

    // Both releases evaluated events, and every plugin call belongs to one committed flush (none re-run).
    let exposition = state.metrics.render();
    let versions = plugin_metrics(&exposition, "builtin-rules");
    let (old, new) = (versions["1.0.0"].calls, versions["1.0.1"].calls);
    assert!(old > 0 && new > 0, "both versions served: {old} / {new}");
    let pipeline_calls = counter(&exposition, "pipeline_plugin_calls_total");
    assert_eq!(old + new, pipeline_calls + smoke_calls, "plugin calls = pipeline calls + the smoke calls");
    println!("{total} events over {SWAPS} swaps; calls: 1.0.0 = {old}, 1.0.1 = {new}");
}
