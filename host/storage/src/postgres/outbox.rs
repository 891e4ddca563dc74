//! Leasing reward grants for delivery (PostgreSQL).

use chrono::{DateTime, Utc};

use super::{PostgresStore, decode_all, grant_from_row};
use crate::error::Result;
use crate::types::RewardGrant;

impl PostgresStore {
    pub(super) async fn lease_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RewardGrant>> {
        // SKIP LOCKED: concurrent workers take disjoint sets instead of queueing on each other's row locks.
        let rows = sqlx::query(concat!(
            "UPDATE reward_grants SET next_attempt_at = $2 WHERE id IN (\
               SELECT id FROM reward_grants WHERE status = 'pending' AND next_attempt_at <= $1 \
               ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING ",
            grant_columns!()
        ))
        .bind(now)
        .bind(lease_until)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
            "UPDATE reward_grants SET next_attempt_at = $3 \
             WHERE id = $1 AND status = 'pending' AND next_attempt_at <= $2 RETURNING ",
            grant_columns!()
        ))
        .bind(id)
        .bind(now)
        .bind(lease_until)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(grant_from_row).transpose()
    }
}
