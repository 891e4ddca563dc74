//! The player API operations, shared by the REST ([`crate::http`]) and gRPC ([`crate::grpc`]) transports.
//!
//! A player only ever reads or changes their own rows: every operation takes the authenticated [`Player`], whose
//! user id comes from the token, never from the request.
//!
//! Reads go through the per-player [`GenerationCache`] (see [`crate::cache`]); every write here invalidates the
//! player's entry after it commits, and the event pipeline does the same after each flush (the cache is one of its
//! commit listeners). Responses are spliced from the per-configuration [`view::CatalogView`], so the names,
//! descriptions, requirements and rewards of the catalog are serialized once per configuration version.

pub mod period;
pub mod render;
pub mod snapshot;
pub mod view;

use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use challenge_core::config::{self, Challenge, Goal};
use challenge_core::progress::GoalStatus;
use challenge_proto::challenge::v1 as proto;
use challenge_storage::{
    ClaimOutcome, ClaimRefusal, ClaimRequest, NewAssignment, NewRewardGrant, Renewal, RewardType, Store,
};
use chrono::{DateTime, Utc};
use rand::seq::index::sample;

use crate::auth::Player;
use crate::cache::GenerationCache;
use crate::error::{ApiError, ErrorKind};
use crate::rewards::RewardDelivery;
use crate::rotation::{Clock, SystemClock};
use crate::state::ActiveConfig;

pub use render::Listing;
use render::{GoalState, assigned_goal, timestamp};
use snapshot::{RowState, UserSnapshot};
use view::{CatalogView, GoalIndex};

/// The per-player cache of goal state.
pub type SnapshotCache = GenerationCache<Arc<UserSnapshot>>;

/// Stable error codes of the player API (the HTTP status and gRPC code come from the error kind).
pub mod codes {
    pub const INVALID_REQUEST: &str = "INVALID_REQUEST";
    pub const CHALLENGE_NOT_FOUND: &str = "CHALLENGE_NOT_FOUND";
    pub const GOAL_NOT_FOUND: &str = "GOAL_NOT_FOUND";
    pub const GOAL_NOT_IN_CHALLENGE: &str = "GOAL_NOT_IN_CHALLENGE";
    pub const INSUFFICIENT_GOALS: &str = "INSUFFICIENT_GOALS";
    pub const ALREADY_CLAIMED: &str = "ALREADY_CLAIMED";
    pub const GOAL_NOT_COMPLETED: &str = "GOAL_NOT_COMPLETED";
    pub const PREREQUISITES_NOT_MET: &str = "PREREQUISITES_NOT_MET";
    pub const GOAL_INACTIVE: &str = "GOAL_INACTIVE";
    pub const GOAL_EXPIRED: &str = "GOAL_EXPIRED";
    pub const COMPLETION_EXPIRED: &str = "COMPLETION_EXPIRED";
    /// More goals requested at once than the challenge's `poolSize` allows (422).
    pub const POOL_SIZE_EXCEEDED: &str = "POOL_SIZE_EXCEEDED";
    /// The player already holds `poolSize` goals of the challenge; replace or deactivate one first (409).
    pub const POOL_FULL: &str = "POOL_FULL";
}

/// Longest user id the database accepts.
const MAX_USER_ID_LEN: usize = 256;

pub struct PlayerApi {
    store: Arc<dyn Store>,
    config: Arc<ArcSwap<ActiveConfig>>,
    namespace: String,
    cache: Arc<SnapshotCache>,
    rewards: Arc<RewardDelivery>,
    views: ArcSwapOption<CatalogView>,
    clock: Arc<dyn Clock>,
}

/// The configuration one request works with, and its pre-rendered view (same version).
struct Current {
    config: Arc<ActiveConfig>,
    view: Arc<CatalogView>,
}

impl Current {
    fn catalog(&self) -> &config::Catalog {
        &self.config.catalog
    }

    fn challenge(&self, challenge_id: &str) -> Result<(&Challenge, usize), ApiError> {
        match (self.catalog().challenge(challenge_id), self.view.challenge_index(challenge_id)) {
            (Some(challenge), Some(at)) => Ok((challenge, at)),
            _ => Err(ApiError::not_found(codes::CHALLENGE_NOT_FOUND, format!("challenge '{challenge_id}' not found"))),
        }
    }

