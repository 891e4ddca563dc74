//! Builders for small configuration files and assertions on the problems they produce.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;

use challenge_core::config::{Catalog, ConfigError, KnownPlugins, Problem, load_str};
use serde_json::{Value, json};

/// Plugins the tests pretend are installed.
pub fn plugins() -> KnownPlugins {
    KnownPlugins::new().with("streak", &["1.0.0", "1.1.0"]).with("combo", &[])
}

/// A valid statistic goal.
pub fn goal(id: &str) -> Value {
    json!({
        "goalId": id,
        "name": format!("Goal {id}"),
        "eventSource": "statistic",
        "requirement": { "statCode": "kills", "operator": ">=", "targetValue": 10 },
        "reward": { "type": "WALLET", "rewardId": "GOLD", "quantity": 5 }
    })
}

pub fn challenge(id: &str, goals: Vec<Value>) -> Value {
    json!({ "challengeId": id, "name": format!("Challenge {id}"), "goals": goals })
}

pub fn config(challenges: Vec<Value>) -> String {
    json!({ "challenges": challenges }).to_string()
}

/// One challenge `c` holding one goal `g`.
pub fn single(goal_value: Value) -> String {
    config(vec![challenge("c", vec![goal_value])])
}

/// Sets a dotted path (`requirement.targetValue`), creating objects on the way.
pub fn set(mut value: Value, path: &str, new: Value) -> Value {
    let mut at = &mut value;
    let mut keys = path.split('.').peekable();
    while let Some(key) = keys.next() {
        let object = at.as_object_mut().expect("path through an object");
        if keys.peek().is_none() {
            object.insert(key.to_owned(), new);
            break;
        }
        at = object.entry(key.to_owned()).or_insert_with(|| json!({}));
    }
    value
}

/// Removes a dotted path.
pub fn remove(mut value: Value, path: &str) -> Value {
    let (parent, key) = path.rsplit_once('.').map_or(("", path), |(p, k)| (p, k));
    let target =
        if parent.is_empty() { Some(&mut value) } else { value.pointer_mut(&format!("/{}", parent.replace('.', "/"))) };
    if let Some(object) = target.and_then(Value::as_object_mut) {
        object.remove(key);
    }
    value
}

pub fn load(text: &str) -> Result<Catalog, ConfigError> {
    load_str(text, &plugins())
}

pub fn load_ok(text: &str) -> Catalog {
    match load(text) {
        Ok(catalog) => catalog,
        Err(err) => panic!("expected a valid configuration, got:\n{err}"),
    }
}

pub fn problems(text: &str) -> Vec<Problem> {
    match load(text) {
        Ok(_) => panic!("expected problems, but the configuration loaded"),
        Err(ConfigError::Invalid { problems }) => problems,
        Err(other) => panic!("expected validation problems, got {other}"),
    }
}

/// Asserts exactly one problem, at `location` (as displayed, without a file), whose message holds every word.
pub fn one_problem(text: &str, location: &str, words: &[&str]) -> Problem {
    let found = problems(text);
    assert_eq!(found.len(), 1, "expected one problem, got:\n{}", lines(&found));
    let problem = found.into_iter().next().unwrap();
    assert_problem(&problem, location, words);
    problem
}

pub fn assert_problem(problem: &Problem, location: &str, words: &[&str]) {
    assert_eq!(problem.location.to_string(), location, "location of: {problem}");
    for word in words {
        assert!(problem.message.contains(word), "message of `{problem}` lacks `{word}`");
    }
}

pub fn lines(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  {p}\n")).collect()
}

/// `/work/shared/reference/challenges.json`, or `None` (with a notice) outside CI when it is absent.
pub fn reference_file() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/challenges.json");
    if path.exists() {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!("reference file {} is missing", path.display());
    }
    eprintln!("notice: {} not found; skipping the reference-file test", path.display());
    None
}

/// The repository's `config/` directory.
pub fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config")
}
