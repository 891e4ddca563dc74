//! A player's whole state in one round trip (PostgreSQL).

use challenge_core::progress::{GoalProgress, StatValue};
use sqlx::Row;

use super::{PostgresStore, goal_from_row, stat_from_row};
use crate::error::Result;

impl PostgresStore {
    pub(super) async fn player_rows(&self, user_id: &str) -> Result<(Vec<GoalProgress>, Vec<StatValue>)> {
        // One statement, one pooled connection: goal rows and stat rows side by side, told apart by `kind`.
        let rows = sqlx::query(concat!(
            "SELECT 'g' AS kind, ",
            goal_columns!(),
            ", NULL::text AS stat_code, NULL::float8 AS value, NULL::int8 AS event_count \
             FROM user_goal_progress WHERE user_id = $1 \
             UNION ALL \
             SELECT 's', user_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
               updated_at, stat_code, value, event_count \
             FROM user_stat_values WHERE user_id = $1"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
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
