//! Global rotation calendars: fixed schedules, time zones, daylight-saving days, cron schedules, start times.

mod rotation_support;

use chrono::{Datelike, NaiveTime, TimeDelta, TimeZone, Weekday};
use rotation_support::*;

use challenge_core::rotation::{Period, RotationCalendar, current_period, next_period, period_containing};

fn length(rotation: &challenge_core::config::Rotation, instant: &str) -> TimeDelta {
    period_containing(rotation, at(instant)).expect("a period").length()
}

#[test]
fn daily_utc_turns_over_at_midnight() {
    let rotation = daily("UTC");
    assert_period(&rotation, "2026-03-06T12:00:00Z", "2026-03-06T00:00:00Z", "2026-03-07T00:00:00Z");
    assert_period(&rotation, "2026-03-06T23:59:59.999Z", "2026-03-06T00:00:00Z", "2026-03-07T00:00:00Z");
    assert_period(&rotation, "2026-03-07T00:00:00Z", "2026-03-07T00:00:00Z", "2026-03-08T00:00:00Z");
    assert_period(&rotation, "2026-03-07T00:00:01Z", "2026-03-07T00:00:00Z", "2026-03-08T00:00:00Z");
    // Year end.
    assert_period(&rotation, "2025-12-31T18:00:00Z", "2025-12-31T00:00:00Z", "2026-01-01T00:00:00Z");
    assert_eq!(
        current_period(&rotation, at("2026-03-06T12:00:00Z")),
        period_containing(&rotation, at("2026-03-06T12:00:00Z"))
    );
}

#[test]
fn weekly_periods_start_on_monday() {
    let rotation = weekly("UTC");
    // 2026-03-06 is a Friday; its week began on Monday 2026-03-02.
    assert_eq!(at("2026-03-06T00:00:00Z").weekday(), Weekday::Fri);
    assert_period(&rotation, "2026-03-06T12:00:00Z", "2026-03-02T00:00:00Z", "2026-03-09T00:00:00Z");
    assert_period(&rotation, "2026-03-08T23:59:59Z", "2026-03-02T00:00:00Z", "2026-03-09T00:00:00Z");
    assert_period(&rotation, "2026-03-09T00:00:00Z", "2026-03-09T00:00:00Z", "2026-03-16T00:00:00Z");
    assert_period(&rotation, "2026-03-02T00:00:00Z", "2026-03-02T00:00:00Z", "2026-03-09T00:00:00Z");
    // Across a month and a year end.
    assert_period(&rotation, "2026-01-01T08:00:00Z", "2025-12-29T00:00:00Z", "2026-01-05T00:00:00Z");
    for period in walk(&rotation, at("2024-01-01T00:00:00Z"), 120) {
        assert_eq!(period.start.weekday(), Weekday::Mon);
        assert_eq!(period.length(), TimeDelta::days(7));
    }
}