    /// A goal addressed as `/challenges/{challenge_id}/goals/{goal_id}`.
    fn goal_in(&self, challenge_id: &str, goal_id: &str) -> Result<(&Goal, GoalIndex), ApiError> {
        self.challenge(challenge_id)?;
        let goal = self.goal(goal_id)?;
        if goal.0.challenge_id != challenge_id {
            return Err(ApiError::not_found(
                codes::GOAL_NOT_FOUND,
                format!("goal '{goal_id}' not found in challenge '{challenge_id}'"),
            ));
        }
        Ok(goal)
    }

    fn goal(&self, goal_id: &str) -> Result<(&Goal, GoalIndex), ApiError> {
        match (self.catalog().goal(goal_id), self.view.goal_index(goal_id)) {
            (Some(goal), Some(index)) => Ok((goal, index)),
            _ => Err(ApiError::not_found(codes::GOAL_NOT_FOUND, format!("goal '{goal_id}' not found"))),
        }
    }

    fn goal_at(&self, index: GoalIndex) -> Option<&Goal> {
        self.catalog().goal(&self.view.goal(index).id)
    }
}

/// A player's challenge listing, ready to render in either wire form.
pub struct ChallengeList {
    view: Arc<CatalogView>,
    snapshot: Arc<UserSnapshot>,
    listing: Listing,
    now: DateTime<Utc>,
}

impl ChallengeList {
    pub fn json(&self) -> Vec<u8> {
        render::challenges_json(&self.view, &self.snapshot, self.listing, self.now)
    }

    pub fn proto(&self) -> proto::GetChallengesResponse {
        render::challenges_proto(&self.view, &self.snapshot, self.listing, self.now)
    }
}

/// One challenge of a player, ready to render in either wire form.
pub struct OneChallenge {
    view: Arc<CatalogView>,
    challenge: usize,
    snapshot: Arc<UserSnapshot>,
    now: DateTime<Utc>,
}

impl OneChallenge {
    pub fn json(&self) -> Vec<u8> {
        render::challenge_json(&self.view, &self.view.challenges()[self.challenge], &self.snapshot, self.now)
    }

    pub fn proto(&self) -> proto::Challenge {
        render::challenge_proto(&self.view, &self.view.challenges()[self.challenge], &self.snapshot, self.now)
    }
}

/// The result of `initialize`, ready to render in either wire form.
pub struct Initialized {
    view: Arc<CatalogView>,
    snapshot: Arc<UserSnapshot>,
    new_assignments: i32,
    now: DateTime<Utc>,
}

impl Initialized {
    pub fn json(&self) -> Vec<u8> {
        render::initialize_json(&self.view, &self.snapshot, self.new_assignments, self.now)
    }

    pub fn proto(&self) -> proto::InitializeResponse {
        render::initialize_proto(&self.view, &self.snapshot, self.new_assignments, self.now)
    }
}

fn user_id(player: &Player) -> Result<&str, ApiError> {
    if player.user_id.len() > MAX_USER_ID_LEN {
        return Err(ApiError::unauthenticated(format!("the token's subject is longer than {MAX_USER_ID_LEN} bytes")));
    }
    Ok(&player.user_id)
}

impl PlayerApi {
    pub fn new(
        store: Arc<dyn Store>,
        config: Arc<ArcSwap<ActiveConfig>>,
        namespace: String,
        cache: Arc<SnapshotCache>,
        rewards: Arc<RewardDelivery>,
    ) -> Self {
        let clock = Arc::new(SystemClock);
        let api = Self { store, config, namespace, cache, rewards, views: ArcSwapOption::empty(), clock };
        api.current();
        api
    }

    /// Uses `clock` instead of the system clock (tests cross rotation boundaries with it).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Now, to the millisecond both databases keep.
    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn rewards(&self) -> &Arc<RewardDelivery> {
        &self.rewards
    }

    fn current(&self) -> Current {
        let config = self.config.load_full();
        let view = match self.views.load_full() {
            Some(view) if view.version() == config.catalog.version() => view,
            _ => {
                let view = Arc::new(CatalogView::build(&config.catalog));
                self.views.store(Some(view.clone()));
                view
            }
        };
        Current { config, view }
    }

