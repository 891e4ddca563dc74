//! The immutable, indexed view of a validated configuration that the rest of the host reads.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use super::error::{ConfigError, ItemRef, Location, Problem};
use super::model::{Challenge, EventSource, Goal, Rotation};

/// (challenge index, goal index) into `Inner::challenges`.
type GoalPos = (usize, usize);

/// A validated configuration with its lookup indexes. Cloning is cheap (one `Arc`).
#[derive(Debug, Clone)]
pub struct Catalog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    version: String,
    challenges: Vec<Challenge>,
    challenge_at: HashMap<String, usize>,
    goal_at: HashMap<String, GoalPos>,
    by_stat: HashMap<String, Vec<GoalPos>>,
    login_goals: Vec<GoalPos>,
    login_stat_codes: Vec<String>,
    default_goals: Vec<GoalPos>,
    rotating_goals: Vec<GoalPos>,
}

impl Catalog {
    /// Indexes challenges that passed validation.
    pub(crate) fn build(challenges: Vec<Challenge>, version: String) -> Catalog {
        let mut inner = Inner {
            version,
            challenge_at: HashMap::with_capacity(challenges.len()),
            goal_at: HashMap::new(),
            by_stat: HashMap::new(),
            login_goals: Vec::new(),
            login_stat_codes: Vec::new(),
            default_goals: Vec::new(),
            rotating_goals: Vec::new(),
            challenges: Vec::new(),
        };
        for (c, challenge) in challenges.iter().enumerate() {
            inner.challenge_at.insert(challenge.id.clone(), c);
            for (g, goal) in challenge.goals.iter().enumerate() {
                let pos = (c, g);
                inner.goal_at.insert(goal.id.clone(), pos);
                for code in &goal.listens_to {
                    inner.by_stat.entry(code.clone()).or_default().push(pos);
                }
                if goal.event_source == EventSource::Login {
                    inner.login_goals.push(pos);
                    if !inner.login_stat_codes.contains(&goal.requirement.stat_code) {
                        inner.login_stat_codes.push(goal.requirement.stat_code.clone());
                    }
                }
                if goal.default_assigned {
                    inner.default_goals.push(pos);
                }
                if goal.rotation.is_some() {
                    inner.rotating_goals.push(pos);
                }
            }
        }
        inner.challenges = challenges;
        Catalog { inner: Arc::new(inner) }
    }

    fn at(&self, (c, g): GoalPos) -> &Goal {
        &self.inner.challenges[c].goals[g]
    }

