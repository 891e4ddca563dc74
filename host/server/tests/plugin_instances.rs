//! Several `host` processes sharing one PostgreSQL database and Redis: an activation or rollback on one instance
//! reaches the others within a second (Redis pub/sub), an instance without Redis converges through its registry
//! poll, and SIGHUP reloads an instance's challenge configuration.

mod common;
mod plugin_support;

use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use plugin_support::*;
use serde_json::Value;
use tokio::process::{Child, Command};

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

struct Host {
    child: Child,
    http: String,
    admin: Admin,
    challenges: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Host {
    /// Starts `host serve` on free ports and waits until it is ready.
    async fn spawn(database_url: &str, redis: Option<&str>, channel: &str, poll_ms: u64) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let challenges = fixture_copy(dir.path(), "challenges.json");
        let http = format!("127.0.0.1:{}", free_port());
        let mut command = Command::new(env!("CARGO_BIN_EXE_host"));
        command
            .arg("serve")
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("CHALLENGE_HTTP__LISTEN", &http)
            .env("CHALLENGE_GRPC__LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("CHALLENGE_METRICS__LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("CHALLENGE_DATA_DIR", dir.path().join("data"))
            .env("CHALLENGES_PATH", &challenges)
            .env("AB_NAMESPACE", NAMESPACE)
            .env("CHALLENGE_AUTH__MODE", "hs256")
            .env("CHALLENGE_AUTH__HS256_SECRET", TEST_SECRET)
            .env("CHALLENGE_AUTH__ADMIN_TOKEN", ADMIN_TOKEN)
            .env("CHALLENGE_PLUGINS__POLL_INTERVAL_MS", poll_ms.to_string())
            .env("CHALLENGE_PLUGINS__NOTIFY_CHANNEL", channel)
            .env("CHALLENGE_LOG__LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(redis) = redis {
            command.env("REDIS_URL", redis);
        }
        let mut child = command.spawn().expect("spawn the host binary");
        let base = format!("http://{http}");
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(response) = reqwest::get(format!("{base}/readyz")).await
                && response.status() == 200
            {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("host exited during start-up: {status}");
            }
            assert!(Instant::now() < deadline, "host not ready within 90 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Host { child, admin: Admin::new(&base), http: base, challenges, _dir: dir }
    }

    async fn config_version(&self) -> String {
        let body: Value = reqwest::get(format!("{}/readyz", self.http)).await.unwrap().json().await.unwrap();
        body["checks"]["config"]["version"].as_str().unwrap().to_owned()
    }
}

/// Polls `host` every 5 ms until it serves `version` of `plugin`; returns how long that took from `since`.
async fn seen_within(host: &Host, plugin: &str, version: &str, since: Instant, limit: Duration) -> Duration {
    loop {
        if host.admin.serving_version(plugin).await.as_deref() == Some(version) {
            return since.elapsed();
        }
        assert!(since.elapsed() < limit, "{} did not serve {plugin}@{version} within {limit:?}", host.http);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn loaded_everywhere(hosts: &[&Host], plugin: &str, version: &str) {
    for host in hosts {
        eventually(Duration::from_secs(10), || async { host.admin.is_loaded(plugin, version).await.then_some(()) })
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn activations_and_rollbacks_reach_every_instance() {
    let database = TestDatabase::create().await;
    let channel = format!("test-plugin-registry-{}", uuid::Uuid::new_v4().simple());
    // A and B follow Redis; their poll is too slow to matter, so anything under a second is pub/sub.
    let redis = redis_url();
    let a = Host::spawn(&database.url, Some(&redis), &channel, 60_000).await;
    let b = Host::spawn(&database.url, Some(&redis), &channel, 60_000).await;
    // C has no Redis: its poll alone must bring it along.
    let c = Host::spawn(&database.url, None, &channel, 300).await;

    // An upload on A is loaded everywhere ahead of activation, so activating is only a swap.
    let (status, body) = a.admin.upload(guest("streak"), "").await;
    assert_eq!(status, 201, "{body}");
    loaded_everywhere(&[&b, &c], "streak", "1.0.0").await;

    let started = Instant::now();
    let (status, body) = a.admin.activate("streak", "1.0.0").await;
    assert_eq!(status, 200, "{body}");
    let to_b = seen_within(&b, "streak", "1.0.0", started, Duration::from_secs(1)).await;
    let to_c = seen_within(&c, "streak", "1.0.0", started, Duration::from_secs(3)).await;
    println!("activation on A seen by B after {to_b:?}, by C (poll) after {to_c:?}");

    // A new release pushed through B and activated there reaches A.
    let (status, body) = b.admin.upload(rewrite(&guest("streak"), "1.0.0", "1.0.1"), "").await;
    assert_eq!(status, 201, "{body}");
    loaded_everywhere(&[&a, &c], "streak", "1.0.1").await;
    let started = Instant::now();
    assert_eq!(b.admin.activate("streak", "1.0.1").await.0, 200);
    let to_a = seen_within(&a, "streak", "1.0.1", started, Duration::from_secs(1)).await;
    println!("activation on B seen by A after {to_a:?}");

    // Rollback on A reaches B.
    let started = Instant::now();
    let (status, body) = a.admin.rollback("streak").await;
    assert_eq!(status, 200, "{body}");
    let to_b = seen_within(&b, "streak", "1.0.0", started, Duration::from_secs(1)).await;
    seen_within(&c, "streak", "1.0.0", started, Duration::from_secs(3)).await;
    println!("rollback on A seen by B after {to_b:?}");

    // B's metrics endpoint reports the version it serves.
    let (status, metrics) = b.admin.get("/admin/v1/plugins/streak/metrics").await;
    assert_eq!(status, 200, "{metrics}");
    assert_eq!(metrics["activeVersion"], "1.0.0");
    let active: Vec<&Value> = metrics["versions"].as_array().unwrap().iter().filter(|v| v["active"] == true).collect();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["version"], "1.0.0");

    // Every instance agrees on the registry revision it applied.
    let revision = |host: &Host| {
        let admin = host.admin.clone();
        async move { admin.get("/admin/v1/plugins").await.1["appliedRevision"].as_i64() }
    };
    eventually(Duration::from_secs(3), || async {
        let (ra, rb, rc) = (revision(&a).await, revision(&b).await, revision(&c).await);
        (ra.is_some() && ra == rb && rb == rc).then_some(())
    })
    .await;

    // SIGHUP reloads B's challenge configuration (and only B's).
    let before = b.config_version().await;
    let text = std::fs::read_to_string(&b.challenges).unwrap().replace("Kill 100 enemies", "Kill 100 monsters");
    std::fs::write(&b.challenges, text).unwrap();
    signal_hangup(&b.child);
    eventually(Duration::from_secs(5), || async { (b.config_version().await != before).then_some(()) }).await;
    assert_eq!(a.config_version().await, before);
    drop(database);
}

fn signal_hangup(child: &Child) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill").args(["-HUP", &pid]).status().expect("kill");
    assert!(status.success());
}