    /// The player's goal state: from the cache when current, else from the database (and then cached).
    async fn snapshot(&self, user_id: &str, current: &Current) -> Result<Arc<UserSnapshot>, ApiError> {
        let lookup = self.cache.begin(user_id).await;
        if let Some(snapshot) = self.cache.get(&lookup)
            && snapshot.version() == current.view.version()
        {
            return Ok(snapshot);
        }
        let (rows, stats) = self.store.player_state(user_id).await?;
        let snapshot = Arc::new(UserSnapshot::new(&current.view, &rows, &stats));
        self.cache.put(&lookup, snapshot.clone());
        Ok(snapshot)
    }

    /// Makes every cached copy of the player's rows stale (read cache and pipeline, here and on other instances).
    /// Every write to a player's goal rows outside the pipeline calls it after committing; so must anything that
    /// edits those rows behind the service's back (tests, repair scripts).
    pub async fn changed(&self, user_id: &str) {
        self.cache.invalidate(&[user_id.to_owned()]).await;
    }

    fn assignment(&self, user_id: &str, goal: &Goal, now: DateTime<Utc>) -> NewAssignment {
        period::new_assignment(user_id, goal, &self.namespace, now)
    }

    /// Moves the player's expired rotating assignments that `wanted` picks to the current period (per their
    /// `onExpiry`) in one batched write. Returns whether any row was written (the snapshot is then stale).
    async fn renew_expired(
        &self,
        user_id: &str,
        current: &Current,
        snapshot: &UserSnapshot,
        now: DateTime<Utc>,
        wanted: impl Fn(GoalIndex, &RowState) -> bool,
    ) -> Result<bool, ApiError> {
        let renewals: Vec<Renewal> = snapshot
            .rows()
            .filter(|(index, row)| row.expires_at.is_some_and(|end| end <= now) && wanted(*index, row))
            .filter_map(|(index, _)| current.goal_at(index))
            .filter_map(|goal| period::renewal(user_id, goal, now))
            .collect();
        if renewals.is_empty() {
            return Ok(false);
        }
        // Zero rows renewed means a concurrent request renewed them first: the snapshot is stale either way.
        self.store.renew_assignments(&renewals, now).await?;
        self.changed(user_id).await;
        Ok(true)
    }

    /// Every challenge with its goals (`ActiveOnly`: only the player's active goals).
    pub async fn challenges(&self, player: &Player, listing: Listing) -> Result<ChallengeList, ApiError> {
        let user_id = user_id(player)?;
        let current = self.current();
        let snapshot = self.snapshot(user_id, &current).await?;
        Ok(ChallengeList { view: current.view, snapshot, listing, now: self.now() })
    }

    pub async fn challenge(&self, player: &Player, challenge_id: &str) -> Result<OneChallenge, ApiError> {
        let user_id = user_id(player)?;
        let current = self.current();
        let (_, challenge) = current.challenge(challenge_id)?;
        let snapshot = self.snapshot(user_id, &current).await?;
        Ok(OneChallenge { view: current.view, challenge, snapshot, now: self.now() })
    }

    /// Assigns every default goal the player has no row for (goals added to the configuration later included;
    /// goals the player deactivated stay deactivated) and lists the player's active goals.
    pub async fn initialize(&self, player: &Player) -> Result<Initialized, ApiError> {
        let user_id = user_id(player)?;
        let current = self.current();
        let now = self.now();
        let mut snapshot = self.snapshot(user_id, &current).await?;
        // Goals the player holds whose period ended start the current one (deactivated goals wait for a select).
        if self.renew_expired(user_id, &current, &snapshot, now, |_, row| row.is_active).await? {
            snapshot = self.snapshot(user_id, &current).await?;
        }
        let mut room = PoolRoom::new(&current, &snapshot);
        let missing: Vec<(GoalIndex, &Goal)> = current
            .catalog()
            .default_goals()
            .filter_map(|goal| current.view.goal_index(&goal.id).map(|index| (index, goal)))
            .filter(|(index, _)| snapshot.row(*index).is_none())
            .filter(|(index, _)| room.take(current.view.goal(*index).challenge))
            .collect();
        let mut new_assignments = 0;
        if !missing.is_empty() {
            let assignments: Vec<NewAssignment> =
                missing.iter().map(|(_, goal)| self.assignment(user_id, goal, now)).collect();
            let inserted = self.store.insert_missing_assignments(&assignments, now).await?;
            self.changed(user_id).await;
            new_assignments = inserted;
            snapshot = if inserted as usize == assignments.len() {
                // Every row is ours, exactly as written: no need to read them back.
                let added = missing
                    .iter()
                    .zip(&assignments)
                    .map(|((index, _), assignment)| (*index, RowState::assigned(now, assignment.expires_at)));
                Arc::new(snapshot.with_rows(added))
            } else {
                // A concurrent call assigned some of them first.
                self.snapshot(user_id, &current).await?
            };
        }
        Ok(Initialized { view: current.view, snapshot, new_assignments: new_assignments as i32, now })
    }

