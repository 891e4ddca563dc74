//! The run report: one model, written as JSON and as Markdown under `loadtest/results/`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::host::HostResources;
use crate::recorder::{EndpointReport, StreamReport};
use crate::verify::Verification;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub run_id: String,
    pub started_at: String,
    pub finished_at: String,
    pub command_line: String,
    pub git_commit: String,
    pub machine: Machine,
    pub target: Target,
    pub settings: serde_json::Value,
    pub config: ConfigSummary,
    pub phases: Vec<PhaseReport>,
    pub find_max: Option<FindMax>,
    pub verification: Option<Verification>,
    /// Why events were not verified, when they were not.
    pub verification_note: Option<String>,
    pub host: Option<HostResources>,
    pub generator_cpu_seconds: Option<f64>,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub memory_gib: Option<f64>,
    pub cpu_model: Option<String>,
    pub kernel: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub spawned_host: bool,
    pub host_binary: Option<String>,
    pub http_url: String,
    pub grpc_url: String,
    pub database: Option<String>,
    pub redis: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigSummary {
    pub source: String,
    pub challenges: usize,
    pub goals: usize,
    pub default_goals: usize,
    pub stat_codes_sent: Vec<String>,
    pub login_codes_tracked: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetRate {
    pub stream: String,
    pub rate: f64,
    pub unit: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    pub name: String,
    /// Scheduled length (throughputs are per second of it).
    pub duration_s: f64,
    /// Until the last call answered.
    pub wall_s: f64,
    /// `true` for open-loop phases; setup is closed-loop.
    pub open_loop: bool,
    pub target_rates: Vec<TargetRate>,
    pub endpoints: Vec<EndpointReport>,
    pub streams: Vec<StreamReport>,
    /// Calls still unanswered when the phase gave up waiting.
    pub unfinished_calls: u64,
    pub host_cpu_seconds: Option<f64>,
    pub generator_cpu_seconds: Option<f64>,
    /// The generator used (nearly) all its threads: latencies then include its own queueing.
    pub generator_saturated: bool,
}

impl PhaseReport {
    pub fn errors(&self) -> u64 {
        self.endpoints.iter().map(EndpointReport::error_count).sum()
    }

    pub fn rejected_events(&self) -> u64 {
        self.endpoints.iter().flat_map(|e| e.events_rejected.values()).sum()
    }

    pub fn dropped(&self) -> u64 {
        self.streams.iter().map(|s| s.dropped_overloaded_generator).sum()
    }

    pub fn worst_p99_ms(&self) -> f64 {
        self.endpoints.iter().map(|e| e.latency.p99_ms).fold(0.0, f64::max)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FindMax {
    pub p99_bound_ms: f64,
    pub steps: Vec<FindMaxStep>,
    /// The highest multiplier whose step passed, and its rates.
    pub best_multiplier: Option<f64>,
    pub best_rates: Vec<TargetRate>,
    pub stopped_because: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FindMaxStep {
    pub multiplier: f64,
    pub phase: String,
    pub passed: bool,
    pub worst_p99_ms: f64,
    pub errors: u64,
    pub dropped: u64,
    pub why: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub passed: bool,
    pub failures: Vec<String>,
}

impl Machine {
    pub fn current() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let memory_gib = read("/proc/meminfo").and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?.to_owned();
            let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some((kib / 1024.0 / 1024.0 * 10.0).round() / 10.0)
        });
        let cpu_model = read("/proc/cpuinfo").and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        });
        Self {
            nproc: std::thread::available_parallelism().map_or(1, usize::from),
            memory_gib,
            cpu_model,
            kernel: read("/proc/sys/kernel/osrelease").map(|k| k.trim().to_owned()),
        }
    }
}

/// `git rev-parse --short HEAD`, with `-dirty` when tracked files changed; `unknown` outside a repository.
pub fn git_commit(workspace: &Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(workspace)
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let Some(commit) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown (no commit)".to_owned();
    };
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty { format!("{commit}-dirty") } else { commit }
}

/// The command line as typed (arguments with spaces quoted).
pub fn command_line() -> String {
    std::env::args()
        .map(|arg| if arg.contains(char::is_whitespace) || arg.is_empty() { format!("'{arg}'") } else { arg })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes `<scenario>-<UTC>.json`, `<scenario>-<UTC>.md` and `latest-<scenario>.md`; returns the Markdown path.
pub fn write(report: &Report, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|err| Error::io(dir, err))?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let base = format!("{}-{stamp}", report.scenario);
    let json_path = dir.join(format!("{base}.json"));
    let md_path = dir.join(format!("{base}.md"));
    let markdown = markdown(report);
    std::fs::write(&json_path, serde_json::to_string_pretty(report)?).map_err(|err| Error::io(&json_path, err))?;
    std::fs::write(&md_path, &markdown).map_err(|err| Error::io(&md_path, err))?;
    let latest = dir.join(format!("latest-{}.md", report.scenario));
    std::fs::write(&latest, &markdown).map_err(|err| Error::io(&latest, err))?;
    Ok(md_path)
}

