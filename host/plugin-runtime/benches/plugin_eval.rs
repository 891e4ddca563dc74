//! Built-in rules through the Wasm plugin versus the same rules (`challenge-rules-logic`) compiled natively.
//!
//! `cargo bench -p challenge-plugin-runtime --bench plugin_eval`
//!
//! Every goal listens to the events' stat code, so a request with E events and G goals is E x G (event, goal) pairs.
//! Both sides take the host's `EvaluationRequest` and produce `Vec<GoalUpdate>`; the plugin side is the full
//! `LoadedPlugin::evaluate` path (pool, fuel, packing the request, the component call, the guest's decoding, rules and
//! encoding, unpacking and checking the updates, metrics). After Criterion's own report, a summary table of per-pair
//! cost is printed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use challenge_plugin_runtime::*;
use challenge_rules_logic as logic;
use criterion::{BenchmarkId, Criterion};

const DAY: i64 = 86_400_000;
const T0: i64 = 1_735_689_600_000;
const EVENTS: [usize; 3] = [1, 10, 100];
const GOALS: [usize; 3] = [1, 10, 50];

/// A mix of every built-in rule, all on stat code "kills".
fn request(events: usize, goals: usize) -> EvaluationRequest {
    let goals = (0..goals)
        .map(|i| {
            let (kind, mode, daily) = match i % 5 {
                0 => ("absolute", ProgressMode::Absolute, false),
                1 => ("absolute", ProgressMode::Relative, false),
                2 => ("increment", ProgressMode::Absolute, false),
                3 => ("increment", ProgressMode::Absolute, true),
                _ => ("daily", ProgressMode::Absolute, false),
            };
            GoalInput {
                spec: GoalSpec {
                    goal_id: format!("goal-{i:03}"),
                    kind: kind.into(),
                    stat_code: "kills".into(),
                    target: 1_000_000,
                    progress_mode: mode,
                    daily,
                    params: "{}".into(),
                }
                .into(),
                state: GoalState {
                    progress: 0,
                    status: GoalStatus::NotStarted,
                    completed_at_ms: None,
                    baseline: None,
                    state: None,
                },
            }
        })
        .collect();
    let events = (0..events)
        .map(|i| {
            let n = i as i64 + 1;
            Event {
                id: format!("event-{i:05}"),
                kind: EventKind::Statistic,
                stat_code: "kills".into(),
                value: (n * 3) as f64,
                increment: 3.0,
                sequence: n,
                timestamp_ms: T0 + n * DAY / 4,
            }
        })
        .collect();
    EvaluationRequest { user_id: "bench-user".into(), events, goals }
}

/// The native side: the same mapping the builtin plugin does, onto the same rules code. (The enums are shared: the
/// host's are those of `challenge-plugin-wire`, which `challenge-rules-logic` uses too.)
fn native_evaluate(request: &EvaluationRequest) -> Vec<GoalUpdate> {
    let events: Vec<logic::Event<'_>> = request
        .events
        .iter()
        .map(|e| logic::Event {
            id: &e.id,
            kind: e.kind,
            stat_code: &e.stat_code,
            value: e.value,
            increment: e.increment,
            sequence: e.sequence,
            timestamp_ms: e.timestamp_ms,
        })
        .collect();
    let goals: Vec<logic::Goal<'_>> = request
        .goals
        .iter()
        .map(|g| logic::Goal {
            stat_code: &g.spec.stat_code,
            target: g.spec.target,
            rule: logic::Rule::from_spec(&g.spec.kind, g.spec.progress_mode, g.spec.daily)
                .expect("bench goals are valid"),
            state: logic::GoalState {
                progress: g.state.progress,
                status: g.state.status,
                completed_at_ms: g.state.completed_at_ms,
                baseline: g.state.baseline,
                last_counted_day: logic::decode_day_state(g.state.state.as_deref()),
            },
        })
        .collect();
    let mut updates = Vec::with_capacity(goals.len());
    logic::evaluate(&goals, &events, &mut updates);
    updates
        .into_iter()
        .map(|u| GoalUpdate {
            goal_index: u.goal_index,
            progress: u.state.progress,
            status: u.state.status,
            completed_at_ms: u.state.completed_at_ms,
            baseline: u.state.baseline,
            state: u.state.last_counted_day.map(|d| logic::encode_day_state(d).to_vec()),
            source: u.source,
        })
        .collect()
}

/// Mean time of one call, best of several rounds of about 100 ms each.
fn time_per_call(mut f: impl FnMut()) -> Duration {
    let mut iterations = 1u32;
    loop {
        let start = Instant::now();
        for _ in 0..iterations {
            f();
        }
        if start.elapsed() > Duration::from_millis(100) {
            break;
        }
        iterations *= 2;
    }
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                f();
            }
            start.elapsed() / iterations
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    let runtime = PluginRuntime::new(RuntimeOptions::default()).expect("runtime");
    let plugin = runtime.load(BUILTIN_RULES_WASM, PluginLimits::default()).expect("builtin rules");

    let mut criterion = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    let mut group = criterion.benchmark_group("evaluate");
    for events in EVENTS {
        for goals in GOALS {
            let req = request(events, goals);
            assert_eq!(plugin.evaluate(&req).expect("plugin evaluates"), native_evaluate(&req), "same answers");
            let id = format!("{events}ev_x_{goals}goals");
            group.bench_with_input(BenchmarkId::new("plugin", &id), &req, |b, r| {
                b.iter(|| plugin.evaluate(black_box(r)).expect("plugin evaluates"))
            });
            group.bench_with_input(BenchmarkId::new("native", &id), &req, |b, r| {
                b.iter(|| native_evaluate(black_box(r)))
            });
        }
    }
    group.finish();
    criterion.final_summary();

    println!("\nper (event, goal) pair, best-of-5 mean:");
    println!("| events | goals | plugin call | native call | plugin ns/pair | native ns/pair | plugin / native |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for events in EVENTS {
        for goals in GOALS {
            let req = request(events, goals);
            let wasm = time_per_call(|| drop(black_box(plugin.evaluate(black_box(&req)))));
            let native = time_per_call(|| drop(black_box(native_evaluate(black_box(&req)))));
            let pairs = (events * goals) as f64;
            let ns = |d: Duration| d.as_nanos() as f64;
            println!(
                "| {events} | {goals} | {:.2} µs | {:.2} µs | {:.1} | {:.1} | {:.1}x |",
                ns(wasm) / 1000.0,
                ns(native) / 1000.0,
                ns(wasm) / pairs,
                ns(native) / pairs,
                ns(wasm) / ns(native)
            );
        }
    }
}
