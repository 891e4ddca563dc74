//! Lenient first pass over `challenges.json`: every field is an optional JSON value, so a wrong type or a bad
//! enum value in one goal becomes a located problem in the validator instead of aborting the whole parse.
//! Unknown keys are ignored, as the reference does; a `null` reads as absent.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawConfig {
    pub challenges: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawChallenge {
    pub challenge_id: Option<Value>,
    pub name: Option<Value>,
    pub description: Option<Value>,
    pub goals: Option<Value>,
    pub rotation: Option<Value>,
    pub pool_size: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawGoal {
    pub goal_id: Option<Value>,
    pub name: Option<Value>,
    pub description: Option<Value>,
    #[serde(rename = "type")]
    pub kind: Option<Value>,
    pub event_source: Option<Value>,
    pub daily: Option<Value>,
    pub default_assigned: Option<Value>,
    pub requirement: Option<Value>,
    pub reward: Option<Value>,
    pub prerequisites: Option<Value>,
    pub rotation: Option<Value>,
    pub rule: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawRequirement {
    pub stat_code: Option<Value>,
    pub operator: Option<Value>,
    pub target_value: Option<Value>,
    pub progress_mode: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawReward {
    #[serde(rename = "type")]
    pub reward_type: Option<Value>,
    pub reward_id: Option<Value>,
    pub quantity: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawRotation {
    pub enabled: Option<Value>,
    #[serde(rename = "type")]
    pub rotation_type: Option<Value>,
    pub schedule: Option<Value>,
    pub cron: Option<Value>,
    pub duration: Option<Value>,
    pub start_time: Option<Value>,
    pub time_zone: Option<Value>,
    pub auto_assign: Option<Value>,
    pub on_expiry: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawOnExpiry {
    pub reset_progress: Option<Value>,
    pub allow_reselection: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawRule {
    pub plugin: Option<Value>,
    pub version: Option<Value>,
    pub params: Option<Value>,
}

/// Reads a JSON object into one of the raw structs. `None` if the value is not an object; any object succeeds
/// because every field is an optional [`Value`].
pub(crate) fn from_object<'de, T: Deserialize<'de>>(value: &'de Value) -> Option<T> {
    if value.is_object() { T::deserialize(value).ok() } else { None }
}

/// Name of a JSON value's type, for messages.
pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
