//! Per-player fields of goals, and the challenge listings in both wire forms. The JSON is spliced from the
//! pre-rendered [`CatalogView`] fragments; the proto messages are clones of its pre-built messages. Both carry
//! the same values (the parity tests compare them).

use std::io::Write;
use std::ops::Range;

use challenge_core::progress::GoalStatus;
use challenge_core::rotation::seconds_remaining;
use challenge_proto::challenge::v1 as proto;
use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};

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

    /// The goal at `index` of the view.
    pub fn at(goal: &GoalView, snapshot: &UserSnapshot, index: GoalIndex, now: DateTime<Utc>) -> Self {
        Self::of(goal, snapshot, snapshot.row(index), now)
    }

    /// The goal given the player's row for it (`row` must be the snapshot's row of this goal).
    pub fn of(goal: &GoalView, snapshot: &UserSnapshot, row: Option<&RowState>, now: DateTime<Utc>) -> Self {
        let locked = is_locked(goal, snapshot);
        let Some(row) = row else {
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
    // A claim stays claimed unless the rotation allows picking the goal again.
    let claim_stays = row.status == GoalStatus::Claimed && !on_expiry.allow_reselection;
    expiry <= now && on_expiry.reset_progress && !claim_stays
}

/// RFC 3339 in UTC (`Z`), fractional seconds only when present; `""` when unset.
pub fn timestamp(at: Option<DateTime<Utc>>) -> String {
    let mut out = Vec::with_capacity(32);
    write_timestamp(&mut out, at);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends [`timestamp`] without allocating: the same text as chrono's
/// `to_rfc3339_opts(SecondsFormat::AutoSi, true)` (milli-, micro- or nanoseconds as present).
pub fn write_timestamp(out: &mut Vec<u8>, at: Option<DateTime<Utc>>) {
    let Some(at) = at else { return };
    let year = at.year();
    let nanos = at.nanosecond();
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        // Outside four-digit years or on a leap second: let chrono spell it.
        out.extend_from_slice(at.to_rfc3339_opts(SecondsFormat::AutoSi, true).as_bytes());
        return;
    }
    let _ = write!(
        out,
        "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    let _ = match nanos {
        0 => Ok(()),
        n if n % 1_000_000 == 0 => write!(out, ".{:03}", n / 1_000_000),
        n if n % 1_000 == 0 => write!(out, ".{:06}", n / 1_000),
        n => write!(out, ".{n:09}"),
    };
    out.push(b'Z');
}

fn expires_in(state: &GoalState, now: DateTime<Utc>) -> i64 {
    state.expires_at.map_or(0, |end| seconds_remaining(end, now))
}

/// Appends a goal's per-player fields (listing form) and closes its object (the static part is already written).
pub fn write_state(out: &mut Vec<u8>, state: &GoalState, now: Option<DateTime<Utc>>) {
    let expires_in_seconds = now.map_or(0, |now| expires_in(state, now));
    // Writing into a Vec cannot fail; statuses and timestamps need no JSON escaping.
    let _ = write!(
        out,
        r#","progress":{},"status":"{}","locked":{},"completedAt":""#,
        state.progress, state.status, state.locked
    );
    write_timestamp(out, state.completed_at);
    out.extend_from_slice(br#"","claimedAt":""#);
    write_timestamp(out, state.claimed_at);
    let _ = write!(out, r#"","isActive":{},"expiresAt":""#, state.is_active);
    write_timestamp(out, state.expires_at);
    let _ = write!(out, r#"","expiresInSeconds":{expires_in_seconds},"assignedAt":""#);
    write_timestamp(out, state.assigned_at);
    out.extend_from_slice(br#""}"#);
}

/// Appends an assigned goal's per-player fields (initialize and selection form) and closes its object.
pub fn write_assigned_state(out: &mut Vec<u8>, state: &GoalState) {
    let _ = write!(out, r#","isActive":{},"assignedAt":""#, state.is_active);
    write_timestamp(out, state.assigned_at);
    out.extend_from_slice(br#"","expiresAt":""#);
    write_timestamp(out, state.expires_at);
    let _ = write!(out, r#"","progress":{},"status":"{}"}}"#, state.progress, state.status);
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

/// The player's active goals in configuration order, as `initialize` lists them.
pub fn active_goals<'a>(
    view: &'a CatalogView,
    snapshot: &'a UserSnapshot,
    now: DateTime<Utc>,
) -> impl Iterator<Item = (&'a GoalView, GoalState)> + 'a {
    snapshot.rows().filter(|(_, row)| row.is_active).map(move |(index, row)| {
        let goal = view.goal(index);
        (goal, GoalState::of(goal, snapshot, Some(row), now))
    })
}

/// `{"assignedGoals":[…],"newAssignments":n,"totalActive":n}`
pub fn initialize_json(
    view: &CatalogView,
    snapshot: &UserSnapshot,
    new_assignments: i32,
    now: DateTime<Utc>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + snapshot.len() * 512);
    out.extend_from_slice(br#"{"assignedGoals":["#);
    let mut total = 0;
    for (goal, state) in active_goals(view, snapshot, now) {
        if total > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&goal.assigned_json);
        write_assigned_state(&mut out, &state);
        total += 1;
    }
    let _ = write!(out, r#"],"newAssignments":{new_assignments},"totalActive":{total}}}"#);
    out
}

pub fn initialize_proto(
    view: &CatalogView,
    snapshot: &UserSnapshot,
    new_assignments: i32,
    now: DateTime<Utc>,
) -> proto::InitializeResponse {
    let assigned_goals: Vec<proto::AssignedGoal> =
        active_goals(view, snapshot, now).map(|(goal, state)| assigned_goal(goal, &state)).collect();
    proto::InitializeResponse { total_active: assigned_goals.len() as i32, assigned_goals, new_assignments }
}

/// Which goals a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// Every goal of the configuration.
    All,
    /// Only goals the player has active; challenges without any are left out.
    ActiveOnly,
}

fn shown(listing: Listing, row: Option<&RowState>) -> bool {
    listing == Listing::All || row.is_some_and(|row| row.is_active)
}

/// The goals of `range` with the player's row for each, in order: a merge of the two sorted sequences, so a
/// listing costs no lookup per goal.
fn with_rows(snapshot: &UserSnapshot, range: Range<GoalIndex>) -> impl Iterator<Item = (GoalIndex, Option<&RowState>)> {
    let mut rows = snapshot.rows_in(range.clone()).iter().peekable();
    range.map(move |index| (index, rows.next_if(|(at, _)| *at == index).map(|(_, row)| row)))
}

/// `{"challenges":[…]}`
pub fn challenges_json(view: &CatalogView, snapshot: &UserSnapshot, listing: Listing, now: DateTime<Utc>) -> Vec<u8> {
    let mut out = Vec::with_capacity(view.listing_json_len() + snapshot.len() * 512);
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
pub fn challenge_json(
    view: &CatalogView,
    challenge: &ChallengeView,
    snapshot: &UserSnapshot,
    now: DateTime<Utc>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(challenge.default_goals_json.len() + 256 + snapshot.len() * 512);
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
    for (index, row) in with_rows(snapshot, challenge.goals.clone()) {
        if !shown(listing, row) {
            flush(out, &mut run, &mut pieces);
            continue;
        }
        let goal = view.goal(index);
        if row.is_none() && (!goal.default_locked || is_locked(goal, snapshot)) {
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
        write_state(out, &GoalState::of(goal, snapshot, row, now), Some(now));
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
    let goals = with_rows(snapshot, challenge.goals.clone())
        .filter(|(_, row)| shown(listing, *row))
        .map(|(index, row)| {
            let goal = view.goal(index);
            goal_proto(goal, &GoalState::of(goal, snapshot, row, now), now)
        })
        .collect();
    proto::Challenge { goals, ..challenge.proto.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_written_like_chrono_writes_them() {
        let base = DateTime::parse_from_rfc3339("2026-03-06T07:08:09Z").unwrap().with_timezone(&Utc);
        for nanos in [0, 1, 999, 1_000, 120_000, 5_000_000, 123_456_789, 999_999_999] {
            let at = base + chrono::TimeDelta::nanoseconds(nanos);
            assert_eq!(timestamp(Some(at)), at.to_rfc3339_opts(SecondsFormat::AutoSi, true), "{nanos}");
        }
        let far = DateTime::parse_from_rfc3339("+12345-01-01T00:00:00Z").map(|at| at.with_timezone(&Utc));
        if let Ok(far) = far {
            assert_eq!(timestamp(Some(far)), far.to_rfc3339_opts(SecondsFormat::AutoSi, true));
        }
        assert_eq!(timestamp(None), "");
    }
}
