//! Backend-independent rules shared by the PostgreSQL and SQLite stores, so both behave identically.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Instant;

use challenge_core::progress::{GoalProgress, GoalStatus, ProgressSource};
use chrono::{DateTime, Utc};

use crate::error::{Result, StorageError};
use crate::types::{ClaimRefusal, ClaimRequest, GoalWrite, NewAssignment, StatWrite};

/// Runs one store operation, recording `storage_query_seconds{op}` and, on failure, `storage_errors_total{op,kind}`.
pub(crate) async fn instrument<T>(op: &'static str, work: impl Future<Output = Result<T>>) -> Result<T> {
    let started = Instant::now();
    let result = work.await;
    metrics::histogram!("storage_query_seconds", "op" => op).record(started.elapsed().as_secs_f64());
    if let Err(err) = &result {
        metrics::counter!("storage_errors_total", "op" => op, "kind" => err.kind()).increment(1);
        tracing::debug!(op, error = %err, "storage operation failed");
    }
    result
}

pub(crate) fn parse_status(text: &str) -> Result<GoalStatus> {
    text.parse().map_err(|err| StorageError::corrupt(format!("{err}")))
}

pub(crate) fn parse_source(text: &str) -> Result<ProgressSource> {
    text.parse().map_err(|err| StorageError::corrupt(format!("unknown progress source: {err}")))
}

/// The claim checks that only need the goal's own row, in the documented order.
pub(crate) fn claim_refusal(row: Option<&GoalProgress>, req: &ClaimRequest) -> Result<Option<ClaimRefusal>> {
    let Some(row) = row else {
        return Ok(Some(ClaimRefusal::NotCompleted(GoalStatus::NotStarted)));
    };
    if !row.is_active {
        return Ok(Some(ClaimRefusal::Inactive));
    }
    if row.expires_at.is_some_and(|expiry| expiry <= req.now) {
        return Ok(Some(ClaimRefusal::Expired));
    }
    match row.status {
        GoalStatus::Claimed => {
            let claimed_at = row.claimed_at.ok_or_else(|| {
                StorageError::corrupt(format!(
                    "goal '{}' of '{}' is claimed without claimed_at",
                    row.goal_id, row.user_id
                ))
            })?;
            return Ok(Some(ClaimRefusal::AlreadyClaimed { claimed_at }));
        }
        GoalStatus::Completed => {}
        other => return Ok(Some(ClaimRefusal::NotCompleted(other))),
    }
    if let Some(not_before) = req.completed_not_before
        && row.completed_at.is_none_or(|completed| completed < not_before)
    {
        return Ok(Some(ClaimRefusal::CompletionOutdated { completed_at: row.completed_at }));
    }
    Ok(None)
}

/// Prerequisites (request order, without duplicates) that are not among the `done` goal ids.
pub(crate) fn unmet_prerequisites(required: &[String], done: &[String]) -> Vec<String> {
    let done: HashSet<&str> = done.iter().map(String::as_str).collect();
    let mut seen = HashSet::new();
    required.iter().filter(|id| !done.contains(id.as_str()) && seen.insert(id.as_str())).cloned().collect()
}

pub(crate) fn idempotency_key(user_id: &str, goal_id: &str, claimed_at: DateTime<Utc>) -> String {
    format!("claim:{user_id}:{goal_id}:{}", claimed_at.timestamp_millis())
}

/// Checks a selection's assignments belong to the user and challenge, and drops repeated goal ids (first one
/// wins) so one statement never touches a row twice.
pub(crate) fn selection_assignments<'a>(
    user_id: &str,
    challenge_id: &str,
    assignments: &'a [NewAssignment],
) -> Result<Vec<&'a NewAssignment>> {
    if let Some(stray) = assignments.iter().find(|a| a.user_id != user_id || a.challenge_id != challenge_id) {
        return Err(StorageError::InvalidInput(format!(
            "goal '{}' of user '{}' / challenge '{}' selected for user '{user_id}' / challenge '{challenge_id}'",
            stray.goal_id, stray.user_id, stray.challenge_id
        )));
    }
    let mut seen = HashSet::new();
    Ok(assignments.iter().filter(|a| seen.insert(a.goal_id.as_str())).collect())
}

