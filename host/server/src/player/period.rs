//! Where the player API meets time: when an assignment expires, since when a completion counts for a claim, and
//! the rotation status of a challenge. Rotation calendars come from `challenge_core::rotation`.

use challenge_core::config::{Challenge, Goal, GoalKind, RotationType};
use challenge_core::progress::ProgressSource;
use challenge_core::rotation::{self, PeriodStatus, RotationStatus};
use challenge_proto::challenge::v1 as proto;
use challenge_storage::{NewAssignment, Renewal};
use chrono::{DateTime, Utc};

use super::render::timestamp;

/// When an assignment of `goal` made at `at` expires (`None`: it does not rotate, or never ends).
pub fn assignment_expiry(goal: &Goal, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    goal.rotation.as_ref().and_then(|rotation| rotation::expires_at(rotation, at))
}

/// A new active assignment of `goal` to `user_id` made at `now`.
pub fn new_assignment(user_id: &str, goal: &Goal, namespace: &str, now: DateTime<Utc>) -> NewAssignment {
    NewAssignment {
        user_id: user_id.to_owned(),
        goal_id: goal.id.clone(),
        challenge_id: goal.challenge_id.clone(),
        namespace: namespace.to_owned(),
        is_active: true,
        assigned_at: Some(now),
        expires_at: assignment_expiry(goal, now),
        progress_source: ProgressSource::Stored,
    }
}

/// The renewal of an expired assignment of `goal` for the period containing `now` (a per-user rotation gets a
/// fresh duration from `now`); `None` when the goal does not rotate.
pub fn renewal(user_id: &str, goal: &Goal, now: DateTime<Utc>) -> Option<Renewal> {
    let rotation = goal.rotation.as_ref()?;
    Some(Renewal {
        user_id: user_id.to_owned(),
        goal_id: goal.id.clone(),
        assigned_at: now,
        expires_at: rotation::expires_at(rotation, now),
        reset_progress: rotation.on_expiry.reset_progress,
        keep_claimed: !rotation.on_expiry.allow_reselection,
        progress_source: ProgressSource::Stored,
    })
}

/// The earliest completion a claim at `now` accepts: a `daily` goal's completion counts on its UTC day only, a
/// global rotating goal's within the current period only. (Per-user periods end with the assignment, which the
/// claim refuses as expired.)
pub fn claim_window_start(goal: &Goal, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let day = (goal.kind == GoalKind::Daily).then(|| start_of_utc_day(now));
    let period = goal
        .rotation
        .as_ref()
        .filter(|rotation| rotation.rotation_type == RotationType::Global)
        .and_then(|rotation| rotation::current_period(rotation, now))
        .map(|period| period.start);
    day.max(period)
}

fn start_of_utc_day(now: DateTime<Utc>) -> DateTime<Utc> {
    now.date_naive().and_hms_opt(0, 0, 0).map_or(now, |midnight| midnight.and_utc())
}

/// The rotation a challenge reports (its own, else its first rotating goal's) at `now`.
pub fn rotation_status(challenge: &Challenge, now: DateTime<Utc>) -> proto::RotationStatus {
    let status = RotationStatus::for_challenge(challenge, now);
    let period = |period: PeriodStatus| proto::RotationPeriod {
        start_time: timestamp(Some(period.start_time)),
        end_time: timestamp(Some(period.end_time)),
        expires_in_seconds: period.expires_in_seconds,
    };
    proto::RotationStatus {
        enabled: status.enabled,
        r#type: status.rotation_type.to_owned(),
        schedule: status.schedule.to_owned(),
        current_period: status.current_period.map(period),
        next_period: status.next_period.map(period),
        cron: status.cron.unwrap_or_default(),
        duration: status.duration.map(|duration| duration.to_string()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_starts_at_utc_midnight() {
        let now = DateTime::parse_from_rfc3339("2026-03-06T17:45:12.5Z").unwrap().with_timezone(&Utc);
        assert_eq!(start_of_utc_day(now).to_rfc3339(), "2026-03-06T00:00:00+00:00");
    }
}
