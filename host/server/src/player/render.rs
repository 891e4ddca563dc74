//! Per-player fields of goals, and the challenge listings in both wire forms. The JSON is spliced from the
//! pre-rendered [`CatalogView`] fragments; the proto messages are clones of its pre-built messages. Both carry
//! the same values (the parity tests compare them).

use std::io::Write;
use std::ops::Range;

use challenge_core::progress::GoalStatus;
use challenge_core::rotation::seconds_remaining;
use challenge_proto::challenge::v1 as proto;
use chrono::{DateTime, SecondsFormat, Utc};

use super::snapshot::{RowState, UserSnapshot};
use super::view::{CatalogView, ChallengeView, GoalIndex, GoalView};

/// A goal as one player sees it at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct GoalState {
    pub progress: i64,
    pub status: GoalStatus,
    /// Some prerequisite is neither completed nor claimed by this player.
    pub locked: bool,
    pub completed_at: Option<DateTime<Utc>>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub is_active: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub assigned_at: Option<DateTime<Utc>>,
}

impl GoalState {
    /// A goal the player has no row for.
    pub fn unassigned(locked: bool) -> Self {
        GoalState {
            progress: 0,
            status: GoalStatus::NotStarted,
            locked,
            completed_at: None,
            claimed_at: None,
            is_active: false,
            expires_at: None,
            assigned_at: None,
        }
    }

    pub fn of(goal: &GoalView, snapshot: &UserSnapshot, index: GoalIndex, now: DateTime<Utc>) -> Self {
        let locked = is_locked(goal, snapshot);
        let Some(row) = snapshot.row(index) else {
            return GoalState::unassigned(locked);
        };
        let mut state = GoalState {
            progress: row.progress,
            status: row.status,
            locked,
            completed_at: row.completed_at,
            claimed_at: row.claimed_at,
            is_active: row.is_active,
            expires_at: row.expires_at,
            assigned_at: row.assigned_at,
        };
        if starts_over(goal, row, now) {
            state.progress = 0;
            state.status = GoalStatus::NotStarted;
            state.completed_at = None;
            state.claimed_at = None;
        }
        state
    }

    /// Completed or claimed as shown (an expired rotating goal that starts over is neither).
    pub fn is_done(&self) -> bool {
        self.status.is_done()
    }
}

/// Prerequisites count when the player's row for them is completed or claimed (any challenge), as claims check.
pub fn is_locked(goal: &GoalView, snapshot: &UserSnapshot) -> bool {
    goal.prerequisites.iter().any(|prerequisite| !snapshot.row(*prerequisite).is_some_and(|row| row.status.is_done()))
}

/// Whether a row's assignment has expired into a new period in which the goal is shown from scratch: its rotation
/// resets progress, unless it is a claim that may not be repeated.
fn starts_over(goal: &GoalView, row: &RowState, now: DateTime<Utc>) -> bool {
    let (Some(expiry), Some(on_expiry)) = (row.expires_at, goal.on_expiry) else {
        return false;
    };
    expiry <= now
        && on_expiry.reset_progress
        && !(row.status == GoalStatus::Claimed && !on_expiry.allow_reselection)
}

/// RFC 3339 in UTC (`Z`), fractional seconds only when present; `""` when unset.
pub fn timestamp(at: Option<DateTime<Utc>>) -> String {
    at.map(|at| at.to_rfc3339_opts(SecondsFormat::AutoSi, true)).unwrap_or_default()
}

fn expires_in(state: &GoalState, now: DateTime<Utc>) -> i64 {
    state.expires_at.map_or(0, |end| seconds_remaining(end, now))
}

/// Appends a goal's per-player fields and closes its object (the static part is already written).
pub fn write_state(out: &mut Vec<u8>, state: &GoalState, now: Option<DateTime<Utc>>) {
    let expires_in_seconds = now.map_or(0, |now| expires_in(state, now));
    // Writing into a Vec cannot fail; statuses and timestamps need no JSON escaping.
    let _ = write!(
        out,
        r#","progress":{},"status":"{}","locked":{},"completedAt":"{}","claimedAt":"{}","isActive":{},"expiresAt":"{}","expiresInSeconds":{},"assignedAt":"{}"}}"#,
        state.progress,
        state.status.as_str(),
        state.locked,
        timestamp(state.completed_at),
        timestamp(state.claimed_at),
        state.is_active,
        timestamp(state.expires_at),
        expires_in_seconds,
        timestamp(state.assigned_at),
    );
}

pub fn goal_proto(goal: &GoalView, state: &GoalState, now: DateTime<Utc>) -> proto::Goal {
    proto::Goal {
        progress: state.progress,
        status: state.status.as_str().to_owned(),
        locked: state.locked,
        completed_at: timestamp(state.completed_at),
        claimed_at: timestamp(state.claimed_at),
        is_active: state.is_active,
        expires_at: timestamp(state.expires_at),
        expires_in_seconds: expires_in(state, now),
        assigned_at: timestamp(state.assigned_at),
        ..goal.proto.clone()
    }
}

