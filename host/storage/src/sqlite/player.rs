//! A player's whole state in one round trip (SQLite).

use challenge_core::progress::{GoalProgress, StatValue};
use sqlx::Row;

use super::{SqliteStore, goal_from_row, stat_from_row};
use crate::error::Result;

impl SqliteStore {
    pub(super) async fn player_rows(&self, user_id: &str) -> Result<(Vec<GoalProgress>, Vec<StatValue>)> {
        // One statement: goal rows and stat rows side by side, told apart by `kind`.
        let rows = sqlx::query(concat!(
            "SELECT 'g' AS kind, ",
            goal_columns!(),
            ", NULL AS stat_code, NULL AS value, NULL AS event_count \
             FROM user_goal_progress WHERE user_id = ?1 \
             UNION ALL \
             SELECT 's', user_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
               updated_at, stat_code, value, event_count \
             FROM user_stat_values WHERE user_id = ?1"
        ))
        .bind(user_id)
        .fetch_all(&self.reader)
        .await?;
        let (mut goals, mut stats) = (Vec::new(), Vec::new());
        for row in &rows {
            if row.try_get::<&str, _>("kind")? == "g" {
                goals.push(goal_from_row(row)?);
            } else {
                stats.push(stat_from_row(row)?);
            }
        }
        goals.sort_by(|a, b| (&a.challenge_id, &a.goal_id).cmp(&(&b.challenge_id, &b.goal_id)));
        stats.sort_by(|a, b| a.stat_code.cmp(&b.stat_code));
        Ok((goals, stats))
    }
}
