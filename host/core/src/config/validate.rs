//! Second pass: turns the lenient JSON into the typed model, collecting every problem with its location.
//! The typed model is returned only when no problem was found, so a bad file never yields part of a catalog.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::error::{ItemRef, Location, Problem};
use super::model::{
    Challenge, ConfigEnum, EventSource, Goal, GoalKind, Operator, ProgressMode, Requirement, Reward, RewardType,
    RuleRef,
};
use super::plugins::{PluginDirectory, is_known};
use super::raw::{RawChallenge, RawConfig, RawGoal, RawRequirement, RawReward, RawRule, from_object, json_type};
use super::rotation::RotationDecl;

/// Longest challenge or goal id (the database columns are VARCHAR(100)).
pub const MAX_ID_LEN: usize = 100;

/// Stat code of login goals that do not name one.
pub const DEFAULT_LOGIN_STAT_CODE: &str = "login";

/// Which challenge and goal the problems being reported belong to.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Scope<'s> {
    challenge: Option<&'s ItemRef>,
    goal: Option<&'s ItemRef>,
}

/// A goal's prerequisite list, kept for the checks that need every goal id.
struct Links {
    challenge: ItemRef,
    goal: ItemRef,
    id: String,
    /// (index in the list, goal id)
    prerequisites: Vec<(usize, String)>,
}

pub(crate) struct Validator<'a> {
    file: Option<&'a Path>,
    plugins: &'a dyn PluginDirectory,
    problems: Vec<Problem>,
    /// challenge id → 1-based position of its first definition
    challenge_ids: HashMap<String, usize>,
    /// goal id → (challenge, 1-based position in it) of its first definition
    goal_ids: HashMap<String, (ItemRef, usize)>,
    links: Vec<Links>,
}

/// Validates a parsed document; the challenges in configuration order, or every problem found.
pub(crate) fn validate(
    doc: &Value,
    file: Option<&Path>,
    plugins: &dyn PluginDirectory,
) -> Result<Vec<Challenge>, Vec<Problem>> {
    let mut validator = Validator {
        file,
        plugins,
        problems: Vec::new(),
        challenge_ids: HashMap::new(),
        goal_ids: HashMap::new(),
        links: Vec::new(),
    };
    let challenges = validator.document(doc);
    validator.check_prerequisites();
    match challenges {
        Some(challenges) if validator.problems.is_empty() => Ok(challenges),
        _ => {
            if validator.problems.is_empty() {
                // Every `None` above comes with a problem; this guards the all-or-nothing promise regardless.
                validator.report(Scope::default(), "", "the configuration could not be read completely");
            }
            Err(validator.problems)
        }
    }
}

