//! The built-in goal rules ("absolute", "increment", "daily") as plain Rust.
//!
//! This crate knows nothing about WIT or Wasm. Events and the enums are the plain types of `challenge-plugin-wire`
//! (which the guest SDK hands to plugins), so the `builtin-rules` plugin evaluates a request's events as they are;
//! the host benchmarks compare the plugin against this same code compiled natively. Everything borrows from the
//! caller's request so that evaluation allocates only its output.
//!
//! Semantics, per goal and per event whose stat code equals the goal's, in event order:
//! - Claimed goals never change.
//! - Counting rules (`increment` without `daily`, and `absolute` goals fed login events): the baseline is captured on
//!   the first event as `sequence - 1`, progress is `sequence - baseline` ([`Source::EventCount`]).
//! - `absolute` + absolute mode, statistic events: progress is `trunc(value)` and may go down ([`Source::StatValue`]).
//! - `absolute` + relative mode, statistic events: the baseline is captured on the first event as
//!   `trunc(value) - trunc(increment)`, progress is `trunc(value) - baseline` ([`Source::StatValue`]).
//! - Statistic events with a negative (or NaN) value are skipped by the two value rules above, as the reference does.
//!   Counting rules still count them, so the host can keep deriving their progress from the event sequence.
//! - `increment` + `daily`: at most +1 per UTC day; the last counted day is the plugin state ([`Source::Stored`]).
//! - `daily`: an event completes the goal for its UTC day (progress 1); a later day's event moves `completed_at`
//!   there ([`Source::Stored`]).
//! - Completion is sticky: a completed goal keeps its status and completion time (except that `daily` moves it).
//!   Otherwise a goal that received an event is in progress, even at progress 0.
#![no_std]

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;

/// Milliseconds in a UTC day.
pub const MS_PER_DAY: i64 = 86_400_000;

/// Goal kinds these rules implement.
pub const KINDS: [&str; 3] = ["absolute", "increment", "daily"];

/// Days since the Unix epoch (UTC) of a millisecond timestamp; negative timestamps round down.
pub const fn utc_day(timestamp_ms: i64) -> i64 {
    timestamp_ms.div_euclid(MS_PER_DAY)
}

/// Whether two stat codes are equal. Requests packed by the host share one copy of each repeated stat code, so the
/// pointer comparison usually decides without comparing bytes (a per-pair cost in the guest's inner loop).
#[inline]
pub fn same_code(a: &str, b: &str) -> bool {
    core::ptr::eq(a, b) || a == b
}

/// Integer progress from a stat value: truncation toward zero as the reference does, saturating at the `i64` range
/// and mapping NaN to 0.
pub fn stat_value_as_progress(value: f64) -> i64 {
    // `as` saturates and maps NaN to 0, which is exactly the conversion wanted here.
    value as i64
}

/// A goal's status (the WIT `goal-status`).
pub use challenge_plugin_wire::GoalStatus as Status;
/// How the host may derive progress without a write (the WIT `progress-source`).
pub use challenge_plugin_wire::ProgressSource as Source;
pub use challenge_plugin_wire::{Event, EventKind, ProgressMode};

/// A goal's configuration reduced to the behaviour it selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// `absolute` kind: stat value (absolute or relative mode) for statistic events, a count for logins.
    Absolute(ProgressMode),
    /// `increment` kind without `daily`: one per event.
    Increment,
    /// `increment` kind with `daily`: one per UTC day.
    IncrementDaily,
    /// `daily` kind: completed on the day of the latest event.
    Daily,
}

/// Why a goal configuration cannot be evaluated by these rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleError {
    UnknownKind,
    DailyNeedsIncrement,
    TargetNotPositive,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuleError::UnknownKind => "unknown goal kind (built-in kinds are 'absolute', 'increment' and 'daily')",
            RuleError::DailyNeedsIncrement => "the daily flag can only be set on 'increment' goals",
            RuleError::TargetNotPositive => "target must be positive",
        })
    }
}

impl Rule {
    /// Selects the rule for a goal's kind, mode and daily flag.
    pub fn from_spec(kind: &str, mode: ProgressMode, daily: bool) -> Result<Rule, RuleError> {
        match (kind, daily) {
            ("increment", true) => Ok(Rule::IncrementDaily),
            ("increment", false) => Ok(Rule::Increment),
            ("absolute" | "daily", true) => Err(RuleError::DailyNeedsIncrement),
            ("absolute", false) => Ok(Rule::Absolute(mode)),
            ("daily", false) => Ok(Rule::Daily),
            _ => Err(RuleError::UnknownKind),
        }
    }

    /// Full load-time check of a goal configuration.
    pub fn validate(kind: &str, mode: ProgressMode, daily: bool, target: i64) -> Result<Rule, RuleError> {
        let rule = Rule::from_spec(kind, mode, daily)?;
        if target <= 0 {
            return Err(RuleError::TargetNotPositive);
        }
        Ok(rule)
    }
}

