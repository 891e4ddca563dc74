//! The streak and composite example plugins, as real components through the real runtime.

mod common;

use std::sync::{Arc, LazyLock};

use challenge_plugin_runtime::*;
use common::*;

static STREAK: LazyLock<Arc<LoadedPlugin>> = LazyLock::new(|| load("streak", PluginLimits::default()).unwrap());
static COMPOSITE: LazyLock<Arc<LoadedPlugin>> = LazyLock::new(|| load("composite", PluginLimits::default()).unwrap());

fn streak_goal(days: u32) -> GoalInput {
    fresh(with_params(spec("login-streak", "login", i64::from(days)), &format!(r#"{{"days": {days}}}"#)))
}

fn weighted_goal(target: i64) -> GoalInput {
    fresh(with_params(spec("weighted-sum", "kills", target), r#"{"weights": {"kills": 1.0, "assists": 0.5}}"#))
}

#[test]
fn streak_describes_and_validates() {
    assert_eq!((STREAK.name(), STREAK.version()), ("streak", "1.0.0"));
    assert_eq!(STREAK.info().kinds, ["login-streak"]);
    assert_eq!(STREAK.validate_params(&streak_goal(3).spec).unwrap(), Vec::<String>::new());
    for bad in [r#"{"days": 0}"#, r#"{}"#, r#"{"days": 3, "extra": 1}"#, "not json"] {
        let spec = with_params(spec("login-streak", "login", 3), bad);
        assert!(matches!(STREAK.validate_params(&spec), Err(PluginError::Rejected(_))), "{bad}");
    }
    assert!(
        matches!(STREAK.validate_params(&spec("absolute", "login", 3)), Err(PluginError::Rejected(m)) if m.contains("unsupported kind"))
    );
}

#[test]
fn streak_grows_on_consecutive_days_and_completes() {
    let mut goal = streak_goal(3);
    let up = step(&STREAK, &mut goal, vec![login("login", 1, T0 + 5), login("login", 2, T0 + 6)]).unwrap();
    assert_eq!((up.progress, up.status, up.source), (1, GoalStatus::InProgress, ProgressSource::Stored));
    assert_eq!(up.state.as_ref().map(Vec::len), Some(12));

    assert_eq!(step(&STREAK, &mut goal, vec![login("login", 3, T0 + 7)]), None, "same day changes nothing");

    let up = step(&STREAK, &mut goal, vec![login("login", 4, T0 + DAY + 1)]).unwrap();
    assert_eq!(up.progress, 2);
    let up = step(&STREAK, &mut goal, vec![login("login", 5, T0 + 2 * DAY + 1)]).unwrap();
    assert_eq!((up.progress, up.status, up.completed_at_ms), (3, GoalStatus::Completed, Some(T0 + 2 * DAY + 1)));

    // Completed streaks are frozen, even if the player then misses days.
    assert_eq!(step(&STREAK, &mut goal, vec![login("login", 6, T0 + 9 * DAY)]), None);
}

#[test]
fn streak_restarts_after_a_missed_day() {
    let mut goal = streak_goal(3);
    let events = vec![login("login", 1, T0), login("login", 2, T0 + DAY), login("login", 3, T0 + 3 * DAY)];
    let up = step(&STREAK, &mut goal, events).unwrap();
    assert_eq!((up.progress, up.status), (1, GoalStatus::InProgress));
    let up = step(&STREAK, &mut goal, vec![login("login", 4, T0 + 4 * DAY), login("login", 5, T0 + 5 * DAY)]).unwrap();
    assert_eq!((up.progress, up.status), (3, GoalStatus::Completed));
}

#[test]
fn streak_ignores_other_stats_and_claimed_goals() {
    let claimed = with_status(streak_goal(1), GoalStatus::Claimed);
    let events = vec![login("other", 1, T0), login("login", 1, T0)];
    let updates = STREAK.evaluate(&request(events, vec![streak_goal(2), claimed])).unwrap();
    assert_eq!(updates.len(), 1);
    assert_eq!((updates[0].goal_index, updates[0].progress), (0, 1));
}

#[test]
fn composite_reports_its_extra_stat_codes() {
    assert_eq!(COMPOSITE.info().kinds, ["weighted-sum"]);
    assert_eq!(COMPOSITE.validate_params(&weighted_goal(10).spec).unwrap(), ["assists"]);
    let bad = with_params(spec("weighted-sum", "kills", 10), r#"{"weights": {}}"#);
    assert!(matches!(COMPOSITE.validate_params(&bad), Err(PluginError::Rejected(_))));
}

#[test]
fn composite_progress_is_the_floored_weighted_sum_of_latest_values() {
    let mut goal = weighted_goal(10);
    let up = step(&COMPOSITE, &mut goal, vec![stat("kills", 3.0, 3.0, 1, T0), stat("assists", 3.0, 3.0, 1, T0 + 1)])
        .unwrap();
    // 3 * 1.0 + 3 * 0.5 = 4.5
    assert_eq!((up.progress, up.status, up.source), (4, GoalStatus::InProgress, ProgressSource::Stored));

    // Latest values replace earlier ones; the state carries them between calls.
    let up = step(&COMPOSITE, &mut goal, vec![stat("assists", 7.0, 4.0, 2, T0 + 2)]).unwrap();
    assert_eq!(up.progress, 6); // 3 + 3.5
    assert_eq!(step(&COMPOSITE, &mut goal, vec![stat("deaths", 100.0, 1.0, 1, T0 + 3)]), None);
    assert_eq!(step(&COMPOSITE, &mut goal, vec![stat("kills", -5.0, 0.0, 3, T0 + 3)]), None, "negative values skipped");

    let up = step(&COMPOSITE, &mut goal, vec![stat("kills", 6.5, 3.5, 4, T0 + 4)]).unwrap();
    assert_eq!((up.progress, up.status, up.completed_at_ms), (10, GoalStatus::Completed, Some(T0 + 4)));

    // Completion sticks when a stat later drops.
    let up = step(&COMPOSITE, &mut goal, vec![stat("kills", 0.0, 0.0, 5, T0 + 5)]).unwrap();
    assert_eq!((up.progress, up.status, up.completed_at_ms), (3, GoalStatus::Completed, Some(T0 + 4)));
}

#[test]
fn plugins_only_see_what_they_are_asked_about() {
    // The same request through different plugins: each evaluates its own kinds, and the builtin plugin refuses a
    // composite goal rather than guessing.
    let request = request(vec![stat("kills", 12.0, 12.0, 1, T0)], vec![weighted_goal(10)]);
    assert_eq!(COMPOSITE.evaluate(&request).unwrap()[0].progress, 12);
    assert!(matches!(BUILTIN.evaluate(&request), Err(PluginError::Rejected(_))));
}
