//! Builders and assertions shared by the rotation tests. All instants are fixed; nothing reads the clock.
#![allow(dead_code)] // each test binary uses a different subset

use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;

use challenge_core::config::{OnExpiry, Rotation, RotationType, Schedule, parse_duration};
use challenge_core::rotation::{Period, RotationCalendar, next_period, period_containing};

/// An RFC 3339 instant (any offset), as UTC.
pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap_or_else(|err| panic!("bad instant {text}: {err}")).with_timezone(&Utc)
}

pub fn zone(name: &str) -> Tz {
    Tz::from_str(name).unwrap_or_else(|err| panic!("bad zone {name}: {err}"))
}

/// A global rotation on `schedule` in zone `tz`, no start time.
pub fn global(schedule: Schedule, tz: &str) -> Rotation {
    Rotation {
        rotation_type: RotationType::Global,
        schedule: Some(schedule),
        duration: None,
        start_time: None,
        time_zone: zone(tz),
        auto_assign: false,
        on_expiry: OnExpiry::default(),
    }
}

pub fn daily(tz: &str) -> Rotation {
    global(Schedule::Daily, tz)
}

pub fn weekly(tz: &str) -> Rotation {
    global(Schedule::Weekly, tz)
}

pub fn monthly(tz: &str) -> Rotation {
    global(Schedule::Monthly, tz)
}

pub fn custom(cron: &str, tz: &str) -> Rotation {
    global(Schedule::Custom(cron.to_owned()), tz)
}

pub fn per_user(duration: &str) -> Rotation {
    Rotation {
        rotation_type: RotationType::PerUser,
        schedule: None,
        duration: Some(parse_duration(duration).expect("valid duration")),
        ..daily("UTC")
    }
}

pub fn starting(rotation: Rotation, start: &str) -> Rotation {
    Rotation { start_time: Some(at(start)), ..rotation }
}

pub fn period(start: &str, end: &str) -> Period {
    Period { start: at(start), end: at(end) }
}

/// Asserts the period holding `instant`, and that the instants right around its boundaries fall on the right
/// side: its start belongs to it, the instant before its start to the previous period, its end to the next one.
pub fn assert_period(rotation: &Rotation, instant: &str, start: &str, end: &str) {
    let expected = period(start, end);
    let got = period_containing(rotation, at(instant));
    assert_eq!(got, Some(expected), "period holding {instant}");
    assert_eq!(period_containing(rotation, expected.start), Some(expected), "period holding its own start {start}");
    let just_before_end = expected.end - TimeDelta::nanoseconds(1);
    assert_eq!(period_containing(rotation, just_before_end), Some(expected), "period holding 1ns before {end}");
    let before = period_containing(rotation, expected.start - TimeDelta::nanoseconds(1)).expect("previous period");
    assert_eq!(before.end, expected.start, "previous period ends where {start} begins");
    let after = period_containing(rotation, expected.end).expect("next period");
    assert_eq!(after.start, expected.end, "next period begins at {end}");
    assert_eq!(next_period(rotation, at(instant)), Some(after), "next period after {instant}");
}

/// Walks `count` consecutive periods from the one holding `from`, checking that they tile time (each starts
/// where the previous ended, is never empty, and agrees with the calendar's own answers).
pub fn walk(rotation: &Rotation, from: DateTime<Utc>, count: usize) -> Vec<Period> {
    let calendar = RotationCalendar::new(rotation).expect("global rotation");
    let mut periods = vec![calendar.period_containing(from).expect("a period holds the start")];
    while periods.len() < count {
        let last = *periods.last().expect("not empty");
        let next = calendar.next_period(last.start).expect("a next period");
        assert_eq!(next.start, last.end, "periods tile: {last:?} then {next:?}");
        assert!(next.start < next.end, "non-empty period {next:?}");
        assert_eq!(calendar.period_containing(next.start), Some(next));
        assert_eq!(calendar.period_containing(next.end - TimeDelta::nanoseconds(1)), Some(next));
        periods.push(next);
    }
    periods
}