    /// Activates or deactivates one goal, creating the assignment if missing. Progress is kept either way.
    pub async fn set_goal_active(
        &self,
        player: &Player,
        challenge_id: &str,
        goal_id: &str,
        active: bool,
    ) -> Result<proto::SetGoalActiveResponse, ApiError> {
        let user_id = user_id(player)?;
        let current = self.current();
        let (goal, _) = current.goal_in(challenge_id, goal_id)?;
        let now = self.now();
        let row = self.store.set_goal_active(&self.assignment(user_id, goal, now), active, now).await?;
        self.changed(user_id).await;
        let message = if row.is_active { "Goal activated successfully" } else { "Goal deactivated successfully" };
        Ok(proto::SetGoalActiveResponse {
            challenge_id: challenge_id.to_owned(),
            goal_id: goal_id.to_owned(),
            is_active: row.is_active,
            assigned_at: timestamp(row.assigned_at),
            message: message.to_owned(),
        })
    }

    /// Activates the given goals of a challenge, all or nothing (repeated ids count once).
    pub async fn batch_select(
        &self,
        player: &Player,
        challenge_id: &str,
        goal_ids: &[String],
        replace_existing: bool,
    ) -> Result<proto::GoalSelectionResponse, ApiError> {
        let user_id = user_id(player)?;
        let current = self.current();
        current.challenge(challenge_id)?;
        if goal_ids.is_empty() {
            return Err(ApiError::invalid(codes::INVALID_REQUEST, "goalIds must name at least one goal"));
        }
        let mut picked: Vec<GoalIndex> = Vec::with_capacity(goal_ids.len());
        for goal_id in goal_ids {
            let (goal, index) = current.goal(goal_id)?;
            if goal.challenge_id != challenge_id {
                return Err(ApiError::invalid(
                    codes::GOAL_NOT_IN_CHALLENGE,
                    format!("goal '{goal_id}' belongs to challenge '{}', not '{challenge_id}'", goal.challenge_id),
                ));
            }
            if !picked.contains(&index) {
                picked.push(index);
            }
        }
        self.select(user_id, &current, challenge_id, picked, replace_existing).await
    }

    /// Activates `count` goals of a challenge picked at random among those the player can still work on: not
    /// completed or claimed, not locked by prerequisites, and (with `exclude_active`) not already active.
    pub async fn random_select(
        &self,
        player: &Player,
        challenge_id: &str,
        count: i32,
        replace_existing: bool,
        exclude_active: bool,
    ) -> Result<proto::GoalSelectionResponse, ApiError> {
        let user_id = user_id(player)?;
        let current = self.current();
        let (_, challenge) = current.challenge(challenge_id)?;
        if count <= 0 {
            return Err(ApiError::invalid(codes::INVALID_REQUEST, format!("count must be positive (got {count})")));
        }
        let snapshot = self.snapshot(user_id, &current).await?;
        let now = self.now();
        let candidates: Vec<GoalIndex> = current.view.challenges()[challenge]
            .goals
            .clone()
            .filter(|index| {
                let state = GoalState::at(current.view.goal(*index), &snapshot, *index, now);
                let excluded = state.is_done() || state.locked || (exclude_active && state.is_active);
                !excluded
            })
            .collect();
        let requested = count as usize;
        if candidates.len() < requested {
            return Err(ApiError::new(
                ErrorKind::Unprocessable,
                codes::INSUFFICIENT_GOALS,
                format!(
                    "not enough goals available for selection in challenge '{challenge_id}' (available: {}, requested: {requested})",
                    candidates.len()
                ),
            ));
        }
        let mut picked: Vec<GoalIndex> =
            sample(&mut rand::rng(), candidates.len(), requested).into_iter().map(|at| candidates[at]).collect();
        picked.sort_unstable();
        self.select(user_id, &current, challenge_id, picked, replace_existing).await
    }