#[test]
fn monthly_periods_run_from_first_to_first() {
    let rotation = monthly("UTC");
    assert_period(&rotation, "2024-02-15T00:00:00Z", "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z");
    assert_eq!(length(&rotation, "2024-02-29T23:59:59Z"), TimeDelta::days(29), "leap February");
    assert_period(&rotation, "2025-02-10T00:00:00Z", "2025-02-01T00:00:00Z", "2025-03-01T00:00:00Z");
    assert_eq!(length(&rotation, "2025-02-28T23:59:59Z"), TimeDelta::days(28), "common February");
    assert_eq!(length(&rotation, "2100-02-14T00:00:00Z"), TimeDelta::days(28), "2100 is not a leap year");
    assert_eq!(length(&rotation, "2000-02-14T00:00:00Z"), TimeDelta::days(29), "2000 is");
    assert_period(&rotation, "2025-01-31T23:59:59Z", "2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z");
    assert_period(&rotation, "2025-03-31T12:00:00Z", "2025-03-01T00:00:00Z", "2025-04-01T00:00:00Z");
    assert_eq!(length(&rotation, "2025-04-30T12:00:00Z"), TimeDelta::days(30));
    assert_period(&rotation, "2025-12-31T23:59:59Z", "2025-12-01T00:00:00Z", "2026-01-01T00:00:00Z");
    assert_period(&rotation, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z");
    let lengths: Vec<i64> =
        walk(&rotation, at("2024-01-15T00:00:00Z"), 12).iter().map(|p| p.length().num_days()).collect();
    assert_eq!(lengths, [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]);
}

#[test]
fn boundaries_follow_the_time_zone() {
    // Midnight in Tokyo (UTC+9, no DST) is 15:00 UTC the day before.
    let tokyo = daily("Asia/Tokyo");
    assert_period(&tokyo, "2026-03-06T16:00:00Z", "2026-03-06T15:00:00Z", "2026-03-07T15:00:00Z");
    assert_period(&tokyo, "2026-03-06T14:59:59Z", "2026-03-05T15:00:00Z", "2026-03-06T15:00:00Z");
    // Monday 2026-03-09 00:00 JST.
    assert_period(&weekly("Asia/Tokyo"), "2026-03-08T15:00:00Z", "2026-03-08T15:00:00Z", "2026-03-15T15:00:00Z");
    assert_period(&monthly("Asia/Tokyo"), "2026-02-28T15:00:00Z", "2026-02-28T15:00:00Z", "2026-03-31T15:00:00Z");
    // A quarter-hour zone, west of UTC as well.
    assert_period(&daily("Asia/Kathmandu"), "2026-03-06T12:00:00Z", "2026-03-05T18:15:00Z", "2026-03-06T18:15:00Z");
    assert_period(
        &daily("America/Los_Angeles"),
        "2026-01-06T07:59:59Z",
        "2026-01-05T08:00:00Z",
        "2026-01-06T08:00:00Z",
    );
}

#[test]
fn berlin_dst_days_last_23_and_25_hours() {
    let rotation = daily("Europe/Berlin");
    // 2025-03-30: 02:00 CET -> 03:00 CEST.
    assert_period(&rotation, "2025-03-30T12:00:00Z", "2025-03-29T23:00:00Z", "2025-03-30T22:00:00Z");
    assert_eq!(length(&rotation, "2025-03-30T12:00:00Z"), TimeDelta::hours(23));
    assert_eq!(length(&rotation, "2025-03-29T12:00:00Z"), TimeDelta::hours(24));
    assert_eq!(length(&rotation, "2025-03-31T12:00:00Z"), TimeDelta::hours(24));
    // Just before and after the jump itself.
    assert_period(&rotation, "2025-03-30T00:59:59Z", "2025-03-29T23:00:00Z", "2025-03-30T22:00:00Z");
    assert_period(&rotation, "2025-03-30T01:00:00Z", "2025-03-29T23:00:00Z", "2025-03-30T22:00:00Z");
    // 2025-10-26: 03:00 CEST -> 02:00 CET; both passes through 02:30 are the same day.
    assert_period(&rotation, "2025-10-26T00:30:00Z", "2025-10-25T22:00:00Z", "2025-10-26T23:00:00Z");
    assert_period(&rotation, "2025-10-26T01:30:00Z", "2025-10-25T22:00:00Z", "2025-10-26T23:00:00Z");
    assert_eq!(length(&rotation, "2025-10-26T12:00:00Z"), TimeDelta::hours(25));

    let week = weekly("Europe/Berlin");
    assert_period(&week, "2025-03-27T12:00:00Z", "2025-03-23T23:00:00Z", "2025-03-30T22:00:00Z");
    assert_eq!(length(&week, "2025-03-27T12:00:00Z"), TimeDelta::hours(167));
    assert_period(&week, "2025-10-22T12:00:00Z", "2025-10-19T22:00:00Z", "2025-10-26T23:00:00Z");
    assert_eq!(length(&week, "2025-10-22T12:00:00Z"), TimeDelta::hours(169));
    // March 2025 in Berlin loses an hour, October gains one.
    let month = monthly("Europe/Berlin");
    assert_period(&month, "2025-03-15T00:00:00Z", "2025-02-28T23:00:00Z", "2025-03-31T22:00:00Z");
    assert_eq!(length(&month, "2025-03-15T00:00:00Z"), TimeDelta::hours(31 * 24 - 1));
    assert_eq!(length(&month, "2025-10-15T00:00:00Z"), TimeDelta::hours(31 * 24 + 1));
}

#[test]
fn new_york_dst_days_last_23_and_25_hours() {
    let rotation = daily("America/New_York");
    // 2025-03-09: 02:00 EST -> 03:00 EDT.
    assert_period(&rotation, "2025-03-09T12:00:00Z", "2025-03-09T05:00:00Z", "2025-03-10T04:00:00Z");
    assert_eq!(length(&rotation, "2025-03-09T12:00:00Z"), TimeDelta::hours(23));
    // 2025-11-02: 02:00 EDT -> 01:00 EST. 01:30 EDT (05:30Z) and 01:30 EST (06:30Z) are both that day.
    assert_period(&rotation, "2025-11-02T05:30:00Z", "2025-11-02T04:00:00Z", "2025-11-03T05:00:00Z");
    assert_period(&rotation, "2025-11-02T06:30:00Z", "2025-11-02T04:00:00Z", "2025-11-03T05:00:00Z");
    assert_eq!(length(&rotation, "2025-11-02T12:00:00Z"), TimeDelta::hours(25));

    let week = weekly("America/New_York");
    assert_period(&week, "2025-03-09T12:00:00Z", "2025-03-03T05:00:00Z", "2025-03-10T04:00:00Z");
    assert_eq!(length(&week, "2025-03-09T12:00:00Z"), TimeDelta::hours(167));
    assert_period(&week, "2025-11-02T06:30:00Z", "2025-10-27T04:00:00Z", "2025-11-03T05:00:00Z");
    assert_eq!(length(&week, "2025-11-02T06:30:00Z"), TimeDelta::hours(169));
}

#[test]
fn nonexistent_midnight_starts_the_day_when_the_gap_ends() {
    // Havana springs forward at midnight: 2025-03-09 00:00 CST never happens, clocks read 01:00 CDT at 05:00Z.
    let havana = daily("America/Havana");
    assert_period(&havana, "2025-03-08T12:00:00Z", "2025-03-08T05:00:00Z", "2025-03-09T05:00:00Z");
    assert_period(&havana, "2025-03-09T05:00:00Z", "2025-03-09T05:00:00Z", "2025-03-10T04:00:00Z");
    assert_eq!(length(&havana, "2025-03-09T12:00:00Z"), TimeDelta::hours(23));
    // It falls back at 01:00 CDT to 00:00 CST, so midnight on 2025-11-02 happens twice: the first one counts,
    // and the second pass (00:30 CST = 05:30Z) is inside that day.
    assert_period(&havana, "2025-11-02T05:30:00Z", "2025-11-02T04:00:00Z", "2025-11-03T05:00:00Z");
    assert_period(&havana, "2025-11-02T04:30:00Z", "2025-11-02T04:00:00Z", "2025-11-03T05:00:00Z");
    assert_eq!(length(&havana, "2025-11-01T12:00:00Z"), TimeDelta::hours(24));
    // The week holding the jump loses its hour; the month holding it begins on time.
    assert_eq!(length(&weekly("America/Havana"), "2025-03-05T12:00:00Z"), TimeDelta::hours(167));
    assert_eq!(length(&weekly("America/Havana"), "2025-02-26T12:00:00Z"), TimeDelta::hours(168));
    assert_eq!(
        period_containing(&monthly("America/Havana"), at("2025-03-09T05:00:00Z")).unwrap().start,
        at("2025-03-01T05:00:00Z")
    );

    // São Paulo, 2018: 2018-11-04 00:00 -03 did not exist; 2019-02-17 00:00 -02 fell back to 23:00 -03.
    let sao_paulo = daily("America/Sao_Paulo");
    assert_period(&sao_paulo, "2018-11-04T12:00:00Z", "2018-11-04T03:00:00Z", "2018-11-05T02:00:00Z");
    assert_period(&sao_paulo, "2018-11-04T02:59:59Z", "2018-11-03T03:00:00Z", "2018-11-04T03:00:00Z");
    // Both passes through 23:30 on 2019-02-16 belong to that 25-hour day.
    assert_period(&sao_paulo, "2019-02-17T01:30:00Z", "2019-02-16T02:00:00Z", "2019-02-17T03:00:00Z");
    assert_period(&sao_paulo, "2019-02-17T02:30:00Z", "2019-02-16T02:00:00Z", "2019-02-17T03:00:00Z");
}

#[test]
fn a_skipped_calendar_day_does_not_make_an_empty_period() {
    // Samoa skipped 2011-12-30: 2011-12-29 24:00 (-10) became 2011-12-31 00:00 (+14) at 10:00Z.
    let apia = daily("Pacific/Apia");
    assert_period(&apia, "2011-12-29T12:00:00Z", "2011-12-29T10:00:00Z", "2011-12-30T10:00:00Z");
    assert_period(&apia, "2011-12-30T10:00:00Z", "2011-12-30T10:00:00Z", "2011-12-31T10:00:00Z");
    walk(&apia, at("2011-12-20T00:00:00Z"), 30);
}

#[test]
fn periods_tile_through_whole_years_in_many_zones() {
    let zones = [
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "America/Havana",
        "America/Sao_Paulo",
        "Australia/Lord_Howe",
        "Asia/Tokyo",
        "Asia/Kathmandu",
        "Pacific/Chatham",
        "America/St_Johns",
    ];
    for tz in zones {
        let days = walk(&daily(tz), at("2018-01-01T12:00:00Z"), 2 * 366);
        let total: TimeDelta = days.iter().map(Period::length).sum();
        assert!(total > TimeDelta::days(2 * 366 - 1) && total < TimeDelta::days(2 * 366 + 1), "{tz}");
        for day in &days {
            let minutes = day.length().num_minutes();
            assert!((22 * 60..=26 * 60).contains(&minutes), "{tz}: {day:?}");
            // Each day starts at local midnight, or where midnight was skipped, at the end of the gap.
            let local = day.start.with_timezone(&zone(tz));
            let midnight_skipped =
                zone(tz).from_local_datetime(&local.date_naive().and_time(NaiveTime::MIN)).earliest().is_none();
            assert!(local.time() == NaiveTime::MIN || midnight_skipped, "{tz}: {day:?} starts at {local}");
        }
        walk(&weekly(tz), at("2018-01-01T12:00:00Z"), 110);
        walk(&monthly(tz), at("2018-01-01T12:00:00Z"), 26);
    }
}

#[test]
fn custom_every_six_hours() {
    let rotation = custom("0 0 */6 * * *", "UTC");
    assert_period(&rotation, "2026-03-06T05:59:59Z", "2026-03-06T00:00:00Z", "2026-03-06T06:00:00Z");
    assert_period(&rotation, "2026-03-06T06:00:00Z", "2026-03-06T06:00:00Z", "2026-03-06T12:00:00Z");
    assert_period(&rotation, "2026-03-06T06:00:00.001Z", "2026-03-06T06:00:00Z", "2026-03-06T12:00:00Z");
    assert_period(&rotation, "2026-03-06T23:00:00Z", "2026-03-06T18:00:00Z", "2026-03-07T00:00:00Z");
    for period in walk(&rotation, at("2025-12-30T00:00:00Z"), 40) {
        assert_eq!(period.length(), TimeDelta::hours(6));
    }
}

#[test]
fn custom_friday_evening_in_local_time() {
    let rotation = custom("0 0 18 * * Fri", "Europe/Berlin");
    // 18:00 CEST = 16:00Z on Fridays 2025-06-06 and 2025-06-13.
    assert_period(&rotation, "2025-06-10T12:00:00Z", "2025-06-06T16:00:00Z", "2025-06-13T16:00:00Z");
    assert_period(&rotation, "2025-06-13T15:59:59Z", "2025-06-06T16:00:00Z", "2025-06-13T16:00:00Z");
    assert_period(&rotation, "2025-06-13T16:00:00Z", "2025-06-13T16:00:00Z", "2025-06-20T16:00:00Z");
    // The week with the spring-forward: 18:00 CET (17:00Z) to 18:00 CEST (16:00Z).
    assert_period(&rotation, "2025-03-30T12:00:00Z", "2025-03-28T17:00:00Z", "2025-04-04T16:00:00Z");
    assert_eq!(length(&rotation, "2025-03-30T12:00:00Z"), TimeDelta::hours(167));
}

#[test]
fn custom_fire_times_in_a_gap_or_a_repeat_turn_over_once() {
    // 02:30 did not exist in New York on 2025-03-09: that day's period starts at the end of the gap (07:00Z).
    let half_past_two = custom("0 30 2 * * *", "America/New_York");
    assert_period(&half_past_two, "2025-03-09T06:59:59Z", "2025-03-08T07:30:00Z", "2025-03-09T07:00:00Z");
    assert_period(&half_past_two, "2025-03-09T12:00:00Z", "2025-03-09T07:00:00Z", "2025-03-10T06:30:00Z");
    // Every quarter hour: the four fire times inside the gap collapse into 03:00 EDT; no empty period.
    let quarter = custom("0 */15 * * * *", "America/New_York");
    assert_period(&quarter, "2025-03-09T06:50:00Z", "2025-03-09T06:45:00Z", "2025-03-09T07:00:00Z");
    assert_period(&quarter, "2025-03-09T07:00:00Z", "2025-03-09T07:00:00Z", "2025-03-09T07:15:00Z");
    walk(&quarter, at("2025-03-09T05:00:00Z"), 20);
    // 01:30 happened twice on 2025-11-02; only the first (05:30Z) turns the period over.
    let half_past_one = custom("0 30 1 * * *", "America/New_York");
    assert_period(&half_past_one, "2025-11-02T06:30:00Z", "2025-11-02T05:30:00Z", "2025-11-03T06:30:00Z");
    assert_eq!(length(&half_past_one, "2025-11-02T12:00:00Z"), TimeDelta::hours(25));
    // Every half hour: 01:00 and 01:30 EDT count, the repeated 01:00 and 01:30 EST do not, 02:00 EST does.
    let half_hour = custom("0 */30 * * * *", "America/New_York");
    assert_period(&half_hour, "2025-11-02T05:40:00Z", "2025-11-02T05:30:00Z", "2025-11-02T07:00:00Z");
    assert_period(&half_hour, "2025-11-02T06:10:00Z", "2025-11-02T05:30:00Z", "2025-11-02T07:00:00Z");
    walk(&half_hour, at("2025-11-02T03:00:00Z"), 20);
}

#[test]
fn cron_weekly_shorthand_means_sunday_unlike_the_weekly_schedule() {
    // The cron crate's `@weekly` fires Sunday 00:00; `schedule: "weekly"` turns over on Monday.
    let shorthand = period_containing(&custom("@weekly", "UTC"), at("2026-03-06T12:00:00Z")).unwrap();
    assert_eq!((shorthand.start.weekday(), shorthand.start), (Weekday::Sun, at("2026-03-01T00:00:00Z")));
}

/// A deterministic spread of instants between 2020 and 2030.
fn instants(count: usize) -> impl Iterator<Item = chrono::DateTime<chrono::Utc>> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..count).map(move |_| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let offset = (state >> 11) % (10 * 365 * 86_400);
        at("2020-01-01T00:00:00Z") + TimeDelta::seconds(offset as i64) + TimeDelta::milliseconds((state % 1000) as i64)
    })
}