/// Validates the writes and folds repeated (user, stat code) pairs into one: deltas add up, the last reported
/// value wins, the latest timestamp is kept.
pub(crate) fn merge_stat_writes(writes: &[StatWrite]) -> Result<Vec<StatWrite>> {
    let mut index: HashMap<(&str, &str), usize> = HashMap::with_capacity(writes.len());
    let mut merged: Vec<StatWrite> = Vec::with_capacity(writes.len());
    for write in writes {
        write.validate()?;
        match index.get(&(write.user_id.as_str(), write.stat_code.as_str())) {
            Some(&at) => {
                let target = &mut merged[at];
                target.count_delta = target.count_delta.saturating_add(write.count_delta);
                if write.value.is_some() {
                    target.value = write.value;
                }
                target.updated_at = target.updated_at.max(write.updated_at);
            }
            None => {
                index.insert((write.user_id.as_str(), write.stat_code.as_str()), merged.len());
                merged.push(write.clone());
            }
        }
    }
    Ok(merged)
}

/// Validates the writes and keeps only the last write per (user, goal).
pub(crate) fn last_goal_writes(writes: &[GoalWrite]) -> Result<Vec<&GoalWrite>> {
    let mut last: HashMap<(&str, &str), usize> = HashMap::with_capacity(writes.len());
    for (at, write) in writes.iter().enumerate() {
        write.validate()?;
        last.insert((write.user_id.as_str(), write.goal_id.as_str()), at);
    }
    Ok(writes
        .iter()
        .enumerate()
        .filter(|(at, w)| last[&(w.user_id.as_str(), w.goal_id.as_str())] == *at)
        .map(|(_, w)| w)
        .collect())
}

/// The SET clause of a renewal, shared by both backends: the joined row source `r` has columns `a` (assigned_at),
/// `e` (expires_at), `x` (reset progress), `k` (keep claimed), `s` (progress source) and `t` (now). A claimed goal
/// that must stay claimed keeps its state; every other reset clears the row to a fresh assignment.
macro_rules! renewal_set {
    () => {
        concat!(
            "SET assigned_at = r.a, expires_at = r.e, updated_at = r.t, ",
            "progress = CASE WHEN r.x AND NOT (r.k AND status = 'claimed') THEN 0 ELSE progress END, ",
            "status = CASE WHEN r.x AND NOT (r.k AND status = 'claimed') THEN 'not_started' ELSE status END, ",
            "completed_at = CASE WHEN r.x AND NOT (r.k AND status = 'claimed') THEN NULL ELSE completed_at END, ",
            "claimed_at = CASE WHEN r.x AND NOT (r.k AND status = 'claimed') THEN NULL ELSE claimed_at END, ",
            "baseline_value = CASE WHEN r.x AND NOT (r.k AND status = 'claimed') THEN NULL ELSE baseline_value END, ",
            "plugin_state = CASE WHEN r.x AND NOT (r.k AND status = 'claimed') THEN NULL ELSE plugin_state END, ",
            "progress_source = CASE WHEN r.x AND NOT (r.k AND status = 'claimed') THEN r.s ELSE progress_source END "
        )
    };
}
pub(crate) use renewal_set;

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(code: &str, value: Option<f64>, delta: i64, secs: i64) -> StatWrite {
        StatWrite {
            user_id: "u".into(),
            stat_code: code.into(),
            value,
            count_delta: delta,
            updated_at: DateTime::from_timestamp(secs, 0).unwrap(),
        }
    }

    #[test]
    fn repeated_stat_writes_merge() {
        let merged = merge_stat_writes(&[
            stat("a", Some(1.0), 1, 10),
            stat("b", None, 2, 11),
            stat("a", None, 3, 12),
            stat("a", Some(5.0), 1, 9),
        ])
        .unwrap();
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].value, Some(5.0));
        assert_eq!(merged[0].count_delta, 5);
        assert_eq!(merged[0].updated_at.timestamp(), 12);
        assert_eq!(merged[1].count_delta, 2);
    }

    #[test]
    fn nan_and_negative_deltas_are_rejected() {
        assert!(matches!(merge_stat_writes(&[stat("a", Some(f64::NAN), 1, 1)]), Err(StorageError::InvalidInput(_))));
        assert!(matches!(merge_stat_writes(&[stat("a", None, -1, 1)]), Err(StorageError::InvalidInput(_))));
    }

    #[test]
    fn unmet_prerequisites_keep_request_order_without_duplicates() {
        let required = ["c", "a", "c", "b"].map(String::from);
        assert_eq!(unmet_prerequisites(&required, &["a".to_owned()]), vec!["c".to_owned(), "b".to_owned()]);
    }
}
