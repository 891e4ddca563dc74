//! Loading whole files: the reference file, our sample configuration, extensions, errors and the catalog's indexes.

mod common;

use std::collections::HashMap;

use challenge_core::config::{
    BUILTIN_PLUGIN, BuiltinOnly, ConfigError, EventSource, GoalKind, Operator, ProgressMode, RewardType, RotationType,
    Schedule, load_bytes, load_file, load_str, report,
};
use common::*;
use serde_json::json;

fn ids<'a>(goals: impl Iterator<Item = &'a challenge_core::config::Goal>) -> Vec<&'a str> {
    goals.map(|goal| goal.id.as_str()).collect()
}

#[test]
fn the_reference_file_loads_unchanged() {
    let Some(path) = reference_file() else { return };
    let catalog = load_file(&path, &BuiltinOnly).unwrap_or_else(|err| panic!("{}", report(&err)));
    assert_eq!(catalog.challenges().len(), 7);
    assert_eq!(catalog.goal_count(), 24);
    assert_eq!(catalog.goals().count(), 24);
    assert_eq!(
        ids(catalog.rotating_goals()),
        [
            "daily-challenges-goal-01",
            "daily-challenges-goal-02",
            "daily-wins-no-reselect",
            "daily-login-rotation",
            "weekly-challenges-goal-01",
            "weekly-challenges-goal-02",
            "weekly-wins-no-reset",
            "monthly-kills-goal",
        ]
    );
    let monthly = catalog.rotation("monthly-kills-goal").unwrap();
    assert_eq!((monthly.rotation_type, &monthly.schedule), (RotationType::Global, &Some(Schedule::Monthly)));
    let no_reset = catalog.rotation("weekly-wins-no-reset").unwrap();
    assert!(!no_reset.on_expiry.reset_progress && !no_reset.on_expiry.allow_reselection);

    // Legacy `type` values are read; goals without one are absolute.
    assert_eq!(catalog.goal("login-today").unwrap().kind, GoalKind::Daily);
    assert_eq!(catalog.goal("daily-wins").unwrap().kind, GoalKind::Absolute);
    let goal = catalog.goal("kill-10-snowmen").unwrap();
    assert_eq!(goal.challenge_id, "winter-challenge-2025");
    assert_eq!(goal.prerequisites, ["complete-tutorial"]);
    assert_eq!(goal.reward.reward_type, RewardType::Item);
    assert_eq!(goal.rule_plugin(), BUILTIN_PLUGIN);

    assert_eq!(catalog.login_stat_codes(), ["login_count", "daily_login"]);
    assert_eq!(catalog.login_goals().len(), 6);
    assert_eq!(
        ids(catalog.goals_for_stat("wins")),
        [
            "daily-wins",
            "daily-challenges-goal-02",
            "daily-wins-no-reselect",
            "weekly-challenges-goal-02",
            "weekly-wins-no-reset"
        ]
    );
    assert_eq!(catalog.default_goals().len(), 10);
    assert_eq!(catalog.default_goals().next().unwrap().id, "challenge-001-goal-01");
}