#[test]
fn custom_periods_match_a_brute_force_scan() {
    // Each with a window that surely holds its previous fire time.
    let cases = [
        ("0 0 */6 * * *", TimeDelta::hours(7)),
        ("0 15 10 * * Mon,Thu", TimeDelta::days(5)),
        ("0 0 0 1 */3 *", TimeDelta::days(93)),
        ("0 0 12 29 2 *", TimeDelta::days(9 * 366)),
        ("*/20 * * * * *", TimeDelta::minutes(1)),
    ];
    for (expr, window) in cases {
        let rotation = custom(expr, "UTC");
        let schedule = challenge_core::config::parse_cron(expr).unwrap();
        for instant in instants(200) {
            let fires = schedule.after(&(instant - window));
            let start = fires.take_while(|fire| *fire <= instant).last().expect("a fire time before");
            let end = schedule.after(&instant).next().expect("a fire time after");
            assert_eq!(period_containing(&rotation, instant), Some(Period { start, end }), "{expr} at {instant}");
        }
    }
}

#[test]
fn a_cron_limited_to_some_years_has_periods_only_then() {
    let rotation = custom("0 0 12 1 * * 2026", "UTC");
    assert_eq!(period_containing(&rotation, at("2025-06-01T00:00:00Z")), None);
    assert_period(&rotation, "2026-03-06T00:00:00Z", "2026-03-01T12:00:00Z", "2026-04-01T12:00:00Z");
    // December 2026 has a start but no end.
    assert_eq!(period_containing(&rotation, at("2026-12-15T00:00:00Z")), None);
    assert_eq!(period_containing(&rotation, at("2027-06-01T00:00:00Z")), None);
    assert_eq!(
        next_period(&rotation, at("2025-06-01T00:00:00Z")),
        Some(period("2026-01-01T12:00:00Z", "2026-02-01T12:00:00Z"))
    );
}

