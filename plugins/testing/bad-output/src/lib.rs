//! Hostile test guest: returns one malformed update chosen by the user id; otherwise no updates.
//! - "index": goal index past the request's goals
//! - "duplicate": two updates for goal 0
//! - "claimed": sets status claimed (only the host claims)
//! - "no-time": status completed without a completion time
//! - "negative": progress -5 (the host clamps this to 0; not an error)
//! - "touch-claimed": updates goal 0, which the request marks claimed
// no_std in the guest (see `export_plugin!`); native builds (workspace tests, clippy) link std.
#![cfg_attr(target_family = "wasm", no_std)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use challenge_plugin_sdk::{
    EvaluationRequest, GoalSpec, GoalStatus, GoalUpdate, Guest, PluginInfo, ProgressSource, export_plugin, plugin_info,
};

struct BadOutput;

impl Guest for BadOutput {
    fn describe() -> PluginInfo {
        plugin_info("bad-output", "0.1.0", "Returns malformed updates.", &["bad"], "{}")
    }

    fn validate_params(_: GoalSpec) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }

    fn evaluate(request: EvaluationRequest) -> Result<Vec<GoalUpdate>, String> {
        let ok = GoalUpdate {
            goal_index: 0,
            progress: 1,
            status: GoalStatus::InProgress,
            completed_at_ms: None,
            baseline: None,
            state: None,
            source: ProgressSource::Stored,
        };
        Ok(match request.user_id.as_str() {
            "index" => alloc::vec![GoalUpdate { goal_index: request.goals.len() as u32, ..ok }],
            "duplicate" => alloc::vec![ok.clone(), ok],
            "claimed" => alloc::vec![GoalUpdate { status: GoalStatus::Claimed, ..ok }],
            "no-time" => alloc::vec![GoalUpdate { status: GoalStatus::Completed, ..ok }],
            "negative" => alloc::vec![GoalUpdate { progress: -5, ..ok }],
            "touch-claimed" => alloc::vec![ok],
            _ => Vec::new(),
        })
    }
}

export_plugin!(BadOutput);
