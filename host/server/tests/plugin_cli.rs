//! `host plugin ...` as designers and operators run it: `test` locally against a cases file, `push`, `list`,
//! `activate` and `rollback` against a running server.

mod common;
mod plugin_support;

use std::path::{Path, PathBuf};

use common::*;
use plugin_support::*;
use tokio::process::Command;

fn streak_cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/streak/cases.json")
}

/// Runs `host plugin <args>`; returns (success, stdout, stderr).
async fn host_plugin(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_host"))
        .arg("plugin")
        .args(args)
        .env_remove("CHALLENGE_ADMIN_TOKEN")
        .env_remove("CHALLENGE_ADMIN_URL")
        .output()
        .await
        .expect("run the host binary");
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    (output.status.success(), text(output.stdout), text(output.stderr))
}

fn path_text(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test]
async fn plugin_test_runs_the_streak_cases_locally() {
    let streak = challenge_plugin_runtime::guest_artifact("streak");
    let (ok, stdout, stderr) = host_plugin(&["test", path_text(&streak), "--cases", path_text(&streak_cases())]).await;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("ok    smoke evaluation"), "{stdout}");
    assert!(stdout.contains("ok    a missed day restarts the streak"), "{stdout}");
    assert!(stdout.contains("5 passed, 0 failed"), "{stdout}");
}

#[tokio::test]
async fn plugin_test_reports_every_failed_expectation() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.json");
    std::fs::write(
        &cases,
        r#"{"cases": [
            {"name": "wrong progress", "goals": [{"goalId": "g", "kind": "login-streak", "statCode": "login", "params": {"days": 2}}],
             "events": [{"kind": "login"}], "expect": {"g": {"progress": 5, "status": "completed"}}},
            {"name": "right", "goals": [{"goalId": "g", "kind": "login-streak", "statCode": "login", "params": {"days": 2}}],
             "events": [{"kind": "login"}], "expect": {"g": {"progress": 1}}}
        ]}"#,
    )
    .unwrap();
    let streak = challenge_plugin_runtime::guest_artifact("streak");
    let (ok, stdout, _) = host_plugin(&["test", path_text(&streak), "--cases", path_text(&cases)]).await;
    assert!(!ok);
    assert!(stdout.contains("FAIL  wrong progress"), "{stdout}");
    assert!(stdout.contains("goal 'g': progress is 1, expected 5"), "{stdout}");
    assert!(stdout.contains("goal 'g': status is InProgress, expected Completed"), "{stdout}");
    assert!(stdout.contains("ok    right"), "{stdout}");
    assert!(stdout.contains("2 passed, 1 failed"), "{stdout}");

    // A component that is not a rules plugin, or cases for another plugin, fail up front.
    let spin = challenge_plugin_runtime::guest_artifact("wasi-importer");
    let (ok, _, stderr) = host_plugin(&["test", path_text(&spin), "--cases", path_text(&streak_cases())]).await;
    assert!(!ok && stderr.contains("may import only"), "{stderr}");
    let trap = challenge_plugin_runtime::guest_artifact("trap");
    let (ok, _, stderr) = host_plugin(&["test", path_text(&trap), "--cases", path_text(&streak_cases())]).await;
    assert!(!ok && stderr.contains("the cases are for plugin 'streak'"), "{stderr}");
}

#[tokio::test]
async fn push_list_activate_and_rollback_talk_to_a_running_server() {
    let server = TestServer::start(TestOptions::default()).await;
    let remote = ["--server", server.http.as_str(), "--admin-token", ADMIN_TOKEN];
    let streak = challenge_plugin_runtime::guest_artifact("streak");
    let with_remote =
        |args: &[&str]| -> Vec<String> { args.iter().chain(remote.iter()).map(|s| s.to_string()).collect() };
    let run = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        host_plugin(&args).await
    };

    let (ok, stdout, stderr) = run(with_remote(&["push", path_text(&streak), "--activate"])).await;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("stored streak@1.0.0"), "{stdout}");
    assert!(stdout.contains("streak@1.0.0 active (previous: none)"), "{stdout}");
    assert_eq!(server.state().rules.resolve("streak", None).unwrap().version(), "1.0.0");

    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("builtin-rules-1.0.1.wasm");
    std::fs::write(&release, builtin_release("1.0.1")).unwrap();
    let (ok, stdout, stderr) = run(with_remote(&["push", path_text(&release), "--fuel-per-call", "2000000"])).await;
    assert!(ok, "{stdout}\n{stderr}");
    let (ok, stdout, _) = run(with_remote(&["list"])).await;
    assert!(ok);
    for expected in ["builtin-rules", "1.0.1", "validated", "streak", "active", "admin-token"] {
        assert!(stdout.contains(expected), "{expected} in {stdout}");
    }

    let (ok, stdout, _) = run(with_remote(&["activate", "builtin-rules", "1.0.1"])).await;
    assert!(ok && stdout.contains("builtin-rules@1.0.1 active (previous: 1.0.0)"), "{stdout}");
    assert_eq!(server.state().rules.resolve("builtin-rules", None).unwrap().version(), "1.0.1");
    let (ok, stdout, _) = run(with_remote(&["rollback", "builtin-rules"])).await;
    assert!(ok && stdout.contains("builtin-rules@1.0.0 active (previous: 1.0.1)"), "{stdout}");

    // Errors carry the server's code and message, and a non-zero exit.
    let importer = challenge_plugin_runtime::guest_artifact("wasi-importer");
    let (ok, _, stderr) = run(with_remote(&["push", path_text(&importer)])).await;
    assert!(!ok && stderr.contains("FORBIDDEN_IMPORTS"), "{stderr}");
    let (ok, _, stderr) = host_plugin(&["list", "--server", &server.http, "--admin-token", "wrong"]).await;
    assert!(!ok && stderr.contains("UNAUTHORIZED"), "{stderr}");
    let (ok, _, stderr) = host_plugin(&["list", "--server", &server.http]).await;
    assert!(!ok && stderr.contains("--admin-token"), "{stderr}");
}
