//! Rotation calendars: which period an instant belongs to, when an assignment expires, and the rotation status
//! the API shows. Every function takes the current time as an argument and never reads the clock, so results
//! are reproducible.
//!
//! - Global rotations share calendar boundaries, computed in the rotation's time zone and returned in UTC:
//!   `daily` = local midnight, `weekly` = local Monday midnight, `monthly` = local midnight on the 1st,
//!   `custom` = the cron expression's fire times on the local clock. See [`RotationCalendar`] for daylight-saving
//!   gaps and repeats and for `startTime`.
//! - Per-user rotations have no calendar: an assignment lasts `duration` from when it was made.
//!
//! The free functions build a [`RotationCalendar`] per call (parsing a cron expression each time); code that
//! asks many questions of one rotation, such as a per-user loop, should build the calendar once.
//!
//! Cron expressions run on the local wall clock and their fire times are then mapped to instants like the
//! fixed schedules' midnights, so a fire time skipped by a spring-forward gap still turns the period over (at
//! the end of the gap) and one repeated by a fall-back turns it over once. (The cron crate's own time-zone mode
//! would skip the first and fire twice on the second, giving 47-hour and 1-hour periods.)

mod calendar;
mod local;
mod status;

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

pub use calendar::RotationCalendar;
pub use status::{PeriodStatus, RotationStatus};

use crate::config::{Challenge, Rotation, RotationType};

/// The widest gap between consecutive boundaries [`check`] accepts (five years of 366 days).
pub const MAX_PERIOD: TimeDelta = TimeDelta::days(5 * 366);

/// One period of a global rotation: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Period {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Period {
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.start <= at && at < self.end
    }

    pub fn length(&self) -> TimeDelta {
        self.end - self.start
    }

    pub fn key(&self) -> PeriodKey {
        PeriodKey(self.start.timestamp_millis())
    }
}

/// Identifies a period of a global rotation: its start as milliseconds since the Unix epoch (UTC).
///
/// It depends on nothing but the start instant, so it is the same across processes, restarts and configuration
/// reloads that keep the boundaries; pair it with the goal (or challenge) id to record "done once for this
/// period", e.g. a unique `(goal_id, period_key)` row for automatic assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PeriodKey(pub i64);

impl PeriodKey {
    pub const fn millis(self) -> i64 {
        self.0
    }
}

impl fmt::Display for PeriodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The rotation the API reports for a challenge: its own, else the first rotating goal's (as the reference
/// does, assuming the goals share one).
pub fn effective_rotation(challenge: &Challenge) -> Option<&Rotation> {
    challenge.rotation.as_ref().or_else(|| challenge.goals.iter().find_map(|goal| goal.rotation.as_ref()))
}

/// The period of a global rotation that `now` falls in; `None` for per-user rotations and before the first
/// period (see [`RotationCalendar`]).
pub fn current_period(rotation: &Rotation, now: DateTime<Utc>) -> Option<Period> {
    period_containing(rotation, now)
}

/// The period after the current one; before the first period, the first period. `None` for per-user rotations.
pub fn next_period(rotation: &Rotation, now: DateTime<Utc>) -> Option<Period> {
    RotationCalendar::new(rotation).ok()?.next_period(now)
}

/// The period of a global rotation that `instant` falls in.
pub fn period_containing(rotation: &Rotation, instant: DateTime<Utc>) -> Option<Period> {
    RotationCalendar::new(rotation).ok()?.period_containing(instant)
}

/// When an assignment made at `assigned_at` expires.
///
/// - Global: the end of the period holding `assigned_at`, the same instant for everyone who joined during that
///   period; an assignment made before the first period expires when the first period starts.
/// - Per-user: `duration` after the assignment, or after `startTime` for an assignment made before it (no
///   period begins before `startTime`).
///
/// `None` means it never expires (a schedule with no later boundary).
pub fn expires_at(rotation: &Rotation, assigned_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match rotation.rotation_type {
        RotationType::Global => RotationCalendar::new(rotation).ok()?.next_start(assigned_at),
        RotationType::PerUser => {
            let begins = rotation.start_time.map_or(assigned_at, |start| start.max(assigned_at));
            begins.checked_add_signed(TimeDelta::seconds(rotation.duration?.seconds()))
        }
    }
}

/// Whether an assignment made at `assigned_at` has expired by `now` (expiry instants belong to the next period).
pub fn is_expired(rotation: &Rotation, assigned_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    expires_at(rotation, assigned_at).is_some_and(|end| now >= end)
}

/// Whole seconds from `now` until `end`, truncated, and 0 once `end` has passed.
pub fn seconds_remaining(end: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (end - now).num_seconds().max(0)
}

/// Refuses rotations whose periods cannot be computed: a schedule that never turns over, or whose first two
/// boundaries (from `startTime`, else from the schedule's first boundary after 1970) are more than
/// [`MAX_PERIOD`] apart (a cron such as `0 0 0 29 2 Mon`). Reads no clock, so a configuration either passes or
/// fails for good; [`check_at`] also catches schedules that have already ended.
pub fn check(rotation: &Rotation) -> Result<(), String> {
    check_from(rotation, rotation.start_time)
}

/// Like [`check`], counting from `now` (or `startTime` if later): a cron limited to past years fails here.
pub fn check_at(rotation: &Rotation, now: DateTime<Utc>) -> Result<(), String> {
    check_from(rotation, Some(rotation.start_time.map_or(now, |start| start.max(now))))
}

fn check_from(rotation: &Rotation, from: Option<DateTime<Utc>>) -> Result<(), String> {
    if rotation.rotation_type == RotationType::PerUser {
        return rotation.duration.map(|_| ()).ok_or_else(|| "a per_user rotation needs a duration".to_owned());
    }
    let calendar = RotationCalendar::new(rotation)?;
    let schedule = rotation.schedule.as_ref().map(ToString::to_string).unwrap_or_default();
    let anchor = from.unwrap_or(DateTime::UNIX_EPOCH);
    let since = if from.is_some() { format!(" after {}", anchor.to_rfc3339()) } else { String::new() };
    let first =
        calendar.boundary_at_or_after(anchor).ok_or_else(|| format!("schedule {schedule} never turns over{since}"))?;
    if from.is_some() && first - anchor > MAX_PERIOD {
        return Err(format!(
            "schedule {schedule} first turns over at {}, more than 5 years{since}",
            first.to_rfc3339()
        ));
    }
    match calendar.boundary_after(first) {
        Some(second) if second - first <= MAX_PERIOD => Ok(()),
        _ => Err(format!(
            "schedule {schedule} does not turn over again within 5 years of {} (a period would never end)",
            first.to_rfc3339()
        )),
    }
}
