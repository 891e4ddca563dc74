//! `--spawn-host`: the generator runs the server itself on a fresh PostgreSQL database, Redis, the generated
//! challenges and the test JWT secret, on free local ports; it samples the server's CPU time and peak memory from
//! /proc and stops it with SIGTERM (then drops the database).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::Connection;

use crate::error::{Error, Result};

/// How long a SIGTERM'd server may take to flush and exit before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct HostOptions {
    /// The `host` binary; `None` finds (or builds) `<target>/release/host`.
    pub binary: Option<PathBuf>,
    /// Administrative connection used to create and drop the run's database.
    pub pg_admin_url: String,
    /// `None` runs the server without Redis (in-process dedupe).
    pub redis_url: Option<String>,
    pub jwt_secret: String,
    pub namespace: String,
    pub log_level: String,
    /// Extra `KEY=VALUE` environment for the server.
    pub extra_env: Vec<(String, String)>,
    pub keep_database: bool,
}

pub struct SpawnedHost {
    child: tokio::process::Child,
    pid: u32,
    pub binary: PathBuf,
    pub http_url: String,
    pub grpc_url: String,
    pub database_url: String,
    database_name: String,
    admin_url: String,
    keep_database: bool,
    log_path: PathBuf,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HostResources {
    pub cpu_seconds: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    /// Time from SIGTERM to exit (flush of everything accepted included).
    pub shutdown_seconds: f64,
    pub exit: String,
    pub exited_cleanly: bool,
}

impl SpawnedHost {
    /// Creates the database, writes nothing but the log into `workdir`, starts the server.
    pub async fn start(options: &HostOptions, challenges_path: &Path, workdir: &Path, run_id: &str) -> Result<Self> {
        let binary = resolve_binary(options.binary.as_deref()).await?;
        // Run ids are lowercase letters and digits (checked by the CLI), so the name needs no escaping.
        let database_name = format!("lt_{run_id}");
        let database_url = database_url_for(&options.pg_admin_url, &database_name)?;
        let mut admin = sqlx::PgConnection::connect(&options.pg_admin_url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{database_name}\""))).execute(&mut admin).await?;
        admin.close().await?;

        let (http, grpc, metrics) = (free_port()?, free_port()?, free_port()?);
        let log_path = workdir.join("host.log");
        let log = std::fs::File::create(&log_path).map_err(|err| Error::io(&log_path, err))?;
        let log_err = log.try_clone().map_err(|err| Error::io(&log_path, err))?;
        let mut command = tokio::process::Command::new(&binary);
        command
            .env("DATABASE_URL", &database_url)
            .env("CHALLENGES_PATH", challenges_path)
            .env("CHALLENGE_HTTP__LISTEN", format!("127.0.0.1:{http}"))
            .env("CHALLENGE_GRPC__LISTEN", format!("127.0.0.1:{grpc}"))
            .env("CHALLENGE_METRICS__LISTEN", format!("127.0.0.1:{metrics}"))
            .env("CHALLENGE_DATA_DIR", workdir.join("data"))
            .env("CHALLENGE_LOG__LEVEL", &options.log_level)
            .env("AB_NAMESPACE", &options.namespace)
            .env("CHALLENGE_AUTH__MODE", "hs256")
            .env("CHALLENGE_AUTH__HS256_SECRET", &options.jwt_secret)
            .env_remove("REDIS_URL")
            .env_remove("RUST_LOG")
            .current_dir(workdir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true);
        if let Some(redis) = &options.redis_url {
            command.env("REDIS_URL", redis);
        }
        for (key, value) in &options.extra_env {
            command.env(key, value);
        }
        let child = match command.spawn() {
            Ok(child) => child,
            Err(err) => {
                drop_database(&options.pg_admin_url, &database_name).await;
                return Err(Error::Host(format!("cannot start {}: {err}", binary.display())));
            }
        };
        let pid = child.id().ok_or_else(|| Error::Host("the host exited immediately".into()))?;
        Ok(Self {
            child,
            pid,
            binary,
            http_url: format!("http://127.0.0.1:{http}"),
            grpc_url: format!("http://127.0.0.1:{grpc}"),
            database_url,
            database_name,
            admin_url: options.pg_admin_url.clone(),
            keep_database: options.keep_database,
            log_path,
        })
    }

    pub fn database_name(&self) -> &str {
        &self.database_name
    }

    /// `Some(status)` once the server has exited.
    pub fn exited(&mut self) -> Option<String> {
        self.child.try_wait().ok().flatten().map(|status| status.to_string())
    }

    pub fn cpu_seconds(&self) -> Option<f64> {
        process_cpu_seconds(&self.pid.to_string())
    }

    pub fn peak_rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }

    /// The last `lines` lines of the server's output, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM, wait for the graceful exit (SIGKILL after the grace period), then drop the database.
    pub async fn stop(mut self) -> HostResources {
        let cpu_seconds = self.cpu_seconds();
        let peak_rss_mib = self.peak_rss_mib();
        let started = Instant::now();
        if self.exited().is_none() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &self.pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let exit = match tokio::time::timeout(SHUTDOWN_GRACE, self.child.wait()).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(err)) => Err(format!("wait failed: {err}")),
            Err(_) => {
                let _ = self.child.kill().await;
                Err(format!("did not exit within {SHUTDOWN_GRACE:?} of SIGTERM; killed"))
            }
        };
        let shutdown_seconds = started.elapsed().as_secs_f64();
        if !self.keep_database {
            drop_database(&self.admin_url, &self.database_name).await;
        }
        let (exit, exited_cleanly) = match exit {
            Ok(status) => (status.to_string(), status.success()),
            Err(message) => (message, false),
        };
        HostResources { cpu_seconds, peak_rss_mib, shutdown_seconds, exit, exited_cleanly }
    }
}

