//! Per-user goal progress as stored and as shown to players.
//!
//! To keep an event at O(1) row writes, most goals do not store their progress on every event: the host keeps the
//! latest value and an event counter per (user, stat code) in [`StatValue`], and a goal row records only where its
//! progress is derived from ([`ProgressSource`]) plus its baseline. Goal rows are written when a goal's state really
//! changes (first event, baseline captured, completed, plugin state changed, claimed).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Lifecycle of one goal for one player. Completion is sticky; a claimed goal never changes again
/// (except when a rotation with reselection starts a new period).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoalStatus {
    NotStarted,
    InProgress,
    Completed,
    Claimed,
}

impl GoalStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            GoalStatus::NotStarted => "not_started",
            GoalStatus::InProgress => "in_progress",
            GoalStatus::Completed => "completed",
            GoalStatus::Claimed => "claimed",
        }
    }

    /// Completed or claimed: what prerequisites require.
    pub const fn is_done(self) -> bool {
        matches!(self, GoalStatus::Completed | GoalStatus::Claimed)
    }
}

impl fmt::Display for GoalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown goal status '{0}'")]
pub struct UnknownValue(pub String);

impl FromStr for GoalStatus {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "not_started" => Ok(GoalStatus::NotStarted),
            "in_progress" => Ok(GoalStatus::InProgress),
            "completed" => Ok(GoalStatus::Completed),
            "claimed" => Ok(GoalStatus::Claimed),
            other => Err(UnknownValue(other.to_owned())),
        }
    }
}

/// Where a goal's displayed progress comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressSource {
    /// `GoalProgress::progress` is authoritative (written whenever it changes).
    Stored,
    /// Progress is `floor(latest stat value) - baseline` (baseline 0 when absent).
    StatValue,
    /// Progress is `event count of the stat - baseline`.
    EventCount,
}

impl ProgressSource {
    pub const fn as_str(self) -> &'static str {
        match self {
            ProgressSource::Stored => "stored",
            ProgressSource::StatValue => "stat_value",
            ProgressSource::EventCount => "event_count",
        }
    }
}

impl FromStr for ProgressSource {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stored" => Ok(ProgressSource::Stored),
            "stat_value" => Ok(ProgressSource::StatValue),
            "event_count" => Ok(ProgressSource::EventCount),
            other => Err(UnknownValue(other.to_owned())),
        }
    }
}

/// One row of `user_goal_progress`: a goal assigned to a player.
#[derive(Debug, Clone, PartialEq)]
pub struct GoalProgress {
    pub user_id: String,
    pub goal_id: String,
    pub challenge_id: String,
    pub namespace: String,
    /// Last materialised progress; authoritative only when `progress_source` is [`ProgressSource::Stored`].
    pub progress: i64,
    pub status: GoalStatus,
    pub completed_at: Option<DateTime<Utc>>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub is_active: bool,
    pub assigned_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub baseline_value: Option<i64>,
    /// Opaque bytes owned by the goal's rule plugin (for example a streak counter).
    pub plugin_state: Option<Vec<u8>>,
    pub progress_source: ProgressSource,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl GoalProgress {
    /// Progress as a player sees it, given the player's value for the goal's stat code (if any).
    pub fn displayed_progress(&self, stat: Option<&StatValue>) -> i64 {
        let raw = match self.progress_source {
            ProgressSource::Stored => self.progress,
            ProgressSource::StatValue => match stat {
                Some(s) => stat_value_as_progress(s.value) - self.baseline_value.unwrap_or(0),
                None => self.progress,
            },
            ProgressSource::EventCount => match stat {
                Some(s) => s.event_count - self.baseline_value.unwrap_or(0),
                None => self.progress,
            },
        };
        raw.max(0)
    }

    /// Whether events may still move this goal at `now`: active, not claimed, not expired.
    pub fn accepts_events(&self, now: DateTime<Utc>) -> bool {
        self.is_active && self.status != GoalStatus::Claimed && self.expires_at.is_none_or(|expiry| expiry > now)
    }
}

/// Converts a stat value to integer progress the way the reference does (truncation toward zero),
/// saturating instead of wrapping for values beyond `i64`.
pub fn stat_value_as_progress(value: f64) -> i64 {
    if value.is_nan() { 0 } else { value.trunc().clamp(i64::MIN as f64, i64::MAX as f64) as i64 }
}

/// Latest value and event count of one stat code for one player (`user_stat_values`).
#[derive(Debug, Clone, PartialEq)]
pub struct StatValue {
    pub user_id: String,
    pub stat_code: String,
    /// Latest value reported by a statistic event (0 until one arrives; login stat codes only count).
    pub value: f64,
    /// Number of events seen for this stat code (logins for login stat codes).
    pub event_count: i64,
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(source: ProgressSource, progress: i64, baseline: Option<i64>) -> GoalProgress {
        let now = Utc::now();
        GoalProgress {
            user_id: "u".into(),
            goal_id: "g".into(),
            challenge_id: "c".into(),
            namespace: "ns".into(),
            progress,
            status: GoalStatus::InProgress,
            completed_at: None,
            claimed_at: None,
            is_active: true,
            assigned_at: Some(now),
            expires_at: None,
            baseline_value: baseline,
            plugin_state: None,
            progress_source: source,
            created_at: now,
            updated_at: now,
        }
    }

