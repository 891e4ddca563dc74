//! Containment: hostile guests fail only their own call, with the right error, and everything keeps serving.
//! Also the import check, limits, the instance pool and the compile cache.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::thread;

use challenge_plugin_runtime::*;
use common::*;

fn user(name: &str) -> EvaluationRequest {
    EvaluationRequest {
        user_id: name.into(),
        events: vec![login("login", 1, T0)],
        goals: vec![fresh(spec("x", "login", 1))],
    }
}

/// The builtin plugin still answers correctly.
fn assert_builtin_serves() {
    let updates =
        BUILTIN.evaluate(&request(vec![login("login", 5, T0)], vec![fresh(spec("increment", "login", 1))])).unwrap();
    assert_eq!((updates[0].progress, updates[0].status), (1, GoalStatus::Completed));
}

#[test]
fn infinite_loops_run_out_of_fuel() {
    let plugin = load("spin-forever", PluginLimits { fuel_per_call: 5_000_000, ..PluginLimits::default() }).unwrap();
    assert_eq!(plugin.evaluate(&user("evil")), Err(PluginError::OutOfFuel));
    assert_eq!(plugin.evaluate(&user("good")), Ok(vec![]), "the next good call works");
    assert_eq!(plugin.evaluate(&user("evil")), Err(PluginError::OutOfFuel));
    assert_builtin_serves();
}

