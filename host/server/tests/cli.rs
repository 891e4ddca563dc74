//! The `host` binary as an operator uses it: no-configuration start-up, `migrate`, `config validate`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn host() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_host"));
    // Nothing from the developer's environment may leak in: "no configuration at all".
    command.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    command
}

fn workspace_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative)
}

fn run(command: &mut Command) -> Output {
    command.output().expect("the host binary runs")
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(url: &str) -> Option<(u16, String)> {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2)).build().ok()?;
    let response = client.get(url).send().ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().ok()?))
}

#[test]
fn starts_with_no_configuration_at_all_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let child = host().current_dir(dir.path()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut child = KillOnDrop(child);

    let deadline = Instant::now() + Duration::from_secs(60);
    let health = loop {
        if let Some(answer) = get("http://127.0.0.1:8000/healthz") {
            break answer;
        }
        assert!(child.0.try_wait().unwrap().is_none(), "the server exited during start-up");
        assert!(Instant::now() < deadline, "no answer on :8000/healthz within 60 s");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(health.0, 200);
    let body: serde_json::Value = serde_json::from_str(&health.1).unwrap();
    assert_eq!(body["status"], "healthy");

    let (status, ready) = get("http://127.0.0.1:8000/readyz").expect("readyz answers");
    assert_eq!(status, 200, "{ready}");
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["checks"]["database"], true);
    assert_eq!(ready["checks"]["plugins"], true);
    assert!(ready["checks"]["config"]["challenges"].as_u64().unwrap() > 0, "the built-in sample is loaded");
    // The embedded database lives under the default data dir of the working directory.
    assert!(dir.path().join("data/challenge.db").exists());

    let pid = child.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server did not stop within 20 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

#[test]
fn config_validate_accepts_the_sample_and_the_reference_file() {
    let output = run(host().args(["config", "validate"]).arg(workspace_file("config/challenges.json")));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("OK"));

    let reference = workspace_file("../shared/reference/challenges.json");
    if reference.exists() {
        let output = run(host().args(["config", "validate"]).arg(&reference));
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    } else {
        assert!(std::env::var_os("CI").is_none(), "CI must have ../shared/reference/challenges.json");
        eprintln!("notice: reference config not found, skipped that half");
    }
}

#[test]
fn config_validate_prints_every_problem_and_fails() {
    let output = run(host().args(["config", "validate"]).arg(workspace_file("config/invalid-example.json")));
    assert!(!output.status.success());
    let report = String::from_utf8_lossy(&output.stderr);
    let problem_lines = report.lines().filter(|line| line.contains("invalid-example.json")).count();
    assert!(problem_lines >= 3, "expected several located problems, got:\n{report}");
}

#[test]
fn an_invalid_challenges_file_stops_start_up_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(host()
        .current_dir(dir.path())
        .env("CHALLENGES_PATH", workspace_file("config/invalid-example.json"))
        .env("CHALLENGE_HTTP__LISTEN", "127.0.0.1:0")
        .env("CHALLENGE_GRPC__LISTEN", "127.0.0.1:0")
        .env("CHALLENGE_METRICS__LISTEN", "127.0.0.1:0"));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid challenges"), "{stderr}");
    assert!(!stderr.contains("serving"), "must not start half-configured: {stderr}");
}

#[test]
fn migrate_applies_the_schema_to_the_embedded_database() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(host().current_dir(dir.path()).arg("migrate"));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(dir.path().join("data/challenge.db").exists());
    // Idempotent.
    let output = run(host().current_dir(dir.path()).arg("migrate"));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn bad_settings_are_refused_with_the_key_named() {
    let output = run(host().env("CHALLENGE_PIPELINE__FLUSH_WORKERS", "0").arg("migrate"));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("flush_workers"));
}
