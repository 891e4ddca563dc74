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

/// Events acknowledged per 100 ms window over `RUN` under closed-loop load, swapping the built-in rules at
/// `swaps_at` seconds (none for the control run). Returns the rates, per swap (issued at, call time, version), and
/// the number of events acknowledged.
async fn measure(server: &TestServer, users: &[String], swaps_at: &[f64]) -> (Vec<f64>, Vec<(f64, f64, String)>, u64) {
    let windows: Arc<Vec<AtomicU64>> = Arc::new((0..WINDOWS + 10).map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut producers = Vec::new();
    for (producer, mine) in users.chunks(users.len() / PRODUCERS).enumerate() {
        let mut client = BatchClient::new(server.grpc_channel().await);
        let (stop, windows, mine) = (stop.clone(), windows.clone(), mine.to_vec());
        let run = uuid::Uuid::new_v4().simple().to_string();
        producers.push(tokio::spawn(async move {
            let mut sent = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let user = &mine[sent / BATCH % mine.len()];
                let events = (0..BATCH)
                    .map(|i| {
                        stat_event(
                            &format!("{run}-{producer}-{}", sent + i),
                            user,
                            "kills",
                            (sent + i) as f64,
                            NAMESPACE,
                        )
                    })
                    .collect();
                let response = client.submit_events(batch::SubmitEventsRequest { events }).await.unwrap().into_inner();
                let window = (start.elapsed().as_millis() / WINDOW.as_millis()) as usize;
                windows[window.min(windows.len() - 1)].fetch_add(u64::from(response.accepted), Ordering::Relaxed);
                sent += BATCH;
            }
        }));
    }
    let admin = Admin::new(&server.http);
    let mut swaps = Vec::new();
    for at in swaps_at {
        tokio::time::sleep_until(tokio::time::Instant::from_std(start + Duration::from_secs_f64(*at))).await;
        let issued = start.elapsed().as_secs_f64();
        let to_new = server.state().rules.resolve("builtin-rules", None).is_some_and(|p| p.version() == "1.0.0");
        let (status, body) =
            if to_new { admin.activate("builtin-rules", "1.0.1").await } else { admin.rollback("builtin-rules").await };
        assert_eq!(status, 200, "{body}");
        let took = start.elapsed().as_secs_f64() - issued;
        swaps.push((issued, took, body["activeVersion"].as_str().unwrap_or("?").to_owned()));
    }
    tokio::time::sleep_until(tokio::time::Instant::from_std(start + WINDOW * WINDOWS as u32)).await;
    stop.store(true, Ordering::Relaxed);
    for producer in producers {
        producer.await.unwrap();
    }
    let rates = windows.iter().take(WINDOWS).map(|w| w.load(Ordering::Relaxed) as f64 / WINDOW.as_secs_f64()).collect();
    (rates, swaps, windows.iter().map(|w| w.load(Ordering::Relaxed)).sum())
}

const PRODUCERS: usize = 8;
const BATCH: usize = 50;
const WINDOW: Duration = Duration::from_millis(100);
/// 12 s per run.
const WINDOWS: usize = 120;

fn percentile(rates: &[f64], q: f64) -> f64 {
    let mut sorted = rates.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * q) as usize]
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run in release, see the module docs"]
async fn throughput_during_hot_swaps() {
    let server = TestServer::start(TestOptions::default()).await;
    let state = server.state().clone();
    let admin = Admin::new(&server.http);
    assert_eq!(admin.upload(builtin_release("1.0.1"), "").await.0, 201);
    let users: Vec<String> = (0..200).map(|i| format!("bench-{i}")).collect();
    for user in &users {
        assign(&state, user, &["kills-100", "kill-10", "wins-3"]).await;
    }
    println!("load average before: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());

    // The same load without and with swaps (a swap every second from 3 s to 10 s), to tell swaps from noise.
    let swaps_at: Vec<f64> = (3..=10).map(f64::from).collect();
    let (control, _, control_total) = measure(&server, &users, &[]).await;
    let (swapping, swaps, swapping_total) = measure(&server, &users, &swaps_at).await;
    let steady = |rates: &[f64]| rates[10..].to_vec();
    let (control, swapping) = (steady(&control), steady(&swapping));
    for (name, rates) in [("without swaps", &control), ("with 8 swaps", &swapping)] {
        println!(
            "{name}: mean {:.0} events/s; 100 ms windows: median {:.0}, p10 {:.0}, min {:.0}",
            rates.iter().sum::<f64>() / rates.len() as f64,
            percentile(rates, 0.5),
            percentile(rates, 0.1),
            percentile(rates, 0.0)
        );
    }
    let mut after_swap = Vec::new();
    for (issued, took, version) in &swaps {
        // Windows are counted from 1 s (index 10) on; the one holding the swap and the next two.
        let first = (issued / WINDOW.as_secs_f64()) as usize - 10;
        let before: f64 = swapping[first - 5..first].iter().sum::<f64>() / 5.0;
        let next: Vec<f64> = swapping[first..first + 3].to_vec();
        after_swap.extend(next.iter().copied());
        println!(
            "swap to {version} at {issued:.2} s (call {:.1} ms): 500 ms before {before:.0}/s, next 3 windows {:?}",
            took * 1e3,
            next.iter().map(|r| *r as u64).collect::<Vec<_>>()
        );
    }
    let mean_after = after_swap.iter().sum::<f64>() / after_swap.len() as f64;
    let mean_control = control.iter().sum::<f64>() / control.len() as f64;
    println!(
        "the 300 ms after each swap: mean {mean_after:.0} events/s ({:+.1}% vs the run without swaps), min {:.0}",
        (mean_after / mean_control - 1.0) * 100.0,
        percentile(&after_swap, 0.0)
    );
    println!("load average after: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    let stored: i64 = event_counts(&state, &users, "kills").await.values().sum();
    assert_eq!(stored as u64, control_total + swapping_total, "every acknowledged event stored once");
    println!("{} events acknowledged and stored", control_total + swapping_total);
}