    async fn select(
        &self,
        user_id: &str,
        current: &Current,
        challenge_id: &str,
        picked: Vec<GoalIndex>,
        replace_existing: bool,
    ) -> Result<proto::GoalSelectionResponse, ApiError> {
        let now = self.now();
        let snapshot = self.snapshot(user_id, current).await?;
        check_pool(current, &snapshot, challenge_id, &picked, replace_existing)?;
        // A picked goal whose period ended starts the current one first, so the selection does not carry it over.
        self.renew_expired(user_id, current, &snapshot, now, |index, _| picked.contains(&index)).await?;
        let assignments: Vec<NewAssignment> = picked
            .iter()
            .filter_map(|index| current.goal_at(*index))
            .map(|goal| self.assignment(user_id, goal, now))
            .collect();
        let outcome = self.store.select_goals(user_id, challenge_id, &assignments, replace_existing, now).await?;
        self.changed(user_id).await;
        let snapshot = self.snapshot(user_id, current).await?;
        let selected_goals = picked
            .iter()
            .map(|index| {
                let goal = current.view.goal(*index);
                assigned_goal(goal, &GoalState::at(goal, &snapshot, *index, now))
            })
            .collect();
        Ok(proto::GoalSelectionResponse {
            challenge_id: challenge_id.to_owned(),
            selected_goals,
            total_active_goals: i32::try_from(outcome.active_in_challenge).unwrap_or(i32::MAX),
            replaced_goals: outcome.replaced,
        })
    }

    /// Claims a completed goal's reward: the goal turns claimed and the grant enters the outbox atomically (at
    /// most once however many claims race), then delivery is attempted right away.
    pub async fn claim(
        &self,
        player: &Player,
        challenge_id: &str,
        goal_id: &str,
    ) -> Result<proto::ClaimRewardResponse, ApiError> {
        let user_id = user_id(player)?;
        let current = self.current();
        let (goal, index) = current.goal_in(challenge_id, goal_id)?;
        let now = self.now();
        let request = ClaimRequest {
            user_id: user_id.to_owned(),
            goal_id: goal.id.clone(),
            prerequisites: goal.prerequisites.clone(),
            completed_not_before: period::claim_window_start(goal, now),
            now,
            grant: NewRewardGrant {
                namespace: self.namespace.clone(),
                challenge_id: goal.challenge_id.clone(),
                reward_type: match goal.reward.reward_type {
                    config::RewardType::Item => RewardType::Item,
                    config::RewardType::Wallet => RewardType::Wallet,
                },
                reward_id: goal.reward.reward_id.clone(),
                quantity: goal.reward.quantity,
            },
        };
        match self.store.claim(&request).await? {
            ClaimOutcome::Claimed { row, grant } => {
                let (grant_status, ()) = tokio::join!(self.rewards.deliver_now(grant.id), self.changed(user_id));
                Ok(proto::ClaimRewardResponse {
                    goal_id: goal.id.clone(),
                    status: row.status.as_str().to_owned(),
                    reward: current.view.goal(index).proto.reward.clone(),
                    claimed_at: timestamp(row.claimed_at),
                    grant_status: grant_status.as_str().to_owned(),
                })
            }
            ClaimOutcome::Refused(refusal) => Err(refusal_error(goal, refusal)),
        }
    }

    /// The rotation a challenge follows and its current and next periods (the same for every player).
    pub fn rotation(&self, player: &Player, challenge_id: &str) -> Result<proto::GetRotationStatusResponse, ApiError> {
        user_id(player)?;
        let current = self.current();
        let (challenge, _) = current.challenge(challenge_id)?;
        Ok(proto::GetRotationStatusResponse {
            challenge_id: challenge.id.clone(),
            rotation: Some(period::rotation_status(challenge, self.now())),
        })
    }
}

