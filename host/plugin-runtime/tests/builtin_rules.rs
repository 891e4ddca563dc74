//! The built-in rules, evaluated by the real compiled `builtin-rules` component through the real runtime.

mod common;

use challenge_plugin_runtime::*;
use common::*;

#[test]
fn describes_itself() {
    let info = BUILTIN.info();
    assert_eq!((info.name.as_str(), info.version.as_str()), ("builtin-rules", "1.0.0"));
    assert_eq!(info.kinds, ["absolute", "increment", "daily"]);
    assert!(info.params_schema.contains("additionalProperties"));
}

#[test]
fn absolute_follows_the_value_up_and_down_and_completion_sticks() {
    let mut goal = fresh(spec("absolute", "kills", 10));

    let up = step(&BUILTIN, &mut goal, vec![stat("kills", 4.9, 4.9, 1, T0)]).unwrap();
    assert_eq!((up.progress, up.status, up.source), (4, GoalStatus::InProgress, ProgressSource::StatValue));
    assert_eq!((up.baseline, up.completed_at_ms, up.state.clone()), (None, None, None));

    let up = step(&BUILTIN, &mut goal, vec![stat("kills", 12.0, 7.1, 2, T0 + 5)]).unwrap();
    assert_eq!((up.progress, up.status, up.completed_at_ms), (12, GoalStatus::Completed, Some(T0 + 5)));

    // The stat drops: progress follows it, completion (and its time) stays.
    let up = step(&BUILTIN, &mut goal, vec![stat("kills", 3.0, 1.0, 3, T0 + 9)]).unwrap();
    assert_eq!((up.progress, up.status, up.completed_at_ms), (3, GoalStatus::Completed, Some(T0 + 5)));

    // Same value again: nothing changed, nothing returned.
    assert_eq!(step(&BUILTIN, &mut goal, vec![stat("kills", 3.0, 0.0, 4, T0 + 10)]), None);
}

#[test]
fn negative_values_are_skipped() {
    let mut goal = fresh(spec("absolute", "score", 100));
    assert_eq!(step(&BUILTIN, &mut goal, vec![stat("score", -1.0, -1.0, 1, T0)]), None);
    let up = step(&BUILTIN, &mut goal, vec![stat("score", 5.0, 6.0, 2, T0), stat("score", -3.0, -8.0, 3, T0)]).unwrap();
    assert_eq!(up.progress, 5);
    assert_eq!(step(&BUILTIN, &mut goal, vec![stat("score", f64::NAN, 0.0, 4, T0)]), None);
}

#[test]
fn relative_captures_the_baseline_on_the_first_event() {
    let mut goal = fresh(relative(spec("absolute", "kills", 10)));

    let up = step(&BUILTIN, &mut goal, vec![stat("kills", 100.0, 3.0, 1, T0)]).unwrap();
    assert_eq!((up.baseline, up.progress, up.status), (Some(97), 3, GoalStatus::InProgress));
    assert_eq!(up.source, ProgressSource::StatValue);

    let up = step(&BUILTIN, &mut goal, vec![stat("kills", 105.0, 5.0, 2, T0 + 1)]).unwrap();
    assert_eq!((up.baseline, up.progress, up.status), (Some(97), 8, GoalStatus::InProgress));

    let up = step(&BUILTIN, &mut goal, vec![stat("kills", 107.5, 2.5, 3, T0 + 2)]).unwrap();
    assert_eq!((up.progress, up.status, up.completed_at_ms), (10, GoalStatus::Completed, Some(T0 + 2)));
}

#[test]
fn relative_first_event_completes_when_its_increment_reaches_the_target() {
    let mut goal = fresh(relative(spec("absolute", "kills", 10)));
    let up = step(&BUILTIN, &mut goal, vec![stat("kills", 50.0, 10.0, 1, T0 + 7)]).unwrap();
    assert_eq!((up.baseline, up.progress), (Some(40), 10));
    assert_eq!((up.status, up.completed_at_ms), (GoalStatus::Completed, Some(T0 + 7)));
}

#[test]
fn relative_progress_never_goes_negative() {
    let mut goal = fresh(relative(spec("absolute", "kills", 10)));
    step(&BUILTIN, &mut goal, vec![stat("kills", 100.0, 2.0, 1, T0)]).unwrap();
    let up = step(&BUILTIN, &mut goal, vec![stat("kills", 50.0, 0.0, 2, T0)]).unwrap();
    assert_eq!((up.baseline, up.progress), (Some(98), 0));
}

