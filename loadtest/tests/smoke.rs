//! `loadgen smoke` against the real server on PostgreSQL and Redis: every transport at a small rate, zero errors,
//! zero lost events. Correctness, not speed.
//!
//! Needs the debug `host` binary next to this test's `loadgen` (`cargo test --workspace` builds it; alone:
//! `cargo build -p challenge-host`), PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379.

use std::path::{Path, PathBuf};
use std::process::Command;

fn host_binary() -> PathBuf {
    let loadgen = Path::new(env!("CARGO_BIN_EXE_loadgen"));
    let host = loadgen.with_file_name("host");
    assert!(
        host.is_file(),
        "the server binary {} is missing: build it with `cargo build -p challenge-host` (cargo test --workspace \
         builds it too)",
        host.display()
    );
    host
}

#[test]
fn smoke_spawns_the_server_and_loses_nothing() {
    let host = host_binary();
    let results = tempfile::tempdir().expect("temporary results directory");
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("smoke")
        .arg("--host-bin")
        .arg(&host)
        .arg("--results-dir")
        .arg(results.path())
        .output()
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report = std::fs::read_to_string(results.path().join("latest-smoke.md")).unwrap_or_default();
    assert!(
        output.status.success(),
        "loadgen smoke failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- report\n{report}",
        output.status
    );
    assert!(stdout.contains("smoke") && stdout.contains("PASSED"), "{stdout}");
    assert!(report.contains("**Events lost** | **0**"), "{report}");
}