    fn stat(value: f64, count: i64) -> StatValue {
        StatValue { user_id: "u".into(), stat_code: "s".into(), value, event_count: count, updated_at: Utc::now() }
    }

    #[test]
    fn status_round_trips_through_its_database_text() {
        for status in [GoalStatus::NotStarted, GoalStatus::InProgress, GoalStatus::Completed, GoalStatus::Claimed] {
            assert_eq!(status.as_str().parse::<GoalStatus>().unwrap(), status);
        }
        assert!("done".parse::<GoalStatus>().is_err());
    }

    #[test]
    fn derived_progress_reads_the_stat_table() {
        assert_eq!(row(ProgressSource::StatValue, 0, Some(40)).displayed_progress(Some(&stat(48.9, 3))), 8);
        assert_eq!(row(ProgressSource::StatValue, 0, None).displayed_progress(Some(&stat(7.0, 1))), 7);
        assert_eq!(row(ProgressSource::EventCount, 0, Some(5)).displayed_progress(Some(&stat(0.0, 9))), 4);
        assert_eq!(row(ProgressSource::Stored, 3, Some(100)).displayed_progress(Some(&stat(500.0, 9))), 3);
        // A stat that went below its baseline never shows negative progress.
        assert_eq!(row(ProgressSource::StatValue, 0, Some(10)).displayed_progress(Some(&stat(2.0, 1))), 0);
        // Without a stat row the last materialised value is shown.
        assert_eq!(row(ProgressSource::StatValue, 6, Some(1)).displayed_progress(None), 6);
    }

    #[test]
    fn stat_values_truncate_and_saturate() {
        assert_eq!(stat_value_as_progress(-2.7), -2);
        assert_eq!(stat_value_as_progress(2.7), 2);
        assert_eq!(stat_value_as_progress(f64::NAN), 0);
        assert_eq!(stat_value_as_progress(1e300), i64::MAX);
    }

    #[test]
    fn only_active_unclaimed_unexpired_goals_accept_events() {
        let now = Utc::now();
        let mut goal = row(ProgressSource::Stored, 0, None);
        assert!(goal.accepts_events(now));
        goal.expires_at = Some(now);
        assert!(!goal.accepts_events(now));
        goal.expires_at = None;
        goal.status = GoalStatus::Claimed;
        assert!(!goal.accepts_events(now));
        goal.status = GoalStatus::Completed;
        goal.is_active = false;
        assert!(!goal.accepts_events(now));
    }
}
