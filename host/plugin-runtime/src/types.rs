//! The host's view of what goes into and comes out of a rule plugin. These are plain owned types; the runtime packs
//! them into the WIT's compact `packed-request` form (crate `challenge-plugin-wire`) for each call.

use std::sync::Arc;

use challenge_plugin_wire as wire;

pub use wire::{EventKind, GoalStatus, GoalUpdate, ProgressMode, ProgressSource};

use crate::bindings::exports::challenge::rules::rules as wit;

/// One player event, already routed to a plugin's goals by stat code.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub kind: EventKind,
    pub stat_code: String,
    /// Latest statistic value (0 for logins).
    pub value: f64,
    /// The producer's increment (1 for logins).
    pub increment: f64,
    /// Events seen for this (user, stat code), this one included; maintained by the host.
    pub sequence: i64,
    /// When the event happened, in milliseconds since the Unix epoch (UTC).
    pub timestamp_ms: i64,
}

/// A goal as configured. `kind` is "absolute", "increment" or "daily" for the built-in rules; plugins may define
/// their own kinds and read their settings from `params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoalSpec {
    pub goal_id: String,
    pub kind: String,
    pub stat_code: String,
    pub target: i64,
    pub progress_mode: ProgressMode,
    pub daily: bool,
    /// JSON text from the goal's configuration ("{}" when absent).
    pub params: String,
}

/// A goal's stored state for one player.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoalState {
    pub progress: i64,
    pub status: GoalStatus,
    pub completed_at_ms: Option<i64>,
    pub baseline: Option<i64>,
    /// The plugin's own opaque bytes, as last returned by it.
    pub state: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoalInput {
    /// Shared: the host builds one spec per configured goal and passes it to every call.
    pub spec: Arc<GoalSpec>,
    pub state: GoalState,
}

/// One player's events, in order, against that player's goals.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationRequest {
    pub user_id: String,
    pub events: Vec<Event>,
    pub goals: Vec<GoalInput>,
}

/// What a plugin says about itself (`describe`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    /// Goal kinds this plugin evaluates.
    pub kinds: Vec<String>,
    /// JSON schema (as text) of the `params` its kinds accept.
    pub params_schema: String,
}

impl Event {
    pub(crate) fn view(&self) -> wire::Event<'_> {
        wire::Event {
            id: &self.id,
            kind: self.kind,
            stat_code: &self.stat_code,
            value: self.value,
            increment: self.increment,
            sequence: self.sequence,
            timestamp_ms: self.timestamp_ms,
        }
    }
}

impl GoalInput {
    pub(crate) fn view(&self) -> wire::GoalInput<'_> {
        let (spec, state) = (&self.spec, &self.state);
        wire::GoalInput {
            spec: wire::GoalSpec {
                goal_id: &spec.goal_id,
                kind: &spec.kind,
                stat_code: &spec.stat_code,
                target: spec.target,
                progress_mode: spec.progress_mode,
                daily: spec.daily,
                params: &spec.params,
            },
            state: wire::GoalState {
                progress: state.progress,
                status: state.status,
                completed_at_ms: state.completed_at_ms,
                baseline: state.baseline,
                state: state.state.as_deref(),
            },
        }
    }
}

impl GoalSpec {
    /// The WIT record `validate-params` takes.
    pub(crate) fn to_wit(&self) -> wit::GoalSpec {
        wit::GoalSpec {
            goal_id: self.goal_id.clone(),
            kind: self.kind.clone(),
            stat_code: self.stat_code.clone(),
            target: self.target,
            progress_mode: match self.progress_mode {
                ProgressMode::Absolute => wit::ProgressMode::Absolute,
                ProgressMode::Relative => wit::ProgressMode::Relative,
            },
            daily: self.daily,
            params: self.params.clone(),
        }
    }
}

impl From<wit::PluginInfo> for PluginInfo {
    fn from(info: wit::PluginInfo) -> Self {
        PluginInfo {
            name: info.name,
            version: info.version,
            description: info.description,
            kinds: info.kinds,
            params_schema: info.params_schema,
        }
    }
}
