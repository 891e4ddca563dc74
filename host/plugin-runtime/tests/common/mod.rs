//! Shared helpers: one runtime per test binary, real compiled guests, and builders for requests.
#![allow(dead_code)]

use std::sync::{Arc, LazyLock};

use challenge_plugin_runtime::*;

pub const DAY: i64 = 86_400_000;
/// 2025-01-01T00:00:00Z, a day boundary.
pub const T0: i64 = 1_735_689_600_000;

pub static RUNTIME: LazyLock<PluginRuntime> =
    LazyLock::new(|| PluginRuntime::new(RuntimeOptions::default()).expect("runtime starts"));

pub static BUILTIN: LazyLock<Arc<LoadedPlugin>> =
    LazyLock::new(|| RUNTIME.load(BUILTIN_RULES_WASM, PluginLimits::default()).expect("builtin rules load"));

/// Loads a guest built from `plugins/` by crate name.
pub fn load(name: &str, limits: PluginLimits) -> Result<Arc<LoadedPlugin>, PluginError> {
    RUNTIME.load(&artifact(name), limits)
}

pub fn artifact(name: &str) -> Vec<u8> {
    let path = guest_artifact(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("guest {} missing: {e}", path.display()))
}

pub fn spec(kind: &str, stat_code: &str, target: i64) -> GoalSpec {
    GoalSpec {
        goal_id: format!("{kind}-{stat_code}-{target}"),
        kind: kind.into(),
        stat_code: stat_code.into(),
        target,
        progress_mode: ProgressMode::Absolute,
        daily: false,
        params: "{}".into(),
    }
}

pub fn relative(spec: GoalSpec) -> GoalSpec {
    GoalSpec { progress_mode: ProgressMode::Relative, ..spec }
}

pub fn daily(spec: GoalSpec) -> GoalSpec {
    GoalSpec { daily: true, ..spec }
}

pub fn with_params(spec: GoalSpec, params: &str) -> GoalSpec {
    GoalSpec { params: params.into(), ..spec }
}

pub fn fresh(spec: GoalSpec) -> GoalInput {
    GoalInput {
        spec: spec.into(),
        state: GoalState {
            progress: 0,
            status: GoalStatus::NotStarted,
            completed_at_ms: None,
            baseline: None,
            state: None,
        },
    }
}

pub fn with_status(mut goal: GoalInput, status: GoalStatus) -> GoalInput {
    goal.state.status = status;
    goal
}

pub fn stat(code: &str, value: f64, increment: f64, sequence: i64, timestamp_ms: i64) -> Event {
    Event {
        id: format!("e-{code}-{sequence}"),
        kind: EventKind::Statistic,
        stat_code: code.into(),
        value,
        increment,
        sequence,
        timestamp_ms,
    }
}

pub fn login(code: &str, sequence: i64, timestamp_ms: i64) -> Event {
    Event {
        id: format!("l-{code}-{sequence}"),
        kind: EventKind::Login,
        stat_code: code.into(),
        value: 0.0,
        increment: 1.0,
        sequence,
        timestamp_ms,
    }
}

pub fn request(events: Vec<Event>, goals: Vec<GoalInput>) -> EvaluationRequest {
    EvaluationRequest { user_id: "user-1".into(), events, goals }
}

/// Stores an update into the goal, as the host would before the next evaluation.
pub fn apply(goal: &mut GoalInput, update: &GoalUpdate) {
    goal.state = GoalState {
        progress: update.progress,
        status: update.status,
        completed_at_ms: update.completed_at_ms,
        baseline: update.baseline,
        state: update.state.clone(),
    };
}

/// Evaluates `events` against one goal and stores the update (if any) back into it.
pub fn step(plugin: &LoadedPlugin, goal: &mut GoalInput, events: Vec<Event>) -> Option<GoalUpdate> {
    let updates = plugin.evaluate(&request(events, vec![goal.clone()])).expect("evaluation succeeds");
    assert!(updates.len() <= 1, "one goal gives at most one update: {updates:?}");
    let update = updates.into_iter().next()?;
    assert_eq!(update.goal_index, 0);
    apply(goal, &update);
    Some(update)
}