impl Validator<'_> {
    pub(crate) fn report(&mut self, scope: Scope<'_>, field: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            location: Location {
                file: self.file.map(Path::to_path_buf),
                challenge: scope.challenge.cloned(),
                goal: scope.goal.cloned(),
                field: (!field.is_empty()).then(|| field.to_owned()),
            },
            message: message.into(),
        });
    }

    // ---- readers: each reports what is wrong with one value and returns `None` when it did ----

    /// A JSON object read into one of the raw structs.
    pub(crate) fn object<'v, T: Deserialize<'v>>(
        &mut self,
        scope: Scope<'_>,
        field: &str,
        value: &'v Value,
    ) -> Option<T> {
        let parsed = from_object(value);
        if parsed.is_none() {
            self.report(scope, field, format!("must be an object (got {})", json_type(value)));
        }
        parsed
    }

    /// An optional string; blank counts as absent.
    pub(crate) fn text<'v>(
        &mut self,
        scope: Scope<'_>,
        field: &str,
        value: Option<&'v Value>,
    ) -> Option<Option<&'v str>> {
        match value {
            None => Some(None),
            Some(Value::String(text)) => Some((!text.trim().is_empty()).then_some(text.as_str())),
            Some(other) => {
                self.report(scope, field, format!("must be a string (got {})", json_type(other)));
                None
            }
        }
    }

    fn required_text(&mut self, scope: Scope<'_>, field: &str, value: Option<&Value>) -> Option<String> {
        match (value, self.text(scope, field, value)?) {
            (_, Some(text)) => Some(text.to_owned()),
            (None, None) => {
                self.report(scope, field, "is required");
                None
            }
            (Some(_), None) => {
                self.report(scope, field, "must not be empty");
                None
            }
        }
    }

    fn optional_text(&mut self, scope: Scope<'_>, field: &str, value: Option<&Value>) -> Option<String> {
        Some(self.text(scope, field, value)?.unwrap_or_default().to_owned())
    }

    pub(crate) fn flag(&mut self, scope: Scope<'_>, field: &str, value: Option<&Value>, default: bool) -> Option<bool> {
        match value {
            None => Some(default),
            Some(Value::Bool(flag)) => Some(*flag),
            Some(other) => {
                self.report(scope, field, format!("must be true or false (got {})", json_type(other)));
                None
            }
        }
    }

    fn positive_int(&mut self, scope: Scope<'_>, field: &str, value: Option<&Value>) -> Option<i64> {
        let got = match value {
            None => "nothing".to_owned(),
            Some(Value::Number(number)) => match number.as_i64() {
                Some(n) if n > 0 => return Some(n),
                _ => number.to_string(),
            },
            Some(other) => json_type(other).to_owned(),
        };
        self.report(scope, field, format!("must be a positive integer (got {got})"));
        None
    }

    /// One of an enum's values; blank or absent gives `default`, or a problem when there is none.
    pub(crate) fn choice<T: ConfigEnum>(
        &mut self,
        scope: Scope<'_>,
        field: &str,
        value: Option<&Value>,
        default: Option<T>,
    ) -> Option<T> {
        match (self.text(scope, field, value)?, default) {
            (Some(text), _) => {
                text.parse().map_err(|err: super::model::UnknownValue| self.report(scope, field, err.to_string())).ok()
            }
            (None, Some(default)) => Some(default),
            (None, None) => {
                self.report(scope, field, format!("is required ({})", T::expected()));
                None
            }
        }
    }

    /// Reads an id: its reference for messages (the id, or the position when it has none) and the id if valid.
    fn id(
        &mut self,
        parent: Option<&ItemRef>,
        position: usize,
        field: &str,
        value: Option<&Value>,
    ) -> (Option<String>, ItemRef) {
        let item = match value {
            Some(Value::String(id)) if !id.trim().is_empty() => ItemRef::id(id),
            _ => ItemRef::Position(position),
        };
        let scope = match parent {
            Some(parent) => Scope { challenge: Some(parent), goal: Some(&item) },
            None => Scope { challenge: Some(&item), goal: None },
        };
        let id = self.required_text(scope, field, value).filter(|id| {
            let len = id.chars().count();
            if len > MAX_ID_LEN {
                self.report(scope, field, format!("must be at most {MAX_ID_LEN} characters (got {len})"));
            }
            len <= MAX_ID_LEN
        });
        (id, item)
    }

    // ---- the document ----

    fn document(&mut self, doc: &Value) -> Option<Vec<Challenge>> {
        let top = Scope::default();
        let Some(raw) = from_object::<RawConfig>(doc) else {
            let message =
                format!("the file must hold a JSON object with a 'challenges' array (got {})", json_type(doc));
            self.report(top, "", message);
            return None;
        };
        let items = match &raw.challenges {
            Some(Value::Array(items)) if !items.is_empty() => items,
            Some(Value::Array(_)) | None => {
                self.report(top, "challenges", "at least one challenge is required");
                return None;
            }
            Some(other) => {
                self.report(top, "challenges", format!("must be an array of challenges (got {})", json_type(other)));
                return None;
            }
        };
        let challenges: Vec<Option<Challenge>> =
            items.iter().enumerate().map(|(i, item)| self.challenge(i + 1, item)).collect();
        challenges.into_iter().collect()
    }

    fn challenge(&mut self, position: usize, value: &Value) -> Option<Challenge> {
        let Some(raw) = from_object::<RawChallenge>(value) else {
            let item = ItemRef::Position(position);
            let scope = Scope { challenge: Some(&item), goal: None };
            self.report(scope, "", format!("must be an object (got {})", json_type(value)));
            return None;
        };
        let (id, item) = self.id(None, position, "challengeId", raw.challenge_id.as_ref());
        let scope = Scope { challenge: Some(&item), goal: None };
        if let Some(id) = &id {
            if let Some(first) = self.challenge_ids.get(id) {
                let message = format!("duplicate challenge id (already used by challenge #{first})");
                self.report(scope, "challengeId", message);
            } else {
                self.challenge_ids.insert(id.clone(), position);
            }
        }
        let name = self.required_text(scope, "name", raw.name.as_ref());
        let description = self.optional_text(scope, "description", raw.description.as_ref());
        let rotation = self.rotation(scope, raw.rotation.as_ref());

        let goal_values = match &raw.goals {
            Some(Value::Array(goals)) if !goals.is_empty() => goals.as_slice(),
            Some(Value::Array(_)) | None => {
                self.report(scope, "goals", "a challenge needs at least one goal");
                &[]
            }
            Some(other) => {
                self.report(scope, "goals", format!("must be an array of goals (got {})", json_type(other)));
                &[]
            }
        };
        let goals: Vec<Option<Goal>> = goal_values
            .iter()
            .enumerate()
            .map(|(i, goal)| self.goal(&item, id.as_deref(), &rotation, i + 1, goal))
            .collect();
        let goals: Option<Vec<Goal>> = goals.into_iter().collect();

        let pool_size = match raw.pool_size.as_ref() {
            None => Some(None),
            Some(value) => self.positive_int(scope, "poolSize", Some(value)).and_then(|size| {
                let available = goal_values.len();
                match u32::try_from(size) {
                    Ok(size) if size as usize <= available => Some(Some(size)),
                    _ => {
                        let message =
                            format!("must not exceed the number of goals in the challenge ({available}, got {size})");
                        self.report(scope, "poolSize", message);
                        None
                    }
                }
            }),
        };

        Some(Challenge {
            id: id?,
            name: name?,
            description: description?,
            goals: goals.filter(|goals| !goals.is_empty())?,
            rotation: match rotation {
                RotationDecl::Invalid => return None,
                other => other.into_option(),
            },
            pool_size: pool_size?,
        })
    }

    fn goal(
        &mut self,
        challenge: &ItemRef,
        challenge_id: Option<&str>,
        challenge_rotation: &RotationDecl,
        position: usize,
        value: &Value,
    ) -> Option<Goal> {
        let Some(raw) = from_object::<RawGoal>(value) else {
            let item = ItemRef::Position(position);
            let scope = Scope { challenge: Some(challenge), goal: Some(&item) };
            self.report(scope, "", format!("must be an object (got {})", json_type(value)));
            return None;
        };
        let (id, item) = self.id(Some(challenge), position, "goalId", raw.goal_id.as_ref());
        let scope = Scope { challenge: Some(challenge), goal: Some(&item) };
        if let Some(id) = &id {
            if let Some((first_challenge, first_position)) = self.goal_ids.get(id) {
                let message = if first_challenge == challenge {
                    format!("duplicate goal id (already used by goal #{first_position} of this challenge)")
                } else {
                    format!("duplicate goal id (already used in challenge {first_challenge})")
                };
                self.report(scope, "goalId", message);
            } else {
                self.goal_ids.insert(id.clone(), (challenge.clone(), position));
            }
        }
        let name = self.required_text(scope, "name", raw.name.as_ref());
        let description = self.optional_text(scope, "description", raw.description.as_ref());
        let kind = self.choice(scope, "type", raw.kind.as_ref(), Some(GoalKind::Absolute));
        let event_source = self.choice::<EventSource>(scope, "eventSource", raw.event_source.as_ref(), None);
        let daily = self.flag(scope, "daily", raw.daily.as_ref(), false);
        if let (Some(true), Some(kind)) = (daily, kind)
            && kind != GoalKind::Increment
        {
            self.report(scope, "daily", format!("'daily: true' is only valid on increment goals (type is '{kind}')"));
        }
        let default_assigned = self.flag(scope, "defaultAssigned", raw.default_assigned.as_ref(), false);
        let (requirement, progress_mode) = self.requirement(scope, raw.requirement.as_ref(), event_source);
        let reward = self.reward(scope, raw.reward.as_ref());
        let prerequisites = self.prerequisites(scope, id.as_deref(), raw.prerequisites.as_ref());
        let own_rotation = self.rotation(scope, raw.rotation.as_ref());
        let rotation = own_rotation.effective(challenge_rotation);
        if let (Some(GoalKind::Absolute), Some(mode), RotationDecl::Enabled(_)) = (kind, progress_mode, rotation)
            && mode != ProgressMode::Relative
        {
            let origin = if matches!(own_rotation, RotationDecl::Absent) {
                " (rotation inherited from the challenge)"
            } else {
                ""
            };
            let message = format!(
                "an absolute goal with an enabled rotation needs progressMode 'relative' (got '{mode}'){origin}"
            );
            self.report(scope, "requirement.progressMode", message);
        }
        let rule = self.rule(scope, raw.rule.as_ref());
        let requirement = requirement?;

        Some(Goal {
            listens_to: vec![requirement.stat_code.clone()],
            id: id?,
            challenge_id: challenge_id?.to_owned(),
            name: name?,
            description: description?,
            kind: kind?,
            event_source: event_source?,
            daily: daily?,
            default_assigned: default_assigned?,
            requirement,
            reward: reward?,
            prerequisites: prerequisites?,
            rotation: match rotation {
                RotationDecl::Invalid => return None,
                other => other.clone().into_option(),
            },
            rule: rule?,
        })
    }

    /// The requirement, plus its progress mode on its own so rotation rules can be checked even when another
    /// requirement field is wrong.
    fn requirement(
        &mut self,
        scope: Scope<'_>,
        value: Option<&Value>,
        event_source: Option<EventSource>,
    ) -> (Option<Requirement>, Option<ProgressMode>) {
        let Some(value) = value else {
            self.report(scope, "requirement", "is required");
            return (None, None);
        };
        let Some(raw) = self.object::<RawRequirement>(scope, "requirement", value) else {
            return (None, None);
        };
        let stat_code = match (self.text(scope, "requirement.statCode", raw.stat_code.as_ref()), event_source) {
            (Some(Some(code)), _) => Some(code.to_owned()),
            (Some(None), Some(EventSource::Login)) => Some(DEFAULT_LOGIN_STAT_CODE.to_owned()),
            (Some(None), Some(EventSource::Statistic)) => {
                self.report(scope, "requirement.statCode", "is required for statistic goals");
                None
            }
            // Wrong type (reported) or unknown event source (reported): nothing more to say.
            (None, _) | (Some(None), None) => None,
        };
        let operator = self.choice::<Operator>(scope, "requirement.operator", raw.operator.as_ref(), None);
        let target_value = self.positive_int(scope, "requirement.targetValue", raw.target_value.as_ref());
        let progress_mode =
            self.choice(scope, "requirement.progressMode", raw.progress_mode.as_ref(), Some(ProgressMode::Absolute));
        let requirement = (|| {
            Some(Requirement {
                stat_code: stat_code?,
                operator: operator?,
                target_value: target_value?,
                progress_mode: progress_mode?,
            })
        })();
        (requirement, progress_mode)
    }

    fn reward(&mut self, scope: Scope<'_>, value: Option<&Value>) -> Option<Reward> {
        let Some(value) = value else {
            self.report(scope, "reward", "is required");
            return None;
        };
        let raw = self.object::<RawReward>(scope, "reward", value)?;
        let reward_type = self.choice::<RewardType>(scope, "reward.type", raw.reward_type.as_ref(), None);
        let reward_id = self.required_text(scope, "reward.rewardId", raw.reward_id.as_ref());
        let quantity = self.positive_int(scope, "reward.quantity", raw.quantity.as_ref());
        Some(Reward { reward_type: reward_type?, reward_id: reward_id?, quantity: quantity? })
    }

    /// The prerequisite list; references to unknown goals and cycles are checked once every goal is known.
    fn prerequisites(&mut self, scope: Scope<'_>, goal_id: Option<&str>, value: Option<&Value>) -> Option<Vec<String>> {
        let items = match value {
            None => return Some(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.report(scope, "prerequisites", format!("must be an array of goal ids (got {})", json_type(other)));
                return None;
            }
        };
        let mut ids: Vec<String> = Vec::with_capacity(items.len());
        let mut links = Vec::with_capacity(items.len());
        let mut ok = true;
        for (index, item) in items.iter().enumerate() {
            let field = format!("prerequisites[{index}]");
            let Some(prerequisite) = item.as_str().filter(|id| !id.trim().is_empty()) else {
                self.report(scope, &field, format!("must be a goal id (got {})", describe(item)));
                ok = false;
                continue;
            };
            if Some(prerequisite) == goal_id {
                self.report(scope, &field, "a goal cannot be its own prerequisite");
                ok = false;
            } else if ids.iter().any(|seen| seen == prerequisite) {
                self.report(scope, &field, format!("'{prerequisite}' is listed more than once"));
                ok = false;
            } else {
                links.push((index, prerequisite.to_owned()));
            }
            ids.push(prerequisite.to_owned());
        }
        if let (Some(goal_id), Some(challenge), Some(goal)) = (goal_id, scope.challenge, scope.goal) {
            self.links.push(Links {
                challenge: challenge.clone(),
                goal: goal.clone(),
                id: goal_id.to_owned(),
                prerequisites: links,
            });
        }
        ok.then_some(ids)
    }

    fn rule(&mut self, scope: Scope<'_>, value: Option<&Value>) -> Option<Option<RuleRef>> {
        let Some(value) = value else {
            return Some(None);
        };
        let raw = self.object::<RawRule>(scope, "rule", value)?;
        let plugin = self.required_text(scope, "rule.plugin", raw.plugin.as_ref());
        let version = match (&raw.version, self.text(scope, "rule.version", raw.version.as_ref())) {
            (_, None) => None,
            (Some(_), Some(None)) => {
                self.report(scope, "rule.version", "must not be empty when given");
                None
            }
            (_, Some(version)) => Some(version.map(str::to_owned)),
        };
        if let Some(plugin) = &plugin {
            if !is_known(self.plugins, plugin, None) {
                self.report(scope, "rule.plugin", format!("unknown rule plugin '{plugin}'"));
                return None;
            }
            if let Some(Some(version)) = &version
                && !is_known(self.plugins, plugin, Some(version))
            {
                self.report(scope, "rule.version", format!("rule plugin '{plugin}' has no version '{version}'"));
                return None;
            }
        }
        let params = raw.params.unwrap_or_else(|| Value::Object(Default::default()));
        Some(Some(RuleRef { plugin: plugin?, version: version?, params }))
    }

    // ---- checks across goals ----

    fn check_prerequisites(&mut self) {
        let links = std::mem::take(&mut self.links);
        for link in &links {
            let scope = Scope { challenge: Some(&link.challenge), goal: Some(&link.goal) };
            for (index, prerequisite) in &link.prerequisites {
                if !self.goal_ids.contains_key(prerequisite) {
                    self.report(scope, &format!("prerequisites[{index}]"), format!("unknown goal '{prerequisite}'"));
                }
            }
        }
        self.check_cycles(&links);
    }

    /// Reports each prerequisite cycle once, as the path that closes it (`a -> b -> c -> a`), at the goal where
    /// the path starts. A depth-first search reports one cycle per back edge, so every cyclic group of goals is
    /// reported at least once and no cycle twice.
    fn check_cycles(&mut self, links: &[Links]) {
        // Nodes are goals with a usable id, first definition only (duplicates are reported elsewhere).
        let mut node_of: HashMap<&str, usize> = HashMap::new();
        let mut nodes: Vec<&Links> = Vec::new();
        for link in links {
            if !node_of.contains_key(link.id.as_str()) {
                node_of.insert(&link.id, nodes.len());
                nodes.push(link);
            }
        }
        let edges: Vec<Vec<usize>> = nodes
            .iter()
            .map(|link| link.prerequisites.iter().filter_map(|(_, id)| node_of.get(id.as_str()).copied()).collect())
            .collect();

        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnPath,
            Done,
        }
        let mut mark = vec![Mark::New; nodes.len()];
        let mut cycles: Vec<(usize, String)> = Vec::new();
        for start in 0..nodes.len() {
            if mark[start] != Mark::New {
                continue;
            }
            // Iterative DFS: (node, next edge to follow); the stack is the current path.
            let mut path: Vec<(usize, usize)> = vec![(start, 0)];
            mark[start] = Mark::OnPath;
            while let Some(top) = path.last_mut() {
                let (node, next) = *top;
                let Some(&target) = edges[node].get(next) else {
                    mark[node] = Mark::Done;
                    path.pop();
                    continue;
                };
                top.1 += 1;
                match mark[target] {
                    Mark::New => {
                        mark[target] = Mark::OnPath;
                        path.push((target, 0));
                    }
                    Mark::OnPath => {
                        let from = path.iter().position(|(n, _)| *n == target).unwrap_or(0);
                        let mut ids: Vec<&str> = path[from..].iter().map(|(n, _)| nodes[*n].id.as_str()).collect();
                        ids.push(nodes[target].id.as_str());
                        cycles.push((target, ids.join(" -> ")));
                    }
                    Mark::Done => {}
                }
            }
        }
        for (node, cycle) in cycles {
            let link = nodes[node];
            let scope = Scope { challenge: Some(&link.challenge), goal: Some(&link.goal) };
            self.report(scope, "prerequisites", format!("prerequisite cycle: {cycle}"));
        }
    }
}

/// A short description of an unexpected value for messages: strings quoted, other types by name.
fn describe(value: &Value) -> String {
    match value {
        Value::String(text) => format!("'{text}'"),
        other => json_type(other).to_owned(),
    }
}
