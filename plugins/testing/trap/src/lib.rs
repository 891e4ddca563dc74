//! Hostile test guest: `evaluate` panics (a trap in Wasm) for user "trap", returns an error for user "reject",
//! floods the host log for user "chatty" (100 lines of 2000 bytes), and otherwise returns no updates.
// no_std in the guest (see `export_plugin!`); native builds (workspace tests, clippy) link std.
#![cfg_attr(target_family = "wasm", no_std)]

extern crate alloc;

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use challenge_plugin_sdk::{
    EvaluationRequest, GoalSpec, GoalUpdate, Guest, Level, PluginInfo, export_plugin, log, plugin_info,
};

struct Trap;

impl Guest for Trap {
    fn describe() -> PluginInfo {
        plugin_info("trap", "0.1.0", "Traps in evaluate.", &["trap"], "{}")
    }

    fn validate_params(goal: GoalSpec<'_>) -> Result<Vec<String>, String> {
        if goal.params.contains("bad") { Err("params are bad".to_string()) } else { Ok(Vec::new()) }
    }

    fn evaluate(request: EvaluationRequest<'_>) -> Result<Vec<GoalUpdate>, String> {
        match request.user_id {
            "trap" => panic!("deliberate trap"),
            "reject" => Err("deliberately rejected".to_string()),
            "chatty" => {
                let line = "x".repeat(2000);
                for _ in 0..100 {
                    log(Level::Info, &line);
                }
                Ok(Vec::new())
            }
            _ => Ok(Vec::new()),
        }
    }
}

export_plugin!(Trap);
