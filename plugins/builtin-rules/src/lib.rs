//! The built-in rules as a plugin: a thin mapping from the WIT types onto `challenge-rules-logic`, which holds the
//! semantics (and is what the host benchmarks natively).
// no_std in the guest (see `export_plugin!`); native builds (workspace tests, clippy) link std.
#![cfg_attr(target_family = "wasm", no_std)]

extern crate alloc;

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use challenge_plugin_sdk::{
    EvaluationRequest, Event, EventKind, GoalSpec, GoalState, GoalUpdate, Guest, PluginInfo, ProgressMode,
    ProgressSource, export_plugin, from_logic_status, parse_params, plugin_info, to_logic_status,
};
use challenge_rules_logic::{self as logic, Rule};

struct BuiltinRules;

/// The built-in kinds take no parameters.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

impl Guest for BuiltinRules {
    fn describe() -> PluginInfo {
        plugin_info(
            "builtin-rules",
            "1.0.0",
            "Reference goal rules: absolute (stat value, absolute or relative), increment (optionally once per UTC \
             day) and daily.",
            &logic::KINDS,
            r#"{"type":"object","additionalProperties":false}"#,
        )
    }

    fn validate_params(goal: GoalSpec) -> Result<Vec<String>, String> {
        Rule::validate(&goal.kind, logic_mode(goal.progress_mode), goal.daily, goal.target)
            .map_err(|e| e.to_string())?;
        parse_params::<NoParams>(&goal.params)?;
        Ok(Vec::new())
    }

    fn evaluate(request: EvaluationRequest) -> Result<Vec<GoalUpdate>, String> {
        let events: Vec<logic::Event<'_>> = request.events.iter().map(logic_event).collect();
        let mut goals = Vec::with_capacity(request.goals.len());
        for input in &request.goals {
            let spec = &input.spec;
            let rule = Rule::from_spec(&spec.kind, logic_mode(spec.progress_mode), spec.daily)
                .map_err(|e| alloc::format!("goal '{}': {e}", spec.goal_id))?;
            goals.push(logic::Goal {
                stat_code: &spec.stat_code,
                target: spec.target,
                rule,
                state: logic_state(&input.state),
            });
        }
        let mut updates = Vec::new();
        logic::evaluate(&goals, &events, &mut updates);
        Ok(updates.into_iter().map(wit_update).collect())
    }
}

export_plugin!(BuiltinRules);

fn logic_mode(mode: ProgressMode) -> logic::ProgressMode {
    match mode {
        ProgressMode::Absolute => logic::ProgressMode::Absolute,
        ProgressMode::Relative => logic::ProgressMode::Relative,
    }
}

fn logic_event(event: &Event) -> logic::Event<'_> {
    logic::Event {
        kind: match event.kind {
            EventKind::Login => logic::EventKind::Login,
            EventKind::Statistic => logic::EventKind::Statistic,
        },
        stat_code: &event.stat_code,
        value: event.value,
        increment: event.increment,
        sequence: event.sequence,
        timestamp_ms: event.timestamp_ms,
    }
}

fn logic_state(state: &GoalState) -> logic::GoalState {
    logic::GoalState {
        progress: state.progress,
        status: to_logic_status(state.status),
        completed_at_ms: state.completed_at_ms,
        baseline: state.baseline,
        last_counted_day: logic::decode_day_state(state.state.as_deref()),
    }
}

fn wit_update(update: logic::Update) -> GoalUpdate {
    let state = update.state;
    GoalUpdate {
        goal_index: update.goal_index,
        progress: state.progress,
        status: from_logic_status(state.status),
        completed_at_ms: state.completed_at_ms,
        baseline: state.baseline,
        state: state.last_counted_day.map(|day| logic::encode_day_state(day).to_vec()),
        source: match update.source {
            logic::Source::Stored => ProgressSource::Stored,
            logic::Source::StatValue => ProgressSource::StatValue,
            logic::Source::EventCount => ProgressSource::EventCount,
        },
    }
}
