//! Test guest for the plugin lifecycle: a later release of the `trap` plugin (it describes itself as trap 0.5.0)
//! whose `validate-params` refuses what trap 0.1.0 refuses ("bad") and also any params mentioning "days". Goals
//! configured against trap 0.1.0 with a `days` param are thus refused by this release, which is what upload and
//! activation checks must catch. `evaluate` returns no updates.
// no_std in the guest (see `export_plugin!`); native builds (workspace tests, clippy) link std.
#![cfg_attr(target_family = "wasm", no_std)]

extern crate alloc;

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use challenge_plugin_sdk::{EvaluationRequest, GoalSpec, GoalUpdate, Guest, PluginInfo, export_plugin, plugin_info};

struct TrapStrict;

impl Guest for TrapStrict {
    fn describe() -> PluginInfo {
        plugin_info("trap", "0.5.0", "A stricter trap: refuses params mentioning days.", &["trap"], "{}")
    }

    fn validate_params(goal: GoalSpec<'_>) -> Result<Vec<String>, String> {
        if goal.params.contains("bad") || goal.params.contains("days") {
            Err("this release no longer accepts 'days' (or anything bad)".to_string())
        } else {
            Ok(Vec::new())
        }
    }

    fn evaluate(_: EvaluationRequest<'_>) -> Result<Vec<GoalUpdate>, String> {
        Ok(Vec::new())
    }
}

export_plugin!(TrapStrict);