#[test]
fn future_start_time_waits_for_the_first_aligned_boundary() {
    let rotation = starting(daily("UTC"), "2026-03-10T12:00:00Z");
    let first = period("2026-03-11T00:00:00Z", "2026-03-12T00:00:00Z");
    for before in ["2026-03-06T12:00:00Z", "2026-03-10T11:59:59Z", "2026-03-10T12:00:00Z", "2026-03-10T23:59:59Z"] {
        assert_eq!(current_period(&rotation, at(before)), None, "{before}");
        assert_eq!(next_period(&rotation, at(before)), Some(first), "{before}");
    }
    assert_eq!(current_period(&rotation, at("2026-03-11T00:00:00Z")), Some(first));
    assert_eq!(
        next_period(&rotation, at("2026-03-11T00:00:00Z")),
        Some(period("2026-03-12T00:00:00Z", "2026-03-13T00:00:00Z"))
    );

    // A start time on a boundary starts the first period right there.
    let week = starting(weekly("UTC"), "2026-03-09T00:00:00Z");
    assert_eq!(current_period(&week, at("2026-03-08T23:59:59Z")), None);
    assert_eq!(
        current_period(&week, at("2026-03-09T00:00:00Z")),
        Some(period("2026-03-09T00:00:00Z", "2026-03-16T00:00:00Z"))
    );
    // In the rotation's zone: Tokyo's first midnight after 2026-03-10T00:00Z is 2026-03-10T15:00Z.
    let tokyo = starting(daily("Asia/Tokyo"), "2026-03-10T00:00:00Z");
    assert_eq!(next_period(&tokyo, at("2026-03-01T00:00:00Z")).unwrap().start, at("2026-03-10T15:00:00Z"));
}

