//! Hostile test guest: `evaluate` grows its linear memory 1 MiB at a time until the host refuses (unless the user is
//! "good"). It grows memory directly rather than filling allocations, so the memory limit, not fuel, stops it.
// no_std in the guest (see `export_plugin!`); native builds (workspace tests, clippy) link std.
#![cfg_attr(target_family = "wasm", no_std)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use challenge_plugin_sdk::{EvaluationRequest, GoalSpec, GoalUpdate, Guest, PluginInfo, export_plugin, plugin_info};

struct MemoryBomb;

impl Guest for MemoryBomb {
    fn describe() -> PluginInfo {
        plugin_info("memory-bomb", "0.1.0", "Allocates until refused.", &["bomb"], "{}")
    }

    fn validate_params(_: GoalSpec<'_>) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }

    fn evaluate(request: EvaluationRequest<'_>) -> Result<Vec<GoalUpdate>, String> {
        if request.user_id == "good" {
            return Ok(Vec::new());
        }
        while grow_one_mib() {}
        // A host that merely fails the growth (instead of trapping) gets an error back.
        Err("memory growth refused".into())
    }
}

export_plugin!(MemoryBomb);

#[cfg(target_arch = "wasm32")]
fn grow_one_mib() -> bool {
    core::arch::wasm32::memory_grow(0, 16) != usize::MAX
}

/// Native builds (tests of the workspace) have no linear memory to grow.
#[cfg(not(target_arch = "wasm32"))]
fn grow_one_mib() -> bool {
    false
}
