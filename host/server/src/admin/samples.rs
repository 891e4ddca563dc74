//! Goals, events and results written as JSON by people: the body of a dry run (`POST .../dry-run`) and the
//! `host plugin test` cases files. One conversion to and from the plugin's types serves both.
//!
//! A goal: `{"goalId", "kind", "statCode", "target", "progressMode", "daily", "params", "state"}`; in a dry run,
//! a goal whose id is configured may give only `goalId` (and `state`): the rest comes from the configuration.
//! A state: `{"progress", "status" ("not-started" | "in-progress" | "completed" | "claimed"), "completedAtMs",
//! "baseline", "state" (base64 of the plugin's own bytes)}`, not started when absent.
//! An event: `{"kind" ("login" | "statistic"), "statCode", "value", "increment", "timestampMs" or "timestamp"
//! (RFC 3339), "id", "sequence"}`. Defaults: login stat code `login`, value 0, increment 1, the n-th event at
//! 2024-01-01T00:00:00Z plus n seconds, sequence counted per stat code.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use challenge_core::config::DEFAULT_LOGIN_STAT_CODE;
use challenge_plugin_runtime::{
    EvaluationRequest, Event, EventKind, GoalInput, GoalSpec, GoalState, GoalStatus, LoadedPlugin, ProgressMode,
    ProgressSource,
};
use serde::{Deserialize, Serialize};

