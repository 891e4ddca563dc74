//! Plugin lifecycle benchmark (ignored by default; numbers in loadtest/results/plugin-lifecycle.md):
//!
//! ```sh
//! cargo test --release -p challenge-host --test plugin_bench -- --ignored --nocapture --test-threads 1
//! ```
//!
//! 1. Upload-to-active time of a built-in rules release, compilation included (a fresh compile cache each time).
//! 2. Event throughput in 100 ms windows while the built-in rules are swapped back and forth under load.

mod common;
mod plugin_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use challenge_proto::challenge::events::v1 as batch;
use common::*;
use plugin_support::*;

type BatchClient = batch::event_ingestion_service_client::EventIngestionServiceClient<tonic::transport::Channel>;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run in release, see the module docs"]
async fn upload_to_active_time_of_the_builtin_rules() {
    let server = TestServer::start(TestOptions::default()).await;
    let admin = Admin::new(&server.http);
    let mut uploads = Vec::new();
    let mut activations = Vec::new();
    for release in 1..=5 {
        let version = format!("1.0.{release}");
        let component = builtin_release(&version);
        let started = Instant::now();
        let (status, body) = admin.upload(component, "").await;
        assert_eq!(status, 201, "{body}");
        let uploaded = started.elapsed();
        let (status, body) = admin.activate("builtin-rules", &version).await;
        assert_eq!(status, 200, "{body}");
        let total = started.elapsed();
        println!(
            "builtin-rules {version}: upload (compile, checks, store) {:.1} ms, activate {:.1} ms, upload-to-active {:.1} ms",
            uploaded.as_secs_f64() * 1e3,
            (total - uploaded).as_secs_f64() * 1e3,
            total.as_secs_f64() * 1e3
        );
        uploads.push(uploaded.as_secs_f64() * 1e3);
        activations.push((total - uploaded).as_secs_f64() * 1e3);
    }
    println!(
        "median: upload {:.1} ms, activate {:.1} ms ({} bytes component)",
        median(&mut uploads),
        median(&mut activations),
        challenge_plugin_runtime::BUILTIN_RULES_WASM.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run in release, see the module docs"]
async fn throughput_during_hot_swaps() {
    const PRODUCERS: usize = 8;
    const USERS_PER_PRODUCER: usize = 25;
    const BATCH: usize = 50;
    const WINDOW: Duration = Duration::from_millis(100);
    const RUN: Duration = Duration::from_secs(12);
    let swaps_at = [4.0, 6.0, 8.0, 10.0];

    let server = TestServer::start(TestOptions::default()).await;
    let state = server.state().clone();
    let admin = Admin::new(&server.http);
    assert_eq!(admin.upload(builtin_release("1.0.1"), "").await.0, 201);
    let mut users = Vec::new();
    for producer in 0..PRODUCERS {
        for user in 0..USERS_PER_PRODUCER {
            let id = format!("bench-{producer}-{user}");
            assign(&state, &id, &["kills-100", "kill-10", "wins-3"], NAMESPACE).await;
            users.push(id);
        }
    }

    let windows: Arc<Vec<AtomicU64>> =
        Arc::new((0..(RUN.as_millis() / WINDOW.as_millis()) as usize + 10).map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut producers = Vec::new();
    for producer in 0..PRODUCERS {
        let mut client = BatchClient::new(server.grpc_channel().await);
        let (stop, windows) = (stop.clone(), windows.clone());
        producers.push(tokio::spawn(async move {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let user = format!("bench-{producer}-{}", sent as usize / BATCH % USERS_PER_PRODUCER);
                let events = (0..BATCH)
                    .map(|i| {
                        let n = sent + i as u64;
                        stat_event(&format!("{producer}-{n}"), &user, "kills", n as f64, NAMESPACE)
                    })
                    .collect();
                let response = client.submit_events(batch::SubmitEventsRequest { events }).await.unwrap().into_inner();
                let window = (start.elapsed().as_millis() / WINDOW.as_millis()) as usize;
                windows[window.min(windows.len() - 1)].fetch_add(u64::from(response.accepted), Ordering::Relaxed);
                sent += BATCH as u64;
            }
        }));
    }

    let mut swap_times = Vec::new();
    for (index, at) in swaps_at.iter().enumerate() {
        tokio::time::sleep_until(tokio::time::Instant::from_std(start + Duration::from_secs_f64(*at))).await;
        let issued = start.elapsed();
        let (status, body) = if index == 0 {
            admin.activate("builtin-rules", "1.0.1").await
        } else {
            admin.rollback("builtin-rules").await
        };
        assert_eq!(status, 200, "{body}");
        swap_times.push((issued, start.elapsed() - issued, body["activeVersion"].as_str().unwrap_or("?").to_owned()));
    }
    tokio::time::sleep_until(tokio::time::Instant::from_std(start + RUN)).await;
    stop.store(true, Ordering::Relaxed);
    for producer in producers {
        producer.await.unwrap();
    }

    let rates: Vec<f64> = windows.iter().map(|w| w.load(Ordering::Relaxed) as f64 / WINDOW.as_secs_f64()).collect();
    let last = (RUN.as_millis() / WINDOW.as_millis()) as usize;
    let near_swap = |window: usize| {
        let at = window as f64 * WINDOW.as_secs_f64();
        swap_times.iter().any(|(issued, _, _)| (at - issued.as_secs_f64()).abs() < 0.5)
    };
    // Steady state: after a 1 s warm-up, away from every swap.
    let mut steady: Vec<f64> = (10..last).filter(|w| !near_swap(*w)).map(|w| rates[w]).collect();
    let baseline = median(&mut steady);
    println!("steady throughput (median of 100 ms windows away from swaps): {baseline:.0} events/s");
    for (issued, took, version) in &swap_times {
        let first = (issued.as_secs_f64() / WINDOW.as_secs_f64()) as usize;
        let around: Vec<String> =
            (first.saturating_sub(3)..=(first + 4).min(last)).map(|w| format!("{:.0}", rates[w])).collect();
        let lowest = (first.saturating_sub(1)..=(first + 3).min(last)).map(|w| rates[w]).fold(f64::INFINITY, f64::min);
        println!(
            "swap to {version} at {:.2} s (call took {:.1} ms): windows around it [{}] events/s, lowest {:.0} ({:+.1}% vs steady)",
            issued.as_secs_f64(),
            took.as_secs_f64() * 1e3,
            around.join(", "),
            lowest,
            (lowest / baseline - 1.0) * 100.0
        );
    }
    let total: u64 = windows.iter().map(|w| w.load(Ordering::Relaxed)).sum();
    let stored: i64 = event_counts(&state, &users, "kills").await.values().sum();
    assert_eq!(stored, total as i64, "every acknowledged event stored once");
    println!("{total} events acknowledged in {:.1} s, all stored", RUN.as_secs_f64());
}