#[test]
fn logins_count_events_from_a_baseline() {
    let mut goal = fresh(spec("absolute", "login", 3));
    // The player already had 6 logins before the goal was assigned.
    let up = step(&BUILTIN, &mut goal, vec![login("login", 7, T0)]).unwrap();
    assert_eq!((up.baseline, up.progress, up.source), (Some(6), 1, ProgressSource::EventCount));
    let up = step(&BUILTIN, &mut goal, vec![login("login", 8, T0 + 1), login("login", 9, T0 + 2)]).unwrap();
    assert_eq!((up.progress, up.status, up.completed_at_ms), (3, GoalStatus::Completed, Some(T0 + 2)));

    // Relative mode with logins counts the same way.
    let mut goal = fresh(relative(spec("absolute", "login", 5)));
    let up = step(&BUILTIN, &mut goal, vec![login("login", 1, T0), login("login", 2, T0)]).unwrap();
    assert_eq!((up.baseline, up.progress, up.source), (Some(0), 2, ProgressSource::EventCount));
}

#[test]
fn increment_counts_every_event() {
    let mut goal = fresh(spec("increment", "matches", 3));
    let up =
        step(&BUILTIN, &mut goal, vec![stat("matches", 1.0, 1.0, 11, T0), stat("matches", 2.0, 1.0, 12, T0)]).unwrap();
    assert_eq!((up.baseline, up.progress, up.source), (Some(10), 2, ProgressSource::EventCount));
    let up = step(&BUILTIN, &mut goal, vec![stat("matches", 3.0, 1.0, 13, T0 + DAY)]).unwrap();
    assert_eq!((up.progress, up.status, up.completed_at_ms), (3, GoalStatus::Completed, Some(T0 + DAY)));
}

#[test]
fn daily_increment_counts_once_per_utc_day() {
    let mut goal = fresh(daily(spec("increment", "login", 3)));
    let day1 = vec![login("login", 1, T0 + 10), login("login", 2, T0 + DAY - 1)];
    let up = step(&BUILTIN, &mut goal, day1).unwrap();
    assert_eq!((up.progress, up.status, up.source), (1, GoalStatus::InProgress, ProgressSource::Stored));
    assert!(up.state.is_some(), "the last counted day is kept in the plugin state");

    // Later the same day: nothing changes.
    assert_eq!(step(&BUILTIN, &mut goal, vec![login("login", 3, T0 + DAY - 1)]), None);

    // Crossing midnight counts again, once per day, also within one batch.
    let up =
        step(&BUILTIN, &mut goal, vec![login("login", 4, T0 + DAY), login("login", 5, T0 + DAY + 3_600_000)]).unwrap();
    assert_eq!(up.progress, 2);
    let up =
        step(&BUILTIN, &mut goal, vec![login("login", 6, T0 + 3 * DAY), login("login", 7, T0 + 3 * DAY + 1)]).unwrap();
    assert_eq!((up.progress, up.status, up.completed_at_ms), (3, GoalStatus::Completed, Some(T0 + 3 * DAY)));
}

#[test]
fn daily_goal_completes_for_the_day_and_moves_to_a_later_day() {
    let mut goal = fresh(spec("daily", "login", 1));
    let up = step(&BUILTIN, &mut goal, vec![login("login", 1, T0 + 100)]).unwrap();
    assert_eq!((up.progress, up.status, up.completed_at_ms), (1, GoalStatus::Completed, Some(T0 + 100)));
    assert_eq!(up.source, ProgressSource::Stored);

    assert_eq!(step(&BUILTIN, &mut goal, vec![login("login", 2, T0 + 200)]), None, "same day: already done");

    let up = step(&BUILTIN, &mut goal, vec![login("login", 3, T0 + 2 * DAY + 5)]).unwrap();
    assert_eq!((up.progress, up.status, up.completed_at_ms), (1, GoalStatus::Completed, Some(T0 + 2 * DAY + 5)));
}

#[test]
fn claimed_goals_never_change() {
    for spec in [
        spec("absolute", "s", 1),
        relative(spec("absolute", "s", 1)),
        spec("increment", "s", 1),
        daily(spec("increment", "s", 1)),
        spec("daily", "s", 1),
    ] {
        let goal = with_status(fresh(spec), GoalStatus::Claimed);
        let events = vec![stat("s", 50.0, 50.0, 1, T0), login("s", 2, T0 + DAY)];
        assert_eq!(BUILTIN.evaluate(&request(events, vec![goal])).unwrap(), vec![]);
    }
}