#[test]
fn the_sample_configuration_loads_with_its_indexes() {
    let catalog =
        load_file(config_dir().join("challenges.json"), &BuiltinOnly).unwrap_or_else(|err| panic!("{}", report(&err)));
    assert_eq!(
        catalog.challenges().iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["first-flight", "derelict-signal", "station-life", "bounty-board", "weekly-contracts"]
    );
    assert_eq!(catalog.goal_count(), 14);

    // Newcomer goals, assigned by default in configuration order.
    assert_eq!(
        ids(catalog.default_goals()),
        [
            "first-flight-board",
            "first-flight-sim",
            "first-flight-rank",
            "station-dockings",
            "bounty-ore",
            "bounty-raiders",
            "contract-freight",
            "contract-arena"
        ]
    );
    let board = catalog.goal("first-flight-board").unwrap();
    assert_eq!((board.event_source, board.stat_code()), (EventSource::Login, "login"));
    assert_eq!(catalog.login_stat_codes(), ["login", "roll-call"]);
    assert_eq!(ids(catalog.login_goals()), ["first-flight-board", "station-roll-call"]);
    assert_eq!(ids(catalog.goals_for_stat("login")), ["first-flight-board"]);
    assert_eq!(catalog.goals_for_stat("nobody-sends-this").len(), 0);

    // The quest chain, including a prerequisite in another challenge.
    assert_eq!(catalog.goal("derelict-scan").unwrap().prerequisites, ["first-flight-rank"]);
    assert_eq!(catalog.goal("derelict-engine").unwrap().prerequisites, ["derelict-cores"]);

    let patrols = catalog.goal("station-patrols").unwrap();
    assert_eq!((patrols.kind, patrols.daily), (GoalKind::Increment, true));
    assert_eq!(catalog.goal("station-dockings").unwrap().kind, GoalKind::Increment);
    assert_eq!(catalog.goal("station-roll-call").unwrap().kind, GoalKind::Daily);

    // Rotations: inherited from the bounty board, own blocks on the weekly contracts.
    let board = catalog.challenge("bounty-board").unwrap();
    assert_eq!(board.pool_size, Some(2));
    let inherited = catalog.rotation("bounty-escort").unwrap();
    assert_eq!(Some(inherited), board.rotation.as_ref());
    assert_eq!(inherited.schedule, Some(Schedule::Daily));
    assert!(catalog.rotation("bounty-ore").unwrap().on_expiry.allow_reselection);
    assert!(!catalog.rotation("bounty-raiders").unwrap().on_expiry.allow_reselection);
    let freight = catalog.rotation("contract-freight").unwrap();
    assert_eq!(freight.schedule, Some(Schedule::Weekly));
    assert!(!freight.on_expiry.reset_progress);
    assert!(catalog.rotating_goals().all(|goal| goal.requirement.progress_mode == ProgressMode::Relative));
    assert_eq!(catalog.rotating_goals().len(), 5);
    assert_eq!(catalog.rotation("first-flight-rank"), None);
}

#[test]
fn the_invalid_example_reports_every_problem() {
    let path = config_dir().join("invalid-example.json");
    let err = load_file(&path, &BuiltinOnly).expect_err("the example is invalid");
    let found = err.problems();
    let at = |goal: &str, field: &str| format!("challenge 'harvest-festival' goal '{goal}': {field}");
    let expected = [
        (at("harvest-pumpkins", "requirement.targetValue"), "(got 0)"),
        (at("harvest-pumpkins", "reward.type"), "unknown reward type 'GOLD'"),
        (at("harvest-feast", "eventSource"), "unknown event source 'purchase'"),
        (at("harvest-feast", "daily"), "only valid on increment goals"),
        (at("harvest-feast", "requirement.operator"), "unknown operator '>'"),
        (at("harvest-feast", "reward.rewardId"), "must not be empty"),
        (at("harvest-dance", "rotation.schedule"), "unknown schedule 'hourly'"),
        (at("harvest-daily", "requirement.progressMode"), "needs progressMode 'relative'"),
        (at("harvest-daily", "rule.plugin"), "unknown rule plugin 'streak-counter'"),
        (at("harvest-pumpkins", "goalId"), "duplicate goal id"),
        ("challenge #2: challengeId".to_owned(), "must not be empty"),
        ("challenge #2: name".to_owned(), "must not be empty"),
        ("challenge #2: goals".to_owned(), "at least one goal"),
        (at("harvest-feast", "prerequisites[1]"), "unknown goal 'harvest-scarecrow'"),
        (at("harvest-feast", "prerequisites"), "prerequisite cycle: harvest-feast -> harvest-dance -> harvest-feast"),
    ];
    assert_eq!(found.len(), expected.len(), "{}", lines(found));
    for (problem, (location, words)) in found.iter().zip(&expected) {
        assert_eq!(problem.location.file.as_deref(), Some(path.as_path()));
        let without_file = challenge_core::config::Location { file: None, ..problem.location.clone() };
        assert_eq!(&without_file.to_string(), location);
        assert!(problem.message.contains(words), "`{problem}` lacks `{words}`");
    }

    // Display and the CLI report list every problem.
    let text = err.to_string();
    assert!(text.starts_with("invalid challenge configuration (15 problems):"), "{text}");
    assert_eq!(text.lines().count(), 16);
    let report = report(&err);
    assert!(report.starts_with("15 problems found:\n"), "{report}");
    assert!(
        report.contains(&format!(
            " 1. {}: {}: must be a positive integer (got 0)\n",
            path.display(),
            at("harvest-pumpkins", "requirement.targetValue")
        )),
        "{report}"
    );
    assert!(report.contains("\n15. "), "{report}");
}

