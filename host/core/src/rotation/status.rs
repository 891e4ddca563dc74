//! The rotation status shown by `GET /v1/challenges/{id}/rotation`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

use super::{Period, RotationCalendar, effective_rotation, seconds_remaining};
use crate::config::{Challenge, Rotation, RotationDuration, Schedule};

/// The `rotation` object of the rotation endpoint, in the reference's shape (camelCase, `""` for the type and
/// schedule of a challenge without rotation, `null` periods) plus two optional fields of our own: `cron` for
/// custom schedules and `duration` for per-user rotations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RotationStatus {
    pub enabled: bool,
    /// `global`, `per_user`, or `""` without rotation.
    #[serde(rename = "type")]
    pub rotation_type: &'static str,
    /// `daily`, `weekly`, `monthly`, `custom`, or `""` (no rotation, or per-user).
    pub schedule: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<RotationDuration>,
    /// `null` for per-user rotations and before a global rotation's first period.
    pub current_period: Option<PeriodStatus>,
    /// The period after the current one (the first one before the rotation starts); `null` for per-user.
    pub next_period: Option<PeriodStatus>,
}

/// A period as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeriodStatus {
    #[serde(serialize_with = "rfc3339")]
    pub start_time: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub end_time: DateTime<Utc>,
    /// Whole seconds until `end_time`, never negative. (The reference leaves it 0 on the next period; we fill it
    /// in there too.)
    pub expires_in_seconds: i64,
}

impl PeriodStatus {
    pub fn new(period: Period, now: DateTime<Utc>) -> Self {
        PeriodStatus {
            start_time: period.start,
            end_time: period.end,
            expires_in_seconds: seconds_remaining(period.end, now),
        }
    }
}

impl RotationStatus {
    /// The status of a challenge's [`effective_rotation`] at `now`.
    pub fn for_challenge(challenge: &Challenge, now: DateTime<Utc>) -> Self {
        Self::of(effective_rotation(challenge), now)
    }

    /// The status of a rotation (`None`: not rotating) at `now`.
    pub fn of(rotation: Option<&Rotation>, now: DateTime<Utc>) -> Self {
        let Some(rotation) = rotation else {
            return RotationStatus {
                enabled: false,
                rotation_type: "",
                schedule: "",
                cron: None,
                duration: None,
                current_period: None,
                next_period: None,
            };
        };
        let calendar = RotationCalendar::new(rotation).ok();
        let show = |period: Option<Period>| period.map(|period| PeriodStatus::new(period, now));
        RotationStatus {
            enabled: true,
            rotation_type: rotation.rotation_type.as_str(),
            schedule: rotation.schedule.as_ref().map_or("", Schedule::as_str),
            cron: rotation.schedule.as_ref().and_then(Schedule::cron).map(str::to_owned),
            duration: rotation.duration,
            current_period: show(calendar.as_ref().and_then(|calendar| calendar.period_containing(now))),
            next_period: show(calendar.as_ref().and_then(|calendar| calendar.next_period(now))),
        }
    }
}

/// RFC 3339 in UTC with a `Z` suffix, fractional seconds only when present.
fn rfc3339<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}
