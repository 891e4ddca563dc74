//! Hostile test guest: `evaluate` never returns unless the user is "good". The host's fuel limit must stop it.
// no_std in the guest (see `export_plugin!`); native builds (workspace tests, clippy) link std.
#![cfg_attr(target_family = "wasm", no_std)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use challenge_plugin_sdk::{EvaluationRequest, GoalSpec, GoalUpdate, Guest, PluginInfo, export_plugin, plugin_info};

struct SpinForever;

impl Guest for SpinForever {
    fn describe() -> PluginInfo {
        plugin_info("spin-forever", "0.1.0", "Loops forever in evaluate.", &["spin"], "{}")
    }

    fn validate_params(_: GoalSpec<'_>) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }

    fn evaluate(request: EvaluationRequest<'_>) -> Result<Vec<GoalUpdate>, String> {
        if request.user_id != "good" {
            let mut counter = 0u64;
            loop {
                counter = core::hint::black_box(counter.wrapping_add(1));
            }
        }
        Ok(Vec::new())
    }
}

export_plugin!(SpinForever);