pub fn assigned_goal(goal: &GoalView, state: &GoalState) -> proto::AssignedGoal {
    proto::AssignedGoal {
        is_active: state.is_active,
        assigned_at: timestamp(state.assigned_at),
        expires_at: timestamp(state.expires_at),
        progress: state.progress,
        status: state.status.as_str().to_owned(),
        ..goal.assigned.clone()
    }
}

/// Which goals a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// Every goal of the configuration.
    All,
    /// Only goals the player has active; challenges without any are left out.
    ActiveOnly,
}

fn shown(listing: Listing, snapshot: &UserSnapshot, index: GoalIndex) -> bool {
    listing == Listing::All || snapshot.row(index).is_some_and(|row| row.is_active)
}

/// `{"challenges":[…]}` for the given challenges (positions in the view).
pub fn challenges_json(
    view: &CatalogView,
    snapshot: &UserSnapshot,
    listing: Listing,
    now: DateTime<Utc>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(view.challenges().iter().map(|c| c.default_goals_json.len() + 128).sum());
    out.extend_from_slice(br#"{"challenges":["#);
    let mut first = true;
    for challenge in view.challenges() {
        let mark = out.len();
        if !first {
            out.push(b',');
        }
        if !write_challenge(&mut out, view, challenge, snapshot, listing, now) && listing == Listing::ActiveOnly {
            out.truncate(mark);
        } else {
            first = false;
        }
    }
    out.extend_from_slice(b"]}");
    out
}

/// One challenge object with every goal.
pub fn challenge_json(view: &CatalogView, challenge: &ChallengeView, snapshot: &UserSnapshot, now: DateTime<Utc>) -> Vec<u8> {
    let mut out = Vec::with_capacity(challenge.default_goals_json.len() + 128);
    write_challenge(&mut out, view, challenge, snapshot, Listing::All, now);
    out
}

/// Writes one challenge object; returns whether it lists any goal. Runs of goals the player has no row for (and
/// whose lock state is the default) are copied from the pre-rendered listing in one piece.
fn write_challenge(
    out: &mut Vec<u8>,
    view: &CatalogView,
    challenge: &ChallengeView,
    snapshot: &UserSnapshot,
    listing: Listing,
    now: DateTime<Utc>,
) -> bool {
    out.extend_from_slice(&challenge.head_json);
    // Pieces written so far (a run of default goals or a single goal), for the separators.
    let mut pieces = 0;
    let mut run: Option<Range<usize>> = None;
    let separate = |out: &mut Vec<u8>, pieces: &mut usize| {
        if *pieces > 0 {
            out.push(b',');
        }
        *pieces += 1;
    };
    let flush = |out: &mut Vec<u8>, run: &mut Option<Range<usize>>, pieces: &mut usize| {
        if let Some(range) = run.take() {
            separate(out, pieces);
            out.extend_from_slice(&challenge.default_goals_json[range]);
        }
    };
    for index in challenge.goals.clone() {
        if !shown(listing, snapshot, index) {
            flush(out, &mut run, &mut pieces);
            continue;
        }
        let goal = view.goal(index);
        if snapshot.row(index).is_none() && is_locked(goal, snapshot) == goal.default_locked {
            // Consecutive goals: their default renderings are adjacent, separator included.
            run = Some(match run {
                Some(range) => range.start..goal.default_json.end,
                None => goal.default_json.clone(),
            });
            continue;
        }
        flush(out, &mut run, &mut pieces);
        separate(out, &mut pieces);
        out.extend_from_slice(&goal.static_json);
        write_state(out, &GoalState::of(goal, snapshot, index, now), Some(now));
    }
    flush(out, &mut run, &mut pieces);
    out.extend_from_slice(b"]}");
    pieces > 0
}

pub fn challenges_proto(
    view: &CatalogView,
    snapshot: &UserSnapshot,
    listing: Listing,
    now: DateTime<Utc>,
) -> proto::GetChallengesResponse {
    let challenges = view
        .challenges()
        .iter()
        .map(|challenge| challenge_proto_listing(view, challenge, snapshot, listing, now))
        .filter(|challenge| listing == Listing::All || !challenge.goals.is_empty())
        .collect();
    proto::GetChallengesResponse { challenges }
}

pub fn challenge_proto(
    view: &CatalogView,
    challenge: &ChallengeView,
    snapshot: &UserSnapshot,
    now: DateTime<Utc>,
) -> proto::Challenge {
    challenge_proto_listing(view, challenge, snapshot, Listing::All, now)
}

fn challenge_proto_listing(
    view: &CatalogView,
    challenge: &ChallengeView,
    snapshot: &UserSnapshot,
    listing: Listing,
    now: DateTime<Utc>,
) -> proto::Challenge {
    let goals = challenge
        .goals
        .clone()
        .filter(|index| shown(listing, snapshot, *index))
        .map(|index| {
            let goal = view.goal(index);
            goal_proto(goal, &GoalState::of(goal, snapshot, index, now), now)
        })
        .collect();
    proto::Challenge { goals, ..challenge.proto.clone() }
}
