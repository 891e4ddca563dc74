//! The `GET /v1/challenges/{id}/rotation` view.

mod rotation_support;

use rotation_support::*;
use serde_json::{Value, json};

use challenge_core::config::{BuiltinOnly, load_str};
use challenge_core::rotation::{RotationStatus, effective_rotation};

fn status_json(rotation: Option<&challenge_core::config::Rotation>, now: &str) -> String {
    serde_json::to_string(&RotationStatus::of(rotation, at(now))).unwrap()
}

#[test]
fn daily_status_has_the_reference_shape() {
    let json = status_json(Some(&daily("UTC")), "2026-03-06T12:00:00Z");
    assert_eq!(
        json,
        concat!(
            r#"{"enabled":true,"type":"global","schedule":"daily","#,
            r#""currentPeriod":{"startTime":"2026-03-06T00:00:00Z","endTime":"2026-03-07T00:00:00Z","expiresInSeconds":43200},"#,
            r#""nextPeriod":{"startTime":"2026-03-07T00:00:00Z","endTime":"2026-03-08T00:00:00Z","expiresInSeconds":129600}}"#
        )
    );
}

#[test]
fn no_rotation_is_disabled_with_empty_fields() {
    assert_eq!(
        status_json(None, "2026-03-06T12:00:00Z"),
        r#"{"enabled":false,"type":"","schedule":"","currentPeriod":null,"nextPeriod":null}"#
    );
}

#[test]
fn zones_custom_schedules_and_per_user_rotations() {
    let now = "2026-03-06T16:00:00Z";
    let tokyo: Value = serde_json::from_str(&status_json(Some(&weekly("Asia/Tokyo")), now)).unwrap();
    assert_eq!(
        tokyo["currentPeriod"],
        json!({"startTime": "2026-03-01T15:00:00Z", "endTime": "2026-03-08T15:00:00Z", "expiresInSeconds": 169_200})
    );
    assert_eq!(tokyo["nextPeriod"]["startTime"], "2026-03-08T15:00:00Z");

    let cron: Value = serde_json::from_str(&status_json(Some(&custom("0 0 */6 * * *", "UTC")), now)).unwrap();
    assert_eq!((&cron["schedule"], &cron["cron"]), (&json!("custom"), &json!("0 0 */6 * * *")));
    assert_eq!(cron["currentPeriod"]["expiresInSeconds"], 2 * 3600);

    assert_eq!(
        status_json(Some(&per_user("36h")), now),
        r#"{"enabled":true,"type":"per_user","schedule":"","duration":"1d12h","currentPeriod":null,"nextPeriod":null}"#
    );
}

#[test]
fn before_the_start_only_the_next_period_shows() {
    let rotation = starting(daily("UTC"), "2026-03-10T00:00:00Z");
    let status: Value = serde_json::from_str(&status_json(Some(&rotation), "2026-03-06T12:00:00Z")).unwrap();
    assert_eq!(status["currentPeriod"], Value::Null);
    assert_eq!(
        status["nextPeriod"],
        json!({"startTime": "2026-03-10T00:00:00Z", "endTime": "2026-03-11T00:00:00Z", "expiresInSeconds": 388_800})
    );
}

#[test]
fn a_challenge_reports_its_own_rotation_else_its_first_rotating_goal() {
    let goal = |id: &str, rotation: Value| {
        json!({
            "goalId": id, "name": id, "eventSource": "statistic",
            "requirement": {"statCode": "kills", "operator": ">=", "targetValue": 3, "progressMode": "relative"},
            "reward": {"type": "WALLET", "rewardId": "GOLD", "quantity": 1},
            "rotation": rotation
        })
    };
    let plain = |id: &str| {
        json!({
            "goalId": id, "name": id, "eventSource": "statistic",
            "requirement": {"statCode": "kills", "operator": ">=", "targetValue": 3},
            "reward": {"type": "WALLET", "rewardId": "GOLD", "quantity": 1}
        })
    };
    let weekly_block = json!({"enabled": true, "type": "global", "schedule": "weekly"});
    let monthly_block = json!({"enabled": true, "type": "global", "schedule": "monthly"});
    let text = json!({"challenges": [
        {"challengeId": "own", "name": "Own", "rotation": {"enabled": true, "type": "global", "schedule": "daily"},
         "goals": [goal("own-a", weekly_block.clone()), goal("own-b", json!({"enabled": false}))]},
        {"challengeId": "from-goal", "name": "From goal",
         "goals": [plain("fixed"), goal("first-rotating", monthly_block), goal("second-rotating", weekly_block)]},
        {"challengeId": "none", "name": "None", "goals": [plain("static")]}
    ]})
    .to_string();
    let catalog = load_str(&text, &BuiltinOnly).expect("valid configuration");
    let now = at("2026-03-06T12:00:00Z");
    let schedule_of = |id: &str| {
        let challenge = catalog.challenge(id).unwrap();
        assert_eq!(
            RotationStatus::for_challenge(challenge, now),
            RotationStatus::of(effective_rotation(challenge), now)
        );
        RotationStatus::for_challenge(challenge, now).schedule
    };
    assert_eq!(schedule_of("own"), "daily");
    assert_eq!(schedule_of("from-goal"), "monthly");
    assert_eq!(schedule_of("none"), "");
    let monthly = RotationStatus::for_challenge(catalog.challenge("from-goal").unwrap(), now);
    assert_eq!(monthly.current_period.unwrap().end_time, at("2026-04-01T00:00:00Z"));
    assert!(!RotationStatus::for_challenge(catalog.challenge("none").unwrap(), now).enabled);
}
