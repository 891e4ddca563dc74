//! Leasing reward grants for delivery (SQLite).

use chrono::{DateTime, Utc};

use super::{SqliteStore, decode_all, grant_from_row, millis};
use crate::error::Result;
use crate::types::RewardGrant;

impl SqliteStore {
    pub(super) async fn lease_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RewardGrant>> {
        // One writer connection: no other lease can run between the inner select and the update.
        let rows = sqlx::query(concat!(
            "UPDATE reward_grants SET next_attempt_at = ? WHERE id IN (\
               SELECT id FROM reward_grants WHERE status = 'pending' AND next_attempt_at <= ? \
               ORDER BY next_attempt_at, id LIMIT ?) \
             RETURNING ",
            grant_columns!()
        ))
        .bind(millis(lease_until))
        .bind(millis(now))
        .bind(i64::from(limit))
        .fetch_all(&self.writer)
        .await?;
        let mut grants = decode_all(&rows, grant_from_row)?;
        grants.sort_by_key(|grant| grant.id);
        Ok(grants)
    }

    pub(super) async fn lease_one(
        &self,
        id: i64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<RewardGrant>> {
        let row = sqlx::query(concat!(
            "UPDATE reward_grants SET next_attempt_at = ? \
             WHERE id = ? AND status = 'pending' AND next_attempt_at <= ? RETURNING ",
            grant_columns!()
        ))
        .bind(millis(lease_until))
        .bind(id)
        .bind(millis(now))
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(grant_from_row).transpose()
    }
}