#[test]
fn memory_bombs_hit_the_memory_limit() {
    let plugin = load("memory-bomb", PluginLimits::default()).unwrap();
    match plugin.evaluate(&user("evil")) {
        Err(PluginError::OutOfMemory(detail)) => assert!(detail.contains("limit 16777216"), "{detail}"),
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
    assert_eq!(plugin.pool_stats(), PoolStats { live: 0, idle: 0 }, "the exhausted instance was discarded");
    assert_eq!(plugin.evaluate(&user("good")), Ok(vec![]));
    assert_eq!(plugin.pool_stats(), PoolStats { live: 1, idle: 1 });

    // A tighter limit applies to new instances straight away.
    plugin.set_limits(PluginLimits { max_memory_bytes: 4 << 20, ..PluginLimits::default() });
    assert!(matches!(plugin.evaluate(&user("evil")), Err(PluginError::OutOfMemory(d)) if d.contains("limit 4194304")));
    assert_builtin_serves();
}

#[test]
fn traps_and_guest_errors_fail_only_that_call() {
    let plugin = load("trap", PluginLimits::default()).unwrap();
    assert!(matches!(plugin.evaluate(&user("trap")), Err(PluginError::Trap(d)) if d.contains("unreachable")));
    assert_eq!(plugin.evaluate(&user("good")), Ok(vec![]));
    assert_eq!(plugin.evaluate(&user("reject")), Err(PluginError::Rejected("deliberately rejected".into())));
    assert_eq!(plugin.evaluate(&user("good")), Ok(vec![]));
    assert_eq!(
        plugin.validate_params(&with_params(spec("trap", "s", 1), "bad")),
        Err(PluginError::Rejected("params are bad".into()))
    );
    assert_builtin_serves();
}

#[test]
fn huge_outputs_are_refused() {
    // Building 100,000 updates is real work for the guest: give it the CPU so the output checks are what stop it.
    let generous = PluginLimits { fuel_per_call: 1_000_000_000, ..PluginLimits::default() };
    let plugin = load("huge-output", generous.clone()).unwrap();
    let many = plugin.evaluate(&user("many"));
    assert!(matches!(&many, Err(PluginError::BadOutput(_))), "{many:?}");
    match plugin.evaluate(&user("big-state")) {
        Err(PluginError::BadOutput(detail)) => assert!(detail.contains("1048576 bytes, limit 4096"), "{detail}"),
        other => panic!("expected BadOutput, got {other:?}"),
    }
    // Raising the operator limits lets the same answers through.
    plugin.set_limits(PluginLimits { max_state_bytes: 2 << 20, ..generous.clone() });
    assert_eq!(plugin.evaluate(&user("big-state")).unwrap()[0].state.as_ref().map(Vec::len), Some(1 << 20));
    plugin.set_limits(PluginLimits { max_output_updates: 200_000, ..generous });
    assert!(
        matches!(plugin.evaluate(&user("many")), Err(PluginError::BadOutput(d)) if d.contains("updated twice")),
        "100,000 updates of one goal get through the size limits but not the duplicate check"
    );
    assert_builtin_serves();
}

#[test]
fn malformed_outputs_are_refused() {
    let plugin = load("bad-output", PluginLimits::default()).unwrap();
    for (who, expected) in [
        ("index", "out of range"),
        ("duplicate", "updated twice"),
        ("claimed", "only the host claims"),
        ("no-time", "without completed-at-ms"),
        // Answers that are not valid packed updates at all.
        ("truncated", "truncated"),
        ("bad-status", "status code 9 is out of range"),
        ("bad-span", "state span out of range"),
        ("bad-flags", "invalid flag byte 0x84"),
    ] {
        match plugin.evaluate(&user(who)) {
            Err(PluginError::BadOutput(detail)) => assert!(detail.contains(expected), "{who}: {detail}"),
            other => panic!("{who}: expected BadOutput, got {other:?}"),
        }
    }
    let mut claimed = user("touch-claimed");
    claimed.goals[0].state.status = GoalStatus::Claimed;
    assert!(matches!(plugin.evaluate(&claimed), Err(PluginError::BadOutput(d)) if d.contains("claimed goal")));

    // Negative progress is clamped rather than refused.
    assert_eq!(plugin.evaluate(&user("negative")).unwrap()[0].progress, 0);
    assert_builtin_serves();
}

#[test]
fn oversized_requests_are_not_sent() {
    let plugin =
        RUNTIME.load(BUILTIN_RULES_WASM, PluginLimits { max_input_bytes: 4096, ..PluginLimits::default() }).unwrap();
    let big = request(vec![], vec![fresh(with_params(spec("absolute", "kills", 1), &" ".repeat(5000)))]);
    assert!(request_size(&big) > 4096);
    assert!(matches!(plugin.evaluate(&big), Err(PluginError::InputTooLarge { limit: 4096, .. })));
    assert_eq!(plugin.pool_stats().live, 1, "the refused request did not cost an instance");
}

#[test]
fn fuel_limits_change_at_runtime() {
    let plugin = RUNTIME.load(BUILTIN_RULES_WASM, PluginLimits::default()).unwrap();
    let req = request(vec![stat("kills", 3.0, 3.0, 1, T0)], vec![fresh(spec("absolute", "kills", 10))]);
    plugin.set_limits(PluginLimits { fuel_per_call: 50, ..PluginLimits::default() });
    assert_eq!(plugin.limits().fuel_per_call, 50);
    assert_eq!(plugin.evaluate(&req), Err(PluginError::OutOfFuel));
    plugin.set_limits(PluginLimits::default());
    assert_eq!(plugin.evaluate(&req).unwrap()[0].progress, 3);
}

#[test]
fn failures_in_one_plugin_do_not_disturb_calls_elsewhere() {
    let spin = load("spin-forever", PluginLimits { fuel_per_call: 2_000_000, ..PluginLimits::default() }).unwrap();
    let bomb = load("memory-bomb", PluginLimits::default()).unwrap();
    let good = request(vec![stat("kills", 12.0, 12.0, 1, T0)], vec![fresh(spec("absolute", "kills", 10))]);
    let expected = BUILTIN.evaluate(&good).unwrap();
    thread::scope(|s| {
        for i in 0..4 {
            let (spin, bomb, good, expected) = (&spin, &bomb, &good, &expected);
            s.spawn(move || {
                for _ in 0..10 {
                    match i {
                        0 => assert_eq!(spin.evaluate(&user("evil")), Err(PluginError::OutOfFuel)),
                        1 => assert!(matches!(bomb.evaluate(&user("evil")), Err(PluginError::OutOfMemory(_)))),
                        _ => assert_eq!(&BUILTIN.evaluate(good).unwrap(), expected),
                    }
                }
            });
        }
    });
    let stats = BUILTIN.pool_stats();
    assert!(stats.live <= PluginLimits::default().max_instances && stats.live == stats.idle, "{stats:?}");
}

#[test]
fn calls_beyond_max_instances_wait_for_a_free_instance() {
    let plugin =
        RUNTIME.load(BUILTIN_RULES_WASM, PluginLimits { max_instances: 1, ..PluginLimits::default() }).unwrap();
    let req = request(vec![login("login", 1, T0)], vec![fresh(spec("increment", "login", 1))]);
    thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..20 {
                    assert_eq!(plugin.evaluate(&req).unwrap().len(), 1);
                }
            });
        }
    });
    assert_eq!(plugin.pool_stats(), PoolStats { live: 1, idle: 1 });
}

