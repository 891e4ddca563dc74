//! Hostile test guest: for user "many" returns 100,000 updates, for user "big-state" one update whose state blob is
//! 1 MiB; otherwise no updates.
// no_std in the guest (see `export_plugin!`); native builds (workspace tests, clippy) link std.
#![cfg_attr(target_family = "wasm", no_std)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use challenge_plugin_sdk::{
    EvaluationRequest, GoalSpec, GoalStatus, GoalUpdate, Guest, PluginInfo, ProgressSource, export_plugin, plugin_info,
};

struct HugeOutput;

fn update(state: Option<Vec<u8>>) -> GoalUpdate {
    GoalUpdate {
        goal_index: 0,
        progress: 1,
        status: GoalStatus::InProgress,
        completed_at_ms: None,
        baseline: None,
        state,
        source: ProgressSource::Stored,
    }
}

impl Guest for HugeOutput {
    fn describe() -> PluginInfo {
        plugin_info("huge-output", "0.1.0", "Returns far too much.", &["huge"], "{}")
    }

    fn validate_params(_: GoalSpec<'_>) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }

    fn evaluate(request: EvaluationRequest<'_>) -> Result<Vec<GoalUpdate>, String> {
        Ok(match request.user_id {
            "many" => (0..100_000).map(|_| update(None)).collect(),
            "big-state" => alloc::vec![update(Some(alloc::vec![1u8; 1 << 20]))],
            _ => Vec::new(),
        })
    }
}

export_plugin!(HugeOutput);
