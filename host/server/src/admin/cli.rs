//! `host plugin ...`: the plugin lifecycle from the command line. `push`, `list`, `activate` and `rollback` call a
//! running server's admin API (`--server`, `--admin-token` or `CHALLENGE_ADMIN_URL` / `CHALLENGE_ADMIN_TOKEN`);
//! `test` runs a component locally against a cases file and needs no server.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use challenge_plugin_runtime::{PluginRuntime, RuntimeOptions};
use clap::{Args, Subcommand};
use serde_json::Value;

use super::{cases, service};
use crate::rules::registry::Limits;

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Upload a component to the server, which validates it and stores it as a new version.
    Push {
        /// The component (`.wasm`).
        file: PathBuf,
        /// Make the new version active once it is stored.
        #[arg(long)]
        activate: bool,
        /// CPU budget per call (fuel) for the new version.
        #[arg(long)]
        fuel_per_call: Option<u64>,
        /// Memory limit per instance, in bytes, for the new version.
        #[arg(long)]
        max_memory_bytes: Option<u64>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the plugins and versions stored in the registry.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Run a component locally against test cases with expected results (no server needed).
    Test {
        /// The component (`.wasm`).
        file: PathBuf,
        /// The cases file (JSON; see plugins/streak/cases.json).
        #[arg(long)]
        cases: PathBuf,
    },
    /// Make a stored version the active one.
    Activate {
        name: String,
        version: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Return a plugin to its previous version.
    Rollback {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Base URL of the server's HTTP API.
    #[arg(long = "server", env = "CHALLENGE_ADMIN_URL", default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// The admin token (or a JWT with the admin role).
    #[arg(long, env = "CHALLENGE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

pub async fn run(command: PluginCommand) -> ExitCode {
    let outcome = match command {
        PluginCommand::Test { file, cases } => return test(&file, &cases),
        PluginCommand::Push { file, activate, fuel_per_call, max_memory_bytes, server } => {
            push(&server, &file, activate, fuel_per_call, max_memory_bytes).await
        }
        PluginCommand::List { server } => list(&server).await,
        PluginCommand::Activate { name, version, server } => {
            let path = format!("/admin/v1/plugins/{}/versions/{}/activate", segment(&name), segment(&version));
            change_activation(&server, &path).await
        }
        PluginCommand::Rollback { name, server } => {
            change_activation(&server, &format!("/admin/v1/plugins/{}/rollback", segment(&name))).await
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// A URL path segment (names and versions are plain, but a typo should not build another URL).
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    fn new(server: &ServerArgs) -> Result<Client, String> {
        let token = server
            .admin_token
            .clone()
            .ok_or("an admin token is needed: pass --admin-token or set CHALLENGE_ADMIN_TOKEN")?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|err| format!("cannot build the HTTP client: {err}"))?;
        Ok(Client { http, base: server.url.trim_end_matches('/').to_owned(), token })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, String> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|err| format!("cannot reach the server at {}: {err}", self.base))?;
        let status = response.status();
        let text = response.text().await.map_err(|err| format!("reading the answer failed: {err}"))?;
        let body: Value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        if status.is_success() {
            return Ok(body);
        }
        match (body["errorCode"].as_str(), body["message"].as_str()) {
            (Some(code), Some(message)) => Err(format!("{code} ({status}): {message}")),
            _ => Err(format!("the server answered {status}: {body}")),
        }
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    async fn post(&self, path: &str, body: Option<Vec<u8>>) -> Result<Value, String> {
        let mut request = self.http.post(format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.header("content-type", "application/wasm").body(body);
        }
        self.send(request).await
    }
}

async fn change_activation(server: &ServerArgs, path: &str) -> Result<(), String> {
    print_activation(&Client::new(server)?.post(path, None).await?);
    Ok(())
}

async fn push(
    server: &ServerArgs,
    file: &Path,
    activate: bool,
    fuel_per_call: Option<u64>,
    max_memory_bytes: Option<u64>,
) -> Result<(), String> {
    let client = Client::new(server)?;
    let bytes = std::fs::read(file).map_err(|err| format!("cannot read {}: {err}", file.display()))?;
    let mut query = Vec::new();
    if let Some(fuel) = fuel_per_call {
        query.push(format!("fuelPerCall={fuel}"));
    }
    if let Some(memory) = max_memory_bytes {
        query.push(format!("maxMemoryBytes={memory}"));
    }
    let path = if query.is_empty() {
        "/admin/v1/plugins".to_owned()
    } else {
        format!("/admin/v1/plugins?{}", query.join("&"))
    };
    let stored = client.post(&path, Some(bytes)).await?;
    let (name, version) = (text(&stored["name"]), text(&stored["version"]));
    println!("stored {name}@{version} (sha256 {}, status {})", text(&stored["sha256"]), text(&stored["status"]));
    if activate {
        let path = format!("/admin/v1/plugins/{}/versions/{}/activate", segment(&name), segment(&version));
        print_activation(&client.post(&path, None).await?);
    }
    Ok(())
}

async fn list(server: &ServerArgs) -> Result<(), String> {
    let body = Client::new(server)?.get("/admin/v1/plugins").await?;
    println!(
        "{:<20} {:<12} {:<10} {:<7} {:<14} {:<20} UPLOADED",
        "PLUGIN", "VERSION", "STATUS", "LOADED", "SHA256", "BY"
    );
    for plugin in body["plugins"].as_array().into_iter().flatten() {
        for version in plugin["versions"].as_array().into_iter().flatten() {
            let sha = text(&version["sha256"]);
            println!(
                "{:<20} {:<12} {:<10} {:<7} {:<14} {:<20} {}",
                text(&plugin["name"]),
                text(&version["version"]),
                text(&version["status"]),
                version["loaded"].as_bool().unwrap_or(false),
                sha.get(..12).unwrap_or(&sha),
                text(&version["uploadedBy"]),
                text(&version["uploadedAt"]),
            );
        }
    }
    if let Some(error) = body["syncError"].as_str() {
        println!("warning: the server could not apply the registry: {error}");
    }
    Ok(())
}

fn print_activation(body: &Value) {
    let previous = body["previousVersion"].as_str().unwrap_or("none");
    let verb = if body["changed"].as_bool() == Some(false) { "already active" } else { "active" };
    println!("{}@{} {verb} (previous: {previous})", text(&body["name"]), text(&body["activeVersion"]));
}

fn text(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

/// `host plugin test`: loads the component as the server would (checking its world and imports), runs the smoke
/// evaluation the server runs on upload, then every case. Exit code 1 if anything fails.
fn test(file: &Path, cases_path: &Path) -> ExitCode {
    let loaded = (|| {
        let bytes = std::fs::read(file).map_err(|err| format!("cannot read {}: {err}", file.display()))?;
        let text = std::fs::read_to_string(cases_path)
            .map_err(|err| format!("cannot read {}: {err}", cases_path.display()))?;
        let cases = cases::parse(&text)?;
        let runtime = PluginRuntime::new(RuntimeOptions::default()).map_err(|err| err.to_string())?;
        let plugin = runtime.load(&bytes, Limits::default().to_runtime()?).map_err(|err| err.to_string())?;
        if let Some(expected) = &cases.plugin
            && expected != plugin.name()
        {
            return Err(format!("the cases are for plugin '{expected}', the component is '{}'", plugin.name()));
        }
        Ok((plugin, cases))
    })();
    let (plugin, cases) = match loaded {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}@{}: {}", plugin.name(), plugin.version(), plugin.info().description);
    let mut failed = 0;
    match service::smoke_test(&plugin, Vec::new()) {
        Ok(()) => println!("ok    smoke evaluation"),
        Err(err) => {
            failed += 1;
            println!("FAIL  smoke evaluation: {err}");
        }
    }
    let reports = cases::run(&plugin, &cases);
    for report in &reports {
        if report.failures.is_empty() {
            println!("ok    {}", report.name);
        } else {
            failed += 1;
            println!("FAIL  {}", report.name);
            for failure in &report.failures {
                println!("        {failure}");
            }
        }
    }
    println!("{} passed, {failed} failed", reports.len() + 1 - failed);
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