#[test]
fn one_batch_evaluates_many_goals_against_many_events() {
    let goals = vec![
        fresh(spec("absolute", "kills", 10)), // 0: kills value
        fresh(spec("increment", "login", 2)), // 1: counts logins
        fresh(spec("absolute", "deaths", 5)), // 2: no deaths event -> no update
        with_status(fresh(spec("absolute", "kills", 1)), GoalStatus::Claimed), // 3: claimed
        fresh(spec("daily", "login", 1)),     // 4: completes with the first login
        fresh(relative(spec("absolute", "kills", 4))), // 5: relative kills
    ];
    let events = vec![
        stat("kills", 3.0, 3.0, 1, T0),
        login("login", 1, T0 + 1),
        stat("kills", 8.0, 5.0, 2, T0 + 2),
        login("login", 2, T0 + 3),
        stat("assists", 9.0, 9.0, 1, T0 + 4),
    ];
    let mut updates = BUILTIN.evaluate(&request(events, goals)).unwrap();
    updates.sort_by_key(|u| u.goal_index);
    let summary: Vec<_> = updates.iter().map(|u| (u.goal_index, u.progress, u.status)).collect();
    assert_eq!(
        summary,
        [
            (0, 8, GoalStatus::InProgress),
            (1, 2, GoalStatus::Completed),
            (4, 1, GoalStatus::Completed),
            (5, 8, GoalStatus::Completed),
        ]
    );
    assert_eq!(updates[1].completed_at_ms, Some(T0 + 3));
    assert_eq!(updates[2].completed_at_ms, Some(T0 + 1));
    assert_eq!(updates[3].baseline, Some(0));
}

#[test]
fn events_apply_in_order() {
    let goal = fresh(spec("absolute", "kills", 100));
    let forward = vec![stat("kills", 10.0, 10.0, 1, T0), stat("kills", 4.0, -6.0, 2, T0 + 1)];
    let mut backward = forward.clone();
    backward.reverse();
    assert_eq!(BUILTIN.evaluate(&request(forward, vec![goal.clone()])).unwrap()[0].progress, 4);
    assert_eq!(BUILTIN.evaluate(&request(backward, vec![goal])).unwrap()[0].progress, 10);
}

#[test]
fn evaluation_is_deterministic() {
    let goals = vec![
        fresh(relative(spec("absolute", "kills", 10))),
        fresh(daily(spec("increment", "login", 5))),
        fresh(spec("daily", "login", 1)),
    ];
    let events: Vec<Event> = (0..40)
        .map(|i| {
            if i % 2 == 0 {
                stat("kills", f64::from(i) * 1.5, 1.5, i64::from(i) + 1, T0 + i64::from(i) * DAY / 3)
            } else {
                login("login", i64::from(i), T0 + i64::from(i) * DAY / 3)
            }
        })
        .collect();
    let request = request(events, goals);
    let first = BUILTIN.evaluate(&request).unwrap();
    assert_eq!(first.len(), 3);
    for _ in 0..5 {
        assert_eq!(BUILTIN.evaluate(&request).unwrap(), first);
    }
    // A separately loaded copy (fresh instances) agrees too.
    let other = RUNTIME.load(BUILTIN_RULES_WASM, PluginLimits::default()).unwrap();
    assert_eq!(other.evaluate(&request).unwrap(), first);
}

#[test]
fn validate_params_checks_goal_configuration() {
    assert_eq!(BUILTIN.validate_params(&spec("absolute", "kills", 10)).unwrap(), Vec::<String>::new());
    assert_eq!(BUILTIN.validate_params(&daily(spec("increment", "login", 7))).unwrap(), Vec::<String>::new());
    assert_eq!(BUILTIN.validate_params(&with_params(spec("daily", "login", 1), "")).unwrap(), Vec::<String>::new());

    let rejected = |spec: GoalSpec| match BUILTIN.validate_params(&spec) {
        Err(PluginError::Rejected(message)) => message,
        other => panic!("expected a rejection, got {other:?}"),
    };
    assert!(rejected(spec("streak", "login", 3)).contains("unknown goal kind"));
    assert!(rejected(daily(spec("absolute", "kills", 3))).contains("daily flag"));
    assert!(rejected(spec("absolute", "kills", 0)).contains("target must be positive"));
    assert!(rejected(with_params(spec("absolute", "kills", 1), r#"{"days": 3}"#)).contains("invalid params"));
}

#[test]
fn unknown_kinds_fail_the_evaluation() {
    let err = BUILTIN.evaluate(&request(vec![login("s", 1, T0)], vec![fresh(spec("mystery", "s", 1))])).unwrap_err();
    assert!(matches!(&err, PluginError::Rejected(m) if m.contains("mystery")), "{err:?}");
    // The plugin keeps working.
    assert_eq!(BUILTIN.evaluate(&request(vec![], vec![])).unwrap(), vec![]);
}