async fn drop_database(admin_url: &str, name: &str) {
    if let Ok(mut admin) = sqlx::PgConnection::connect(admin_url).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
            .execute(&mut admin)
            .await;
        let _ = admin.close().await;
    }
}

/// The admin URL with its database path replaced by `name`.
fn database_url_for(admin_url: &str, name: &str) -> Result<String> {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let scheme_end = base.find("://").ok_or_else(|| Error::Usage(format!("not a postgres URL: {admin_url}")))? + 3;
    let authority_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    let mut url = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    Ok(url)
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|err| Error::Host(format!("no free port: {err}")))?;
    let port = listener.local_addr().map_err(|err| Error::Host(err.to_string()))?.port();
    Ok(port)
}

/// The workspace this crate was built from (for building the server and placing results).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The cargo target directory: `CARGO_TARGET_DIR`, else the one this executable was built into.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            // <target>/<profile>/loadgen, or <target>/<profile>/deps/<test> for test executables.
            exe.ancestors().find(|dir| dir.join("CACHEDIR.TAG").exists()).map(Path::to_path_buf)
        })
        .unwrap_or_else(|| workspace_root().join("target"))
}

async fn resolve_binary(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        // Absolute, because the server runs in its own working directory.
        return if path.is_file() {
            std::path::absolute(path).map_err(|err| Error::io(path, err))
        } else {
            Err(Error::Host(format!("host binary {} does not exist", path.display())))
        };
    }
    let release = target_dir().join("release").join("host");
    if !release.is_file() {
        eprintln!("loadgen: {} is missing; running cargo build --release -p challenge-host", release.display());
        let status = tokio::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
            .args(["build", "--release", "-p", "challenge-host"])
            .current_dir(workspace_root())
            .status()
            .await
            .map_err(|err| Error::Host(format!("cannot run cargo: {err}")))?;
        if !status.success() || !release.is_file() {
            return Err(Error::Host(format!("cargo build --release -p challenge-host failed ({status})")));
        }
    }
    Ok(release)
}

/// utime + stime of a process (`"self"` or a pid) in seconds.
pub fn process_cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields are counted after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_replaces_only_the_path() {
        assert_eq!(
            database_url_for("postgres://postgres@127.0.0.1:5432/postgres", "lt_x").expect("url"),
            "postgres://postgres@127.0.0.1:5432/lt_x"
        );
        assert_eq!(
            database_url_for("postgres://u:p@db/postgres?sslmode=disable", "lt_x").expect("url"),
            "postgres://u:p@db/lt_x?sslmode=disable"
        );
        assert_eq!(database_url_for("postgres://db", "lt_x").expect("url"), "postgres://db/lt_x");
        assert!(database_url_for("nonsense", "x").is_err());
    }

    #[test]
    fn own_cpu_time_is_readable() {
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(0);
        }
        assert!(process_cpu_seconds("self").expect("readable") > 0.0);
    }
}
