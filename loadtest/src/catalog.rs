//! The challenges file: a generator for reference-sized load configs, and the read-only view the scenarios use
//! to pick challenges, goals and stat codes.
//!
//! The same serde types read and write the file (reference format: camelCase keys, unknown keys ignored).

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Login goals without a stat code count under this one (the server's default).
pub const DEFAULT_LOGIN_STAT_CODE: &str = "login";
/// Target of the "anchor" goals: never reached, so they are never completed, never claimed and keep listening to
/// their stat code for every player for the whole run. Event verification relies on that.
pub const ANCHOR_TARGET: i64 = 1_000_000_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigFile {
    pub challenges: Vec<ChallengeDef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChallengeDef {
    pub challenge_id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub goals: Vec<GoalDef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GoalDef {
    pub goal_id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub event_source: String,
    #[serde(default)]
    pub default_assigned: bool,
    pub requirement: RequirementDef,
    pub reward: RewardDef,
    #[serde(default)]
    pub prerequisites: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequirementDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat_code: Option<String>,
    pub operator: String,
    pub target_value: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_mode: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RewardDef {
    #[serde(rename = "type")]
    pub kind: String,
    pub reward_id: String,
    pub quantity: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Login,
    Statistic,
}

impl GoalDef {
    pub fn source(&self) -> Option<Source> {
        match self.event_source.as_str() {
            "login" => Some(Source::Login),
            "statistic" => Some(Source::Statistic),
            _ => None,
        }
    }

    pub fn stat_code(&self) -> &str {
        self.requirement.stat_code.as_deref().unwrap_or(DEFAULT_LOGIN_STAT_CODE)
    }
}

/// A goal together with the challenge it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct GoalRef<'a> {
    pub challenge_id: &'a str,
    pub goal: &'a GoalDef,
}

impl ConfigFile {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|err| Error::io(path, err))?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let file: Self = serde_json::from_str(text)
            .map_err(|err| Error::Config { path: origin.to_owned(), message: err.to_string() })?;
        if file.challenges.iter().all(|c| c.goals.is_empty()) {
            return Err(Error::Config { path: origin.to_owned(), message: "no goals".into() });
        }
        Ok(file)
    }

    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    pub fn goals(&self) -> impl Iterator<Item = GoalRef<'_>> {
        self.challenges
            .iter()
            .flat_map(|c| c.goals.iter().map(move |goal| GoalRef { challenge_id: &c.challenge_id, goal }))
    }

    /// Stat codes that some default-assigned goal of `source` listens to (sorted).
    pub fn default_codes(&self, source: Source) -> Vec<String> {
        let codes: BTreeSet<&str> = self
            .goals()
            .filter(|g| g.goal.default_assigned && g.goal.source() == Some(source))
            .map(|g| g.goal.stat_code())
            .collect();
        codes.into_iter().map(str::to_owned).collect()
    }

    /// Stat codes of all login goals, default or not (a login event counts under each of them).
    pub fn login_codes(&self) -> Vec<String> {
        let codes: BTreeSet<&str> =
            self.goals().filter(|g| g.goal.source() == Some(Source::Login)).map(|g| g.goal.stat_code()).collect();
        codes.into_iter().map(str::to_owned).collect()
    }

    /// Default goals a single login completes: what the API mix claims.
    pub fn claimable_defaults(&self) -> Vec<GoalRef<'_>> {
        self.goals()
            .filter(|g| {
                g.goal.default_assigned
                    && g.goal.source() == Some(Source::Login)
                    && g.goal.requirement.target_value <= 1
                    && g.goal.prerequisites.is_empty()
            })
            .collect()
    }

    /// Goals a player picks by hand (not default-assigned); all goals when every goal is a default.
    pub fn selectable(&self) -> Vec<GoalRef<'_>> {
        let picked: Vec<_> = self.goals().filter(|g| !g.goal.default_assigned).collect();
        if picked.is_empty() { self.goals().collect() } else { picked }
    }
}

/// Shape of a generated config.
#[derive(Debug, Clone)]
pub struct GenParams {
    pub challenges: usize,
    pub goals_per_challenge: usize,
    /// Statistic codes; many goals share each of them.
    pub stat_codes: Vec<String>,
    pub login_code: String,
    /// The first goals of every challenge are default-assigned (the anchors are too).
    pub defaults_per_challenge: usize,
}

impl Default for GenParams {
    fn default() -> Self {
        Self {
            challenges: 10,
            goals_per_challenge: 50,
            stat_codes: ["enemy_kills", "matches_played", "matches_won", "items_collected", "distance_traveled"]
                .map(str::to_owned)
                .to_vec(),
            login_code: "login_count".to_owned(),
            defaults_per_challenge: 5,
        }
    }
}

