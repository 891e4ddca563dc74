//! Weighted sum: a goal over several stats, e.g. params `{"weights": {"kills": 1.0, "assists": 0.5}}`.
//!
//! The goal listens to every stat code in `weights` (validate-params returns those other than its own). It keeps the
//! latest value of each in its state blob, one little-endian f64 per weight in the codes' sorted order; a statistic
//! event sets its stat's value (negative or NaN values are skipped as the built-in rules do) and a login event adds
//! its increment. Progress is `floor(sum of weight * value)`, never below 0; completion is sticky.
// no_std in the guest (see `export_plugin!`); native builds (workspace tests, clippy) link std.
#![cfg_attr(target_family = "wasm", no_std)]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use challenge_plugin_sdk::{
    EvaluationRequest, EventKind, GoalSpec, GoalState, GoalStatus, GoalUpdate, Guest, PluginInfo, ProgressSource,
    export_plugin, parse_params, plugin_info, settle, stat_value_as_progress, update_if_changed,
};

const KIND: &str = "weighted-sum";
/// Keeps the state blob within the host's default 4096-byte limit.
const MAX_WEIGHTS: usize = 64;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    weights: BTreeMap<String, f64>,
}

fn params(spec: &GoalSpec<'_>) -> Result<Params, String> {
    if spec.kind != KIND {
        return Err(alloc::format!("unsupported kind '{}' (this plugin evaluates '{KIND}')", spec.kind));
    }
    let params: Params = parse_params(spec.params)?;
    if params.weights.is_empty() || params.weights.len() > MAX_WEIGHTS {
        return Err(alloc::format!("weights must name between 1 and {MAX_WEIGHTS} stat codes"));
    }
    if let Some((code, _)) = params.weights.iter().find(|(code, w)| code.is_empty() || !w.is_finite()) {
        return Err(alloc::format!("weight for '{code}' must be a finite number with a non-empty stat code"));
    }
    Ok(params)
}

/// Latest values in `weights` order; a blob of the wrong size (weights changed) starts from zero.
fn decode_values(blob: Option<&[u8]>, count: usize) -> Vec<f64> {
    match blob {
        Some(bytes) if bytes.len() == count * 8 => {
            bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect()
        }
        _ => alloc::vec![0.0; count],
    }
}

fn encode_values(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// `floor(sum)` clamped to `0..=i64::MAX` (truncation equals floor on that range).
fn weighted_progress(weights: &BTreeMap<String, f64>, values: &[f64]) -> i64 {
    let sum: f64 = weights.values().zip(values).map(|(w, v)| w * v).sum();
    stat_value_as_progress(sum).max(0)
}

struct CompositeRules;

impl Guest for CompositeRules {
    fn describe() -> PluginInfo {
        plugin_info(
            "composite",
            "1.0.0",
            "Weighted sum over several stats: progress = floor(sum of weight * latest value).",
            &[KIND],
            r#"{"type":"object","properties":{"weights":{"type":"object","minProperties":1,"maxProperties":64,"additionalProperties":{"type":"number"}}},"required":["weights"],"additionalProperties":false}"#,
        )
    }

    fn validate_params(goal: GoalSpec<'_>) -> Result<Vec<String>, String> {
        let params = params(&goal)?;
        Ok(params.weights.into_keys().filter(|code| code != goal.stat_code).collect())
    }

    fn evaluate(request: EvaluationRequest<'_>) -> Result<Vec<GoalUpdate>, String> {
        let mut updates = Vec::new();
        for (index, input) in request.goals.iter().enumerate() {
            let weights =
                params(&input.spec).map_err(|e| alloc::format!("goal '{}': {e}", input.spec.goal_id))?.weights;
            let old = &input.state;
            if old.status == GoalStatus::Claimed {
                continue;
            }
            let mut values = decode_values(old.state, weights.len());
            let mut new = GoalState { state: None, ..*old };
            let mut touched = false;
            for event in &request.events {
                let Some(slot) = weights.keys().position(|code| *code == event.stat_code) else { continue };
                match event.kind {
                    EventKind::Statistic if event.value >= 0.0 => values[slot] = event.value,
                    EventKind::Statistic => continue,
                    EventKind::Login => values[slot] += event.increment,
                }
                touched = true;
                new.progress = weighted_progress(&weights, &values);
                let reached = new.progress >= input.spec.target;
                settle(&mut new, reached, event.timestamp_ms);
            }
            if !touched {
                continue;
            }
            let encoded = encode_values(&values);
            new.state = Some(&encoded);
            updates.extend(update_if_changed(index, old, &new, ProgressSource::Stored));
        }
        Ok(updates)
    }
}

export_plugin!(CompositeRules);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_the_floored_weighted_sum() {
        let weights: BTreeMap<String, f64> = [("assists".into(), 0.5), ("kills".into(), 1.0)].into_iter().collect();
        assert_eq!(weighted_progress(&weights, &[3.0, 2.0]), 3);
        assert_eq!(weighted_progress(&weights, &[0.0, -5.0]), 0);
        let values = [1.5, 2.0];
        assert_eq!(decode_values(Some(&encode_values(&values)), 2), values);
        assert_eq!(decode_values(Some(&[0; 3]), 2), [0.0, 0.0]);
    }
}