fn ms(value: f64) -> String {
    if value >= 100.0 { format!("{value:.0}") } else { format!("{value:.2}") }
}

fn counts(map: &std::collections::BTreeMap<String, u64>) -> String {
    map.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ")
}

pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let verdict = if report.verdict.passed { "PASSED" } else { "FAILED" };
    let _ = writeln!(out, "# Load test `{}`: {verdict}\n", report.scenario);
    let m = &report.machine;
    let _ = writeln!(out, "| | |\n|---|---|");
    let rows = [
        ("Run", report.run_id.clone()),
        ("Started / finished (UTC)", format!("{} / {}", report.started_at, report.finished_at)),
        ("Command", format!("`{}`", report.command_line)),
        ("Commit", report.git_commit.clone()),
        (
            "Machine",
            format!(
                "{} CPUs ({}), {} GiB RAM, kernel {}",
                m.nproc,
                m.cpu_model.as_deref().unwrap_or("unknown model"),
                m.memory_gib.map_or("?".to_owned(), |g| g.to_string()),
                m.kernel.as_deref().unwrap_or("?")
            ),
        ),
        (
            "Target",
            format!(
                "{} (HTTP {}, gRPC {}){}{}",
                if report.target.spawned_host { "host spawned by loadgen" } else { "external server" },
                report.target.http_url,
                report.target.grpc_url,
                report.target.database.as_ref().map_or(String::new(), |d| format!(", PostgreSQL database {d}")),
                report.target.redis.as_ref().map_or(", no Redis".to_owned(), |r| format!(", Redis {r}")),
            ),
        ),
        (
            "Challenges",
            format!(
                "{}: {} challenges, {} goals ({} default); stat codes sent: {}; login codes: {}",
                report.config.source,
                report.config.challenges,
                report.config.goals,
                report.config.default_goals,
                report.config.stat_codes_sent.join(", "),
                report.config.login_codes_tracked.join(", ")
            ),
        ),
    ];
    for (key, value) in rows {
        let _ = writeln!(out, "| {key} | {value} |");
    }
    if let Some(host) = &report.host {
        let _ = writeln!(
            out,
            "| Server resources | {} CPU s, peak RSS {} MiB, shutdown {:.2} s, exit: {} |",
            host.cpu_seconds.map_or("?".to_owned(), |c| format!("{c:.1}")),
            host.peak_rss_mib.map_or("?".to_owned(), |r| format!("{r:.0}")),
            host.shutdown_seconds,
            host.exit
        );
    }
    if let Some(cpu) = report.generator_cpu_seconds {
        let _ = writeln!(out, "| Generator CPU | {cpu:.1} s (same machine as the server) |");
    }

    if !report.verdict.failures.is_empty() {
        let _ = writeln!(out, "\n## Failures\n");
        for failure in &report.verdict.failures {
            let _ = writeln!(out, "- {failure}");
        }
    }

    if let Some(find_max) = &report.find_max {
        let _ = writeln!(out, "\n## Highest sustainable rate (p99 bound {} ms, no errors)\n", find_max.p99_bound_ms);
        match find_max.best_multiplier {
            Some(best) => {
                let rates: Vec<String> =
                    find_max.best_rates.iter().map(|r| format!("{} {:.0} {}", r.stream, r.rate, r.unit)).collect();
                let _ = writeln!(out, "**×{best:.2}**: {}.\n", rates.join(", "));
            }
            None => {
                let _ = writeln!(out, "No step passed.\n");
            }
        }
        let _ = writeln!(
            out,
            "| Multiplier | Passed | Worst p99 (ms) | Errors | Dropped | Why |\n|---|---|---|---|---|---|"
        );
        for step in &find_max.steps {
            let _ = writeln!(
                out,
                "| ×{:.2} | {} | {} | {} | {} | {} |",
                step.multiplier,
                if step.passed { "yes" } else { "no" },
                ms(step.worst_p99_ms),
                step.errors,
                step.dropped,
                step.why.as_deref().unwrap_or("")
            );
        }
        let _ = writeln!(out, "\nStopped: {}.", find_max.stopped_because);
    }

    if let Some(v) = &report.verification {
        let _ = writeln!(out, "\n## Events: acknowledged versus database\n");
        let _ = writeln!(out, "| | |\n|---|---|");
        let _ = writeln!(out, "| Events acknowledged (whole run) | {} |", v.events_acknowledged);
        let _ = writeln!(out, "| Of which for uninitialized players (not checked) | {} |", v.events_untracked);
        let _ = writeln!(out, "| Events sent but not acknowledged | {} |", v.events_unacknowledged);
        let _ = writeln!(out, "| (player, stat code) pairs checked | {} |", v.pairs_checked);
        let _ = writeln!(out, "| Increments expected / found | {} / {} |", v.expected_increments, v.found_increments);
        let _ = writeln!(out, "| **Events lost** | **{}** ({} pairs) |", v.events_lost, v.pairs_short);
        let _ = writeln!(out, "| Extra increments | {} ({} pairs) |", v.extra_increments, v.pairs_over);
        if !v.examples.is_empty() {
            let _ = writeln!(out, "\nMismatches (first {}):\n", v.examples.len());
            for example in &v.examples {
                let _ = writeln!(out, "- {example}");
            }
        }
    }
    if let Some(note) = &report.verification_note {
        let _ = writeln!(out, "\n## Events: not verified\n\n{note}");
    }

    for phase in &report.phases {
        let _ = writeln!(out, "\n## Phase: {}\n", phase.name);
        let rates: Vec<String> =
            phase.target_rates.iter().map(|r| format!("{} at {:.1} {}", r.stream, r.rate, r.unit)).collect();
        let loop_kind = if phase.open_loop { "open loop" } else { "closed loop" };
        let _ = writeln!(
            out,
            "{loop_kind}, {:.1} s scheduled, {:.1} s until the last answer{}{}{}.\n",
            phase.duration_s,
            phase.wall_s,
            if rates.is_empty() { String::new() } else { format!("; target: {}", rates.join(", ")) },
            phase.host_cpu_seconds.map_or(String::new(), |c| format!(
                "; server CPU {c:.1} s ({:.2} cores)",
                c / phase.duration_s.max(1e-9)
            )),
            phase.generator_cpu_seconds.map_or(String::new(), |c| format!("; generator CPU {c:.1} s")),
        );
        let _ = writeln!(
            out,
            "| Endpoint | Sent | OK | Errors | OK/s | Events acked | Events/s | p50 | p90 | p95 | p99 | max (ms) |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for e in &phase.endpoints {
            let events = if e.events_sent > 0 { format!("{}/{}", e.events_acked, e.events_sent) } else { "".into() };
            let eps = if e.events_sent > 0 { format!("{:.1}", e.events_per_s) } else { "".into() };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.1} | {events} | {eps} | {} | {} | {} | {} | {} |",
                e.endpoint,
                e.sent,
                e.ok,
                e.error_count(),
                e.ok_per_s,
                ms(e.latency.p50_ms),
                ms(e.latency.p90_ms),
                ms(e.latency.p95_ms),
                ms(e.latency.p99_ms),
                ms(e.latency.max_ms)
            );
        }
        let mut notes = Vec::new();
        for e in &phase.endpoints {
            if !e.errors.is_empty() {
                notes.push(format!("errors of {}: {}", e.endpoint, counts(&e.errors)));
            }
            if !e.expected_outcomes.is_empty() {
                notes.push(format!("expected non-success answers of {}: {}", e.endpoint, counts(&e.expected_outcomes)));
            }
            if !e.events_rejected.is_empty() {
                notes.push(format!("events refused by {}: {}", e.endpoint, counts(&e.events_rejected)));
            }
        }
        for s in phase.streams.iter().filter(|s| s.dropped_overloaded_generator > 0) {
            notes.push(format!(
                "**dropped (overloaded generator)** in stream {}: {} of {} arrivals",
                s.stream, s.dropped_overloaded_generator, s.scheduled
            ));
        }
        if phase.generator_saturated {
            notes.push(
                "**generator saturated**: it used nearly all of its threads' CPU, so latencies include its own \
                 queueing; rerun with more --threads"
                    .to_owned(),
            );
        }
        if phase.unfinished_calls > 0 {
            notes.push(format!("**{} calls never answered**", phase.unfinished_calls));
        }
        if !notes.is_empty() {
            let _ = writeln!(out);
            for note in notes {
                let _ = writeln!(out, "- {note}");
            }
        }
    }
    let _ = writeln!(
        out,
        "\nLatency is measured from each request's scheduled send time (open loop), for every answered call, \
         errors included. Settings:\n\n```json\n{}\n```",
        serde_json::to_string_pretty(&report.settings).unwrap_or_default()
    );
    out
}