/// Whether a row takes one of its challenge's `poolSize` slots: active and not yet claimed (a claimed goal is done
/// with, so it frees its slot for the next one).
fn holds_slot(row: &RowState) -> bool {
    row.is_active && row.status != GoalStatus::Claimed
}

/// Free `poolSize` slots per challenge, for assigning default goals.
struct PoolRoom(Vec<Option<usize>>);

impl PoolRoom {
    fn new(current: &Current, snapshot: &UserSnapshot) -> Self {
        let room = current
            .catalog()
            .challenges()
            .iter()
            .zip(current.view.challenges())
            .map(|(challenge, view)| {
                let size = challenge.pool_size? as usize;
                let held = snapshot.rows_in(view.goals.clone()).iter().filter(|(_, row)| holds_slot(row)).count();
                Some(size.saturating_sub(held))
            })
            .collect();
        PoolRoom(room)
    }

    /// Takes a slot of the challenge at `challenge` if one is free (always true without a pool size).
    fn take(&mut self, challenge: usize) -> bool {
        match self.0.get_mut(challenge) {
            Some(Some(0)) => false,
            Some(Some(free)) => {
                *free -= 1;
                true
            }
            _ => true,
        }
    }
}

/// A selection may not leave the player holding more than the challenge's `poolSize` goals: asking for more than
/// the pool at once is invalid (422); adding to a full pool without `replaceExisting` conflicts with what the
/// player holds (409), since nothing is silently dropped.
fn check_pool(
    current: &Current,
    snapshot: &UserSnapshot,
    challenge_id: &str,
    picked: &[GoalIndex],
    replace_existing: bool,
) -> Result<(), ApiError> {
    let (challenge, at) = current.challenge(challenge_id)?;
    let Some(size) = challenge.pool_size.map(|size| size as usize) else {
        return Ok(());
    };
    if picked.len() > size {
        return Err(ApiError::new(
            ErrorKind::Unprocessable,
            codes::POOL_SIZE_EXCEEDED,
            format!("challenge '{challenge_id}' lets a player hold {size} goals at once ({} requested)", picked.len()),
        ));
    }
    if replace_existing {
        return Ok(());
    }
    let held = snapshot
        .rows_in(current.view.challenges()[at].goals.clone())
        .iter()
        .filter(|(index, row)| holds_slot(row) && !picked.contains(index))
        .count();
    if held + picked.len() > size {
        return Err(ApiError::conflict(
            codes::POOL_FULL,
            format!(
                "challenge '{challenge_id}' lets a player hold {size} goals at once and {held} are held; \
                 select with replaceExisting or deactivate a goal first"
            ),
        ));
    }
    Ok(())
}

fn refusal_error(goal: &Goal, refusal: ClaimRefusal) -> ApiError {
    let (id, challenge) = (&goal.id, &goal.challenge_id);
    match refusal {
        ClaimRefusal::NotCompleted(status) => ApiError::conflict(
            codes::GOAL_NOT_COMPLETED,
            format!("goal '{id}' is not completed yet (status: {status})"),
        ),
        ClaimRefusal::Inactive => ApiError::conflict(
            codes::GOAL_INACTIVE,
            format!("goal '{id}' is not active; activate it first (PUT /v1/challenges/{challenge}/goals/{id}/active)"),
        ),
        ClaimRefusal::Expired => {
            ApiError::conflict(codes::GOAL_EXPIRED, format!("the assignment of goal '{id}' has expired"))
        }
        ClaimRefusal::AlreadyClaimed { claimed_at } => ApiError::conflict(
            codes::ALREADY_CLAIMED,
            format!("the reward of goal '{id}' was already claimed at {}", timestamp(Some(claimed_at))),
        ),
        ClaimRefusal::CompletionOutdated { completed_at } => ApiError::conflict(
            codes::COMPLETION_EXPIRED,
            format!(
                "goal '{id}' was completed in an earlier period ({}); complete it again to claim",
                match completed_at {
                    Some(at) => timestamp(Some(at)),
                    None => "completion time unknown".to_owned(),
                }
            ),
        ),
        ClaimRefusal::PrerequisitesUnmet(unmet) => ApiError::conflict(
            codes::PREREQUISITES_NOT_MET,
            format!("goal '{id}' needs these goals completed first: {}", unmet.join(", ")),
        ),
    }
}