#[test]
fn problems_display_file_challenge_goal_field_and_message() {
    let text = single(set(goal("kill-10"), "requirement.targetValue", json!(0)));
    let text = text.replace("\"c\"", "\"winter\"");
    let err = load_bytes(text.as_bytes(), Some(std::path::Path::new("challenges.json")), &plugins()).err().unwrap();
    assert_eq!(
        err.problems()[0].to_string(),
        "challenges.json: challenge 'winter' goal 'kill-10': requirement.targetValue: must be a positive integer (got 0)"
    );
    assert_eq!(report(&err), format!("1 problem found:\n1. {}\n", err.problems()[0]));
}

#[test]
fn malformed_json_is_a_parse_error_with_its_line() {
    let text = "{\n  \"challenges\": [\n    {\"challengeId\": \"a\",}\n  ]\n}\n";
    match load_str(text, &BuiltinOnly) {
        Err(ConfigError::Parse { path, line, column, message }) => {
            assert_eq!((path, line), (None, 3));
            assert!(column > 0 && !message.contains("at line"), "{message}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.json");
    std::fs::write(&path, "{\"challenges\": [").unwrap();
    let err = load_file(&path, &BuiltinOnly).err().unwrap();
    assert!(matches!(&err, ConfigError::Parse { line: 1, .. }), "{err:?}");
    assert!(err.to_string().starts_with(&format!("{}: line 1, column", path.display())), "{err}");
    assert!(report(&err).contains("malformed JSON"));
    assert!(matches!(load_str("", &BuiltinOnly), Err(ConfigError::Parse { .. })));
}

#[test]
fn an_unreadable_file_is_a_read_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.json");
    match load_file(&path, &BuiltinOnly) {
        Err(ConfigError::Read { path: reported, source }) => {
            assert_eq!(reported, path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected a read error, got {other:?}"),
    }
}

#[test]
fn extensions_load_into_typed_values() {
    let text = config(vec![json!({
        "challengeId": "season",
        "name": "Season",
        "poolSize": 1,
        "rotation": {
            "enabled": true, "type": "per_user", "duration": "36h", "autoAssign": true,
            "onExpiry": {"resetProgress": true, "allowReselection": false}
        },
        "goals": [
            set(set(goal("streak"), "requirement.progressMode", json!("relative")), "rule", json!({"plugin": "streak", "version": "1.0.0", "params": {"days": 5, "grace": "1h"}})),
            set(set(goal("custom"), "requirement.progressMode", json!("relative")), "rotation", json!({
                "enabled": true, "type": "global", "schedule": "custom", "cron": "0 0 4 * * Mon",
                "timeZone": "Europe/Paris", "startTime": "2025-01-06T05:00:00+01:00"
            })),
            set(goal("opt-out"), "rotation", json!({"enabled": false})),
        ]
    })]);
    let catalog = load_ok(&text);
    let streak = catalog.goal("streak").unwrap();
    assert_eq!(streak.rule_plugin(), "streak");
    let rule = streak.rule.as_ref().unwrap();
    assert_eq!((rule.version.as_deref(), &rule.params), (Some("1.0.0"), &json!({"days": 5, "grace": "1h"})));
    assert_eq!(streak.requirement.operator, Operator::Gte);
    let per_user = streak.rotation.as_ref().unwrap();
    assert_eq!(per_user.rotation_type, RotationType::PerUser);
    assert_eq!(per_user.duration.unwrap().seconds(), 36 * 3600);
    assert_eq!((per_user.schedule.as_ref(), per_user.auto_assign, per_user.time_zone), (None, true, chrono_tz::UTC));
    assert!(per_user.on_expiry.reset_progress && !per_user.on_expiry.allow_reselection);

    let custom = catalog.rotation("custom").unwrap();
    assert_eq!(custom.schedule, Some(Schedule::Custom("0 0 4 * * Mon".into())));
    assert_eq!(custom.time_zone, chrono_tz::Europe::Paris);
    assert_eq!(custom.start_time.unwrap().to_rfc3339(), "2025-01-06T04:00:00+00:00");
    assert!(!custom.auto_assign);
    assert_eq!(custom.on_expiry, challenge_core::config::OnExpiry { reset_progress: true, allow_reselection: true });

    assert_eq!(catalog.rotation("opt-out"), None);
    assert_eq!(ids(catalog.rotating_goals()), ["streak", "custom"]);
    assert_eq!(catalog.summary().plugin_goals, 1);
}

#[test]
fn goals_serialize_in_camel_case() {
    let text = single(set(
        set(goal("g"), "rotation", json!({"enabled": true, "type": "per_user", "duration": "2w"})),
        "type",
        json!("increment"),
    ));
    let catalog = load_ok(&text);
    let value = serde_json::to_value(catalog.goal("g").unwrap()).unwrap();
    assert_eq!(
        value,
        json!({
            "goalId": "g", "challengeId": "c", "name": "Goal g", "description": "", "type": "increment",
            "eventSource": "statistic", "daily": false, "defaultAssigned": false,
            "requirement": {"statCode": "kills", "operator": ">=", "targetValue": 10, "progressMode": "absolute"},
            "reward": {"type": "WALLET", "rewardId": "GOLD", "quantity": 5},
            "prerequisites": [],
            "rotation": {
                "enabled": true, "type": "per_user", "duration": "2w", "timeZone": "UTC", "autoAssign": false,
                "onExpiry": {"resetProgress": true, "allowReselection": true}
            }
        })
    );
    let challenge = serde_json::to_value(catalog.challenge("c").unwrap()).unwrap();
    assert_eq!(challenge["challengeId"], "c");
    assert_eq!(challenge["goals"][0]["goalId"], "g");
}

#[test]
fn extra_stat_codes_extend_the_stat_index() {
    let text = config(vec![challenge("c", vec![goal("a"), set(goal("b"), "requirement.statCode", json!("deaths"))])]);
    let catalog = load_ok(&text);
    let extra = HashMap::from([("b".to_owned(), vec!["kills".to_owned(), "deaths".to_owned(), "assists".to_owned()])]);
    let extended = catalog.with_extra_stat_codes(&extra).unwrap();
    assert_eq!(ids(extended.goals_for_stat("kills")), ["a", "b"]);
    assert_eq!(ids(extended.goals_for_stat("assists")), ["b"]);
    assert_eq!(extended.goal("b").unwrap().listens_to, ["deaths", "kills", "assists"]);
    assert_eq!(extended.version(), catalog.version());
    // The original is untouched.
    assert_eq!(ids(catalog.goals_for_stat("kills")), ["a"]);

    let bad = HashMap::from([("ghost".to_owned(), vec!["x".to_owned()]), ("a".to_owned(), vec![" ".to_owned()])]);
    let err = catalog.with_extra_stat_codes(&bad).err().unwrap();
    let found: Vec<String> = err.problems().iter().map(ToString::to_string).collect();
    assert_eq!(
        found,
        ["goal 'a': listensTo: stat codes must not be empty", "goal 'ghost': listensTo: unknown goal 'ghost'"]
    );
}

#[test]
fn version_is_a_short_hash_of_the_bytes() {
    let text = single(goal("g"));
    let first = load_ok(&text);
    assert_eq!(first.version().len(), 16);
    assert!(first.version().chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(load_ok(&text).version(), first.version());
    assert_ne!(load_ok(&format!("{text}\n")).version(), first.version());
}

#[test]
fn a_byte_order_mark_is_accepted() {
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(single(goal("g")).as_bytes());
    assert!(load_bytes(&bytes, None, &BuiltinOnly).is_ok());
}

#[test]
fn a_catalog_is_cheap_to_share() {
    let catalog = load_ok(&single(goal("g")));
    let copy = catalog.clone();
    assert!(std::ptr::eq(catalog.challenges().as_ptr(), copy.challenges().as_ptr()));
    fn shareable<T: Send + Sync + 'static>(_: &T) {}
    shareable(&catalog);
}