/// The part of a goal's stored state the rules read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoalState {
    pub progress: i64,
    pub status: Status,
    pub completed_at_ms: Option<i64>,
    pub baseline: Option<i64>,
    /// `increment` + `daily` only: the last UTC day that counted (kept in the plugin state blob).
    pub last_counted_day: Option<i64>,
}

impl GoalState {
    pub const fn new() -> Self {
        GoalState {
            progress: 0,
            status: Status::NotStarted,
            completed_at_ms: None,
            baseline: None,
            last_counted_day: None,
        }
    }
}

impl Default for GoalState {
    fn default() -> Self {
        GoalState::new()
    }
}

/// Size of the encoded plugin state (the last counted day, little-endian).
pub const DAY_STATE_LEN: usize = 8;

/// Encodes the last counted day as the plugin state blob.
pub const fn encode_day_state(day: i64) -> [u8; DAY_STATE_LEN] {
    day.to_le_bytes()
}

/// Decodes a plugin state blob written by [`encode_day_state`]; anything else reads as "no day counted yet".
pub fn decode_day_state(blob: Option<&[u8]>) -> Option<i64> {
    let bytes: [u8; DAY_STATE_LEN] = blob?.try_into().ok()?;
    Some(i64::from_le_bytes(bytes))
}

/// One goal to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Goal<'a> {
    pub stat_code: &'a str,
    pub target: i64,
    pub rule: Rule,
    pub state: GoalState,
}

/// New state of a goal whose state changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Update {
    /// Index into the evaluated goals.
    pub goal_index: u32,
    pub state: GoalState,
    pub source: Source,
}

/// Applies `events` in order to every goal and appends one [`Update`] per goal whose state changed.
pub fn evaluate(goals: &[Goal<'_>], events: &[Event<'_>], out: &mut Vec<Update>) {
    for (index, goal) in goals.iter().enumerate() {
        if goal.state.status == Status::Claimed {
            continue;
        }
        let mut state = goal.state;
        let mut source = None;
        for event in events.iter().filter(|e| same_code(e.stat_code, goal.stat_code)) {
            if let Some(applied) = apply(goal.rule, goal.target, &mut state, event) {
                source = Some(applied);
            }
        }
        if let Some(source) = source
            && state != goal.state
        {
            out.push(Update { goal_index: index as u32, state, source });
        }
    }
}

/// Applies one event to one (unclaimed) goal. Returns the progress source when the event applies to the goal, even
/// if it changed nothing; `None` when the rule skips the event.
pub fn apply(rule: Rule, target: i64, state: &mut GoalState, event: &Event<'_>) -> Option<Source> {
    match (rule, event.kind) {
        (Rule::Increment, _) | (Rule::Absolute(_), EventKind::Login) => {
            count_event(target, state, event);
            Some(Source::EventCount)
        }
        (Rule::Absolute(ProgressMode::Absolute), EventKind::Statistic) => {
            let value = usable_value(event)?;
            state.progress = value;
            state.baseline = None;
            settle(&mut state.status, &mut state.completed_at_ms, value >= target, event.timestamp_ms);
            Some(Source::StatValue)
        }
        (Rule::Absolute(ProgressMode::Relative), EventKind::Statistic) => {
            let value = usable_value(event)?;
            let increment = stat_value_as_progress(event.increment);
            let baseline = *state.baseline.get_or_insert(value.saturating_sub(increment));
            state.progress = value.saturating_sub(baseline).max(0);
            settle(&mut state.status, &mut state.completed_at_ms, state.progress >= target, event.timestamp_ms);
            Some(Source::StatValue)
        }
        (Rule::IncrementDaily, _) => {
            let day = utc_day(event.timestamp_ms);
            if state.last_counted_day.is_none_or(|last| day > last) {
                state.last_counted_day = Some(day);
                state.progress = state.progress.saturating_add(1);
                settle(&mut state.status, &mut state.completed_at_ms, state.progress >= target, event.timestamp_ms);
            }
            Some(Source::Stored)
        }
        (Rule::Daily, _) => {
            let day = utc_day(event.timestamp_ms);
            let done_that_day =
                state.status == Status::Completed && state.completed_at_ms.is_some_and(|at| utc_day(at) >= day);
            if !done_that_day {
                state.progress = 1;
                state.status = Status::Completed;
                state.completed_at_ms = Some(event.timestamp_ms);
            }
            Some(Source::Stored)
        }
    }
}

/// The event's value as progress, or `None` when the reference would skip it (negative or NaN).
fn usable_value(event: &Event<'_>) -> Option<i64> {
    (event.value >= 0.0).then(|| stat_value_as_progress(event.value))
}

fn count_event(target: i64, state: &mut GoalState, event: &Event<'_>) {
    let baseline = *state.baseline.get_or_insert(event.sequence.saturating_sub(1));
    state.progress = event.sequence.saturating_sub(baseline).max(0);
    settle(&mut state.status, &mut state.completed_at_ms, state.progress >= target, event.timestamp_ms);
}

