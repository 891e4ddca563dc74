//! Hostile test guest: returns one malformed update chosen by the user id; otherwise no updates.
//! - "index": goal index past the request's goals
//! - "duplicate": two updates for goal 0
//! - "claimed": sets status claimed (only the host claims)
//! - "no-time": status completed without a completion time
//! - "negative": progress -5 (the host clamps this to 0; not an error)
//! - "touch-claimed": updates goal 0, which the request marks claimed
//!
//! And, bypassing the SDK's encoder, answers that are not valid packed updates:
//! - "truncated": a header announcing more updates than follow
//! - "bad-status": a status code outside `goal-status`
//! - "bad-span": a state span past the end of the data
//! - "bad-flags": unknown bits in the `present` byte
// no_std in the guest (see `export_plugin!`); native builds (workspace tests, clippy) link std.
#![cfg_attr(target_family = "wasm", no_std)]

extern crate alloc;

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use challenge_plugin_sdk::{
    EvaluationRequest, GoalSpec, GoalStatus, GoalUpdate, Guest, PluginInfo, ProgressSource, decode_request,
    encode_updates, evaluate_packed, export_plugin, plugin_info,
};

struct BadOutput;

const OK: GoalUpdate = GoalUpdate {
    goal_index: 0,
    progress: 1,
    status: GoalStatus::InProgress,
    completed_at_ms: None,
    baseline: None,
    state: None,
    source: ProgressSource::Stored,
};

/// Offsets in `packed-updates` (see wit/rules.wit): a 4-byte header, then 40-byte updates.
const FIRST_UPDATE: usize = 4;

impl Guest for BadOutput {
    fn describe() -> PluginInfo {
        plugin_info("bad-output", "0.1.0", "Returns malformed updates.", &["bad"], "{}")
    }

    fn validate_params(_: GoalSpec<'_>) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }

    fn evaluate(request: EvaluationRequest<'_>) -> Result<Vec<GoalUpdate>, String> {
        Ok(match request.user_id {
            "index" => alloc::vec![GoalUpdate { goal_index: request.goals.len() as u32, ..OK }],
            "duplicate" => alloc::vec![OK, OK],
            "claimed" => alloc::vec![GoalUpdate { status: GoalStatus::Claimed, ..OK }],
            "no-time" => alloc::vec![GoalUpdate { status: GoalStatus::Completed, ..OK }],
            "negative" => alloc::vec![GoalUpdate { progress: -5, ..OK }],
            "touch-claimed" => alloc::vec![OK],
            _ => Vec::new(),
        })
    }

    fn evaluate_packed(request: &[u8]) -> Result<Vec<u8>, String> {
        let user_id = decode_request(request).map_err(|e| e.to_string())?.user_id;
        let mut packed = Vec::new();
        let with_state = GoalUpdate { state: Some(alloc::vec![1, 2, 3]), ..OK };
        encode_updates(&[with_state], &mut packed).map_err(|e| e.to_string())?;
        match user_id {
            "truncated" => packed[0] = 2,
            "bad-status" => packed[FIRST_UPDATE + 36] = 9,
            "bad-span" => packed[FIRST_UPDATE + 28] = 200,
            "bad-flags" => packed[FIRST_UPDATE + 38] |= 0x80,
            _ => return evaluate_packed::<Self>(request),
        }
        Ok(packed)
    }
}

export_plugin!(BadOutput);
