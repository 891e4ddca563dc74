//! Everything about the player responses that depends only on the configuration, built once per configuration
//! version: each goal's static JSON fields and proto messages, and each challenge's goals as a player without
//! progress sees them. Requests splice per-player fields into these instead of serializing the catalog again.

use std::collections::HashMap;
use std::ops::Range;

use challenge_core::config::{Catalog, Challenge, Goal, OnExpiry};
use challenge_proto::challenge::v1 as proto;
use serde::Serialize;

use super::render::{self, GoalState};

/// Position of a goal in configuration order (challenges in order, each challenge's goals in order).
pub type GoalIndex = u32;

pub struct CatalogView {
    version: String,
    goals: Vec<GoalView>,
    challenges: Vec<ChallengeView>,
    goal_at: HashMap<String, GoalIndex>,
    challenge_at: HashMap<String, usize>,
}

pub struct GoalView {
    pub id: String,
    pub challenge: usize,
    pub stat_code: String,
    /// `{"goalId":…,"name":…,"description":…,"requirement":{…},"reward":{…},"prerequisites":[…]` (open object).
    pub static_json: Vec<u8>,
    /// Where this goal's no-progress rendering sits in its challenge's `default_goals_json`.
    pub default_json: Range<usize>,
    /// What the default rendering shows as `locked`: true exactly when the goal has prerequisites.
    pub default_locked: bool,
    pub prerequisites: Vec<GoalIndex>,
    /// What happens when an assignment of this (rotating) goal expires.
    pub on_expiry: Option<OnExpiry>,
    /// `{"challengeId":…,"goalId":…,"name":…,"description":…,"target":…,"requirement":{…},"reward":{…}` (open
    /// object): the configuration part of an `AssignedGoal`.
    pub assigned_json: Vec<u8>,
    /// The proto `Goal` and `AssignedGoal` with only the configuration fields set.
    pub proto: proto::Goal,
    pub assigned: proto::AssignedGoal,
}

pub struct ChallengeView {
    pub id: String,
    /// `{"challengeId":…,"name":…,"description":…,"goals":[`
    pub head_json: Vec<u8>,
    /// Every goal as a player without a row for it sees it, comma-separated, so a run of such goals is one copy.
    pub default_goals_json: Vec<u8>,
    pub goals: Range<GoalIndex>,
    /// The proto `Challenge` without goals.
    pub proto: proto::Challenge,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StaticGoal<'a> {
    goal_id: &'a str,
    name: &'a str,
    description: &'a str,
    requirement: &'a proto::Requirement,
    reward: &'a proto::Reward,
    prerequisites: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StaticAssignedGoal<'a> {
    challenge_id: &'a str,
    goal_id: &'a str,
    name: &'a str,
    description: &'a str,
    target: i64,
    requirement: &'a proto::Requirement,
    reward: &'a proto::Reward,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StaticChallenge<'a> {
    challenge_id: &'a str,
    name: &'a str,
    description: &'a str,
}

impl CatalogView {
    pub fn build(catalog: &Catalog) -> Self {
        let goal_at: HashMap<String, GoalIndex> =
            catalog.goals().enumerate().map(|(index, goal)| (goal.id.clone(), index as GoalIndex)).collect();
        let mut goals = Vec::with_capacity(goal_at.len());
        let mut challenges = Vec::with_capacity(catalog.challenges().len());
        for (c, challenge) in catalog.challenges().iter().enumerate() {
            let first = goals.len() as GoalIndex;
            let mut default_goals_json = Vec::new();
            for goal in &challenge.goals {
                let mut view = goal_view(goal, c, &goal_at);
                if !default_goals_json.is_empty() {
                    default_goals_json.push(b',');
                }
                let start = default_goals_json.len();
                default_goals_json.extend_from_slice(&view.static_json);
                render::write_state(&mut default_goals_json, &GoalState::unassigned(view.default_locked), None);
                view.default_json = start..default_goals_json.len();
                goals.push(view);
            }
            challenges.push(challenge_view(challenge, first..goals.len() as GoalIndex, default_goals_json));
        }
        let challenge_at = challenges.iter().enumerate().map(|(at, c)| (c.id.clone(), at)).collect();
        CatalogView { version: catalog.version().to_owned(), goals, challenges, goal_at, challenge_at }
    }

