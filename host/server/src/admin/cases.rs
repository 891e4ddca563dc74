//! Test cases for `host plugin test FILE --cases CASES.json`: a designer's plugin, run locally (no server, no
//! database) against goals and events with the results they expect.
//!
//! ```json
//! {
//!   "plugin": "streak",                 // optional: the name the component must describe itself with
//!   "cases": [
//!     {
//!       "name": "three days in a row complete the goal",
//!       "userId": "designer",           // optional
//!       "goals": [{"goalId": "streak-3", "kind": "login-streak", "statCode": "login", "params": {"days": 3}}],
//!       "steps": [                      // evaluated in order; goal states carry over from step to step
//!         {"events": [{"kind": "login", "timestamp": "2024-03-01T08:00:00Z"}],
//!          "expect": {"streak-3": {"progress": 1, "status": "in-progress"}}}
//!       ]
//!     }
//!   ]
//! }
//! ```
//!
//! A case with a single step may put `events` and `expect` (or `expectError`) on the case itself. Goals and
//! events are written as in a dry run (see [`super::samples`]). An expectation checks only the fields it gives:
//! `progress`, `status`, `completedAtMs`, `baseline`, `source`, `changed` (whether the plugin returned an update)
//! and `paramsError` (a substring of the plugin's `validate-params` refusal). `expectError` expects the evaluate
//! call to fail with a message (or error kind) containing the given text.

use std::collections::{BTreeMap, HashMap};

use challenge_plugin_runtime::LoadedPlugin;
use serde::Deserialize;

use super::samples::{self, GoalResult, Outcome, SampleEvent, SampleGoal, SampleSource, SampleStatus};

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CasesFile {
    pub plugin: Option<String>,
    pub cases: Vec<Case>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub user_id: Option<String>,
    pub goals: Vec<SampleGoal>,
    #[serde(default)]
    pub events: Vec<SampleEvent>,
    #[serde(default)]
    pub expect: BTreeMap<String, Expectation>,
    pub expect_error: Option<String>,
    #[serde(default)]
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Step {
    pub name: Option<String>,
    #[serde(default)]
    pub events: Vec<SampleEvent>,
    #[serde(default)]
    pub expect: BTreeMap<String, Expectation>,
    pub expect_error: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expectation {
    pub progress: Option<i64>,
    pub status: Option<SampleStatus>,
    pub completed_at_ms: Option<i64>,
    pub baseline: Option<i64>,
    pub source: Option<SampleSource>,
    pub changed: Option<bool>,
    pub params_error: Option<String>,
}

/// The outcome of one case: `failures` is empty when it passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseReport {
    pub name: String,
    pub failures: Vec<String>,
}

/// Parses a cases file, with the problem's position on error.
pub fn parse(text: &str) -> Result<CasesFile, String> {
    serde_json::from_str(text).map_err(|err| format!("invalid cases file: {err}"))
}

/// Runs every case against `plugin` (CPU-bound).
pub fn run(plugin: &LoadedPlugin, file: &CasesFile) -> Vec<CaseReport> {
    file.cases.iter().map(|case| CaseReport { name: case.name.clone(), failures: run_case(plugin, case) }).collect()
}

fn run_case(plugin: &LoadedPlugin, case: &Case) -> Vec<String> {
    let single = Step {
        name: None,
        events: case.events.clone(),
        expect: case.expect.clone(),
        expect_error: case.expect_error.clone(),
    };
    let steps = match (
        case.steps.is_empty(),
        case.events.is_empty() && case.expect.is_empty() && case.expect_error.is_none(),
    ) {
        (true, _) => std::slice::from_ref(&single),
        (false, true) => case.steps.as_slice(),
        (false, false) => return vec!["give either steps or events/expect on the case, not both".to_owned()],
    };
    let mut goals = match case.goals.iter().map(|goal| samples::prepare_goal(goal, None)).collect::<Result<Vec<_>, _>>()
    {
        Ok(goals) => goals,
        Err(err) => return vec![err],
    };
    let user_id = case.user_id.as_deref().unwrap_or("test-user");
    let mut sequences = HashMap::new();
    let mut seen_events = 0;
    let mut failures = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        let label = match (&step.name, steps.len()) {
            (Some(name), _) => format!("step '{name}': "),
            (None, 1) => String::new(),
            (None, _) => format!("step {}: ", index + 1),
        };
        let events = match samples::prepare_events(&step.events, &mut sequences, seen_events) {
            Ok(events) => events,
            Err(err) => {
                failures.push(format!("{label}{err}"));
                return failures;
            }
        };
        seen_events += step.events.len();
        let outcome = samples::evaluate(plugin, user_id, &goals, events);
        failures.extend(check_step(step, &outcome).into_iter().map(|failure| format!("{label}{failure}")));
        goals = match samples::carry_over(&goals, &outcome) {
            Ok(goals) => goals,
            Err(err) => {
                failures.push(format!("{label}{err}"));
                return failures;
            }
        };
    }
    failures
}

fn check_step(step: &Step, outcome: &Outcome) -> Vec<String> {
    let mut failures = Vec::new();
    match (&step.expect_error, &outcome.error) {
        (Some(expected), Some(error)) if error.message.contains(expected) || error.kind == *expected => {}
        (Some(expected), Some(error)) => {
            failures.push(format!("expected an error containing '{expected}', got {}: {}", error.kind, error.message))
        }
        (Some(expected), None) => {
            failures.push(format!("expected an error containing '{expected}', the call succeeded"))
        }
        (None, Some(error)) => failures.push(format!("evaluate failed ({}): {}", error.kind, error.message)),
        (None, None) => {}
    }
    for (goal_id, expectation) in &step.expect {
        match outcome.results.iter().find(|result| &result.goal_id == goal_id) {
            Some(result) => failures.extend(check_goal(expectation, result)),
            None => failures.push(format!("expectation for unknown goal '{goal_id}'")),
        }
    }
    failures
}

fn check_goal(expected: &Expectation, result: &GoalResult) -> Vec<String> {
    let mut failures = Vec::new();
    let mut compare = |field: &str, expected: String, actual: String| {
        if expected != actual {
            failures.push(format!("goal '{}': {field} is {actual}, expected {expected}", result.goal_id));
        }
    };
    let state = &result.state;
    if let Some(progress) = expected.progress {
        compare("progress", progress.to_string(), state.progress.to_string());
    }
    if let Some(status) = expected.status {
        compare("status", format!("{status:?}"), format!("{:?}", state.status));
    }
    if let Some(at) = expected.completed_at_ms {
        compare("completedAtMs", format!("{:?}", Some(at)), format!("{:?}", state.completed_at_ms));
    }
    if let Some(baseline) = expected.baseline {
        compare("baseline", format!("{:?}", Some(baseline)), format!("{:?}", state.baseline));
    }
    if let Some(source) = expected.source {
        compare("source", format!("{:?}", Some(source)), format!("{:?}", result.source));
    }
    if let Some(changed) = expected.changed {
        compare("changed", changed.to_string(), result.changed.to_string());
    }
    match (&expected.params_error, &result.params_error) {
        (Some(text), Some(error)) if error.contains(text.as_str()) => {}
        (Some(text), actual) => failures.push(format!(
            "goal '{}': expected its params to be refused with '{text}', got {actual:?}",
            result.goal_id
        )),
        (None, Some(error)) => failures.push(format!("goal '{}': params refused: {error}", result.goal_id)),
        (None, None) => {}
    }
    failures
}
