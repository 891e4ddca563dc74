//! One test per validation rule: a minimal bad file, the exact location and the key words of the message.

mod common;

use challenge_core::config::MAX_ID_LEN;
use common::*;
use serde_json::json;

const G: &str = "challenge 'c' goal 'g'";

fn bad_goal(path: &str, value: serde_json::Value) -> String {
    single(set(goal("g"), path, value))
}

// ---- document and ids ----

#[test]
fn a_config_needs_challenges() {
    one_problem(r#"{"challenges": []}"#, "challenges", &["at least one challenge"]);
    one_problem("{}", "challenges", &["at least one challenge"]);
    one_problem(r#"{"challenges": {}}"#, "challenges", &["must be an array", "object"]);
    one_problem("[1, 2]", "", &["JSON object", "'challenges'", "got an array"]);
}

#[test]
fn ids_must_not_be_empty() {
    let text = config(vec![set(challenge("x", vec![goal("g")]), "challengeId", json!(""))]);
    one_problem(&text, "challenge #1: challengeId", &["must not be empty"]);
    let text = config(vec![remove(challenge("x", vec![goal("g")]), "challengeId")]);
    one_problem(&text, "challenge #1: challengeId", &["required"]);
    one_problem(&bad_goal("goalId", json!("  ")), "challenge 'c' goal #1: goalId", &["must not be empty"]);
    one_problem(&bad_goal("goalId", json!(7)), "challenge 'c' goal #1: goalId", &["must be a string", "number"]);
}

#[test]
fn ids_are_at_most_100_characters() {
    let long = "x".repeat(MAX_ID_LEN + 1);
    let text = config(vec![challenge(&long, vec![goal("g")])]);
    one_problem(&text, &format!("challenge '{long}': challengeId"), &["at most 100 characters", "got 101"]);
    one_problem(&single(goal(&long)), &format!("challenge 'c' goal '{long}': goalId"), &["at most 100", "got 101"]);
    load_ok(&config(vec![challenge(&"y".repeat(MAX_ID_LEN), vec![goal(&"z".repeat(MAX_ID_LEN))])]));
}

#[test]
fn names_must_not_be_empty() {
    let text = config(vec![set(challenge("c", vec![goal("g")]), "name", json!(""))]);
    one_problem(&text, "challenge 'c': name", &["must not be empty"]);
    one_problem(&single(remove(goal("g"), "name")), &format!("{G}: name"), &["required"]);
}

#[test]
fn challenge_ids_are_unique() {
    let text = config(vec![challenge("c", vec![goal("g1")]), challenge("c", vec![goal("g2")])]);
    one_problem(&text, "challenge 'c': challengeId", &["duplicate challenge id", "challenge #1"]);
}

#[test]
fn goal_ids_are_unique_across_challenges() {
    let text = config(vec![challenge("c1", vec![goal("g")]), challenge("c2", vec![goal("g")])]);
    one_problem(&text, "challenge 'c2' goal 'g': goalId", &["duplicate goal id", "challenge 'c1'"]);
    let text = config(vec![challenge("c1", vec![goal("g"), goal("g")])]);
    one_problem(&text, "challenge 'c1' goal 'g': goalId", &["duplicate goal id", "goal #1"]);
}

#[test]
fn a_challenge_needs_goals() {
    one_problem(&config(vec![challenge("c", vec![])]), "challenge 'c': goals", &["at least one goal"]);
    let text = config(vec![remove(challenge("c", vec![]), "goals")]);
    one_problem(&text, "challenge 'c': goals", &["at least one goal"]);
    let text = config(vec![set(challenge("c", vec![]), "goals", json!("g"))]);
    one_problem(&text, "challenge 'c': goals", &["must be an array", "string"]);
}

// ---- closed value sets ----

#[test]
fn unknown_enum_values_are_named_with_the_expected_ones() {
    let cases = [
        ("type", "achievement", "type", "unknown goal type 'achievement'", "'increment'"),
        ("eventSource", "purchase", "eventSource", "unknown event source 'purchase'", "'statistic'"),
        ("requirement.operator", ">", "requirement.operator", "unknown operator '>'", "'>='"),
        (
            "requirement.progressMode",
            "delta",
            "requirement.progressMode",
            "unknown progress mode 'delta'",
            "'relative'",
        ),
        ("reward.type", "wallet", "reward.type", "unknown reward type 'wallet'", "'WALLET'"),
    ];
    for (path, value, field, first, expected) in cases {
        one_problem(&bad_goal(path, json!(value)), &format!("{G}: {field}"), &[first, expected]);
    }
    let rotation = json!({"enabled": true, "type": "regional", "schedule": "daily"});
    one_problem(
        &bad_goal("rotation", rotation),
        &format!("{G}: rotation.type"),
        &["unknown rotation type 'regional'", "'per_user'"],
    );
    let rotation = json!({"enabled": true, "type": "global", "schedule": "DAILY"});
    one_problem(
        &bad_goal("rotation", rotation),
        &format!("{G}: rotation.schedule"),
        &["unknown schedule 'DAILY'", "'custom'"],
    );
}

#[test]
fn required_enum_fields_say_what_they_accept() {
    one_problem(
        &single(remove(goal("g"), "eventSource")),
        &format!("{G}: eventSource"),
        &["required", "'login' or 'statistic'"],
    );
    one_problem(
        &single(remove(goal("g"), "requirement.operator")),
        &format!("{G}: requirement.operator"),
        &["required", "'>='"],
    );
    one_problem(
        &single(remove(goal("g"), "reward.type")),
        &format!("{G}: reward.type"),
        &["required", "'ITEM' or 'WALLET'"],
    );
}

#[test]
fn empty_type_and_progress_mode_read_as_the_defaults() {
    let text = single(set(set(goal("g"), "type", json!("")), "requirement.progressMode", json!("")));
    let catalog = load_ok(&text);
    let goal = catalog.goal("g").unwrap();
    assert_eq!(goal.kind, challenge_core::config::GoalKind::Absolute);
    assert_eq!(goal.requirement.progress_mode, challenge_core::config::ProgressMode::Absolute);
}

// ---- numbers ----

#[test]
fn target_value_must_be_a_positive_integer() {
    let at = format!("{G}: requirement.targetValue");
    one_problem(&bad_goal("requirement.targetValue", json!(0)), &at, &["must be a positive integer", "(got 0)"]);
    one_problem(&bad_goal("requirement.targetValue", json!(-5)), &at, &["positive integer", "(got -5)"]);
    one_problem(&bad_goal("requirement.targetValue", json!(2.5)), &at, &["positive integer", "(got 2.5)"]);
    one_problem(&bad_goal("requirement.targetValue", json!("10")), &at, &["positive integer", "(got a string)"]);
    one_problem(&bad_goal("requirement.targetValue", json!(u64::MAX)), &at, &["positive integer"]);
    one_problem(&single(remove(goal("g"), "requirement.targetValue")), &at, &["positive integer", "(got nothing)"]);
}

#[test]
fn reward_quantity_must_be_a_positive_integer() {
    let at = format!("{G}: reward.quantity");
    one_problem(&bad_goal("reward.quantity", json!(0)), &at, &["must be a positive integer", "(got 0)"]);
    one_problem(&bad_goal("reward.quantity", json!(1.0)), &at, &["positive integer", "(got 1.0)"]);
}

// ---- requirement and reward ----

#[test]
fn statistic_goals_need_a_stat_code() {
    let at = format!("{G}: requirement.statCode");
    one_problem(&single(remove(goal("g"), "requirement.statCode")), &at, &["required for statistic goals"]);
    one_problem(&bad_goal("requirement.statCode", json!("")), &at, &["required for statistic goals"]);
    one_problem(&bad_goal("requirement.statCode", json!(["kills"])), &at, &["must be a string", "array"]);
}

#[test]
fn login_goals_default_their_stat_code() {
    let text = single(remove(set(goal("g"), "eventSource", json!("login")), "requirement.statCode"));
    let catalog = load_ok(&text);
    assert_eq!(catalog.goal("g").unwrap().stat_code(), challenge_core::config::DEFAULT_LOGIN_STAT_CODE);
    assert_eq!(catalog.login_stat_codes(), ["login"]);
}

#[test]
fn reward_id_must_not_be_empty() {
    one_problem(&bad_goal("reward.rewardId", json!("")), &format!("{G}: reward.rewardId"), &["must not be empty"]);
    one_problem(&single(remove(goal("g"), "reward.rewardId")), &format!("{G}: reward.rewardId"), &["required"]);
}

#[test]
fn requirement_and_reward_are_required_objects() {
    one_problem(&single(remove(goal("g"), "requirement")), &format!("{G}: requirement"), &["required"]);
    one_problem(&bad_goal("reward", json!("GOLD")), &format!("{G}: reward"), &["must be an object", "string"]);
}

#[test]
fn wrong_json_types_are_located() {
    one_problem(
        &bad_goal("defaultAssigned", json!("yes")),
        &format!("{G}: defaultAssigned"),
        &["true or false", "string"],
    );
    one_problem(&bad_goal("description", json!(3)), &format!("{G}: description"), &["must be a string"]);
    one_problem(
        &config(vec![challenge("c", vec![json!("g")])]),
        "challenge 'c' goal #1",
        &["must be an object", "string"],
    );
    one_problem(&config(vec![json!(null)]), "challenge #1", &["must be an object", "null"]);
}

// ---- daily flag ----

#[test]
fn daily_flag_only_on_increment_goals() {
    one_problem(
        &bad_goal("daily", json!(true)),
        &format!("{G}: daily"),
        &["only valid on increment goals", "'absolute'"],
    );
    let text = single(set(set(goal("g"), "daily", json!(true)), "type", json!("daily")));
    one_problem(&text, &format!("{G}: daily"), &["only valid on increment goals", "'daily'"]);
    let text = single(set(set(goal("g"), "daily", json!(true)), "type", json!("increment")));
    assert!(load_ok(&text).goal("g").unwrap().daily);
    load_ok(&bad_goal("daily", json!(false)));
}

// ---- prerequisites ----

#[test]
fn prerequisites_must_exist() {
    let text = single(set(goal("g"), "prerequisites", json!(["nope"])));
    one_problem(&text, &format!("{G}: prerequisites[0]"), &["unknown goal 'nope'"]);
    // Cross-challenge prerequisites are fine.
    let text = config(vec![
        challenge("a", vec![goal("g1")]),
        challenge("b", vec![set(goal("g2"), "prerequisites", json!(["g1"]))]),
    ]);
    assert_eq!(load_ok(&text).goal("g2").unwrap().prerequisites, ["g1"]);
}

#[test]
fn a_goal_cannot_require_itself() {
    let text = single(set(goal("g"), "prerequisites", json!(["g"])));
    one_problem(&text, &format!("{G}: prerequisites[0]"), &["cannot be its own prerequisite"]);
}

#[test]
fn prerequisite_entries_are_checked() {
    let text = config(vec![challenge("c", vec![goal("h"), set(goal("g"), "prerequisites", json!(["h", "h"]))])]);
    one_problem(&text, &format!("{G}: prerequisites[1]"), &["'h' is listed more than once"]);
    let found = problems(&bad_goal("prerequisites", json!(["", 3])));
    assert_eq!(found.len(), 2, "{}", lines(&found));
    assert_problem(&found[0], &format!("{G}: prerequisites[0]"), &["must be a goal id", "(got '')"]);
    assert_problem(&found[1], &format!("{G}: prerequisites[1]"), &["must be a goal id", "(got a number)"]);
    one_problem(&bad_goal("prerequisites", json!("h")), &format!("{G}: prerequisites"), &["must be an array"]);
}

#[test]
fn prerequisite_cycles_are_reported_once_with_their_path() {
    let text = config(vec![challenge(
        "c",
        vec![
            set(goal("a"), "prerequisites", json!(["b"])),
            set(goal("b"), "prerequisites", json!(["c"])),
            set(goal("c"), "prerequisites", json!(["a"])),
            set(goal("d"), "prerequisites", json!(["a"])),
        ],
    )]);
    one_problem(&text, "challenge 'c' goal 'a': prerequisites", &["prerequisite cycle: a -> b -> c -> a"]);
}

#[test]
fn separate_cycles_are_each_reported_across_challenges() {
    let text = config(vec![
        challenge(
            "one",
            vec![set(goal("a"), "prerequisites", json!(["b"])), set(goal("x"), "prerequisites", json!(["y"]))],
        ),
        challenge(
            "two",
            vec![set(goal("b"), "prerequisites", json!(["a"])), set(goal("y"), "prerequisites", json!(["x"]))],
        ),
    ]);
    let found = problems(&text);
    assert_eq!(found.len(), 2, "{}", lines(&found));
    assert_problem(&found[0], "challenge 'one' goal 'a': prerequisites", &["a -> b -> a"]);
    assert_problem(&found[1], "challenge 'one' goal 'x': prerequisites", &["x -> y -> x"]);
}

// ---- rotation ----

fn rotation(extra: serde_json::Value) -> serde_json::Value {
    let mut block = json!({"enabled": true, "type": "global", "schedule": "daily"});
    block.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    block
}

fn rotating_goal(block: serde_json::Value) -> String {
    single(set(set(goal("g"), "requirement.progressMode", json!("relative")), "rotation", block))
}

#[test]
fn per_user_rotation_needs_a_valid_duration() {
    let at = format!("{G}: rotation.duration");
    let per_user = |duration: serde_json::Value| {
        let mut block = json!({"enabled": true, "type": "per_user"});
        if !duration.is_null() {
            block["duration"] = duration;
        }
        rotating_goal(block)
    };
    one_problem(&per_user(json!(null)), &at, &["required for per_user"]);
    one_problem(&per_user(json!("7x")), &at, &["like '36h'", "got '7x'"]);
    one_problem(&per_user(json!("0h")), &at, &["longer than zero"]);
    one_problem(&per_user(json!(7)), &at, &["must be a string"]);
    load_ok(&per_user(json!("36h")));
}

#[test]
fn custom_schedule_needs_a_valid_cron() {
    let at = format!("{G}: rotation.cron");
    one_problem(&rotating_goal(rotation(json!({"schedule": "custom"}))), &at, &["required when schedule is 'custom'"]);
    one_problem(
        &rotating_goal(rotation(json!({"schedule": "custom", "cron": "0 0 25 * * *"}))),
        &at,
        &["invalid cron expression"],
    );
    one_problem(
        &rotating_goal(rotation(json!({"schedule": "custom", "cron": "0 4 * * 1"}))),
        &at,
        &["5 fields", "6 or 7"],
    );
    one_problem(
        &rotating_goal(rotation(json!({"schedule": "weekly", "cron": "0 0 4 * * Mon"}))),
        &at,
        &["only used with schedule 'custom'"],
    );
    load_ok(&rotating_goal(rotation(json!({"schedule": "custom", "cron": "0 0 4 * * Mon"}))));
}

#[test]
fn rotation_fields_must_fit_the_rotation_type() {
    one_problem(
        &rotating_goal(rotation(json!({"duration": "7d"}))),
        &format!("{G}: rotation.duration"),
        &["only per_user"],
    );
    let block = json!({"enabled": true, "type": "per_user", "duration": "7d", "schedule": "daily"});
    one_problem(&rotating_goal(block), &format!("{G}: rotation.schedule"), &["per_user rotations use a duration"]);
    one_problem(
        &rotating_goal(remove(rotation(json!({})), "schedule")),
        &format!("{G}: rotation.schedule"),
        &["required for global"],
    );
    one_problem(
        &rotating_goal(remove(rotation(json!({})), "type")),
        &format!("{G}: rotation.type"),
        &["required", "'global' or 'per_user'"],
    );
}

#[test]
fn rotation_time_zone_and_start_time_are_checked() {
    one_problem(
        &rotating_goal(rotation(json!({"timeZone": "Mars/Olympus"}))),
        &format!("{G}: rotation.timeZone"),
        &["unknown time zone 'Mars/Olympus'"],
    );
    one_problem(
        &rotating_goal(rotation(json!({"startTime": "next monday"}))),
        &format!("{G}: rotation.startTime"),
        &["RFC 3339", "'next monday'"],
    );
    one_problem(
        &rotating_goal(rotation(json!({"autoAssign": "yes"}))),
        &format!("{G}: rotation.autoAssign"),
        &["true or false"],
    );
    one_problem(
        &rotating_goal(rotation(json!({"onExpiry": {"resetProgress": 1}}))),
        &format!("{G}: rotation.onExpiry.resetProgress"),
        &["true or false"],
    );
    one_problem(&rotating_goal(json!(true)), &format!("{G}: rotation"), &["must be an object", "boolean"]);
}

#[test]
fn rotating_absolute_goals_need_relative_progress() {
    let at = format!("{G}: requirement.progressMode");
    one_problem(&bad_goal("rotation", rotation(json!({}))), &at, &["needs progressMode 'relative'", "got 'absolute'"]);
    // Inherited from the challenge: same rule, and the message says where the rotation came from.
    let text = config(vec![set(challenge("c", vec![goal("g")]), "rotation", rotation(json!({})))]);
    one_problem(&text, &at, &["needs progressMode 'relative'", "inherited from the challenge"]);
    // Not for increment goals, nor for disabled rotations (any contents, as in the reference).
    load_ok(&single(set(set(goal("g"), "type", json!("increment")), "rotation", rotation(json!({})))));
    load_ok(&bad_goal("rotation", json!({"enabled": false, "type": "whatever", "schedule": 42})));
}

#[test]
fn challenge_rotation_problems_are_located_on_the_challenge() {
    let text = config(vec![set(challenge("c", vec![goal("g")]), "rotation", rotation(json!({"schedule": "hourly"})))]);
    one_problem(&text, "challenge 'c': rotation.schedule", &["unknown schedule 'hourly'"]);
}

// ---- pool size ----

#[test]
fn pool_size_is_positive_and_fits_the_goals() {
    let with_pool =
        |size: serde_json::Value| config(vec![set(challenge("c", vec![goal("g1"), goal("g2")]), "poolSize", size)]);
    one_problem(&with_pool(json!(0)), "challenge 'c': poolSize", &["positive integer", "(got 0)"]);
    one_problem(&with_pool(json!("2")), "challenge 'c': poolSize", &["positive integer", "string"]);
    one_problem(
        &with_pool(json!(3)),
        "challenge 'c': poolSize",
        &["must not exceed the number of goals", "2", "got 3"],
    );
    assert_eq!(load_ok(&with_pool(json!(2))).challenge("c").unwrap().pool_size, Some(2));
}

// ---- rule plugins ----

#[test]
fn rule_plugins_must_be_known() {
    one_problem(
        &bad_goal("rule", json!({"plugin": "nope"})),
        &format!("{G}: rule.plugin"),
        &["unknown rule plugin 'nope'"],
    );
    one_problem(
        &bad_goal("rule", json!({"plugin": "streak", "version": "9.9.9"})),
        &format!("{G}: rule.version"),
        &["'streak'", "no version '9.9.9'"],
    );
    one_problem(&bad_goal("rule", json!({"version": "1.0.0"})), &format!("{G}: rule.plugin"), &["required"]);
    one_problem(
        &bad_goal("rule", json!({"plugin": "streak", "version": ""})),
        &format!("{G}: rule.version"),
        &["must not be empty"],
    );
    load_ok(&bad_goal("rule", json!({"plugin": "streak", "version": "1.1.0"})));
    load_ok(&bad_goal("rule", json!({"plugin": "combo", "params": {"window": 3}})));
    load_ok(&bad_goal("rule", json!({"plugin": "builtin-rules", "version": "any"})));
}

#[test]
fn unknown_keys_are_ignored() {
    let text = single(set(set(goal("g"), "challengeId", json!("other")), "flavour", json!({"deep": [1, 2]})));
    assert_eq!(load_ok(&text).goal("g").unwrap().challenge_id, "c");
}

#[test]
fn impossible_schedules_are_rejected() {
    // Parses as cron, but February 30th never comes.
    let never = rotating_goal(rotation(json!({"schedule": "custom", "cron": "0 0 0 30 2 *"})));
    one_problem(&never, &format!("{G}: rotation"), &["never"]);
    // Periods years apart: only on 29 February falling on a Monday.
    let rare = rotating_goal(rotation(json!({"schedule": "custom", "cron": "0 0 0 29 2 Mon"})));
    one_problem(&rare, &format!("{G}: rotation"), &[]);
}