#[test]
fn past_start_time_changes_nothing() {
    let rotation = starting(weekly("Europe/Berlin"), "2020-01-01T00:00:00Z");
    assert_period(&rotation, "2025-10-22T12:00:00Z", "2025-10-19T22:00:00Z", "2025-10-26T23:00:00Z");
    let cron = starting(custom("0 0 */6 * * *", "UTC"), "2026-01-01T03:00:00Z");
    assert_eq!(current_period(&cron, at("2026-01-01T05:00:00Z")), None);
    assert_period(&cron, "2026-03-06T07:00:00Z", "2026-03-06T06:00:00Z", "2026-03-06T12:00:00Z");
}

#[test]
fn a_start_time_with_no_boundary_after_it_never_starts() {
    let rotation = starting(custom("0 0 12 1 * * 2026", "UTC"), "2027-01-01T00:00:00Z");
    assert_eq!(current_period(&rotation, at("2028-01-01T00:00:00Z")), None);
    assert_eq!(next_period(&rotation, at("2020-01-01T00:00:00Z")), None);
}

#[test]
fn per_user_rotations_have_no_calendar() {
    let rotation = per_user("7d");
    assert!(RotationCalendar::new(&rotation).is_err());
    assert_eq!(current_period(&rotation, at("2026-03-06T12:00:00Z")), None);
    assert_eq!(next_period(&rotation, at("2026-03-06T12:00:00Z")), None);
}