    fn list<'a>(&'a self, positions: &'a [GoalPos]) -> impl ExactSizeIterator<Item = &'a Goal> + 'a {
        positions.iter().map(|pos| self.at(*pos))
    }

    /// Short hex SHA-256 of the configuration file's bytes: a cache key for "which configuration".
    pub fn version(&self) -> &str {
        &self.inner.version
    }

    /// Challenges in configuration order.
    pub fn challenges(&self) -> &[Challenge] {
        &self.inner.challenges
    }

    pub fn challenge(&self, challenge_id: &str) -> Option<&Challenge> {
        self.inner.challenge_at.get(challenge_id).map(|c| &self.inner.challenges[*c])
    }

    /// A goal by id; `Goal::challenge_id` names its challenge.
    pub fn goal(&self, goal_id: &str) -> Option<&Goal> {
        self.inner.goal_at.get(goal_id).map(|pos| self.at(*pos))
    }

    /// Every goal, in configuration order.
    pub fn goals(&self) -> impl Iterator<Item = &Goal> + '_ {
        self.inner.challenges.iter().flat_map(|challenge| challenge.goals.iter())
    }

    pub fn goal_count(&self) -> usize {
        self.inner.goal_at.len()
    }

    /// Goals that events for `stat_code` reach, in configuration order: goals whose `statCode` it is (login goals
    /// included) and goals that registered it as an extra stat code.
    pub fn goals_for_stat(&self, stat_code: &str) -> impl ExactSizeIterator<Item = &Goal> + '_ {
        self.list(self.inner.by_stat.get(stat_code).map_or(&[][..], Vec::as_slice))
    }

    /// Every stat code some goal listens to (no particular order).
    pub fn stat_codes(&self) -> impl Iterator<Item = &str> + '_ {
        self.inner.by_stat.keys().map(String::as_str)
    }

    /// Goals moved by login events, in configuration order.
    pub fn login_goals(&self) -> impl ExactSizeIterator<Item = &Goal> + '_ {
        self.list(&self.inner.login_goals)
    }

    /// Distinct stat codes of login goals, in order of first use: what a login event increments.
    pub fn login_stat_codes(&self) -> &[String] {
        &self.inner.login_stat_codes
    }

    /// Goals assigned (active) when a player is initialized, in configuration order.
    pub fn default_goals(&self) -> impl ExactSizeIterator<Item = &Goal> + '_ {
        self.list(&self.inner.default_goals)
    }

    /// Goals with an enabled rotation (their own or inherited), in configuration order.
    pub fn rotating_goals(&self) -> impl ExactSizeIterator<Item = &Goal> + '_ {
        self.list(&self.inner.rotating_goals)
    }

    /// The rotation that applies to a goal, if any.
    pub fn rotation(&self, goal_id: &str) -> Option<&Rotation> {
        self.goal(goal_id).and_then(|goal| goal.rotation.as_ref())
    }

    pub fn summary(&self) -> CatalogSummary {
        CatalogSummary {
            challenges: self.inner.challenges.len(),
            goals: self.goal_count(),
            rotating_goals: self.inner.rotating_goals.len(),
            default_goals: self.inner.default_goals.len(),
            plugin_goals: self.goals().filter(|goal| goal.rule.is_some()).count(),
            version: self.inner.version.clone(),
        }
    }

    /// A catalog where goals also listen to extra stat codes (goal id → codes), for rule plugins that declare
    /// them. The goal's own `statCode` stays first in `Goal::listens_to`; duplicates are ignored. Unknown goal ids
    /// and empty codes are problems. Extras from an earlier call are replaced. The version is unchanged: it
    /// identifies the configuration file.
    pub fn with_extra_stat_codes(&self, extra: &HashMap<String, Vec<String>>) -> Result<Catalog, ConfigError> {
        let mut problems = Vec::new();
        let mut goal_ids: Vec<&String> = extra.keys().collect();
        goal_ids.sort();
        for goal_id in goal_ids {
            let mut problem = |message: String| {
                let location = Location {
                    goal: Some(ItemRef::id(goal_id)),
                    field: Some("listensTo".into()),
                    ..Default::default()
                };
                problems.push(Problem { location, message });
            };
            if self.goal(goal_id).is_none() {
                problem(format!("unknown goal '{goal_id}'"));
            } else if extra[goal_id].iter().any(|code| code.trim().is_empty()) {
                problem("stat codes must not be empty".to_owned());
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError::Invalid { problems });
        }
        let mut challenges = self.inner.challenges.clone();
        for goal in challenges.iter_mut().flat_map(|challenge| challenge.goals.iter_mut()) {
            let mut codes = vec![goal.requirement.stat_code.clone()];
            let mut seen: HashSet<String> = codes.iter().cloned().collect();
            for code in extra.get(&goal.id).into_iter().flatten() {
                if seen.insert(code.clone()) {
                    codes.push(code.clone());
                }
            }
            goal.listens_to = codes;
        }
        Ok(Catalog::build(challenges, self.inner.version.clone()))
    }
}

/// Counts for log lines and `host config validate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogSummary {
    pub challenges: usize,
    pub goals: usize,
    pub rotating_goals: usize,
    pub default_goals: usize,
    pub plugin_goals: usize,
    pub version: String,
}

impl fmt::Display for CatalogSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} challenges, {} goals ({} rotating, {} assigned by default, {} with a rule plugin), version {}",
            self.challenges, self.goals, self.rotating_goals, self.default_goals, self.plugin_goals, self.version
        )
    }
}
