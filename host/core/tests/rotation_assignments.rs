//! Assignment expiry (global and per-user), remaining time, period keys and schedule checks.

mod rotation_support;

use chrono::TimeDelta;
use rotation_support::*;

use challenge_core::rotation::{
    PeriodKey, check, check_at, current_period, expires_at, is_expired, period_containing, seconds_remaining,
};

#[test]
fn per_user_assignments_last_their_duration() {
    let rotation = per_user("36h");
    let assigned = at("2026-03-06T10:00:00Z");
    assert_eq!(expires_at(&rotation, assigned), Some(at("2026-03-07T22:00:00Z")));
    assert!(!is_expired(&rotation, assigned, at("2026-03-07T21:59:59Z")));
    assert!(is_expired(&rotation, assigned, at("2026-03-07T22:00:00Z")));
    assert!(is_expired(&rotation, assigned, at("2026-03-08T00:00:00Z")));
    // Each player has their own clock.
    assert_eq!(expires_at(&rotation, at("2026-03-06T23:30:00Z")), Some(at("2026-03-08T11:30:00Z")));
    assert_eq!(expires_at(&per_user("1d12h"), assigned), expires_at(&rotation, assigned));
    assert_eq!(expires_at(&per_user("2w"), assigned), Some(at("2026-03-20T10:00:00Z")));
    assert_eq!(expires_at(&per_user("90m"), assigned), Some(at("2026-03-06T11:30:00Z")));
    // Durations are elapsed time: a 24h assignment across a DST change still lasts 24 hours, whatever the zone.
    let berlin = challenge_core::config::Rotation { time_zone: zone("Europe/Berlin"), ..per_user("24h") };
    assert_eq!(expires_at(&berlin, at("2025-03-29T12:00:00Z")), Some(at("2025-03-30T12:00:00Z")));
}

#[test]
fn per_user_assignments_before_the_start_time_count_from_it() {
    let rotation = starting(per_user("7d"), "2026-03-05T00:00:00Z");
    assert_eq!(expires_at(&rotation, at("2026-03-01T09:00:00Z")), Some(at("2026-03-12T00:00:00Z")));
    assert_eq!(expires_at(&rotation, at("2026-03-06T09:00:00Z")), Some(at("2026-03-13T09:00:00Z")));
}

#[test]
fn mid_period_joins_expire_with_everyone_else() {
    let rotation = weekly("UTC");
    for assigned in ["2026-03-02T00:00:00Z", "2026-03-04T13:37:00Z", "2026-03-08T23:59:59.999Z"] {
        assert_eq!(expires_at(&rotation, at(assigned)), Some(at("2026-03-09T00:00:00Z")), "{assigned}");
    }
    assert_eq!(expires_at(&rotation, at("2026-03-09T00:00:00Z")), Some(at("2026-03-16T00:00:00Z")));

    let berlin = daily("Europe/Berlin");
    let early = expires_at(&berlin, at("2025-10-25T22:00:00Z"));
    let late = expires_at(&berlin, at("2025-10-26T22:59:00Z"));
    assert_eq!((early, late), (Some(at("2025-10-26T23:00:00Z")), Some(at("2025-10-26T23:00:00Z"))));

    let cron = custom("0 0 18 * * Fri", "Europe/Berlin");
    assert_eq!(expires_at(&cron, at("2025-06-07T08:00:00Z")), Some(at("2025-06-13T16:00:00Z")));
    assert_eq!(expires_at(&cron, at("2025-06-12T08:00:00Z")), Some(at("2025-06-13T16:00:00Z")));
}

#[test]
fn global_expiry_is_the_end_of_the_period() {
    let rotation = daily("UTC");
    let assigned = at("2026-03-06T10:00:00Z");
    let period = period_containing(&rotation, assigned).unwrap();
    assert_eq!(expires_at(&rotation, assigned), Some(period.end));
    assert!(!is_expired(&rotation, assigned, at("2026-03-06T23:59:59.999Z")));
    assert!(is_expired(&rotation, assigned, at("2026-03-07T00:00:00Z")));
    // Before the first period, an assignment lasts until the first period starts.
    let later = starting(daily("UTC"), "2026-03-10T12:00:00Z");
    assert_eq!(expires_at(&later, assigned), Some(at("2026-03-11T00:00:00Z")));
    // A schedule that stops turning over never expires what it last assigned.
    let ended = custom("0 0 12 1 * * 2026", "UTC");
    assert_eq!(expires_at(&ended, at("2026-12-15T00:00:00Z")), None);
    assert!(!is_expired(&ended, at("2026-12-15T00:00:00Z"), at("2030-01-01T00:00:00Z")));
}