/// Status after an event that moved a goal: completion is sticky, otherwise completed (at `timestamp_ms`) when
/// `reached`, else in progress. Plugins share this through the SDK.
pub fn settle(status: &mut Status, completed_at_ms: &mut Option<i64>, reached: bool, timestamp_ms: i64) {
    if *status == Status::Completed {
        return;
    }
    if reached {
        *status = Status::Completed;
        *completed_at_ms = Some(timestamp_ms);
    } else {
        *status = Status::InProgress;
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use alloc::vec;

    const DAY: i64 = MS_PER_DAY;

    fn stat(code: &str, value: f64, increment: f64, sequence: i64, ts: i64) -> Event<'_> {
        Event { id: "", kind: EventKind::Statistic, stat_code: code, value, increment, sequence, timestamp_ms: ts }
    }

    fn login(code: &str, sequence: i64, ts: i64) -> Event<'_> {
        Event {
            id: "",
            kind: EventKind::Login,
            stat_code: code,
            value: 0.0,
            increment: 1.0,
            sequence,
            timestamp_ms: ts,
        }
    }

    fn goal(rule: Rule, target: i64) -> Goal<'static> {
        Goal { stat_code: "s", target, rule, state: GoalState::new() }
    }

    fn run(goals: &[Goal<'_>], events: &[Event<'_>]) -> Vec<Update> {
        let mut out = Vec::new();
        evaluate(goals, events, &mut out);
        out
    }

    #[test]
    fn absolute_follows_the_value_and_completion_sticks() {
        let g = goal(Rule::Absolute(ProgressMode::Absolute), 10);
        let up = run(&[g], &[stat("s", 12.9, 1.0, 1, 5)]);
        assert_eq!(up[0].state.progress, 12);
        assert_eq!(up[0].state.status, Status::Completed);
        assert_eq!(up[0].state.completed_at_ms, Some(5));
        assert_eq!(up[0].source, Source::StatValue);
        let g = Goal { state: up[0].state, ..g };
        let up = run(&[g], &[stat("s", 3.0, 1.0, 2, 9), stat("s", -4.0, 1.0, 3, 10)]);
        assert_eq!(
            (up[0].state.progress, up[0].state.status, up[0].state.completed_at_ms),
            (3, Status::Completed, Some(5))
        );
    }

    #[test]
    fn relative_captures_a_baseline_and_may_complete_on_the_first_event() {
        let up = run(&[goal(Rule::Absolute(ProgressMode::Relative), 5)], &[stat("s", 100.0, 7.0, 1, 1)]);
        assert_eq!(up[0].state.baseline, Some(93));
        assert_eq!(up[0].state.progress, 7);
        assert_eq!(up[0].state.status, Status::Completed);
    }

    #[test]
    fn counting_uses_the_sequence() {
        let up = run(&[goal(Rule::Increment, 3)], &[login("s", 41, 1), login("s", 42, 2)]);
        assert_eq!((up[0].state.baseline, up[0].state.progress), (Some(40), 2));
        assert_eq!(up[0].source, Source::EventCount);
    }

    #[test]
    fn daily_increment_counts_once_per_day() {
        let events = [login("s", 1, DAY + 1), login("s", 2, DAY + 2), login("s", 3, 2 * DAY)];
        let up = run(&[goal(Rule::IncrementDaily, 5)], &events);
        assert_eq!(up[0].state.progress, 2);
        assert_eq!(up[0].state.last_counted_day, Some(2));
        assert_eq!(decode_day_state(Some(&encode_day_state(2))), Some(2));
        assert_eq!(decode_day_state(Some(&[1, 2])), None);
    }

    #[test]
    fn unchanged_and_claimed_goals_report_nothing() {
        let mut claimed = goal(Rule::Increment, 3);
        claimed.state.status = Status::Claimed;
        let mut other_stat = goal(Rule::Increment, 3);
        other_stat.stat_code = "t";
        assert_eq!(run(&[claimed, other_stat], &[login("s", 1, 1)]), vec![]);
    }

    #[test]
    fn configuration_checks() {
        assert_eq!(Rule::validate("increment", ProgressMode::Absolute, true, 1), Ok(Rule::IncrementDaily));
        assert_eq!(Rule::validate("daily", ProgressMode::Absolute, true, 1), Err(RuleError::DailyNeedsIncrement));
        assert_eq!(Rule::validate("absolute", ProgressMode::Absolute, false, 0), Err(RuleError::TargetNotPositive));
        assert_eq!(Rule::validate("streak", ProgressMode::Absolute, false, 1), Err(RuleError::UnknownKind));
        assert_eq!(stat_value_as_progress(f64::NAN), 0);
        assert_eq!(stat_value_as_progress(-2.7), -2);
        assert_eq!(utc_day(-1), -1);
    }
}