#[test]
fn built_guests_import_only_the_log_interface() {
    for name in
        ["builtin-rules", "streak", "composite", "spin-forever", "memory-bomb", "trap", "huge-output", "bad-output"]
    {
        let imports = RUNTIME.inspect_imports(&artifact(name)).unwrap();
        assert!(imports.iter().all(|i| ALLOWED_IMPORTS.contains(&i.as_str())), "{name} imports {imports:?}");
    }
    assert_eq!(RUNTIME.inspect_imports(&artifact("trap")).unwrap(), ["challenge:rules/log@0.2.0"]);
}

#[test]
fn components_importing_anything_else_are_refused() {
    let wasi = artifact("wasi-importer");
    assert!(RUNTIME.inspect_imports(&wasi).unwrap().iter().any(|i| i.starts_with("wasi:")));
    match RUNTIME.load(&wasi, PluginLimits::default()) {
        Err(PluginError::InvalidComponent(detail)) => {
            assert!(
                detail.contains("wasi:") && detail.contains("may import only challenge:rules/log@0.2.0"),
                "{detail}"
            )
        }
        Err(other) => panic!("expected InvalidComponent, got {other:?}"),
        Ok(_) => panic!("a WASI-importing component was accepted"),
    }
}

#[test]
fn non_components_are_refused() {
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let truncated = BUILTIN_RULES_WASM[..BUILTIN_RULES_WASM.len() / 2].to_vec();
    for (what, bytes) in
        [("core module", core_module), ("text", b"hello".to_vec()), ("truncated", truncated), ("empty", vec![])]
    {
        assert!(
            matches!(RUNTIME.load(&bytes, PluginLimits::default()), Err(PluginError::InvalidComponent(_))),
            "{what} accepted"
        );
    }
}

#[test]
fn guest_logs_are_tagged_capped_and_rate_limited() {
    let plugin = load("trap", PluginLimits::default()).unwrap();
    let buffer = Arc::new(Mutex::new(Vec::<u8>::new()));
    let writer = buffer.clone();
    let subscriber =
        tracing_subscriber::fmt().with_writer(move || SharedWriter(writer.clone())).with_ansi(false).finish();
    tracing::subscriber::with_default(subscriber, || {
        assert_eq!(plugin.evaluate(&user("chatty")), Ok(vec![]));
    });
    let logs = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = logs.lines().filter(|l| l.contains("xxxx")).collect();
    assert_eq!(lines.len(), 16, "at most 16 lines per call");
    assert!(lines.iter().all(|l| l.contains("plugin=trap") && l.matches('x').count() <= 520), "{}", lines[0]);
    assert!(logs.contains("dropped=84"), "{logs}");
}

struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn compiled_components_are_cached_and_corrupt_cache_files_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let runtime =
        PluginRuntime::new(RuntimeOptions { cache_dir: Some(dir.path().into()), ..RuntimeOptions::default() }).unwrap();
    let first = runtime.load(BUILTIN_RULES_WASM, PluginLimits::default()).unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1);
    assert!(files[0].file_name().unwrap().to_string_lossy().starts_with(&first.sha256_hex()));

    let req = request(vec![stat("kills", 12.0, 12.0, 1, T0)], vec![fresh(spec("absolute", "kills", 10))]);
    let cached = runtime.load(BUILTIN_RULES_WASM, PluginLimits::default()).unwrap();
    assert_eq!(cached.evaluate(&req).unwrap(), first.evaluate(&req).unwrap());

    // Flip a byte in the middle of the artifact: the loader notices, recompiles and rewrites the file.
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&files[0], &bytes).unwrap();
    let recompiled = runtime.load(BUILTIN_RULES_WASM, PluginLimits::default()).unwrap();
    assert_eq!(recompiled.evaluate(&req).unwrap(), first.evaluate(&req).unwrap());
    assert_ne!(std::fs::read(&files[0]).unwrap(), bytes, "the corrupt file was replaced");

    // A truncated file is ignored too.
    std::fs::write(&files[0], &bytes[..10]).unwrap();
    assert!(runtime.load(BUILTIN_RULES_WASM, PluginLimits::default()).is_ok());
}
