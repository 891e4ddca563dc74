//! Login streak: a goal completed by events on `days` consecutive UTC days (params `{"days": N}`).
//!
//! State blob: the last UTC day seen (i64) and the current streak (u32), little-endian. Progress is the current
//! streak; an event on the next day extends it, a missed day restarts it at 1, further events on the same (or an
//! earlier) day change nothing. Once completed the goal is frozen, so a broken streak never un-does a reward.
// no_std in the guest (see `export_plugin!`); native builds (workspace tests, clippy) link std.
#![cfg_attr(target_family = "wasm", no_std)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use challenge_plugin_sdk::{
    EvaluationRequest, GoalSpec, GoalState, GoalStatus, GoalUpdate, Guest, PluginInfo, ProgressSource, events_for,
    export_plugin, parse_params, plugin_info, settle, update_if_changed, utc_day,
};

const KIND: &str = "login-streak";
const MAX_DAYS: u32 = 3660;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    days: u32,
}

fn params(spec: &GoalSpec<'_>) -> Result<Params, String> {
    if spec.kind != KIND {
        return Err(alloc::format!("unsupported kind '{}' (this plugin evaluates '{KIND}')", spec.kind));
    }
    let params: Params = parse_params(spec.params)?;
    if params.days == 0 || params.days > MAX_DAYS {
        return Err(alloc::format!("days must be between 1 and {MAX_DAYS}"));
    }
    Ok(params)
}

/// Last day seen and the streak ending on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Streak {
    last_day: i64,
    length: u32,
}

impl Streak {
    fn decode(blob: Option<&[u8]>) -> Option<Streak> {
        let blob = blob?;
        let day: [u8; 8] = blob.get(..8)?.try_into().ok()?;
        let length: [u8; 4] = blob.get(8..12)?.try_into().ok()?;
        Some(Streak { last_day: i64::from_le_bytes(day), length: u32::from_le_bytes(length) })
    }

    fn encode(self) -> [u8; 12] {
        let mut out = [0; 12];
        out[..8].copy_from_slice(&self.last_day.to_le_bytes());
        out[8..].copy_from_slice(&self.length.to_le_bytes());
        out
    }

    /// The streak after an event on `day`; `None` when the day was already counted.
    fn on_day(current: Option<Streak>, day: i64) -> Option<Streak> {
        match current {
            Some(s) if day <= s.last_day => None,
            Some(s) if day == s.last_day + 1 => Some(Streak { last_day: day, length: s.length.saturating_add(1) }),
            _ => Some(Streak { last_day: day, length: 1 }),
        }
    }
}

struct StreakRules;

impl Guest for StreakRules {
    fn describe() -> PluginInfo {
        plugin_info(
            "streak",
            "1.0.0",
            "Login streak: completed after events on N consecutive UTC days; a missed day restarts the streak.",
            &[KIND],
            r#"{"type":"object","properties":{"days":{"type":"integer","minimum":1,"maximum":3660}},"required":["days"],"additionalProperties":false}"#,
        )
    }

    fn validate_params(goal: GoalSpec<'_>) -> Result<Vec<String>, String> {
        params(&goal).map(|_| Vec::new())
    }

    fn evaluate(request: EvaluationRequest<'_>) -> Result<Vec<GoalUpdate>, String> {
        let mut updates = Vec::new();
        for (index, input) in request.goals.iter().enumerate() {
            let days = params(&input.spec).map_err(|e| alloc::format!("goal '{}': {e}", input.spec.goal_id))?.days;
            let old = &input.state;
            if matches!(old.status, GoalStatus::Completed | GoalStatus::Claimed) {
                continue;
            }
            let mut streak = Streak::decode(old.state);
            let mut new = GoalState { state: None, ..*old };
            for event in events_for(&request.events, input.spec.stat_code) {
                let Some(next) = Streak::on_day(streak, utc_day(event.timestamp_ms)) else { continue };
                streak = Some(next);
                new.progress = i64::from(next.length);
                settle(&mut new, next.length >= days, event.timestamp_ms);
            }
            let encoded = streak.map(Streak::encode);
            new.state = encoded.as_ref().map(|bytes| &bytes[..]);
            updates.extend(update_if_changed(index, old, &new, ProgressSource::Stored));
        }
        Ok(updates)
    }
}

export_plugin!(StreakRules);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_days_extend_and_gaps_restart() {
        let s = Streak::on_day(None, 10).unwrap();
        assert_eq!(s.length, 1);
        assert_eq!(Streak::on_day(Some(s), 10), None);
        let s = Streak::on_day(Some(s), 11).unwrap();
        assert_eq!(s.length, 2);
        assert_eq!(Streak::on_day(Some(s), 13).unwrap().length, 1);
        assert_eq!(Streak::decode(Some(&s.encode())), Some(s));
        assert_eq!(Streak::decode(Some(&[1, 2, 3])), None);
    }
}
