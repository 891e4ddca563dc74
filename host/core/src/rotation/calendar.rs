//! The period calendar of one global rotation.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::Period;
use super::local::{Steps, local_threshold, resolve};
use crate::config::{Rotation, RotationType, Schedule, parse_cron};

/// Where the first period begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// No `startTime`: periods run back as far as the schedule does.
    Open,
    /// The first boundary at or after `startTime`.
    At(DateTime<Utc>),
    /// No boundary follows `startTime`: no period ever begins.
    Never,
}

/// The calendar of a global rotation, built once (the cron expression parsed once) and queried many times.
///
/// Period boundaries are the schedule's boundaries on the local clock of the rotation's time zone (local
/// midnight, local Monday midnight, local 1st-of-month midnight, cron fire times), mapped to instants: a local
/// time skipped by a spring-forward gap becomes the first instant after the gap, a repeated local time its
/// earlier occurrence. Boundaries that collapse into one instant (several cron fire times inside one gap) count
/// once, so no period is empty. Periods are half-open: `[start, end)`.
///
/// With a `startTime`, periods stay aligned to the schedule: the first period is the first whole one that
/// starts at or after `startTime` (a start time between boundaries waits for the next boundary).
#[derive(Debug, Clone)]
pub struct RotationCalendar {
    tz: Tz,
    steps: Steps,
    start: Start,
}

impl RotationCalendar {
    /// The calendar of a global rotation. Errors for per-user rotations (they have no shared calendar) and for
    /// a schedule the validator would not have let through.
    pub fn new(rotation: &Rotation) -> Result<Self, String> {
        if rotation.rotation_type == RotationType::PerUser {
            return Err("per_user rotations have no global calendar".to_owned());
        }
        let steps = match &rotation.schedule {
            None => return Err("a global rotation needs a schedule".to_owned()),
            Some(Schedule::Daily) => Steps::Daily,
            Some(Schedule::Weekly) => Steps::Weekly,
            Some(Schedule::Monthly) => Steps::Monthly,
            Some(Schedule::Custom(expr)) => Steps::Cron(Box::new(parse_cron(expr)?)),
        };
        let mut calendar = RotationCalendar { tz: rotation.time_zone, steps, start: Start::Open };
        if let Some(start_time) = rotation.start_time {
            calendar.start = calendar.boundary_at_or_after(start_time).map_or(Start::Never, Start::At);
        }
        Ok(calendar)
    }

    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    /// The period `at` falls in; `None` before the first period or where the schedule has no boundary on
    /// either side of `at` (a cron limited to some years, or far outside 1970..2100 for cron schedules).
    pub fn period_containing(&self, at: DateTime<Utc>) -> Option<Period> {
        match self.start {
            Start::Never => return None,
            Start::At(first) if at < first => return None,
            _ => {}
        }
        Some(Period { start: self.boundary_at_or_before(at)?, end: self.boundary_after(at)? })
    }

    /// The period after the one `now` falls in; before the first period, the first period.
    pub fn next_period(&self, now: DateTime<Utc>) -> Option<Period> {
        let start = self.next_start(now)?;
        Some(Period { start, end: self.boundary_after(start)? })
    }

    /// The first period start strictly after `at`: the end of the period holding `at`, or the first period's
    /// start when `at` comes before it.
    pub fn next_start(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.start {
            Start::Never => None,
            Start::At(first) if at < first => Some(first),
            _ => self.boundary_after(at),
        }
    }

    /// The latest schedule boundary at or before `at`, ignoring `startTime`.
    pub(crate) fn boundary_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        resolve(self.tz, self.steps.last_at_or_before(local_threshold(self.tz, at))?)
    }

    /// The earliest schedule boundary strictly after `at`, ignoring `startTime`.
    pub(crate) fn boundary_after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        resolve(self.tz, self.steps.first_after(local_threshold(self.tz, at))?)
    }

    /// The earliest schedule boundary at or after `at`, ignoring `startTime`.
    pub(crate) fn boundary_at_or_after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.boundary_at_or_before(at).filter(|boundary| *boundary == at).or_else(|| self.boundary_after(at))
    }
}
