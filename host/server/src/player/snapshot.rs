//! A player's goal state as the player API reads it: one compact entry per goal row, indexed by the goal's
//! position in the configuration, with the displayed progress already derived from the player's stats.
//! This is what the per-player cache holds.

use std::collections::HashMap;

use challenge_core::progress::{GoalProgress, GoalStatus, StatValue};
use chrono::{DateTime, Utc};

use super::view::{CatalogView, GoalIndex};

/// One goal row, reduced to what responses show.
#[derive(Debug, Clone, PartialEq)]
pub struct RowState {
    /// Progress as the player sees it (derived from the stat row when the goal row says so).
    pub progress: i64,
    pub status: GoalStatus,
    pub completed_at: Option<DateTime<Utc>>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub is_active: bool,
    pub assigned_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl RowState {
    /// A fresh assignment, as `insert_missing_assignments` writes it.
    pub fn assigned(at: DateTime<Utc>, expires_at: Option<DateTime<Utc>>) -> Self {
        RowState {
            progress: 0,
            status: GoalStatus::NotStarted,
            completed_at: None,
            claimed_at: None,
            is_active: true,
            assigned_at: Some(at),
            expires_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct UserSnapshot {
    /// The configuration version the goal indexes refer to.
    version: String,
    /// Sorted by goal index; rows of goals no longer in the configuration are left out.
    rows: Vec<(GoalIndex, RowState)>,
}

impl UserSnapshot {
    pub fn new(view: &CatalogView, rows: &[GoalProgress], stats: &[StatValue]) -> Self {
        let stats: HashMap<&str, &StatValue> = stats.iter().map(|stat| (stat.stat_code.as_str(), stat)).collect();
        let mut entries: Vec<(GoalIndex, RowState)> = rows
            .iter()
            .filter_map(|row| {
                let index = view.goal_index(&row.goal_id)?;
                let stat_code = view.goal(index).stat_code.as_str();
                let state = RowState {
                    progress: row.displayed_progress(stats.get(stat_code).copied()),
                    status: row.status,
                    completed_at: row.completed_at,
                    claimed_at: row.claimed_at,
                    is_active: row.is_active,
                    assigned_at: row.assigned_at,
                    expires_at: row.expires_at,
                };
                Some((index, state))
            })
            .collect();
        entries.sort_unstable_by_key(|(index, _)| *index);
        UserSnapshot { version: view.version().to_owned(), rows: entries }
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn row(&self, index: GoalIndex) -> Option<&RowState> {
        self.rows.binary_search_by_key(&index, |(at, _)| *at).ok().map(|at| &self.rows[at].1)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows of the goals in `range`, in order.
    pub fn rows_in(&self, range: std::ops::Range<GoalIndex>) -> &[(GoalIndex, RowState)] {
        let start = self.rows.partition_point(|(at, _)| *at < range.start);
        let end = self.rows.partition_point(|(at, _)| *at < range.end);
        &self.rows[start..end]
    }

    /// Rows in configuration order.
    pub fn rows(&self) -> impl Iterator<Item = (GoalIndex, &RowState)> + '_ {
        self.rows.iter().map(|(index, row)| (*index, row))
    }

    /// Adds rows for goals that have none (existing rows win, as in the database).
    pub fn with_rows(&self, added: impl IntoIterator<Item = (GoalIndex, RowState)>) -> Self {
        let mut rows = self.rows.clone();
        for (index, row) in added {
            if let Err(at) = rows.binary_search_by_key(&index, |(at, _)| *at) {
                rows.insert(at, (index, row));
            }
        }
        UserSnapshot { version: self.version.clone(), rows }
    }
}