#[test]
fn seconds_remaining_truncates_and_stops_at_zero() {
    let end = at("2026-03-07T00:00:00Z");
    assert_eq!(seconds_remaining(end, at("2026-03-06T12:00:00Z")), 43_200);
    assert_eq!(seconds_remaining(end, end - TimeDelta::milliseconds(1_500)), 1);
    assert_eq!(seconds_remaining(end, end - TimeDelta::milliseconds(500)), 0);
    assert_eq!(seconds_remaining(end, end), 0);
    assert_eq!(seconds_remaining(end, end + TimeDelta::seconds(1)), 0);
    assert_eq!(seconds_remaining(end, end + TimeDelta::days(400)), 0);
}

#[test]
fn period_keys_name_one_period() {
    let rotation = daily("Asia/Tokyo");
    let key = |instant: &str| current_period(&rotation, at(instant)).map(|period| period.key());
    let expected = PeriodKey(at("2026-03-06T15:00:00Z").timestamp_millis());
    assert_eq!(key("2026-03-06T15:00:00Z"), Some(expected));
    assert_eq!(key("2026-03-07T14:59:59.999Z"), Some(expected));
    assert_ne!(key("2026-03-07T15:00:00Z"), Some(expected));
    assert_ne!(key("2026-03-06T14:59:59.999Z"), Some(expected));
    assert_eq!(expected.millis(), 1_772_809_200_000);
    assert_eq!(expected.to_string(), "1772809200000");
    assert_eq!(serde_json::to_string(&expected).unwrap(), "1772809200000");
}

#[test]
fn check_accepts_schedules_that_keep_turning_over() {
    for rotation in [
        daily("UTC"),
        weekly("America/Havana"),
        monthly("Pacific/Apia"),
        custom("0 0 */6 * * *", "UTC"),
        custom("0 0 18 * * Fri", "Europe/Berlin"),
        custom("0 0 0 1 1 *", "UTC"),
        custom("0 0 0 29 2 *", "UTC"),
        per_user("7d"),
        starting(daily("UTC"), "2090-01-01T00:00:00Z"),
    ] {
        assert_eq!(check(&rotation), Ok(()), "{rotation:?}");
        assert_eq!(check_at(&rotation, at("2026-03-06T12:00:00Z")), Ok(()), "{rotation:?}");
    }
}

#[test]
fn check_refuses_schedules_that_cannot_make_periods() {
    let refused = |rotation| check(&rotation).expect_err("refused");
    // February 30th never comes.
    assert!(refused(custom("0 0 0 30 2 *", "UTC")).contains("never turns over"));
    // A Monday February 29th comes every 28 years or so.
    assert!(refused(custom("0 0 0 29 2 Mon", "UTC")).contains("within 5 years"));
    // Once only: the first period would never end.
    assert!(refused(custom("0 0 0 1 1 * 2030", "UTC")).contains("within 5 years"));
    // Nothing to turn over after the start time.
    let after_start = refused(starting(custom("0 0 0 * * * 2026", "UTC"), "2027-01-01T00:00:00Z"));
    assert!(after_start.contains("never turns over after 2027-01-01"), "{after_start}");
    // The first boundary after the start time is too far off.
    assert!(
        refused(starting(custom("0 0 0 1 1 * 2040,2041", "UTC"), "2026-01-01T00:00:00Z")).contains("more than 5 years")
    );

    // A schedule limited to 2026 is fine as configured, but not once 2026 is over.
    let year_2026 = custom("0 0 0 * * * 2026", "UTC");
    assert_eq!(check(&year_2026), Ok(()));
    assert_eq!(check_at(&year_2026, at("2026-06-01T00:00:00Z")), Ok(()));
    assert!(check_at(&year_2026, at("2027-01-01T00:00:00Z")).is_err());
}
