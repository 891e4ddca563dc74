//! The typed, validated configuration. Values of these types only come out of the validator, so their
//! invariants (documented per field) hold everywhere else in the host.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::{Serialize, Serializer};

use super::plugins::BUILTIN_PLUGIN;

/// A configuration string that is not one of the values an enum accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} '{value}' (expected {expected})")]
pub struct UnknownValue {
    /// What was being parsed, for example `goal type`.
    pub what: &'static str,
    pub value: String,
    /// The accepted values, ready to print (`a, b or c`).
    pub expected: String,
}

/// Joins accepted values as `'a', 'b' or 'c'` for messages.
pub(crate) fn one_of(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// A closed set of configuration strings.
pub(crate) trait ConfigEnum: FromStr<Err = UnknownValue> {
    /// The accepted values, ready to print.
    fn expected() -> String;
}

/// Declares a closed set of configuration strings: the enum, its text form, parsing and serialization,
/// all from one table so the three cannot drift apart.
macro_rules! config_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ConfigEnum for $name {
            fn expected() -> String {
                one_of(&[$($text),+])
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownValue {
                        what: $what,
                        value: other.to_owned(),
                        expected: one_of(&[$($text),+]),
                    }),
                }
            }
        }
    };
}

config_enum! {
    /// How a goal's progress evolves (the legacy reference `type`; defaults to absolute).
    GoalKind, "goal type" {
        /// Progress is the latest value of the stat.
        Absolute => "absolute",
        /// Progress counts events.
        Increment => "increment",
        /// Completes once per day.
        Daily => "daily",
    }
}

config_enum! {
    /// Which kind of event moves a goal.
    EventSource, "event source" {
        Login => "login",
        Statistic => "statistic",
    }
}

config_enum! {
    /// Comparison between progress and target; the reference only has `>=`.
    Operator, "operator" {
        Gte => ">=",
    }
}

config_enum! {
    /// Whether progress is the raw stat value or the gain since the goal was assigned (or rotated).
    ProgressMode, "progress mode" {
        Absolute => "absolute",
        Relative => "relative",
    }
}

config_enum! {
    /// What a claim grants.
    RewardType, "reward type" {
        Item => "ITEM",
        Wallet => "WALLET",
    }
}

config_enum! {
    /// Who shares a rotation period.
    RotationType, "rotation type" {
        /// Everyone's period turns over at the same calendar boundary.
        Global => "global",
        /// Each player's period starts when the goal is assigned to them and lasts `duration`.
        PerUser => "per_user",
    }
}

/// When a global rotation turns over.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Schedule {
    Daily,
    Weekly,
    Monthly,
    /// A cron expression, already checked by [`super::rotation::parse_cron`].
    Custom(String),
}