/// Builds a config like the reference's 500-goal load fixture: every challenge starts with a one-login goal,
/// statistic goals cycle through a few shared stat codes with rising targets (absolute, some counting events),
/// every tenth goal requires the one before it, and one never-completing default "anchor" goal per stat code
/// (login included) keeps every code tracked for every player.
pub fn generate(params: &GenParams) -> Result<ConfigFile> {
    let codes: Vec<&str> =
        std::iter::once(params.login_code.as_str()).chain(params.stat_codes.iter().map(String::as_str)).collect();
    let unique: BTreeSet<&str> = codes.iter().copied().collect();
    if params.challenges == 0 || params.stat_codes.is_empty() || unique.len() != codes.len() {
        return Err(Error::Usage(
            "gen-config needs at least one challenge and one stat code, all codes distinct from each other and \
             from the login code"
                .into(),
        ));
    }
    let anchors_per_challenge = codes.len().div_ceil(params.challenges);
    let needed = params.defaults_per_challenge.max(1) + anchors_per_challenge;
    if params.goals_per_challenge < needed {
        return Err(Error::Usage(format!(
            "{} goals per challenge is too few: {} defaults and {anchors_per_challenge} anchor goal(s) need at least \
             {needed}",
            params.goals_per_challenge, params.defaults_per_challenge
        )));
    }

    let stat_count = params.stat_codes.len();
    let mut challenges = Vec::with_capacity(params.challenges);
    for c in 0..params.challenges {
        let challenge_id = format!("lt-challenge-{:02}", c + 1);
        let goal_id = |g: usize| format!("lt-c{:02}-g{:02}", c + 1, g + 1);
        let mut goals = Vec::with_capacity(params.goals_per_challenge);
        for g in 0..params.goals_per_challenge {
            let from_end = params.goals_per_challenge - 1 - g;
            let anchor_code =
                (from_end < anchors_per_challenge).then(|| codes.get(c + from_end * params.challenges)).flatten();
            let goal = if let Some(code) = anchor_code {
                anchor_goal(goal_id(g), code, code == &params.login_code)
            } else if g == 0 {
                login_goal(goal_id(g), &params.login_code, 1, "First login")
            } else if g % 12 == 6 {
                let target = (g / 12 + 2) as i64;
                login_goal(goal_id(g), &params.login_code, target, &format!("Log in {target} times"))
            } else {
                let code = &params.stat_codes[(c + g - 1) % stat_count];
                let tier = ((g - 1) / stat_count + 1) as i64;
                let counts_events = g % 4 == 3;
                stat_goal(goal_id(g), code, tier, counts_events, c)
            };
            let default_assigned = anchor_code.is_some() || g < params.defaults_per_challenge;
            let prerequisites = if !default_assigned && anchor_code.is_none() && g % 10 == 9 {
                vec![goal_id(g - 1)]
            } else {
                Vec::new()
            };
            goals.push(GoalDef { default_assigned, prerequisites, ..goal });
        }
        challenges.push(ChallengeDef {
            challenge_id,
            name: format!("Load Challenge {}", c + 1),
            description: "Generated by loadgen gen-config".to_owned(),
            goals,
        });
    }
    Ok(ConfigFile { challenges })
}

fn base_goal(goal_id: String, name: String, source: &str, code: &str, target: i64) -> GoalDef {
    GoalDef {
        description: format!("Reach {target} {code}"),
        goal_id,
        name,
        kind: None,
        event_source: source.to_owned(),
        default_assigned: false,
        requirement: RequirementDef {
            stat_code: Some(code.to_owned()),
            operator: ">=".to_owned(),
            target_value: target,
            progress_mode: Some("absolute".to_owned()),
        },
        reward: RewardDef { kind: "WALLET".to_owned(), reward_id: "GOLD".to_owned(), quantity: 10 },
        prerequisites: Vec::new(),
    }
}

fn login_goal(goal_id: String, code: &str, target: i64, name: &str) -> GoalDef {
    base_goal(goal_id, name.to_owned(), "login", code, target)
}

fn anchor_goal(goal_id: String, code: &str, login: bool) -> GoalDef {
    let source = if login { "login" } else { "statistic" };
    let goal = base_goal(goal_id, format!("Lifetime {code}"), source, code, ANCHOR_TARGET);
    GoalDef { reward: RewardDef { quantity: 1000, ..goal.reward.clone() }, ..goal }
}