    /// Length of the listing of every goal for a player without progress (a buffer size hint).
    pub fn listing_json_len(&self) -> usize {
        self.challenges.iter().map(|c| c.head_json.len() + c.default_goals_json.len() + 3).sum::<usize>() + 16
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn goals(&self) -> &[GoalView] {
        &self.goals
    }

    pub fn goal(&self, index: GoalIndex) -> &GoalView {
        &self.goals[index as usize]
    }

    pub fn goal_index(&self, goal_id: &str) -> Option<GoalIndex> {
        self.goal_at.get(goal_id).copied()
    }

    pub fn challenges(&self) -> &[ChallengeView] {
        &self.challenges
    }

    pub fn challenge_index(&self, challenge_id: &str) -> Option<usize> {
        self.challenge_at.get(challenge_id).copied()
    }
}

fn goal_view(goal: &Goal, challenge: usize, goal_at: &HashMap<String, GoalIndex>) -> GoalView {
    let requirement = proto::Requirement {
        stat_code: goal.requirement.stat_code.clone(),
        operator: goal.requirement.operator.as_str().to_owned(),
        target_value: goal.requirement.target_value,
    };
    let reward = proto::Reward {
        r#type: goal.reward.reward_type.as_str().to_owned(),
        reward_id: goal.reward.reward_id.clone(),
        quantity: goal.reward.quantity,
    };
    let mut static_json = serde_json::to_vec(&StaticGoal {
        goal_id: &goal.id,
        name: &goal.name,
        description: &goal.description,
        requirement: &requirement,
        reward: &reward,
        prerequisites: &goal.prerequisites,
    })
    .expect("plain structs serialize");
    static_json.pop(); // the closing brace: per-player fields follow
    let mut assigned_json = serde_json::to_vec(&StaticAssignedGoal {
        challenge_id: &goal.challenge_id,
        goal_id: &goal.id,
        name: &goal.name,
        description: &goal.description,
        target: goal.requirement.target_value,
        requirement: &requirement,
        reward: &reward,
    })
    .expect("plain structs serialize");
    assigned_json.pop();
    let proto = proto::Goal {
        goal_id: goal.id.clone(),
        name: goal.name.clone(),
        description: goal.description.clone(),
        requirement: Some(requirement.clone()),
        reward: Some(reward.clone()),
        prerequisites: goal.prerequisites.clone(),
        ..Default::default()
    };
    let assigned = proto::AssignedGoal {
        challenge_id: goal.challenge_id.clone(),
        goal_id: goal.id.clone(),
        name: goal.name.clone(),
        description: goal.description.clone(),
        target: goal.requirement.target_value,
        requirement: Some(requirement),
        reward: Some(reward),
        ..Default::default()
    };
    GoalView {
        id: goal.id.clone(),
        challenge,
        stat_code: goal.requirement.stat_code.clone(),
        static_json,
        assigned_json,
        default_json: 0..0,
        default_locked: !goal.prerequisites.is_empty(),
        // Validation guarantees prerequisites name existing goals.
        prerequisites: goal.prerequisites.iter().filter_map(|id| goal_at.get(id).copied()).collect(),
        on_expiry: goal.rotation.as_ref().map(|rotation| rotation.on_expiry),
        proto,
        assigned,
    }
}

fn challenge_view(challenge: &Challenge, goals: Range<GoalIndex>, default_goals_json: Vec<u8>) -> ChallengeView {
    let mut head_json = serde_json::to_vec(&StaticChallenge {
        challenge_id: &challenge.id,
        name: &challenge.name,
        description: &challenge.description,
    })
    .expect("plain structs serialize");
    head_json.pop();
    head_json.extend_from_slice(br#","goals":["#);
    ChallengeView {
        id: challenge.id.clone(),
        head_json,
        default_goals_json,
        goals,
        proto: proto::Challenge {
            challenge_id: challenge.id.clone(),
            name: challenge.name.clone(),
            description: challenge.description.clone(),
            goals: Vec::new(),
        },
    }
}
