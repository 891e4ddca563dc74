//! The built-in rules as a plugin: a thin mapping from the WIT types onto `challenge-rules-logic`, which holds the
//! semantics (and is what the host benchmarks natively).
// no_std in the guest (see `export_plugin!`); native builds (workspace tests, clippy) link std.
#![cfg_attr(target_family = "wasm", no_std)]

extern crate alloc;

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use challenge_plugin_sdk::{
    EvaluationRequest, GoalSpec, GoalState, GoalUpdate, Guest, PluginInfo, export_plugin, parse_params, plugin_info,
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

    fn validate_params(goal: GoalSpec<'_>) -> Result<Vec<String>, String> {
        Rule::validate(goal.kind, goal.progress_mode, goal.daily, goal.target).map_err(|e| e.to_string())?;
        parse_params::<NoParams>(goal.params)?;
        Ok(Vec::new())
    }

    fn evaluate(request: EvaluationRequest<'_>) -> Result<Vec<GoalUpdate>, String> {
        let mut goals = Vec::with_capacity(request.goals.len());
        for input in &request.goals {
            let spec = &input.spec;
            let rule = Rule::from_spec(spec.kind, spec.progress_mode, spec.daily)
                .map_err(|e| alloc::format!("goal '{}': {e}", spec.goal_id))?;
            goals.push(logic::Goal {
                stat_code: spec.stat_code,
                target: spec.target,
                rule,
                state: logic_state(&input.state),
            });
        }
        let mut updates = Vec::with_capacity(goals.len());
        logic::evaluate(&goals, &request.events, &mut updates);
        Ok(updates.into_iter().map(wit_update).collect())
    }
}

export_plugin!(BuiltinRules);

fn logic_state(state: &GoalState<'_>) -> logic::GoalState {
    logic::GoalState {
        progress: state.progress,
        status: state.status,
        completed_at_ms: state.completed_at_ms,
        baseline: state.baseline,
        last_counted_day: logic::decode_day_state(state.state),
    }
}

fn wit_update(update: logic::Update) -> GoalUpdate {
    let state = update.state;
    GoalUpdate {
        goal_index: update.goal_index,
        progress: state.progress,
        status: state.status,
        completed_at_ms: state.completed_at_ms,
        baseline: state.baseline,
        state: state.last_counted_day.map(|day| logic::encode_day_state(day).to_vec()),
        source: update.source,
    }
}