fn stat_goal(goal_id: String, code: &str, tier: i64, counts_events: bool, challenge: usize) -> GoalDef {
    let (target, kind) = if counts_events { (2 * tier, Some("increment")) } else { (5 * tier, None) };
    let goal = base_goal(goal_id, format!("{code} tier {tier}"), "statistic", code, target);
    let reward = if tier % 2 == 0 {
        RewardDef { kind: "ITEM".to_owned(), reward_id: format!("lt-item-{:02}-{tier:02}", challenge + 1), quantity: 1 }
    } else {
        RewardDef { kind: "WALLET".to_owned(), reward_id: "GOLD".to_owned(), quantity: 10 * tier }
    };
    GoalDef { kind: kind.map(str::to_owned), reward, ..goal }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    fn reference_sized() -> ConfigFile {
        generate(&GenParams::default()).expect("generates")
    }

    #[test]
    fn reference_size_is_ten_by_fifty_with_unique_ids() {
        let config = reference_sized();
        assert_eq!(config.challenges.len(), 10);
        assert!(config.challenges.iter().all(|c| c.goals.len() == 50));
        let challenge_ids: HashSet<_> = config.challenges.iter().map(|c| &c.challenge_id).collect();
        assert_eq!(challenge_ids.len(), 10);
        let goal_ids: HashSet<_> = config.goals().map(|g| &g.goal.goal_id).collect();
        assert_eq!(goal_ids.len(), 500);
    }

    #[test]
    fn stat_codes_are_shared_by_many_goals() {
        let config = reference_sized();
        let mut per_code: HashMap<&str, usize> = HashMap::new();
        for goal in config.goals() {
            *per_code.entry(goal.goal.stat_code()).or_default() += 1;
        }
        assert_eq!(per_code.len(), 6, "five statistic codes plus the login code: {per_code:?}");
        for code in &GenParams::default().stat_codes {
            assert!(per_code[code.as_str()] >= 50, "{code} is used by {} goals", per_code[code.as_str()]);
        }
    }

    #[test]
    fn every_code_has_a_default_goal_and_a_never_completing_anchor() {
        let config = reference_sized();
        let params = GenParams::default();
        assert_eq!(config.default_codes(Source::Statistic), {
            let mut codes = params.stat_codes.clone();
            codes.sort();
            codes
        });
        assert_eq!(config.default_codes(Source::Login), vec![params.login_code.clone()]);
        for code in params.stat_codes.iter().chain([&params.login_code]) {
            assert!(
                config.goals().any(|g| g.goal.default_assigned
                    && g.goal.stat_code() == code
                    && g.goal.requirement.target_value == ANCHOR_TARGET
                    && g.goal.prerequisites.is_empty()),
                "no anchor for {code}"
            );
        }
        assert_eq!(config.claimable_defaults().len(), 10, "one single-login default goal per challenge");
        assert!(config.goals().filter(|g| g.goal.default_assigned).count() >= 50);
    }

    #[test]
    fn prerequisites_exist_and_the_real_validator_accepts_the_file() {
        let config = reference_sized();
        let ids: HashSet<_> = config.goals().map(|g| g.goal.goal_id.as_str()).collect();
        let with_prerequisites: Vec<_> = config.goals().filter(|g| !g.goal.prerequisites.is_empty()).collect();
        assert!(with_prerequisites.len() >= 20);
        assert!(with_prerequisites.iter().flat_map(|g| &g.goal.prerequisites).all(|p| ids.contains(p.as_str())));
        assert!(config.goals().any(|g| g.goal.kind.as_deref() == Some("increment")));

        let json = config.to_json().expect("serializes");
        let catalog = challenge_core::config::load_str(&json, &challenge_core::config::BuiltinOnly)
            .unwrap_or_else(|err| panic!("{}", challenge_core::config::report(&err)));
        assert_eq!(catalog.goals().count(), 500);
        assert_eq!(ConfigFile::parse(&json, "round-trip").expect("parses"), config);
    }

    #[test]
    fn small_configs_still_cover_every_code() {
        let params =
            GenParams { challenges: 2, goals_per_challenge: 8, defaults_per_challenge: 2, ..GenParams::default() };
        let config = generate(&params).expect("generates");
        for code in params.stat_codes.iter().chain([&params.login_code]) {
            assert!(config.goals().any(|g| g.goal.default_assigned
                && g.goal.stat_code() == code
                && g.goal.requirement.target_value == ANCHOR_TARGET));
        }
        let json = config.to_json().expect("serializes");
        challenge_core::config::load_str(&json, &challenge_core::config::BuiltinOnly)
            .unwrap_or_else(|err| panic!("{}", challenge_core::config::report(&err)));
    }

    #[test]
    fn impossible_shapes_are_usage_errors() {
        let too_few = GenParams { goals_per_challenge: 3, ..GenParams::default() };
        assert!(matches!(generate(&too_few), Err(Error::Usage(_))));
        let clash = GenParams { stat_codes: vec!["login_count".into()], ..GenParams::default() };
        assert!(matches!(generate(&clash), Err(Error::Usage(_))));
    }
}