impl Schedule {
    /// The `schedule` text in the configuration.
    pub fn as_str(&self) -> &'static str {
        match self {
            Schedule::Daily => "daily",
            Schedule::Weekly => "weekly",
            Schedule::Monthly => "monthly",
            Schedule::Custom(_) => "custom",
        }
    }

    /// The cron expression of a custom schedule.
    pub fn cron(&self) -> Option<&str> {
        match self {
            Schedule::Custom(expr) => Some(expr),
            _ => None,
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Custom(expr) => write!(f, "custom ({expr})"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// Length of a per-user rotation period; always positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RotationDuration {
    pub(crate) seconds: i64,
}

impl RotationDuration {
    pub const fn seconds(self) -> i64 {
        self.seconds
    }

    pub fn as_time_delta(self) -> TimeDelta {
        TimeDelta::seconds(self.seconds)
    }
}

impl fmt::Display for RotationDuration {
    /// Prints the same notation the configuration uses, largest units first (`36h` prints as `1d12h`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.seconds;
        for (unit, size) in super::rotation::DURATION_UNITS.iter().rev() {
            if rest >= *size {
                write!(f, "{}{unit}", rest / size)?;
                rest %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for RotationDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// What happens to a goal when its rotation period ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OnExpiry {
    /// Progress, status and baseline start over in the new period (default true).
    pub reset_progress: bool,
    /// A claimed goal can be completed and claimed again in the next period (default true).
    pub allow_reselection: bool,
}

impl Default for OnExpiry {
    fn default() -> Self {
        OnExpiry { reset_progress: true, allow_reselection: true }
    }
}

/// An enabled rotation. Disabled rotation blocks are not represented: a goal either rotates or it does not.
///
/// Invariant: `schedule` is set exactly when `rotation_type` is [`RotationType::Global`], `duration` exactly when
/// it is [`RotationType::PerUser`].
#[derive(Debug, Clone, PartialEq)]
pub struct Rotation {
    pub rotation_type: RotationType,
    pub schedule: Option<Schedule>,
    pub duration: Option<RotationDuration>,
    /// No period begins before this instant.
    pub start_time: Option<DateTime<Utc>>,
    /// Calendar boundaries (midnight, Monday, first of month, cron) are computed in this zone (default UTC).
    pub time_zone: Tz,
    /// Assign the goal to players automatically when a period starts.
    pub auto_assign: bool,
    pub on_expiry: OnExpiry,
}

impl Serialize for Rotation {
    /// Serializes back to the configuration form (`enabled`, `type`, `schedule` + `cron`, ...).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Out<'a> {
            enabled: bool,
            #[serde(rename = "type")]
            rotation_type: RotationType,
            #[serde(skip_serializing_if = "Option::is_none")]
            schedule: Option<&'static str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            cron: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            duration: Option<RotationDuration>,
            #[serde(skip_serializing_if = "Option::is_none")]
            start_time: Option<DateTime<Utc>>,
            time_zone: &'static str,
            auto_assign: bool,
            on_expiry: OnExpiry,
        }
        Out {
            enabled: true,
            rotation_type: self.rotation_type,
            schedule: self.schedule.as_ref().map(Schedule::as_str),
            cron: self.schedule.as_ref().and_then(Schedule::cron),
            duration: self.duration,
            start_time: self.start_time,
            time_zone: self.time_zone.name(),
            auto_assign: self.auto_assign,
            on_expiry: self.on_expiry,
        }
        .serialize(serializer)
    }
}

/// The rule plugin a goal names explicitly (`"rule": {...}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleRef {
    pub plugin: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Plugin-specific parameters, passed through untouched (an empty object when omitted).
    pub params: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Requirement {
    /// Never empty; login goals without one use [`super::DEFAULT_LOGIN_STAT_CODE`].
    pub stat_code: String,
    pub operator: Operator,
    /// Always positive.
    pub target_value: i64,
    pub progress_mode: ProgressMode,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reward {
    #[serde(rename = "type")]
    pub reward_type: RewardType,
    /// Item id for ITEM rewards, currency code for WALLET rewards; never empty.
    pub reward_id: String,
    /// Always positive.
    pub quantity: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Goal {
    /// Unique across all challenges, 1 to 100 characters.
    #[serde(rename = "goalId")]
    pub id: String,
    /// The challenge that lists this goal.
    pub challenge_id: String,
    pub name: String,
    pub description: String,
    #[serde(rename = "type")]
    pub kind: GoalKind,
    pub event_source: EventSource,
    /// Only ever true on increment goals.
    pub daily: bool,
    pub default_assigned: bool,
    pub requirement: Requirement,
    pub reward: Reward,
    /// Ids of existing goals (any challenge); never the goal itself, never cyclic.
    pub prerequisites: Vec<String>,
    /// The effective rotation: the goal's own enabled block, else the challenge's (none if either is disabled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
    /// Explicit rule plugin; `None` means [`BUILTIN_PLUGIN`] for the goal's `type`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleRef>,
    /// Stat codes whose events reach this goal: its `statCode` first, then any registered with
    /// [`super::Catalog::with_extra_stat_codes`].
    #[serde(skip)]
    pub listens_to: Vec<String>,
}

impl Goal {
    pub fn stat_code(&self) -> &str {
        &self.requirement.stat_code
    }

    /// Name of the rule plugin that computes this goal's progress.
    pub fn rule_plugin(&self) -> &str {
        self.rule.as_ref().map_or(BUILTIN_PLUGIN, |rule| rule.plugin.as_str())
    }

    pub fn is_rotating(&self) -> bool {
        self.rotation.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Challenge {
    /// Unique, 1 to 100 characters.
    #[serde(rename = "challengeId")]
    pub id: String,
    pub name: String,
    pub description: String,
    /// At least one, in configuration order.
    pub goals: Vec<Goal>,
    /// The default rotation its goals inherit (enabled blocks only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
    /// How many of its goals a player holds at once; between 1 and the number of goals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_size: Option<u32>,
}

impl Challenge {
    pub fn goal(&self, goal_id: &str) -> Option<&Goal> {
        self.goals.iter().find(|goal| goal.id == goal_id)
    }
}