/// Default time of the first event without a timestamp (2024-01-01T00:00:00Z).
const DEFAULT_START_MS: i64 = 1_704_067_200_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SampleGoal {
    pub goal_id: String,
    pub kind: Option<String>,
    pub stat_code: Option<String>,
    pub target: Option<i64>,
    pub progress_mode: Option<SampleMode>,
    pub daily: Option<bool>,
    pub params: Option<serde_json::Value>,
    #[serde(default)]
    pub state: SampleState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleMode {
    Absolute,
    Relative,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SampleStatus {
    #[default]
    NotStarted,
    InProgress,
    Completed,
    Claimed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SampleSource {
    Stored,
    StatValue,
    EventCount,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct SampleState {
    pub progress: i64,
    pub status: SampleStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<i64>,
    /// The plugin's own bytes, base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleEventKind {
    Login,
    #[default]
    Statistic,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SampleEvent {
    pub id: Option<String>,
    #[serde(default)]
    pub kind: SampleEventKind,
    pub stat_code: Option<String>,
    pub value: Option<f64>,
    pub increment: Option<f64>,
    pub sequence: Option<i64>,
    pub timestamp_ms: Option<i64>,
    pub timestamp: Option<String>,
}

/// One goal after an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GoalResult {
    pub goal_id: String,
    /// Whether the plugin returned an update for the goal (otherwise the state shown is the one given).
    pub changed: bool,
    #[serde(flatten)]
    pub state: SampleState,
    /// How the host re-derives progress on reads, when the goal changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SampleSource>,
    /// The plugin refused the goal's params (`validate-params`); the goal was left out of the evaluation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params_error: Option<String>,
}

/// A failed evaluate call: its error kind (`trap`, `out_of_fuel`, `out_of_memory`, `bad_output`, `rejected`...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub kind: String,
    pub message: String,
}

/// The outcome of one evaluation of sample goals.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub results: Vec<GoalResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
}

/// A goal ready to evaluate.
#[derive(Debug, Clone)]
pub struct PreparedGoal {
    pub goal_id: String,
    pub spec: GoalSpec,
    pub state: GoalState,
}

/// The plugin's view of a sample goal. `configured` supplies what the sample leaves out.
pub fn prepare_goal(goal: &SampleGoal, configured: Option<&GoalSpec>) -> Result<PreparedGoal, String> {
    let id = &goal.goal_id;
    let missing = |field: &str| format!("goal '{id}': {field} is required (the goal is not configured)");
    let spec = GoalSpec {
        goal_id: id.clone(),
        kind: match (&goal.kind, configured) {
            (Some(kind), _) => kind.clone(),
            (None, Some(spec)) => spec.kind.clone(),
            (None, None) => return Err(missing("kind")),
        },
        stat_code: match (&goal.stat_code, configured) {
            (Some(code), _) => code.clone(),
            (None, Some(spec)) => spec.stat_code.clone(),
            (None, None) => return Err(missing("statCode")),
        },
        target: goal.target.or(configured.map(|spec| spec.target)).unwrap_or(1),
        progress_mode: match (goal.progress_mode, configured) {
            (Some(SampleMode::Relative), _) => ProgressMode::Relative,
            (Some(SampleMode::Absolute), _) => ProgressMode::Absolute,
            (None, Some(spec)) => spec.progress_mode,
            (None, None) => ProgressMode::Absolute,
        },
        daily: goal.daily.or(configured.map(|spec| spec.daily)).unwrap_or(false),
        params: match (&goal.params, configured) {
            (Some(params), _) => params.to_string(),
            (None, Some(spec)) => spec.params.clone(),
            (None, None) => "{}".to_owned(),
        },
    };
    let state = to_state(&goal.state).map_err(|err| format!("goal '{id}': {err}"))?;
    Ok(PreparedGoal { goal_id: id.clone(), spec, state })
}

fn to_state(state: &SampleState) -> Result<GoalState, String> {
    let blob = match &state.state {
        Some(text) => Some(BASE64.decode(text).map_err(|err| format!("state is not base64: {err}"))?),
        None => None,
    };
    Ok(GoalState {
        progress: state.progress,
        status: match state.status {
            SampleStatus::NotStarted => GoalStatus::NotStarted,
            SampleStatus::InProgress => GoalStatus::InProgress,
            SampleStatus::Completed => GoalStatus::Completed,
            SampleStatus::Claimed => GoalStatus::Claimed,
        },
        completed_at_ms: state.completed_at_ms,
        baseline: state.baseline,
        state: blob,
    })
}

fn from_state(state: &GoalState) -> SampleState {
    SampleState {
        progress: state.progress,
        status: match state.status {
            GoalStatus::NotStarted => SampleStatus::NotStarted,
            GoalStatus::InProgress => SampleStatus::InProgress,
            GoalStatus::Completed => SampleStatus::Completed,
            GoalStatus::Claimed => SampleStatus::Claimed,
        },
        completed_at_ms: state.completed_at_ms,
        baseline: state.baseline,
        state: state.state.as_ref().map(|blob| BASE64.encode(blob)),
    }
}

/// Numbers events the way the host does: per stat code, continuing from `sequences` (updated), so consecutive
/// steps of one case continue the count. `first_index` places default timestamps after earlier steps' events.
pub fn prepare_events(
    events: &[SampleEvent],
    sequences: &mut HashMap<String, i64>,
    first_index: usize,
) -> Result<Vec<Event>, String> {
    events
        .iter()
        .enumerate()
        .map(|(offset, event)| {
            let index = first_index + offset;
            let stat_code = match (&event.stat_code, event.kind) {
                (Some(code), _) => code.clone(),
                (None, SampleEventKind::Login) => DEFAULT_LOGIN_STAT_CODE.to_owned(),
                (None, SampleEventKind::Statistic) => return Err(format!("event {index}: statCode is required")),
            };
            let timestamp_ms = match (&event.timestamp_ms, &event.timestamp) {
                (Some(ms), _) => *ms,
                (None, Some(text)) => chrono::DateTime::parse_from_rfc3339(text)
                    .map_err(|err| format!("event {index}: timestamp '{text}' is not RFC 3339: {err}"))?
                    .timestamp_millis(),
                (None, None) => DEFAULT_START_MS + 1_000 * index as i64,
            };
            let counter = sequences.entry(stat_code.clone()).or_insert(0);
            *counter = event.sequence.unwrap_or(*counter + 1);
            Ok(Event {
                id: event.id.clone().unwrap_or_else(|| format!("sample-{index}")),
                kind: match event.kind {
                    SampleEventKind::Login => EventKind::Login,
                    SampleEventKind::Statistic => EventKind::Statistic,
                },
                stat_code,
                value: event.value.unwrap_or(0.0),
                increment: event.increment.unwrap_or(1.0),
                sequence: *counter,
                timestamp_ms,
            })
        })
        .collect()
}

/// Checks each goal's params, then evaluates the accepted goals against `events` in one call. Goals come back
/// in order with their new state (or the given one when unchanged or refused). CPU-bound: call it where blocking
/// is fine.
pub fn evaluate(plugin: &LoadedPlugin, user_id: &str, goals: &[PreparedGoal], events: Vec<Event>) -> Outcome {
    let mut results: Vec<GoalResult> = goals
        .iter()
        .map(|goal| GoalResult {
            goal_id: goal.goal_id.clone(),
            changed: false,
            state: from_state(&goal.state),
            source: None,
            params_error: None,
        })
        .collect();
    let mut evaluated = Vec::new();
    for (index, goal) in goals.iter().enumerate() {
        match plugin.validate_params(&goal.spec) {
            Ok(_) => evaluated.push(index),
            Err(err) => results[index].params_error = Some(err.to_string()),
        }
    }
    let request = EvaluationRequest {
        user_id: user_id.to_owned(),
        events,
        goals: evaluated
            .iter()
            .map(|&i| GoalInput { spec: goals[i].spec.clone().into(), state: goals[i].state.clone() })
            .collect(),
    };
    let error = match plugin.evaluate(&request) {
        Ok(updates) => {
            for update in updates {
                let Some(&index) = evaluated.get(update.goal_index as usize) else { continue };
                let state = GoalState {
                    progress: update.progress,
                    status: update.status,
                    completed_at_ms: update.completed_at_ms,
                    baseline: update.baseline,
                    state: update.state.clone(),
                };
                let result = &mut results[index];
                result.changed = true;
                result.state = from_state(&state);
                result.source = Some(match update.source {
                    ProgressSource::Stored => SampleSource::Stored,
                    ProgressSource::StatValue => SampleSource::StatValue,
                    ProgressSource::EventCount => SampleSource::EventCount,
                });
            }
            None
        }
        Err(err) => Some(Failure { kind: err.kind().to_owned(), message: err.to_string() }),
    };
    Outcome { results, error }
}

/// The goals of `goals` with the states an outcome left them in (for the next step of a case).
pub fn carry_over(goals: &[PreparedGoal], outcome: &Outcome) -> Result<Vec<PreparedGoal>, String> {
    goals
        .iter()
        .zip(&outcome.results)
        .map(|(goal, result)| Ok(PreparedGoal { state: to_state(&result.state)?, ..goal.clone() }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_get_defaults_and_running_sequences() {
        let events: Vec<SampleEvent> = serde_json::from_str(
            r#"[{"kind": "login"}, {"statCode": "kills", "value": 3},
                {"kind": "login", "timestamp": "2024-02-01T00:00:00Z"}]"#,
        )
        .unwrap();
        let mut sequences = HashMap::from([("login".to_owned(), 4)]);
        let events = prepare_events(&events, &mut sequences, 0).unwrap();
        assert_eq!((events[0].stat_code.as_str(), events[0].sequence, events[0].increment), ("login", 5, 1.0));
        assert_eq!((events[1].sequence, events[1].value), (1, 3.0));
        assert_eq!(events[1].timestamp_ms, DEFAULT_START_MS + 1_000);
        assert_eq!(events[2].sequence, 6);
        assert_eq!(events[2].timestamp_ms, 1_706_745_600_000);
        let missing: Vec<SampleEvent> = serde_json::from_str(r#"[{"kind": "statistic"}]"#).unwrap();
        assert!(prepare_events(&missing, &mut sequences, 0).unwrap_err().contains("statCode"));
    }

    #[test]
    fn goals_take_what_they_leave_out_from_the_configuration() {
        let configured = GoalSpec {
            goal_id: "g".into(),
            kind: "increment".into(),
            stat_code: "kills".into(),
            target: 10,
            progress_mode: ProgressMode::Relative,
            daily: true,
            params: "{}".into(),
        };
        let sample: SampleGoal = serde_json::from_str(r#"{"goalId": "g", "target": 3}"#).unwrap();
        let prepared = prepare_goal(&sample, Some(&configured)).unwrap();
        assert_eq!(prepared.spec, GoalSpec { target: 3, ..configured });
        assert!(prepare_goal(&sample, None).unwrap_err().contains("kind is required"));
        let bad_state: SampleGoal =
            serde_json::from_str(r#"{"goalId": "g", "kind": "x", "statCode": "s", "state": {"state": "%%"}}"#).unwrap();
        assert!(prepare_goal(&bad_state, None).unwrap_err().contains("base64"));
    }
}
